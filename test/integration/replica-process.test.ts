import { createServer } from 'node:net';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import getPort from 'get-port';
import { httpOk, waitFor } from '../../formation/wait.js';
import { afterEach, describe, expect, inject, test } from 'vitest';
import { spawnReplica, type ReplicaProcess } from '../support/replica-process.js';
import { startTestRedis, type TestRedis } from '../support/redis-server.js';

const started: ReplicaProcess[] = [];
const redises: TestRedis[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((r) => r.kill()));
  await Promise.all(redises.splice(0).map((r) => r.destroy()));
});
const replica = async (env: Record<string, string>) => {
  const r = await spawnReplica(env);
  started.push(r);
  return r;
};

/**
 * Bytes received but not yet read by whoever listens on 127.0.0.1:`port`
 * (Linux: /proc/net/tcp's rx_queue): a stopped process's unread requests.
 */
const bytesWaitingAt = async (port: number) => {
  const rows = (await readFile('/proc/net/tcp', 'utf8')).trim().split('\n').slice(1);
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return rows
    .map((row) => row.trim().split(/\s+/))
    .filter(([, local]) => local?.endsWith(`:${hexPort}`))
    .reduce((sum, fields) => sum + parseInt(fields[4]!.split(':')[1]!, 16), 0);
};

const portIsFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const probe = createServer().once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });

describe('the replica process (node dist/web/server.js)', () => {
  test('When config is bad, then it exits non-zero with one line naming each bad variable, and binds nothing', async () => {
    const port = await getPort({ host: '127.0.0.1' });

    const result = spawnSync(process.execPath, ['dist/web/server.js'], {
      env: { PATH: process.env.PATH, NODE_ENV: 'production', PORT: String(port), REDIS_COMMAND_TIMEOUT_MS: 'fast', LOG_LEVEL: 'loud' },
      encoding: 'utf8',
      timeout: 5_000,
    });

    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr.trimEnd().split('\n')).toEqual([
      'headcount: invalid configuration: REDIS_COMMAND_TIMEOUT_MS must be an integer from 10 to 10000; ' +
        'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent; REDIS_URL is required when NODE_ENV=production',
    ]);
    expect(await portIsFree(port)).toBe(true);
  });

  test('When its port is already taken, then it exits non-zero at once with one line instead of lingering', async () => {
    const first = await replica({ REDIS_URL: inject('redisUrl') });
    await first.waitReady();

    const second = spawnSync(process.execPath, ['dist/web/server.js'], {
      env: { PATH: process.env.PATH, NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(first.port), REDIS_URL: inject('redisUrl') },
      encoding: 'utf8',
      timeout: 5_000,
    });

    expect(second.status).not.toBe(0);
    expect(second.signal).toBeNull();
    expect(second.stderr.trimEnd().split('\n')).toEqual([`headcount: cannot listen on 127.0.0.1:${first.port}: address already in use`]);
  });

  test('When it serves a request, then it logs one JSON line with the request id, replica, status and duration', async () => {
    const r = await replica({ REDIS_URL: inject('redisUrl'), COUNTER_KEY: `test:log:${Date.now()}` });
    await r.waitReady();

    await fetch(`${r.url}/`, { headers: { 'x-request-id': 'feedc0de1234abcd' } });
    // Log lines are written in batches (at least every 250 ms).
    await waitFor('the request log line', async () => r.stdout.some((line) => line.includes('feedc0de1234abcd')), 2_000);
    const lines = r.stdout.map((line) => JSON.parse(line) as Record<string, unknown>);

    expect(lines.find((l) => l.reqId === 'feedc0de1234abcd')).toMatchObject({
      msg: 'request',
      replica: 'web-t',
      method: 'GET',
      url: '/',
      status: 200,
      ms: expect.any(Number),
    });
  });

  test('When Redis is unreachable, then visits get a fast 503, it stays up, and it recovers by itself when Redis appears', async () => {
    const redisPort = await getPort({ host: '127.0.0.1' });
    const r = await replica({ REDIS_URL: `redis://127.0.0.1:${redisPort}`, COUNTER_KEY: 'test:unreachable' });
    // Without Redis it waits 5 s for it, then listens anyway: alive, though not ready.
    await waitFor('listening', () => httpOk(`${r.url}/healthz`), 10_000);
    const began = performance.now();

    const during = await fetch(`${r.url}/`, { headers: { accept: 'application/json' } });
    const ms = performance.now() - began;
    const readyz = await fetch(`${r.url}/readyz`);
    const redis = await startTestRedis(redisPort);
    redises.push(redis);
    await r.waitReady();
    const after = await fetch(`${r.url}/`, { headers: { accept: 'application/json' } });

    expect(during.status).toBe(503);
    expect(during.headers.get('retry-after')).toBe('1');
    expect(ms).toBeLessThan(500);
    expect(readyz.status).toBe(503);
    expect(r.child.exitCode).toBeNull();
    expect(await after.json()).toMatchObject({ count: 1 });
  }, 30_000);

  test('When SIGTERM arrives during a request, then the request finishes, new connections are refused, and it exits 0', async () => {
    const redis = await startTestRedis();
    redises.push(redis);
    const r = await replica({ REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '5000', COUNTER_KEY: 'test:drain' });
    await r.waitReady();

    redis.service.signal('SIGSTOP'); // the next request waits inside the replica
    const inFlight = fetch(`${r.url}/`, { headers: { accept: 'application/json' } });
    // The visit is inside the replica once its command waits in the stopped Redis's socket.
    await waitFor('the visit\'s command queued at Redis', async () => (await bytesWaitingAt(redis.port)) > 0, 5_000, 10);
    r.child.kill('SIGTERM');
    // 'draining' is logged in the same turn as the listener closes.
    await waitFor('the draining line', async () => r.stdout.some((l) => JSON.parse(l).msg === 'draining'), 5_000, 10);
    const refused = await fetch(`${r.url}/healthz`).then(
      () => 'accepted',
      () => 'refused',
    );
    redis.service.signal('SIGCONT');
    const response = await inFlight;

    expect(refused).toBe('refused');
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ count: 1 });
    expect(await r.exited).toBe(0);
    expect(r.stdout.map((l) => JSON.parse(l).msg)).toEqual(expect.arrayContaining(['draining', 'stopped']));
  });

  test('When TAKEOVER_PORT is held by the replica it replaces, then it serves on its own port at once and takes the other port within milliseconds of its release', async () => {
    const counterKey = `test:takeover:${Date.now()}`;
    const old = await replica({ REDIS_URL: inject('redisUrl'), COUNTER_KEY: counterKey, RELEASE_ID: 'r1-old' });
    await old.waitReady();
    const fresh = await replica({ REDIS_URL: inject('redisUrl'), COUNTER_KEY: counterKey, RELEASE_ID: 'r2-new', TAKEOVER_PORT: String(old.port) });
    await fresh.waitReady();
    const releaseAt = async (port: number) => ((await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as { release: string }).release;
    const before = await releaseAt(old.port);

    old.child.kill('SIGTERM');
    const released = performance.now();
    await waitFor('the port taken over', async () => (await releaseAt(old.port)) === 'r2-new', 5_000, 5);
    const ms = performance.now() - released;

    expect(before).toBe('r1-old');
    expect(await old.exited).toBe(0);
    expect(ms).toBeLessThan(1_000);
    // pino writes in batches (every 250 ms at the latest).
    await waitFor('the takeover logged', async () => fresh.stdout.some((line) => line.includes('"took over port"')), 2_000);
  });
});

