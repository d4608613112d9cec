import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { waitFor } from '../../formation/wait.js';
import { createRedisCounterStore } from '../../web/counter-store.js';
import { createLiveHub, type LiveSnapshot, type StreamSink } from '../../web/live-hub.js';
import { createRedisClient } from '../../web/redis-client.js';
import { serveApp } from '../support/http-app.js';

const silent = pino({ level: 'silent' });
const storeFor = (redis: Redis, counterKey: string, replicaId: string) =>
  createRedisCounterStore(redis, { counterKey, idempotencyTtlSeconds: 60, deadlineMs: 250, replicaId });
/** A stream that takes everything and keeps nothing. */
const sink = (): StreamSink => ({ write: () => true, end: () => {}, once: () => undefined });

/** Reads an SSE response as it arrives: the chunks so far, and whether it ended. */
function readStream(response: Response) {
  const state = { text: '', ended: false };
  const decoder = new TextDecoder();
  void (async () => {
    for await (const chunk of response.body!) state.text += decoder.decode(chunk as Uint8Array, { stream: true });
    state.ended = true;
  })().catch(() => (state.ended = true));
  const snapshots = () =>
    state.text
      .split('\n\n')
      .filter((frame) => frame.startsWith('event: snapshot\n'))
      .map((frame) => JSON.parse(frame.split('data: ')[1]!) as LiveSnapshot);
  return { state, snapshots };
}

describe('the live hub on a real Redis', () => {
  let redis: Redis;
  beforeAll(async () => {
    redis = createRedisClient({ url: inject('redisUrl'), commandTimeoutMs: 250, connectionName: 'test' }, silent);
    await waitFor('redis client ready', async () => redis.status === 'ready', 5_000);
  });
  afterAll(() => redis.quit());

  test('When 3 replicas tick 5 times, then Redis gets one command per replica per tick, with 0, 1 or 40 streams open on each', async () => {
    const counterKey = `test:${randomUUID()}`;
    const hubs = ['a', 'b', 'c'].map((id) => createLiveHub({ store: storeFor(redis, counterKey, id), replicaId: id, logger: silent }));
    // a: no stream; b: one; c: forty. Each hub's first read happens before MONITOR starts.
    hubs[1]!.attach(sink());
    for (let i = 0; i < 40; i++) hubs[2]!.attach(sink());
    await Promise.all(hubs.map((hub) => hub.tick()));
    const monitor = await redis.duplicate().monitor();
    const sent: string[] = [];
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua' && args.some((arg) => arg.startsWith(counterKey))) sent.push(args[0]!.toLowerCase());
    });

    for (let i = 0; i < 5; i++) await Promise.all(hubs.map((hub) => hub.tick()));
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Tallied before the hubs drain: their leaving (ZREM) can reach Redis
    // before MONITOR's connection has closed, and is not a tick's.
    const tally = sent.reduce<Record<string, number>>((t, c) => ({ ...t, [c]: (t[c] ?? 0) + 1 }), {});
    monitor.disconnect();
    await Promise.all(hubs.map((hub) => hub.drain()));

    // a: 5 heartbeats (ZADD); b and c: 5 snapshot scripts each, the same for 1 stream as for 40.
    expect(tally).toEqual({ zadd: 5, evalsha: 10 });
  });

  test('When a browser opens GET /api/live, then it gets retry:, then snapshots of the total as visits are counted, and the stream ends at once when the replica drains', async () => {
    const counterKey = `test:${randomUUID()}`;
    const store = storeFor(redis, counterKey, 'web-live');
    const live = createLiveHub({ store, replicaId: 'web-live', logger: silent, tickMs: 100 });
    const app = await serveApp(store, 'web-live', { live });
    app.lifecycle.onDrain(() => void live.drain());
    live.start();
    try {
      const response = await fetch(`${app.url}/api/live`);
      const stream = readStream(response);
      await waitFor('the first snapshot', async () => stream.snapshots().length > 0, 2_000, 20);
      await Promise.all(Array.from({ length: 7 }, () => fetch(`${app.url}/api/visits`, { method: 'POST' })));
      await waitFor('a snapshot with 7 visits', async () => stream.snapshots().at(-1)?.total === 7, 2_000, 20);

      const drainStarted = performance.now();
      app.lifecycle.draining = true;
      await waitFor('the stream to end', async () => stream.state.ended, 1_000, 5);
      const endedAfterMs = performance.now() - drainStarted;
      const refused = await fetch(`${app.url}/api/live`);

      expect(response.status).toBe(200);
      expect(Object.fromEntries(response.headers)).toMatchObject({
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-accel-buffering': 'no',
      });
      expect(stream.state.text.startsWith('retry: 2000\n\n')).toBe(true);
      expect(stream.snapshots().at(-1)).toMatchObject({ total: 7, remainder: 0, servedBy: 'web-live', replicas: [{ id: 'web-live', count: 7, live: true }] });
      expect(endedAfterMs).toBeLessThan(500);
      expect(refused.status).toBe(503);
      // The stream and its snapshots counted nothing: the 7 visits only.
      expect(await store.read()).toBe(7);
      expect(await redis.zscore(`${counterKey}:live`, 'web-live')).toBeNull();
    } finally {
      await live.drain();
      await app.close();
    }
  });
});
