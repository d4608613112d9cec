import { readFile } from 'node:fs/promises';
import getPort from 'get-port';
import { afterEach, describe, expect, inject, test } from 'vitest';
import { waitFor } from '../../formation/wait.js';
import { startTestRedis, type TestRedis } from '../support/redis-server.js';
import { spawnReplica, type ReplicaProcess } from '../support/replica-process.js';

const started: ReplicaProcess[] = [];
const redises: TestRedis[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((r) => r.kill()));
  await Promise.all(redises.splice(0).map((r) => r.destroy()));
});
const replica = async (env: Record<string, string>) => {
  const r = await spawnReplica(env);
  started.push(r);
  await r.waitReady();
  return r;
};

const sample = (text: string, series: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};
const scrape = async (port: number) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
const visit = (url: string) => fetch(`${url}/`, { headers: { accept: 'application/json' } }).then((r) => r.json() as Promise<{ count: number }>);

/** Bytes waiting unread at 127.0.0.1:`port` (/proc/net/tcp's rx_queue): a stopped Redis's queued commands. */
const bytesWaitingAt = async (port: number) => {
  const rows = (await readFile('/proc/net/tcp', 'utf8')).trim().split('\n').slice(1);
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return rows
    .map((row) => row.trim().split(/\s+/))
    .filter(([, local]) => local?.endsWith(`:${hexPort}`))
    .reduce((sum, fields) => sum + parseInt(fields[4]!.split(':')[1]!, 16), 0);
};

describe('the metrics listener (METRICS_PORT)', () => {
  test('When 12 visits and 2 reads reach a replica, then its metrics port counts exactly those, by route and status', async () => {
    const metricsPort = await getPort({ host: '127.0.0.1' });
    const r = await replica({ REDIS_URL: inject('redisUrl'), COUNTER_KEY: `test:metrics:${Date.now()}`, METRICS_PORT: String(metricsPort), RELEASE_ID: 'r9-metrics' });

    const numbers: number[] = [];
    for (let i = 0; i < 12; i++) numbers.push((await visit(r.url)).count);
    await fetch(`${r.url}/api/count`);
    await fetch(`${r.url}/api/count`);
    await fetch(`${r.url}/nowhere`);
    const text = await scrape(metricsPort);

    expect(numbers).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(sample(text, 'headcount_visits_counted_total')).toBe(12);
    expect(sample(text, 'headcount_http_requests_total{method="GET",route="/",status="200"}')).toBe(12);
    expect(sample(text, 'headcount_http_requests_total{method="GET",route="/api/count",status="200"}')).toBe(2);
    expect(sample(text, 'headcount_http_requests_total{method="GET",route="other",status="404"}')).toBe(1);
    expect(sample(text, 'headcount_http_request_duration_seconds_count{method="GET",route="/"}')).toBe(12);
    expect(sample(text, 'headcount_redis_command_duration_seconds_count{operation="count_visit"}')).toBe(12);
    expect(sample(text, 'headcount_redis_command_duration_seconds_count{operation="read"}')).toBe(2);
    expect(sample(text, 'headcount_info{release="r9-metrics",replica="web-t"}')).toBe(1);
    expect(text).toContain('process_resident_memory_bytes ');
    expect(text).toContain('nodejs_eventloop_lag_p99_seconds ');
  });

  test('When anything but GET /metrics reaches the metrics port, then it answers 404 or 405, and the app port has no /metrics', async () => {
    const metricsPort = await getPort({ host: '127.0.0.1' });
    const r = await replica({ REDIS_URL: inject('redisUrl'), COUNTER_KEY: `test:metrics:${Date.now()}`, METRICS_PORT: String(metricsPort) });

    const root = await fetch(`http://127.0.0.1:${metricsPort}/`);
    const post = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { method: 'POST' });
    const get = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    const onApp = await fetch(`${r.url}/metrics`);

    expect(root.status).toBe(404);
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    expect(get.status).toBe(200);
    expect(get.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(onApp.status).toBe(404);
    expect(await scrape(metricsPort)).not.toContain('route="/metrics"');
  });

  test('When METRICS_PORT is 0, then it takes a free port and the listening line names it', async () => {
    const r = await replica({ REDIS_URL: inject('redisUrl'), METRICS_PORT: '0' });
    await waitFor('the listening line', async () => r.stdout.some((l) => l.includes('"listening"')), 2_000);
    const line = JSON.parse(r.stdout.find((l) => l.includes('"listening"'))!) as { metricsPort: number };

    expect(line.metricsPort).toBeGreaterThan(0);
    expect((await fetch(`http://127.0.0.1:${line.metricsPort}/metrics`)).status).toBe(200);
  });

  test('When METRICS_PORT is off, then no metrics listener starts and visits count as before', async () => {
    const r = await replica({ REDIS_URL: inject('redisUrl'), COUNTER_KEY: `test:metrics-off:${Date.now()}`, METRICS_PORT: 'off' });
    await waitFor('the listening line', async () => r.stdout.some((l) => l.includes('"listening"')), 2_000);

    expect(await visit(r.url)).toMatchObject({ count: 1 });
    expect(JSON.parse(r.stdout.find((l) => l.includes('"listening"'))!)).toMatchObject({ metricsPort: 'off' });
  });

  test('When SIGTERM arrives with a visit in flight, then the metrics port still answers while the app port drains, and closes before exit 0', async () => {
    const redis = await startTestRedis();
    redises.push(redis);
    const metricsPort = await getPort({ host: '127.0.0.1' });
    const r = await replica({ REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '5000', COUNTER_KEY: 'test:metrics-drain', METRICS_PORT: String(metricsPort) });

    redis.service.signal('SIGSTOP');
    const inFlight = fetch(`${r.url}/`, { headers: { accept: 'application/json' } });
    await waitFor("the visit's command queued at Redis", async () => (await bytesWaitingAt(redis.port)) > 0, 5_000, 10);
    r.child.kill('SIGTERM');
    await waitFor('the draining line', async () => r.stdout.some((l) => JSON.parse(l).msg === 'draining'), 5_000, 10);
    const appRefused = await fetch(`${r.url}/healthz`).then(() => false, () => true);
    const duringDrain = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { headers: { connection: 'close' } });
    redis.service.signal('SIGCONT');
    const response = await inFlight;
    const code = await r.exited;
    const metricsRefused = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then(() => false, () => true);

    expect(appRefused).toBe(true);
    expect(duringDrain.status).toBe(200);
    expect(response.status).toBe(200);
    expect(code).toBe(0);
    expect(metricsRefused).toBe(true);
  });
});
