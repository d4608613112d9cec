import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import {
  breakdownKey,
  createRedisCounterStore,
  LIVE_PRESENCE_MS,
  presenceKey,
  requestKey,
  StoreRefusedError,
  StoreUnavailableError,
} from '../../web/counter-store.js';
import { createRedisClient } from '../../web/redis-client.js';
import { waitFor } from '../../formation/wait.js';
import { startTestRedis, type TestRedis } from '../support/redis-server.js';

const silent = pino({ level: 'silent' });
const client = (url: string) => createRedisClient({ url, commandTimeoutMs: 250, connectionName: 'test' }, silent);
const ready = (redis: Redis) => waitFor('redis client ready', async () => redis.status === 'ready', 5_000);
const storeOn = (redis: Redis, counterKey = `test:${randomUUID()}`, replicaId = 'web-1') =>
  createRedisCounterStore(redis, { counterKey, idempotencyTtlSeconds: 60, deadlineMs: 250, replicaId });
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

    const visits = await Promise.all(range(1, 500).map((i) => store.countVisit(`req-${i}-${randomUUID()}`)));

    expect(visits.map((v) => v.number).toSorted((a, b) => a - b)).toEqual(range(1, 500));
    expect(visits.filter((v) => v.repeat)).toEqual([]);
    expect(await store.read()).toBe(500);
  });

  test('When the event loop stalls past the deadline while Redis answers, then the visit is answered, not timed out', async () => {
    const store = storeOn(redis);
    const visit = store.countVisit(randomUUID());
    // Once the command is written, block the loop for more than the 250 ms
    // deadline, as a cold or CPU-starved replica does; Redis answers meanwhile.
    await new Promise((resolve) => setImmediate(resolve));
    for (const until = performance.now() + 600; performance.now() < until; );

    await expect(visit).resolves.toEqual({ number: 1, repeat: false });
  });

  test('When the handshake is slower than the command timeout (a busy host at start), then it completes and the client counts', async () => {
    // A user with a password, so the handshake begins with AUTH.
    await redis.call('ACL', 'SETUSER', 'slow-start', 'on', '>slow-start-password', '~*', '+@all');
    const url = new URL(inject('redisUrl'));
    [url.username, url.password] = ['slow-start', 'slow-start-password'];
    const slowStart = client(url.href);
    const errors: string[] = [];
    slowStart.on('error', (error: Error) => errors.push(error.message));
    // The event loop blocked just after the handshake (AUTH, CLIENT SETNAME) went out.
    slowStart.once('connect', () => {
      for (const until = performance.now() + 600; performance.now() < until; );
    });
    try {
      await ready(slowStart);
      const store = storeOn(slowStart);

      await expect(store.countVisit(randomUUID())).resolves.toEqual({ number: 1, repeat: false });
      await expect(store.countVisit(randomUUID())).resolves.toEqual({ number: 2, repeat: false });
      // The handshake was not cut short by a timeout (which reconnects, and was seen to wedge the client).
      expect(errors).toEqual([]);
    } finally {
      slowStart.disconnect();
    }
  });

  test('When the same request id is counted twice, then the repeat gets the first number, marked a repeat, and the count moves once', async () => {
    const store = storeOn(redis);
    await store.countVisit();
    const id = randomUUID();

    const first = await store.countVisit(id);
    const retry = await store.countVisit(id);

    expect([first, retry]).toEqual([
      { number: 2, repeat: false },
      { number: 2, repeat: true },
    ]);
    expect(await store.read()).toBe(2);
  });

  test('When 50 retries of one request race each other, then exactly one increment happens', async () => {
    const store = storeOn(redis);
    const id = randomUUID();

    const visits = await Promise.all(range(1, 50).map(() => store.countVisit(id)));

    expect(new Set(visits.map((v) => v.number))).toEqual(new Set([1]));
    expect(visits.filter((v) => !v.repeat)).toHaveLength(1);
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
    expect(await store.countVisit()).toEqual({ number: 43, repeat: false });
  });

  test('When the key does not exist yet, then the count reads 0', async () => {
    expect(await storeOn(redis).read()).toBe(0);
  });
});

describe('the per-replica breakdown (counting contract 2)', () => {
  let redis: Redis;
  beforeAll(async () => {
    redis = client(inject('redisUrl'));
    await ready(redis);
  });
  afterAll(() => redis.quit());

  const sum = (breakdown: Record<string, number>) => Object.values(breakdown).reduce((a, b) => a + b, 0);
  const replicasOn = (counterKey: string) => ['web-a', 'web-b', 'web-c', 'web-d'].map((id) => storeOn(redis, counterKey, id));

  test('When 4 replicas count 800 visits at once, a tenth of them retried on another replica, then the shares add up to the total', async () => {
    const counterKey = `test:${randomUUID()}`;
    const stores = replicasOn(counterKey);
    const ids = range(1, 800).map((i) => `req-${i}-${randomUUID()}`);

    // Every visit on replica i % 4; each tenth is retried on the next replica.
    const pairs = await Promise.all(
      ids.map(async (id, i) => {
        const first = stores[i % 4]!.countVisit(id);
        const retry = i % 10 === 0 ? stores[(i + 1) % 4]!.countVisit(id) : first;
        return Promise.all([first, retry]);
      }),
    );
    const reading = await stores[0]!.snapshot();

    expect(pairs.every(([a, b]) => a.number === b.number)).toBe(true);
    // Of a visit and its retry, exactly one was counted now (the other is the repeat).
    expect(pairs.filter(([a, b]) => a !== b && a.repeat === b.repeat)).toEqual([]);
    expect(reading.total).toBe(800);
    expect(sum(reading.breakdown)).toBe(800);
    // A visit and its retry race: whichever replica counts it first gets the
    // share, so each replica holds at least its 180 unretried visits.
    expect(Object.keys(reading.breakdown).sort()).toEqual(['web-a', 'web-b', 'web-c', 'web-d']);
    for (const share of Object.values(reading.breakdown)) expect(share).toBeGreaterThanOrEqual(180);
    expect(await redis.hgetall(breakdownKey(counterKey))).toEqual(Object.fromEntries(Object.entries(reading.breakdown).map(([k, v]) => [k, String(v)])));
  });

  test('When the same request id is counted again, then the breakdown moves once', async () => {
    const counterKey = `test:${randomUUID()}`;
    const [a, b] = replicasOn(counterKey);
    const id = randomUUID();

    await a!.countVisit(id);
    await a!.countVisit(id);
    await b!.countVisit(id);
    await b!.countVisit();

    expect(await redis.hgetall(breakdownKey(counterKey))).toEqual({ 'web-a': '1', 'web-b': '1' });
    expect(await a!.read()).toBe(2);
  });

  test('When version 1 replicas count beside version 2 ones (a rolling deploy), then their visits are the remainder and nothing is counted twice', async () => {
    const counterKey = `test:${randomUUID()}`;
    const [v2] = replicasOn(counterKey);
    // Version 1's script, word for word (the release before this one).
    const v1 = (id: string) =>
      redis.eval(
        "local seen = redis.call('GET', KEYS[2]) if seen then return tonumber(seen) end local n = redis.call('INCR', KEYS[1]) redis.call('SET', KEYS[2], n, 'EX', ARGV[1]) return n",
        2,
        counterKey,
        requestKey(counterKey, id),
        60,
      ) as Promise<number>;
    const ids = range(1, 300).map(() => randomUUID());

    // Each visit counted by one release and retried on the other.
    const pairs = await Promise.all(
      ids.map(async (id, i) => (i % 2 ? [await v1(id), (await v2!.countVisit(id)).number] : [(await v2!.countVisit(id)).number, await v1(id)])),
    );
    const reading = await v2!.snapshot();

    expect(pairs.every(([x, y]) => x === y)).toBe(true);
    expect(reading.total).toBe(300);
    expect(reading.breakdown).toEqual({ 'web-a': 150 });
    expect(reading.total - sum(reading.breakdown)).toBe(150);
  });

  test('When the count is reset to 0 and to n while visits are counted, then the breakdown starts over and never exceeds the total', async () => {
    const counterKey = `test:${randomUUID()}`;
    const stores = replicasOn(counterKey);
    await Promise.all(range(1, 200).map((i) => stores[i % 4]!.countVisit(randomUUID())));

    const toZero = await stores[0]!.reset(0);
    const afterZero = await stores[0]!.snapshot();
    await Promise.all(range(1, 40).map((i) => stores[i % 4]!.countVisit(randomUUID())));
    // A reset to n in the middle of 400 concurrent visits: atomic, so no visit
    // lands in the breakdown without being in the total.
    const during = range(1, 400).map((i) => stores[i % 4]!.countVisit(randomUUID()));
    const toN = await stores[1]!.reset(1_000);
    await Promise.all(during);
    const end = await stores[2]!.snapshot();

    expect(toZero).toEqual({ previous: 200, current: 0 });
    expect(afterZero).toMatchObject({ total: 0, breakdown: {} });
    expect(toN.previous).toBeGreaterThanOrEqual(40);
    const remainder = end.total - sum(end.breakdown);
    expect(remainder).toBe(1_000);
    expect(end.total).toBe(1_000 + (440 - toN.previous));
  });

  test('When replicas heartbeat and one stops, then the snapshot lists who is present and trims the stale one after 5 s', async () => {
    const counterKey = `test:${randomUUID()}`;
    const [a, b, c] = replicasOn(counterKey);
    const now = Date.now();

    await a!.heartbeat(now - LIVE_PRESENCE_MS - 1);
    await b!.heartbeat(now - 1_000);
    await c!.heartbeat(now);
    await c!.leave();
    const reading = await b!.snapshot(now);

    expect(reading.live.sort()).toEqual(['web-b']);
    expect(await redis.zrange(presenceKey(counterKey), 0, -1)).toEqual(['web-b']);
  });

  test('When the live tick reads, then it costs one script call, whatever it reads', async () => {
    const counterKey = `test:${randomUUID()}`;
    const store = storeOn(redis, counterKey);
    await store.snapshot();
    const monitor = await redis.duplicate().monitor();
    const sent: string[] = [];
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua' && args.includes(counterKey)) sent.push(args[0]!.toLowerCase());
    });

    await store.snapshot();
    await new Promise((resolve) => setTimeout(resolve, 100));
    monitor.disconnect();

    expect(sent).toEqual(['evalsha']);
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
