import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { serveApp } from '../support/http-app.js';
import { createMemoryStore } from '../support/memory-store.js';

/** A POST /api/visits with X-Request-Id as these header lines (fetch would join them into one). */
const postWithIds = (url: string, ids: string[]) =>
  new Promise<{ status: number; body: unknown }>((resolve, reject) => {
    const req = request(`${url}/api/visits`, { method: 'POST', headers: { 'x-request-id': ids } }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });

describe('X-Request-Id, the idempotency key', () => {
  const memory = createMemoryStore();
  let app: Awaited<ReturnType<typeof serveApp>>;
  beforeAll(async () => {
    app = await serveApp(memory.store);
  });
  afterAll(() => app.close());

  test('When X-Request-Id is sent twice, then it is a 400 saying it must be given once, and nothing is counted', async () => {
    const before = memory.count;

    const answer = await postWithIds(app.url, ['0123456789abcdef', 'fedcba9876543210']);

    expect(answer).toEqual({ status: 400, body: { error: 'X-Request-Id must be given once' } });
    expect(memory.count).toBe(before);
  });

  test('When X-Request-Id is sent once but malformed, then the 400 says what a request id looks like', async () => {
    const answer = await postWithIds(app.url, ['a, b']);

    expect(answer).toEqual({ status: 400, body: { error: 'X-Request-Id must be 8-128 letters, digits, "_" or "-"' } });
  });

  test('When X-Request-Id is sent once and well formed, then the visit counts', async () => {
    const before = memory.count;

    const answer = await postWithIds(app.url, ['0123456789abcdef']);

    expect(answer).toMatchObject({ status: 200, body: { count: before + 1 } });
  });
});
