import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestFormation, visitAll, type TestFormation } from '../support/formation.js';

describe('requests through nginx that must never be counted', () => {
  let formation: TestFormation;
  beforeAll(async () => {
    formation = await startTestFormation({ replicas: 4 });
  });
  afterAll(() => formation?.destroy());

  test.each([
    ['HEAD', '/', 200],
    ['GET', '/healthz', 200],
    ['GET', '/readyz', 200],
    ['GET', '/favicon.ico', 204],
    ['GET', '/api/count', 200],
    ['GET', '/no-such-page', 404],
    ['GET', '/admin', 404],
    ['POST', '/reset', 404],
    ['DELETE', '/', 405],
    ['PUT', '/api/visits', 405],
    ['GET', '/lb-healthz', 200],
  ])('When %s %s goes through the load balancer, then it answers %i and the count does not move', async (method, path, status) => {
    const before = await formation.count();

    const responses = await Promise.all(Array.from({ length: 8 }, () => fetch(`${formation.lbUrl}${path}`, { method })));
    await Promise.all(responses.map((r) => r.arrayBuffer()));

    expect(responses.map((r) => r.status)).toEqual(Array(8).fill(status));
    expect(await formation.count()).toBe(before);
  });

  test('When a replica answers through the load balancer, then X-Replica says which one and the 405 carries Allow', async () => {
    const response = await fetch(`${formation.lbUrl}/`, { method: 'DELETE' });

    expect(response.headers.get('x-replica')).toMatch(/^web-[1-4]$/);
    expect(response.headers.get('allow')).toBe('GET, HEAD');
    expect(response.headers.get('server')).toBe('nginx'); // server_tokens off: no version
  });

  test('When a client sends its own X-Request-Id, then nginx replaces it, so a client cannot replay a visit', async () => {
    const before = await formation.count();
    const headers = { accept: 'application/json', 'x-request-id': 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' };

    const results = await Promise.all([1, 2, 3].map(() => fetch(`${formation.lbUrl}/`, { headers })));
    const numbers = await Promise.all(results.map(async (r) => ((await r.json()) as { count: number }).count));

    expect(new Set(numbers).size).toBe(3);
    expect(await formation.count()).toBe(before + 3);
    expect(results.map((r) => r.headers.get('x-request-id'))).not.toContain(headers['x-request-id']);
  });

  test('When visits are counted, then both POST /api/visits and GET / count once each', async () => {
    const before = await formation.count();

    const posts = await visitAll(`${formation.lbUrl}/api/visits`, 10, { method: 'POST' });
    const gets = await visitAll(`${formation.lbUrl}/`, 10);

    expect([...posts, ...gets].every((r) => r.status === 200)).toBe(true);
    expect(await formation.count()).toBe(before + 20);
  });
});
