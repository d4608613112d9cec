import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { createRedisCounterStore, requestKey, StoreRefusedError, StoreUnavailableError } from '../../web/counter-store.js';
import { createRedisClient } from '../../web/redis-client.js';
import { waitFor } from '../../formation/wait.js';
import { startTestRedis, type TestRedis } from '../support/redis-server.js';

const silent = pino({ level: 'silent' });
const client = (url: string) => createRedisClient({ url, commandTimeoutMs: 250, connectionName: 'test' }, silent);
const ready = (redis: Redis) => waitFor('redis client ready', async () => redis.status === 'ready', 5_000);
const storeOn = (redis: Redis, counterKey = `test:${randomUUID()}`) =>
  createRedisCounterStore(redis, { counterKey, idempotencyTtlSeconds: 60, deadlineMs: 250 });
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('the Redis counter store', () => {
  let redis: Redis;
  beforeAll(async () => {
    redis = client(inject('redisUrl'));
    await ready(redis);
  });
  afterAll(() => redis.quit());

  test('When 500 visits are counted at once, then each gets its own number and together they are 1..500', async () => {
    const store = storeOn(redis);

    const numbers = await Promise.all(range(1, 500).map((i) => store.countVisit(`req-${i}-${randomUUID()}`)));

    expect(numbers.toSorted((a, b) => a - b)).toEqual(range(1, 500));
    expect(await store.read()).toBe(500);
  });

  test('When the same request id is counted twice, then the repeat gets the first number and the count moves once', async () => {
    const store = storeOn(redis);
    await store.countVisit();
    const id = randomUUID();

    const first = await store.countVisit(id);
    const retry = await store.countVisit(id);

    expect([first, retry]).toEqual([2, 2]);
    expect(await store.read()).toBe(2);
  });

  test('When 50 retries of one request race each other, then exactly one increment happens', async () => {
    const store = storeOn(redis);
    const id = randomUUID();

    const numbers = await Promise.all(range(1, 50).map(() => store.countVisit(id)));

    expect(new Set(numbers)).toEqual(new Set([1]));
    expect(await store.read()).toBe(1);
  });

  test('When a request id is remembered, then it expires after IDEMPOTENCY_TTL_SECONDS', async () => {
    const counterKey = `test:${randomUUID()}`;
    const id = randomUUID();

    await storeOn(redis, counterKey).countVisit(id);
    const ttl = await redis.ttl(requestKey(counterKey, id));

    expect(ttl).toBeGreaterThan(50);
    expect(ttl).toBeLessThanOrEqual(60);
  });

  test('When a visit is counted, then it costs one round trip to Redis (one script call), not a GET and a SET', async () => {
    const store = storeOn(redis);
    await store.countVisit(randomUUID()); // the first call may send the whole script (EVAL); later ones only its hash
    const id = randomUUID();
    // MONITOR reports every command a client sends; commands run inside a
    // script are reported with source "lua", so they are told apart.
    const monitor = await redis.duplicate().monitor();
    const sent: string[] = [];
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua' && args.some((arg) => arg.includes(id))) sent.push(args[0]!.toLowerCase());
    });

    await store.countVisit(id);
    await new Promise((resolve) => setTimeout(resolve, 100));
    monitor.disconnect();

    expect(sent).toEqual(['evalsha']);
  });

  test('When the count is reset, then it says the old value and the new one, atomically', async () => {
    const store = storeOn(redis);
    await Promise.all(range(1, 7).map(() => store.countVisit()));

    expect(await store.reset()).toEqual({ previous: 7, current: 0 });
    expect(await store.reset(42)).toEqual({ previous: 0, current: 42 });
    expect(await store.countVisit()).toBe(43);
  });

  test('When the key does not exist yet, then the count reads 0', async () => {
    expect(await storeOn(redis).read()).toBe(0);
  });
});

describe('the Redis counter store during an outage', () => {
  let server: TestRedis;
  let redis: Redis;
  beforeAll(async () => {
    server = await startTestRedis();
    redis = client(server.url);
    await ready(redis);
  });
  afterAll(async () => {
    redis.disconnect();
    await server.destroy();
  });

  const attempt = async (store: ReturnType<typeof storeOn>) => {
    const started = performance.now();
    const outcome = await store.countVisit(randomUUID()).then(
      () => 'counted',
      (error: unknown) => (error instanceof StoreUnavailableError ? 'unavailable' : String(error)),
    );
    return { outcome, ms: performance.now() - started };
  };

  test('When Redis is stopped, then visits fail fast, and after it returns counting resumes with nothing replayed', async () => {
    const store = storeOn(redis);
    await Promise.all(range(1, 5).map(() => store.countVisit()));
    await server.stop();

    const during = await Promise.all(range(1, 20).map(() => attempt(store)));
    await server.start();
    await waitFor('recovery', async () => (await attempt(store)).outcome === 'counted', 2_000, 50);
    const afterRecovery = await store.read();
    await new Promise((resolve) => setTimeout(resolve, 500));

    expect(during.map((d) => d.outcome)).toEqual(Array(20).fill('unavailable'));
    expect(Math.max(...during.map((d) => d.ms))).toBeLessThan(500);
    // 5 before + the one successful recovery probe; none of the 20 failed attempts landed later.
    expect(afterRecovery).toBe(6);
    expect(await store.read()).toBe(6);
  });

  test('When Redis hangs (SIGSTOP), then visits give up within the command timeout and counting recovers after SIGCONT', async () => {
    const store = storeOn(redis);
    server.service.signal('SIGSTOP');

    let during: Awaited<ReturnType<typeof attempt>>[];
    try {
      during = await Promise.all(range(1, 10).map(() => attempt(store)));
    } finally {
      server.service.signal('SIGCONT');
    }
    await waitFor('recovery', async () => (await attempt(store)).outcome === 'counted', 2_000, 50);

    expect(during.map((d) => d.outcome)).toEqual(Array(10).fill('unavailable'));
    expect(Math.max(...during.map((d) => d.ms))).toBeLessThan(250 + 250);
  });
});

describe('the Redis counter store when Redis answers with an error', () => {
  let server: TestRedis;
  let redis: Redis;
  let operator: Redis;
  beforeAll(async () => {
    server = await startTestRedis();
    redis = client(server.url);
    operator = client(server.url);
    await Promise.all([ready(redis), ready(operator)]);
  });
  afterAll(async () => {
    redis.disconnect();
    operator.disconnect();
    await server.destroy();
  });

  const outcome = (promise: Promise<unknown>) =>
    promise.then(
      () => 'ok',
      (error: unknown) =>
        error instanceof StoreRefusedError ? `refused ${error.code}` : error instanceof StoreUnavailableError ? `unavailable ${error.code}` : String(error),
    );

  test('When Redis is busy with a slow script, then a visit is unavailable (BUSY, a 503), and counts once the script is killed', async () => {
    const store = storeOn(redis);
    await operator.config('SET', 'busy-reply-threshold', '50');
    const slow = client(server.url);
    await ready(slow);
    // Runs until killed; Redis answers everyone else BUSY meanwhile.
    const spinning = slow.eval('while true do end', 0).catch(() => 'killed');
    await waitFor('Redis busy', () => operator.get('any').then(() => false, (error: Error) => error.message.startsWith('BUSY')), 2_000);

    const during = await outcome(store.countVisit(randomUUID()));
    await waitFor('the script killed', async () => (await operator.call('SCRIPT', 'KILL')) === 'OK', 2_000);
    await spinning;
    slow.disconnect();

    expect(during).toBe('unavailable BUSY');
    expect(await outcome(store.countVisit(randomUUID()))).toBe('ok');
  });

  test('When Redis is out of memory, then a visit is unavailable (OOM, a 503) and counts again once memory is there', async () => {
    const store = storeOn(redis);
    await operator.config('SET', 'maxmemory', '1');

    const during = await outcome(store.countVisit(randomUUID()));
    await operator.config('SET', 'maxmemory', '0');

    expect(during).toBe('unavailable OOM');
    expect(await outcome(store.countVisit(randomUUID()))).toBe('ok');
  });

  test('When the count\'s key holds the wrong type, then a visit is refused (WRONGTYPE, a 500) and readiness fails naming it', async () => {
    const counterKey = `test:${randomUUID()}`;
    const store = storeOn(redis, counterKey);
    await operator.lpush(counterKey, 'not a number');

    const visit = await outcome(store.countVisit(randomUUID()));
    const readiness = await outcome(store.ping());
    await operator.del(counterKey);
    await store.countVisit(randomUUID());

    expect(visit).toBe('refused WRONGTYPE');
    expect(readiness).toBe('refused WRONGTYPE');
    // One counted visit clears it: readiness no longer waits out the 10 s.
    expect(await outcome(store.ping())).toBe('ok');
  });
});
