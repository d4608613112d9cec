import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { quickFormat } from '../../web/app.js';
import { createMemoryStore } from '../support/memory-store.js';
import { serveApp } from '../support/http-app.js';

// The routes' counting rules, against an in-memory store. The same rules are
// checked through real nginx and Redis in test/cluster/.
describe('counting rules', () => {
  let memory: ReturnType<typeof createMemoryStore>;
  let app: Awaited<ReturnType<typeof serveApp>>;

  beforeEach(async () => {
    memory = createMemoryStore();
    app = await serveApp(memory.store, 'web-7');
  });
  afterEach(() => app.close());

  const request = (path: string, init: RequestInit = {}) => fetch(`${app.url}${path}`, init);

  describe('GET /', () => {
    test('When a browser asks, then it counts one visit and shows the number and the replica', async () => {
      const response = await request('/', { headers: { accept: 'text/html' } });
      const body = await response.text();

      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^text\/html/);
      expect(body).toContain('Welcome to headcount');
      expect(body).toMatch(/data-testid="count">1</);
      expect(body).toMatch(/data-testid="replica">web-7</);
      expect(memory.count).toBe(1);
    });

    test('When JSON is asked for, then it returns the count and replica as JSON', async () => {
      const response = await request('/', { headers: { accept: 'application/json' } });

      expect(await response.json()).toEqual({ count: 1, replica: 'web-7' });
      expect(response.headers.get('cache-control')).toBe('no-store');
      expect(response.headers.get('x-replica')).toBe('web-7');
      expect(response.headers.get('vary')).toMatch(/Accept/);
    });

    test('When the same request id arrives twice (an nginx retry), then it is counted once and gets its first number', async () => {
      const headers = { accept: 'application/json', 'x-request-id': '0123456789abcdef0123456789abcdef' };

      const first = await (await request('/', { headers })).json();
      const retry = await (await request('/', { headers })).json();

      expect(retry).toEqual(first);
      expect(memory.count).toBe(1);
    });

    test('When X-Request-Id is malformed, then it is a 400 and nothing is counted', async () => {
      const response = await request('/', { headers: { 'x-request-id': 'bad id!' } });

      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: expect.stringContaining('X-Request-Id') });
      expect(memory.count).toBe(0);
    });

    test('When no acceptable type is asked for, then it is a 406 and nothing is counted', async () => {
      const response = await request('/', { headers: { accept: 'image/png' } });

      expect(response.status).toBe(406);
      expect(memory.count).toBe(0);
    });

    test('When Redis is unavailable, then it is a 503 with Retry-After, never a 500', async () => {
      memory.setDown(true);

      const response = await request('/', { headers: { accept: 'application/json' } });

      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBe('1');
      expect(response.headers.get('x-replica')).toBe('web-7');
      expect(await response.json()).toEqual({ error: 'counter store unavailable, retry shortly' });
    });
  });

  test('When POST /api/visits is called, then it counts a visit and returns JSON', async () => {
    const response = await request('/api/visits', { method: 'POST' });

    expect(await response.json()).toEqual({ count: 1, replica: 'web-7' });
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(memory.count).toBe(1);
  });

  test('When GET /api/count is called, then it returns the count without counting', async () => {
    await request('/api/visits', { method: 'POST' });

    const response = await request('/api/count');

    expect(await response.json()).toEqual({ count: 1 });
    expect(memory.count).toBe(1);
  });

  describe('never counted', () => {
    test.each([
      ['HEAD', '/', 200],
      ['GET', '/healthz', 200],
      ['GET', '/readyz', 200],
      ['HEAD', '/readyz', 200],
      ['GET', '/favicon.ico', 204],
      ['GET', '/nope', 404],
      ['GET', '/admin', 404],
      ['POST', '/reset', 404],
      ['GET', '/api/visits', 405],
      ['DELETE', '/', 405],
      ['PUT', '/', 405],
      ['POST', '/', 405],
      ['OPTIONS', '/', 405],
      ['PATCH', '/api/count', 405],
    ])('When %s %s is requested, then it answers %i and the count stays 0', async (method, path, status) => {
      const response = await request(path, { method });
      await response.arrayBuffer();

      expect(response.status).toBe(status);
      expect(response.headers.get('x-replica')).toBe('web-7');
      expect(memory.count).toBe(0);
    });

    test('When a method is not supported, then the 405 names the allowed ones in Allow', async () => {
      const root = await request('/', { method: 'DELETE' });
      const visits = await request('/api/visits', { method: 'GET' });

      expect(root.headers.get('allow')).toBe('GET, HEAD');
      expect(visits.headers.get('allow')).toBe('POST');
    });

    test('When HEAD / is requested, then it gets the headers GET would have, without a body', async () => {
      const response = await request('/', { method: 'HEAD', headers: { accept: 'application/json' } });

      expect(response.headers.get('content-type')).toMatch(/^application\/json/);
      expect(response.headers.get('cache-control')).toBe('no-store');
      expect(await response.text()).toBe('');
    });
  });

  describe('readiness', () => {
    test('When Redis is unavailable, then /readyz is 503 while /healthz stays 200', async () => {
      memory.setDown(true);

      expect((await request('/readyz')).status).toBe(503);
      expect((await request('/healthz')).status).toBe(200);
    });

    test('When the replica is draining, then /readyz is 503 and responses close the connection', async () => {
      app.lifecycle.draining = true;

      const response = await request('/readyz');

      expect(response.status).toBe(503);
      expect(await response.json()).toEqual({ status: 'draining' });
      expect(response.headers.get('connection')).toBe('close');
    });
  });

  test('When an Accept header takes the quick path, then the format is the one Express\'s negotiation picks', async () => {
    // Express's own req.accepts, on a real request, for each header.
    const negotiating = express();
    negotiating.get('/', (req, res) => void res.send(String(req.accepts(['html', 'json']))));
    const server = createServer(negotiating);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const negotiated = async (accept: string) =>
      (await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { headers: { accept } })).text();
    const headers = [
      'application/json',
      'text/html',
      // Firefox, Chromium, Safari, curl -H, and lists a client could send.
      'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
      'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7',
      'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8,application/json',
      'text/html,application/json',
      'text/html,*/*',
      'text/html,application/json;q=1',
    ];
    // Not quick: negotiation decides, and the quick path must stay out of it.
    const negotiate = ['text/html;q=0.5,application/json', 'application/json,text/html', 'text/html ,application/json;q=0.1', '*/*', 'application/json;q=0.9', 'text/*'];
    try {
      const quick = headers.map((h) => quickFormat(h));
      const expected = await Promise.all(headers.map(negotiated));

      expect(quick).toEqual(expected);
      expect(negotiate.map((h) => quickFormat(h))).toEqual(negotiate.map(() => undefined));
      expect(quickFormat(undefined)).toBeUndefined();
    } finally {
      server.close();
    }
  });
});
