import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { classifyRedisError } from './redis-errors.js';
import { createThrottledLog } from './throttled-log.js';

export interface RedisClientOptions {
  url: string;
  commandTimeoutMs: number;
  connectionName: string;
}

/**
 * A Redis client that fails fast instead of queueing (twelve-factor IV: Redis
 * is an attached resource named by URL). While Redis is down or hung every
 * command is rejected within `commandTimeoutMs`, and nothing sent during the
 * outage is replayed when Redis comes back.
 */
export function createRedisClient(options: RedisClientOptions, logger: Logger): Redis {
  const redis = new Redis(options.url, {
    connectionName: options.connectionName,
    connectTimeout: Math.max(1_000, options.commandTimeoutMs),
    // Reject at once while disconnected instead of buffering increments that
    // would all land, late, after recovery.
    enableOfflineQueue: false,
    // Never resend commands that were in flight when the connection dropped:
    // their callers already got a 503.
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    // The ready check sends INFO, which the web user's ACL does not allow
    // (redis/users.acl.template). While Redis loads its AOF, commands get
    // -LOADING instead, and that is a 503 like any other outage.
    enableReadyCheck: false,
    // Keep reconnecting for ever, backing off to one attempt a second.
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 1_000),
    // No autopipelining: it builds an ioredis Pipeline per event-loop turn,
    // which V8 keeps through young-generation collections (about 1 MB
    // promoted per scavenge at one connection), and it was slower at every
    // load measured: make bench-compare, 4 replicas, req/s x1.06 at 100
    // connections and x1.11 at 6 without it (docs/load-testing.md, "Requests
    // born with Express's prototypes").
    enableAutoPipelining: false,
  });
  // A hung Redis (SIGSTOP, a slow script) keeps the socket open: each caller's
  // own deadline (web/counter-store.ts) answers the visit in time, and this
  // per-command timeout, well behind it, releases what a hung Redis never
  // answers. It is armed only once connected: a timed-out AUTH or CLIENT
  // SETNAME during the handshake (a busy host) left the client "ready" with a
  // stream that refused every later command, for good.
  const backstopMs = Math.max(1_000, 4 * options.commandTimeoutMs);
  redis.on('ready', () => (redis.options.commandTimeout = backstopMs));
  redis.on('close', () => delete redis.options.commandTimeout);
  // Logged once per outage, not once per reconnect attempt; a refused login
  // (WRONGPASS, a disabled user) at error level with Redis's words, as it
  // will not pass by itself, and again at most every 10 s while it lasts.
  const log = createThrottledLog(logger);
  let down = false;
  redis.on('error', (error: Error) => {
    const sorted = classifyRedisError(error);
    if (sorted?.kind === 'refused') log('error', sorted.code, { code: sorted.code, cause: error.message }, 'redis refuses the connection');
    else if (!down) logger.warn({ err: error.message }, 'redis unavailable');
    down = true;
  });
  // 'ready' comes even when the login is then refused (the ready check is off),
  // so "available again" waits for Redis to answer a PING.
  redis.on('ready', () => {
    if (!down) return;
    redis.ping().then(
      () => {
        if (!down) return;
        down = false;
        logger.info('redis available again');
      },
      () => {},
    );
  });
  return redis;
}
