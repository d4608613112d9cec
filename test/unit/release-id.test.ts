import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ConfigError, loadConfig } from '../../web/config.js';
import { createLogger } from '../../web/logger.js';
import { serveApp } from '../support/http-app.js';
import { createMemoryStore } from '../support/memory-store.js';

const RELEASE = 'r7-1a2b3c4';

describe('RELEASE_ID: every answer names its release', () => {
  const memory = createMemoryStore();
  const logLines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) logLines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  let app: Awaited<ReturnType<typeof serveApp>>;
  beforeAll(async () => {
    app = await serveApp(memory.store, 'web-r', { release: RELEASE, logger: pino({ base: { release: RELEASE } }, sink) });
  });
  afterAll(() => app.close());

  test.each([
    ['GET', '/'],
    ['POST', '/api/visits'],
    ['GET', '/api/count'],
    ['GET', '/healthz'],
    ['GET', '/readyz'],
    ['GET', '/no/such/page'],
    ['DELETE', '/api/count'],
  ])('When %s %s is asked, then the answer carries X-Release', async (method, url) => {
    const response = await fetch(`${app.url}${url}`, { method });

    expect(response.headers.get('x-release')).toBe(RELEASE);
  });

  test('When a request is refused as bad input (400), then it still carries X-Release', async () => {
    const response = await fetch(`${app.url}/api/visits`, { method: 'POST', headers: { 'x-request-id': 'bad id!' } });

    expect(response.status).toBe(400);
    expect(response.headers.get('x-release')).toBe(RELEASE);
  });

  test('When /healthz is asked, then its body names the release', async () => {
    const body = await (await fetch(`${app.url}/healthz`)).json();

    expect(body).toEqual({ status: 'ok', release: RELEASE });
  });

  test('When the page is shown, then its footer names the release', async () => {
    const html = await (await fetch(app.url, { headers: { accept: 'text/html' } })).text();

    expect(html).toMatch(/<footer>[\s\S]*Release <code data-testid="release">r7-1a2b3c4<\/code>[\s\S]*<\/footer>/);
  });

  test('When a request is logged, then the log line names the release', async () => {
    await fetch(`${app.url}/api/count`);
    await new Promise((resolve) => setTimeout(resolve, 50));

    expect(logLines.filter((line) => line.msg === 'request').at(-1)).toMatchObject({ release: RELEASE, url: '/api/count' });
  });
});

describe('RELEASE_ID in config and the logger', () => {
  test('When RELEASE_ID is unset, then the release is dev', () => {
    expect(loadConfig({}).RELEASE_ID).toBe('dev');
  });

  test('When RELEASE_ID holds characters a header or a file name could not carry, then the config names it', () => {
    expect(() => loadConfig({ RELEASE_ID: 'r1 <x>' })).toThrow(ConfigError);
    expect(() => loadConfig({ RELEASE_ID: 'r1 <x>' })).toThrow(/RELEASE_ID must be 1-64 letters/);
  });

  test('When the replica logger is built, then every line carries the release as a base field', () => {
    const logger = createLogger({ LOG_LEVEL: 'info', REPLICA_ID: 'web-1', RELEASE_ID: RELEASE });

    expect(logger.bindings()).toMatchObject({ replica: 'web-1', release: RELEASE });
  });
});
