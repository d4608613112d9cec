import { EventEmitter } from 'node:events';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import type { LiveReading, LiveStore } from '../../web/counter-store.js';
import { createLiveHub, openStreams, toSnapshot, type StreamSink } from '../../web/live-hub.js';
import { createLifecycle } from '../../web/lifecycle.js';

const silent = pino({ level: 'silent' });

/** A store that counts what the hub asks of Redis. */
function fakeStore(reading: LiveReading = { total: 10, breakdown: { a: 4, b: 3 }, live: ['a', 'b'] }) {
  const calls = { snapshot: 0, heartbeat: 0, leave: 0 };
  const store: LiveStore & { reading: LiveReading } = {
    reading,
    async snapshot() {
      calls.snapshot += 1;
      return structuredClone(store.reading);
    },
    async heartbeat() {
      calls.heartbeat += 1;
    },
    async leave() {
      calls.leave += 1;
    },
  };
  return { store, calls };
}

/** A stream's response: records what was written; `full` makes write() return false (a slow client). */
class FakeSink extends EventEmitter implements StreamSink {
  chunks: string[] = [];
  ended = false;
  full = false;
  write(chunk: string) {
    this.chunks.push(chunk);
    return !this.full;
  }
  end() {
    this.ended = true;
  }
  get snapshots() {
    return this.chunks.filter((c) => c.startsWith('event: snapshot')).map((c) => JSON.parse(c.split('data: ')[1]!) as { total: number });
  }
}

const flush = () => vi.advanceTimersByTimeAsync(0);

describe('the live hub (web/live-hub.ts)', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  test('When a reading comes from Redis, then the snapshot lists every replica with a share or a heartbeat, and shares plus remainder are the total', () => {
    const snapshot = toSnapshot({ total: 12, breakdown: { b: 3, a: 4, gone: 2 }, live: ['a', 'b', 'new'] }, 1_000, 'a');

    expect(snapshot).toEqual({
      total: 12,
      replicas: [
        { id: 'a', count: 4, live: true },
        { id: 'b', count: 3, live: true },
        { id: 'gone', count: 2, live: false },
        { id: 'new', count: 0, live: true },
      ],
      remainder: 3,
      at: 1_000,
      servedBy: 'a',
    });
  });

  test('When no stream is open, then each tick only renews the heartbeat; with 50 streams open, each tick reads Redis once', async () => {
    const { store, calls } = fakeStore();
    const hub = createLiveHub({ store, replicaId: 'a', logger: silent });
    hub.start();
    await vi.advanceTimersByTimeAsync(3_000);
    const idle = { ...calls };

    const sinks = Array.from({ length: 50 }, () => new FakeSink());
    sinks.forEach((s) => hub.attach(s));
    await vi.advanceTimersByTimeAsync(3_000);
    await hub.drain();

    expect(idle).toEqual({ snapshot: 0, heartbeat: 4, leave: 0 });
    // One read at once for the first stream (the other 49 share it), then one per tick.
    expect(calls.snapshot).toBe(1 + 3);
    expect(calls.heartbeat).toBe(4);
    expect(sinks.every((s) => s.snapshots.length === 1 && s.snapshots[0]!.total === 10)).toBe(true);
  });

  test('When a stream opens, then it gets retry: first, then a snapshot only when it changed, and a heartbeat comment every 15 s', async () => {
    const { store } = fakeStore();
    const hub = createLiveHub({ store, replicaId: 'a', logger: silent, retryMs: 2_000 });
    hub.start();
    const sink = new FakeSink();

    hub.attach(sink);
    await vi.advanceTimersByTimeAsync(5_000);
    store.reading = { ...store.reading, total: 11, breakdown: { a: 5, b: 3 } };
    await vi.advanceTimersByTimeAsync(10_000);
    await hub.drain();

    expect(sink.chunks[0]).toBe('retry: 2000\n\n');
    expect(sink.snapshots.map((s) => s.total)).toEqual([10, 11]);
    expect(sink.chunks.filter((c) => c === ': heartbeat\n\n')).toHaveLength(1);
  });

  test('When a client is slow (write returns false), then it is skipped until drain and then gets only the latest snapshot', async () => {
    const { store } = fakeStore();
    const hub = createLiveHub({ store, replicaId: 'a', logger: silent });
    hub.start();
    const slow = new FakeSink();
    hub.attach(slow);
    await vi.advanceTimersByTimeAsync(1_000);

    slow.full = true;
    for (const total of [11, 12, 13]) {
      store.reading = { ...store.reading, total };
      await vi.advanceTimersByTimeAsync(1_000);
    }
    const whileFull = slow.snapshots.map((s) => s.total);
    slow.full = false;
    slow.emit('drain');
    await hub.drain();

    expect(whileFull).toEqual([10, 11]);
    expect(slow.snapshots.map((s) => s.total)).toEqual([10, 11, 13]);
  });

  test('When a stream reaches its lifetime, then it ends itself within 300 s ± 20 %, each at its own jittered moment', async () => {
    const { store } = fakeStore();
    const randoms = [0, 1, 0.5];
    const hub = createLiveHub({ store, replicaId: 'a', logger: silent, maxStreamMs: 300_000, random: () => randoms.shift()! });
    const [early, late, middle] = [new FakeSink(), new FakeSink(), new FakeSink()];
    [early, late, middle].forEach((s) => hub.attach(s!));

    await vi.advanceTimersByTimeAsync(240_000);
    const at240 = [early, late, middle].map((s) => s!.ended);
    await vi.advanceTimersByTimeAsync(60_000);
    const at300 = [early, late, middle].map((s) => s!.ended);
    await vi.advanceTimersByTimeAsync(60_000);

    expect(at240).toEqual([true, false, false]);
    expect(at300).toEqual([true, false, true]);
    expect(late!.ended).toBe(true);
    expect(hub.openStreams()).toBe(0);
  });

  test('When the replica starts draining, then every stream ends at once, the ticker stops and the replica leaves the presence set', async () => {
    const { store, calls } = fakeStore();
    const lifecycle = createLifecycle();
    const hub = createLiveHub({ store, replicaId: 'a', logger: silent });
    lifecycle.onDrain(() => void hub.drain());
    hub.start();
    const sinks = [new FakeSink(), new FakeSink()];
    sinks.forEach((s) => hub.attach(s));
    await vi.advanceTimersByTimeAsync(1_000);
    const before = openStreams();

    lifecycle.draining = true;
    const endedAtOnce = sinks.map((s) => s.ended);
    await flush();
    const reads = calls.snapshot;
    await vi.advanceTimersByTimeAsync(5_000);
    const late = new FakeSink();
    hub.attach(late);

    expect(before).toBeGreaterThanOrEqual(2);
    expect(endedAtOnce).toEqual([true, true]);
    expect(hub.openStreams()).toBe(0);
    expect(calls.leave).toBe(1);
    expect(calls.snapshot).toBe(reads);
    expect(late.ended).toBe(true);
  });

  test('When a client goes away, then its stream is forgotten', async () => {
    const { store } = fakeStore();
    const hub = createLiveHub({ store, replicaId: 'a', logger: silent });
    const sink = new FakeSink();
    hub.attach(sink);

    sink.emit('close');

    expect(hub.openStreams()).toBe(0);
    await hub.drain();
  });
});
