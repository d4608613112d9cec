import type { Redis } from 'ioredis';

/** Requests this replica answered, counted by the request log (web/request-log.ts). */
export interface RequestStats {
  requests: number;
  /** Answers outside 2xx: refusals, 503s, errors. */
  non2xx: number;
}

/** What a replica tells the local formation's supervisor (formation/foreground.ts reads it). */
export type SupervisorMessage =
  | ({ type: 'stats' } & RequestStats)
  | { type: 'redis'; available: boolean; reason?: string };

const STATS_EVERY_MS = 1_000;

/**
 * When the local formation started this replica (an IPC channel is open), it
 * sends the supervisor its request counters once a second and each change of
 * Redis availability, so `make up` can show traffic and Redis outages without
 * reading a single log line. Without a channel (Docker, a plain `node`) it does nothing.
 */
export function connectSupervisorChannel(redis: Redis, stats: Readonly<RequestStats>): void {
  if (!process.send) return;
  // The channel must not keep a draining replica alive.
  process.channel?.unref();
  const send = (message: SupervisorMessage) => {
    if (process.connected) process.send!(message, undefined, undefined, () => {});
  };
  let sent = -1;
  setInterval(() => {
    if (stats.requests === sent) return;
    sent = stats.requests;
    send({ type: 'stats', requests: stats.requests, non2xx: stats.non2xx });
  }, STATS_EVERY_MS).unref();
  // Assumed available until the first error: a replica starts by connecting.
  let available = true;
  redis.on('error', (error: Error) => {
    if (!available) return;
    available = false;
    send({ type: 'redis', available, reason: error.message });
  });
  redis.on('ready', () => {
    if (available) return;
    available = true;
    send({ type: 'redis', available });
  });
}
