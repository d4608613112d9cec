import type { Logger } from 'pino';
import type { LiveReading, LiveStore } from './counter-store.js';
import { createThrottledLog } from './throttled-log.js';

/** What every live stream receives (`event: snapshot`), as JSON. */
export interface LiveSnapshot {
  total: number;
  /** Every replica with a share of the breakdown or a fresh heartbeat, by id. */
  replicas: { id: string; count: number; live: boolean }[];
  /** Visits not in the breakdown: counted before it began, before a reset, or by a version 1 replica. */
  remainder: number;
  /** When it was read, unix ms. */
  at: number;
  /** The replica that read it (the one holding this stream). */
  servedBy: string;
}

/** What a stream writes to: a ServerResponse, or a fake in unit tests. */
export interface StreamSink {
  write(chunk: string): boolean;
  end(): void;
  once(event: 'drain' | 'close', listener: () => void): unknown;
}

export interface LiveHubOptions {
  store: LiveStore;
  replicaId: string;
  logger: Logger;
  /** How often presence is renewed and, while a stream is open, the snapshot read. */
  tickMs?: number;
  /** A comment line this often, so nothing on the way (nginx's 60 s read timeout) drops a quiet stream. */
  heartbeatMs?: number;
  /** A stream ends itself after this long, ± `jitter`: LIVE_STREAM_MAX_SECONDS. */
  maxStreamMs?: number;
  jitter?: number;
  /** What the browser waits before reconnecting a stream that ended (the `retry:` field). */
  retryMs?: number;
  random?: () => number;
}

export interface LiveHub {
  /** Adds a stream (its headers already sent): `retry:`, then snapshots until it ends. */
  attach(sink: StreamSink): void;
  /** Open streams right now: for the `headcount_live_streams` gauge. */
  openStreams(): number;
  /** Starts the ticker: the heartbeat runs from now on, streams or not. */
  start(): void;
  /** Ends every stream at once, stops the ticker and leaves the presence set: on SIGTERM. */
  drain(): Promise<void>;
  /** One tick, as the ticker runs it (tests call it directly). */
  tick(): Promise<void>;
}

// Every hub of this process (one per replica), for openStreams() below.
const hubs = new Set<LiveHub>();

/** Live streams open in this process, over all its hubs: the `headcount_live_streams` gauge. */
export const openStreams = (): number => [...hubs].reduce((sum, hub) => sum + hub.openStreams(), 0);

/** Builds the snapshot from one reading: every replica with a share or a heartbeat, sorted by id. */
export function toSnapshot(reading: LiveReading, at: number, servedBy: string): LiveSnapshot {
  const live = new Set(reading.live);
  const ids = [...new Set([...Object.keys(reading.breakdown), ...reading.live])].sort();
  const replicas = ids.map((id) => ({ id, count: reading.breakdown[id] ?? 0, live: live.has(id) }));
  const shared = replicas.reduce((sum, r) => sum + r.count, 0);
  return { total: reading.total, replicas, remainder: reading.total - shared, at, servedBy };
}

interface Stream {
  sink: StreamSink;
  /** What it was last sent (the snapshot without `at`), so unchanged ticks send nothing. */
  sentKey?: string;
  /** write() returned false: nothing more until 'drain', then only the latest snapshot. */
  blocked: boolean;
  lifetime: NodeJS.Timeout;
}

/**
 * One hub per replica. One ticker reads Redis once per tick (one script call)
 * and fans the result out to every open stream: Redis load is one call per
 * replica per tick whatever the number of streams, and while none is open
 * only the heartbeat (one ZADD) runs.
 */
export function createLiveHub(options: LiveHubOptions): LiveHub {
  const { store, replicaId, logger, tickMs = 1_000, heartbeatMs = 15_000, maxStreamMs = 300_000, jitter = 0.2, retryMs = 2_000 } = options;
  const random = options.random ?? Math.random;
  const log = createThrottledLog(logger);
  const streams = new Set<Stream>();
  let latest: { key: string; frame: string; at: number } | undefined;
  let ticking: Promise<void> | undefined;
  let timers: NodeJS.Timeout[] = [];
  let stopped = false;

  const send = (stream: Stream) => {
    if (!latest || stream.blocked || stream.sentKey === latest.key) return;
    stream.sentKey = latest.key;
    if (!stream.sink.write(latest.frame)) block(stream);
  };
  const block = (stream: Stream) => {
    stream.blocked = true;
    stream.sink.once('drain', () => {
      stream.blocked = false;
      // Whatever it missed meanwhile is stale: only the latest goes out.
      if (streams.has(stream)) send(stream);
    });
  };
  const close = (stream: Stream) => {
    if (!streams.delete(stream)) return;
    clearTimeout(stream.lifetime);
    stream.sink.end();
  };

  const runTick = async () => {
    const now = Date.now();
    try {
      if (streams.size === 0) return void (await store.heartbeat(now));
      const snapshot = toSnapshot(await store.snapshot(now), now, replicaId);
      const { at: _at, ...rest } = snapshot;
      latest = { key: JSON.stringify(rest), frame: `event: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`, at: now };
      for (const stream of streams) send(stream);
    } catch (error) {
      // Redis down or slow: the streams stay open and quiet (heartbeats go on);
      // they pick up again at the next tick that reads.
      log('warn', 'live-tick', { err: error }, 'live tick failed');
    }
  };
  // A tick that outlasts the interval (a slow Redis) is not stacked on.
  const tick = () => (ticking ??= runTick().finally(() => (ticking = undefined)));

  const hub: LiveHub = {
    attach(sink) {
      if (stopped) return void sink.end();
      const spread = 1 + (random() * 2 - 1) * jitter;
      const stream: Stream = { sink, blocked: false, lifetime: setTimeout(() => close(stream), maxStreamMs * spread) };
      streams.add(stream);
      sink.once('close', () => close(stream));
      if (!sink.write(`retry: ${retryMs}\n\n`)) block(stream);
      // A fresh snapshot goes out at once; an old one (no stream was open) is read anew now.
      if (latest && Date.now() - latest.at <= 2 * tickMs) send(stream);
      else if (timers.length > 0) void tick();
    },
    openStreams: () => streams.size,
    start() {
      if (timers.length > 0 || stopped) return;
      void tick();
      timers = [
        setInterval(() => void tick(), tickMs),
        setInterval(() => {
          for (const stream of streams) if (!stream.blocked && !stream.sink.write(': heartbeat\n\n')) block(stream);
        }, heartbeatMs),
      ];
      // The ticker never keeps a process alive by itself.
      for (const timer of timers) timer.unref();
    },
    async drain() {
      if (stopped) return;
      stopped = true;
      timers.forEach(clearInterval);
      hubs.delete(hub);
      for (const stream of [...streams]) close(stream);
      // The last thing it says to Redis: gone now, not in 5 s.
      await ticking;
      await store.leave().catch((error: unknown) => log('warn', 'live-leave', { err: error }, 'could not leave the presence set'));
    },
    tick,
  };
  hubs.add(hub);
  return hub;
}
