import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { StoreRefusedError, StoreUnavailableError, type CounterStore } from './counter-store.js';

// The replica's Prometheus metrics (docs/metrics.md). The names are fixed by
// issue 10's contract: the alerting rules and the dashboard use them.

/** Seconds; fine enough below 5 ms to tell single milliseconds apart (a visit takes about one). */
export const DURATION_BUCKETS = [0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export type RedisOperation = 'count_visit' | 'read' | 'ping' | 'live';
export type RedisErrorKind = 'timeout' | 'connection' | 'other';

// Methods outside this list become `other`: a client may send any token as a
// method, and each distinct one would otherwise be a new series forever.
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export interface MetricsOptions {
  release: string;
  replica: string;
  /** Streams open right now (the live module's openStreams()); read at each scrape. */
  liveStreams?: () => number;
}

export interface Metrics {
  registry: Registry;
  /** One request answered: its route (Express's route path; undefined when none matched) and duration. */
  observeRequest(method: string, route: string | undefined, status: number, seconds: number): void;
  /** Times one Redis operation and counts its failure by kind. */
  timeRedis<T>(operation: RedisOperation, run: () => Promise<T>): Promise<T>;
  /** A visitor number handed out. */
  visitCounted(): void;
}

/** TIMEOUT and CONNECTION (no answer came) apart from everything Redis answered with an error. */
export function redisErrorKind(error: unknown): RedisErrorKind | undefined {
  if (error instanceof StoreUnavailableError) {
    if (error.code === 'TIMEOUT') return 'timeout';
    if (error.code === 'CONNECTION') return 'connection';
    return 'other';
  }
  // Refused (NOPERM, WRONGPASS, a script error) or passing replies (LOADING, BUSY, OOM).
  if (error instanceof StoreRefusedError) return 'other';
  // Not a Redis error at all: a bug, which the error handler logs; no Redis metric.
  return undefined;
}

export function createMetrics({ release, replica, liveStreams = () => 0 }: MetricsOptions): Metrics {
  const registry = new Registry();
  // Process and Node metrics (CPU, memory, event-loop lag, GC), unprefixed.
  collectDefaultMetrics({ register: registry });

  const visits = new Counter({ name: 'headcount_visits_counted_total', help: 'Visitor numbers this replica handed out.', registers: [registry] });
  const requests = new Counter({
    name: 'headcount_http_requests_total',
    help: 'HTTP requests answered, by method, Express route (or other) and status.',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const requestSeconds = new Histogram({
    name: 'headcount_http_request_duration_seconds',
    help: 'Time from the request reaching the app to its response closing, by method and route.',
    labelNames: ['method', 'route'] as const,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  const redisSeconds = new Histogram({
    name: 'headcount_redis_command_duration_seconds',
    help: 'Time of one counter-store operation against Redis, failures included.',
    labelNames: ['operation'] as const,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  const redisErrors = new Counter({
    name: 'headcount_redis_errors_total',
    help: 'Counter-store operations that failed, by kind: timeout, connection (no answer), other (an error reply).',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'headcount_live_streams',
    help: 'Live-page event streams open on this replica.',
    registers: [registry],
    collect() {
      this.set(liveStreams());
    },
  });
  new Gauge({
    name: 'headcount_info',
    help: 'Always 1; its labels name the release and replica.',
    labelNames: ['release', 'replica'] as const,
    registers: [registry],
  }).set({ release, replica }, 1);

  // Every kind and operation from the start at 0, so a rate() over them is 0,
  // not empty, before the first error.
  for (const kind of ['timeout', 'connection', 'other'] as const) redisErrors.inc({ kind }, 0);
  for (const operation of ['count_visit', 'read', 'ping', 'live'] as const) redisSeconds.zero({ operation });

  // The hot path: one Map lookup per request for the two metrics' children,
  // instead of building their label objects anew (label sets are few and
  // bounded). prom-client still hashes and checks the labels on each inc and
  // observe, child or not (prom-client 15.1's counter.js and histogram.js).
  type Child = { count: { inc(): void }; seconds: { observe(value: number): void } };
  const children = new Map<string, Child>();
  const childOf = (method: string, route: string, status: number): Child => {
    const key = `${method} ${status} ${route}`;
    let child = children.get(key);
    if (child === undefined) {
      child = { count: requests.labels(method, route, String(status)), seconds: requestSeconds.labels(method, route) };
      children.set(key, child);
    }
    return child;
  };

  return {
    registry,
    observeRequest(method, route, status, seconds) {
      const child = childOf(METHODS.has(method) ? method : 'other', route ?? 'other', status);
      child.count.inc();
      child.seconds.observe(seconds);
    },
    async timeRedis(operation, run) {
      const started = performance.now();
      try {
        return await run();
      } catch (error) {
        const kind = redisErrorKind(error);
        if (kind !== undefined) redisErrors.inc({ kind });
        throw error;
      } finally {
        redisSeconds.observe({ operation }, (performance.now() - started) / 1_000);
      }
    },
    visitCounted: () => visits.inc(),
  };
}

/**
 * The counter store, timed: count_visit, read and ping, each with its errors.
 * headcount_visits_counted_total counts the numbers this replica handed out,
 * never a repeat of a request id (nginx retrying a visit whose first attempt
 * reached Redis, on this replica or another), so summed over the replicas it
 * is the visits counted. Every other method of the store passes through as it
 * is (untimed: a method the live page's tick uses can be timed as `live` with
 * timeRedis).
 */
export function instrumentStore<S extends CounterStore>(store: S, metrics: Metrics): S {
  return {
    ...store,
    async countVisit(requestId) {
      const visit = await metrics.timeRedis('count_visit', () => store.countVisit(requestId));
      if (!visit.repeat) metrics.visitCounted();
      return visit;
    },
    read: () => metrics.timeRedis('read', () => store.read()),
    ping: () => metrics.timeRedis('ping', () => store.ping()),
  };
}
