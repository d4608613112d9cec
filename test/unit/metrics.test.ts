import { describe, expect, test } from 'vitest';
import { StoreRefusedError, StoreUnavailableError, type CounterStore } from '../../web/counter-store.js';
import { createMetrics, DURATION_BUCKETS, instrumentStore } from '../../web/metrics.js';
import { createMemoryStore } from '../support/memory-store.js';

/** The value of one sample line `name{labels} value` of the exposition text, or undefined. */
const sample = (text: string, series: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

const metricsFor = (liveStreams?: () => number) => createMetrics({ release: 'r7-abc', replica: 'web-2', liveStreams });

describe('the replica metrics (web/metrics.ts)', () => {
  test('When the registry is scraped, then it names every metric of the contract and the default process metrics', async () => {
    const text = await metricsFor().registry.metrics();

    for (const name of [
      'headcount_visits_counted_total',
      'headcount_http_requests_total',
      'headcount_http_request_duration_seconds',
      'headcount_redis_command_duration_seconds',
      'headcount_redis_errors_total',
      'headcount_live_streams',
      'headcount_info',
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_seconds',
      'nodejs_eventloop_lag_p99_seconds',
    ]) {
      expect(text, name).toContain(`# TYPE ${name} `);
    }
    expect(sample(text, 'headcount_info{release="r7-abc",replica="web-2"}')).toBe(1);
    // Every error kind exists at 0 before the first error, so rate() is 0, not empty.
    for (const kind of ['timeout', 'connection', 'other']) expect(sample(text, `headcount_redis_errors_total{kind="${kind}"}`)).toBe(0);
  });

  test('When requests are observed, then they are counted by method, route and status, with unknown methods and unmatched routes as other', async () => {
    const metrics = metricsFor();

    metrics.observeRequest('GET', '/', 200, 0.0015);
    metrics.observeRequest('GET', '/', 200, 0.0035);
    metrics.observeRequest('GET', '/', 503, 0.25);
    metrics.observeRequest('BREW', undefined, 404, 0.0001);
    const text = await metrics.registry.metrics();

    expect(sample(text, 'headcount_http_requests_total{method="GET",route="/",status="200"}')).toBe(2);
    expect(sample(text, 'headcount_http_requests_total{method="GET",route="/",status="503"}')).toBe(1);
    expect(sample(text, 'headcount_http_requests_total{method="other",route="other",status="404"}')).toBe(1);
    expect(sample(text, 'headcount_http_request_duration_seconds_count{method="GET",route="/"}')).toBe(3);
    // Single milliseconds apart: 1.5 ms falls at or below 2 ms, 3.5 ms only at or below 4 ms.
    expect(sample(text, 'headcount_http_request_duration_seconds_bucket{le="0.002",method="GET",route="/"}')).toBe(1);
    expect(sample(text, 'headcount_http_request_duration_seconds_bucket{le="0.003",method="GET",route="/"}')).toBe(1);
    expect(sample(text, 'headcount_http_request_duration_seconds_bucket{le="0.004",method="GET",route="/"}')).toBe(2);
    expect(DURATION_BUCKETS).toEqual([0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]);
  });

  test('When N visits go through the instrumented store, then N are counted and the count_visit histogram holds N', async () => {
    const metrics = metricsFor();
    const store = instrumentStore(createMemoryStore().store, metrics);

    for (let i = 0; i < 7; i++) await store.countVisit();
    await store.read();
    await store.ping();
    const text = await metrics.registry.metrics();

    expect(sample(text, 'headcount_visits_counted_total')).toBe(7);
    expect(sample(text, 'headcount_redis_command_duration_seconds_count{operation="count_visit"}')).toBe(7);
    expect(sample(text, 'headcount_redis_command_duration_seconds_count{operation="read"}')).toBe(1);
    expect(sample(text, 'headcount_redis_command_duration_seconds_count{operation="ping"}')).toBe(1);
  });

  test('When a request id is counted again (a retry), then the repeat is timed but not counted: each number counts once', async () => {
    const metrics = metricsFor();
    const store = instrumentStore(createMemoryStore().store, metrics);

    const first = await store.countVisit('retried-id');
    const repeat = await store.countVisit('retried-id');
    await store.countVisit('another-id');
    const text = await metrics.registry.metrics();

    expect([first, repeat]).toEqual([
      { number: 1, repeat: false },
      { number: 1, repeat: true },
    ]);
    expect(sample(text, 'headcount_visits_counted_total')).toBe(2);
    expect(sample(text, 'headcount_redis_command_duration_seconds_count{operation="count_visit"}')).toBe(3);
  });

  test('When store operations fail, then errors are counted by kind (timeout, connection, other) and a failed visit is not counted', async () => {
    const metrics = metricsFor();
    const failures: unknown[] = [
      new StoreUnavailableError(new Error('slow'), 'TIMEOUT'),
      new StoreUnavailableError(new Error('down'), 'CONNECTION'),
      new StoreUnavailableError(new Error('loading'), 'LOADING'),
      new StoreRefusedError(new Error('NOPERM'), 'NOPERM'),
      new TypeError('a bug, not Redis'),
    ];
    const failing: CounterStore = {
      countVisit: async () => Promise.reject(failures.shift()),
      read: async () => 0,
      reset: async () => ({ previous: 0, current: 0 }),
      ping: async () => {},
    };
    const store = instrumentStore(failing, metrics);

    for (let i = 0; i < 5; i++) await expect(store.countVisit('abcdefgh')).rejects.toThrow();
    const text = await metrics.registry.metrics();

    expect(sample(text, 'headcount_redis_errors_total{kind="timeout"}')).toBe(1);
    expect(sample(text, 'headcount_redis_errors_total{kind="connection"}')).toBe(1);
    expect(sample(text, 'headcount_redis_errors_total{kind="other"}')).toBe(2);
    expect(sample(text, 'headcount_visits_counted_total')).toBe(0);
    expect(sample(text, 'headcount_redis_command_duration_seconds_count{operation="count_visit"}')).toBe(5);
  });

  test('When the live module reports open streams, then the gauge reads its value at each scrape', async () => {
    let open = 3;
    const metrics = metricsFor(() => open);

    const first = sample(await metrics.registry.metrics(), 'headcount_live_streams');
    open = 0;
    const second = sample(await metrics.registry.metrics(), 'headcount_live_streams');

    expect([first, second]).toEqual([3, 0]);
  });

  test('When the store has methods beyond the timed ones, then the instrumented store passes them through', async () => {
    const memory = createMemoryStore();
    const store = instrumentStore(memory.store, metricsFor());

    await store.countVisit();
    const result = await store.reset(5);

    expect(result).toEqual({ previous: 1, current: 5 });
    expect(memory.count).toBe(5);
  });
});
