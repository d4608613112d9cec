import type { Redis, Result } from 'ioredis';
import type { Config } from './config.js';
import { classifyRedisError } from './redis-errors.js';

/**
 * The one seam of the domain: count a visit exactly once, read, reset.
 * Web routes, the admin task and the tests all go through it, so the
 * counting rule lives here and nowhere else.
 */
export interface CounterStore {
  /**
   * Counts one visit and returns its visitor number. With a request id, a
   * repeat of the same id (Nginx retrying on another replica) returns the
   * number first given to it instead of counting again, marked as a repeat.
   */
  countVisit(requestId?: string): Promise<CountedVisit>;
  read(): Promise<number>;
  /**
   * Sets the count to `to` and clears the per-replica breakdown, atomically,
   * and says what the count was (the remainder then starts at `to`).
   */
  reset(to?: number): Promise<{ previous: number; current: number }>;
  /**
   * Resolves when the store can count right now; rejects with
   * StoreUnavailableError or StoreRefusedError (saying why) otherwise.
   */
  ping(): Promise<void>;
}

/** A visitor number, and whether this call handed it out or only repeated it (a request id seen before). */
export interface CountedVisit {
  number: number;
  repeat: boolean;
}

const messageOf = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause));

/**
 * The backing service cannot serve right now (down, hung, loading, failing
 * over, full): a 503 with Retry-After, never a 500.
 */
export class StoreUnavailableError extends Error {
  constructor(
    cause: unknown,
    /** CONNECTION, TIMEOUT, or Redis's reply code (LOADING, BUSY, OOM, ...). */
    readonly code = 'CONNECTION',
  ) {
    super(`counter store unavailable: ${messageOf(cause)}`, { cause });
    this.name = 'StoreUnavailableError';
  }
}

/**
 * The backing service answers, but refuses what the replica asks (NOPERM,
 * WRONGPASS, WRONGTYPE, a script error): retrying cannot help, an operator
 * must. A 500, logged with the code and Redis's message.
 */
export class StoreRefusedError extends Error {
  constructor(
    cause: unknown,
    readonly code: string,
  ) {
    super(`counter store refuses: ${messageOf(cause)}`, { cause });
    this.name = 'StoreRefusedError';
  }

  /** Redis's own words, e.g. "NOPERM this user has no permissions to run the 'evalsha' command". */
  get reason(): string {
    return messageOf(this.cause);
  }
}

/**
 * What the live panel reads (web/live-hub.ts), in one atomic step, so the
 * breakdown never holds a visit the total does not (remainder >= 0).
 */
export interface LiveReading {
  total: number;
  /** Visits each replica counted since the breakdown began (counting contract 2). */
  breakdown: Record<string, number>;
  /** Replicas whose heartbeat is at most LIVE_PRESENCE_MS old. */
  live: string[];
}

/** Presence, per counting contract 2 (web/counting-contract.ts). */
export interface LiveStore {
  /** Renews this replica's heartbeat, trims stale ones and reads the total, breakdown and presence: one script. */
  snapshot(now?: number): Promise<LiveReading>;
  /** Renews this replica's heartbeat only (one ZADD): while no stream is open. */
  heartbeat(now?: number): Promise<void>;
  /** Takes this replica out of the presence set at once (ZREM), when it drains. */
  leave(): Promise<void>;
}

/** A replica whose heartbeat is older than this is gone. */
export const LIVE_PRESENCE_MS = 5_000;

export const breakdownKey = (counterKey: string) => `${counterKey}:replicas`;
export const presenceKey = (counterKey: string) => `${counterKey}:live`;

// Counting contract 2. One round trip, applied atomically: if this request id
// was counted before, hand back its number; otherwise INCR, remember the number
// under the id for `ttl` seconds, and add the visit to this replica's share of
// the breakdown (never for a repeat). Redis runs a script without interleaving
// other commands, so the breakdown never runs ahead of the count. The reply,
// {number, 1 if counted now}, is the caller's only: the data it leaves is the
// contract's, whatever the reply's shape.
const COUNT_ONCE = `
local seen = redis.call('GET', KEYS[2])
if seen then return { tonumber(seen), 0 } end
local n = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], n, 'EX', ARGV[1])
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
return { n, 1 }
`;
// The same without a request id (direct callers that send none).
const COUNT = `
local n = redis.call('INCR', KEYS[1])
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
return n
`;
// The live tick: renew this replica's heartbeat (unless ARGV[2] is empty),
// drop heartbeats older than ARGV[3], and read the count, the breakdown and
// who is present, as of one instant.
const SNAPSHOT = `
if ARGV[2] ~= '' then redis.call('ZADD', KEYS[3], ARGV[1], ARGV[2]) end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[3])
return { redis.call('GET', KEYS[1]), redis.call('HGETALL', KEYS[2]), redis.call('ZRANGEBYSCORE', KEYS[3], ARGV[3], '+inf') }
`;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    headcountCountOnce2(counterKey: string, requestKey: string, breakdownKey: string, ttlSeconds: number, replica: string): Result<[number, 0 | 1], Context>;
    headcountCount2(counterKey: string, breakdownKey: string, replica: string): Result<number, Context>;
    headcountSnapshot2(
      counterKey: string,
      breakdownKey: string,
      presenceKey: string,
      now: number,
      replica: string,
      since: number,
    ): Result<[string | null, string[], string[]], Context>;
  }
}

export interface RedisCounterOptions {
  counterKey: string;
  idempotencyTtlSeconds: number;
  /**
   * How long a caller waits for any one operation, from the moment it asks.
   * The client's own commandTimeout starts only when a command is written, and
   * with auto-pipelining a command waits for the batch before it: against a
   * hung Redis the second batch took two timeouts (measured: 510 ms at 250 ms).
   */
  deadlineMs: number;
  /** This replica's name in the breakdown and the presence set (REPLICA_ID). */
  replicaId: string;
}

/** The key under which a request id's visitor number is remembered. */
export const requestKey = (counterKey: string, requestId: string) => `${counterKey}:req:${requestId}`;

/** How long a refused visit keeps /readyz failing, unless a visit is counted again first. */
export const REFUSAL_MEMORY_MS = 10_000;

/** The counter every process uses (replicas, the admin task, test replicas), configured the one way. */
export const createCounterStore = (
  redis: Redis,
  config: Pick<Config, 'COUNTER_KEY' | 'IDEMPOTENCY_TTL_SECONDS' | 'REDIS_COMMAND_TIMEOUT_MS' | 'REPLICA_ID'>,
): CounterStore & LiveStore =>
  createRedisCounterStore(redis, {
    counterKey: config.COUNTER_KEY,
    idempotencyTtlSeconds: config.IDEMPOTENCY_TTL_SECONDS,
    deadlineMs: config.REDIS_COMMAND_TIMEOUT_MS,
    replicaId: config.REPLICA_ID,
  });

export function createRedisCounterStore(redis: Redis, options: RedisCounterOptions): CounterStore & LiveStore {
  const { counterKey, idempotencyTtlSeconds, deadlineMs, replicaId } = options;
  const shares = breakdownKey(counterKey);
  const presence = presenceKey(counterKey);
  // defineCommand sends EVALSHA and falls back to EVAL after a Redis restart
  // emptied the script cache, so the script is never sent twice per call.
  redis.defineCommand('headcountCountOnce2', { numberOfKeys: 3, lua: COUNT_ONCE });
  redis.defineCommand('headcountCount2', { numberOfKeys: 2, lua: COUNT });
  redis.defineCommand('headcountSnapshot2', { numberOfKeys: 3, lua: SNAPSHOT });

  // A refused login (WRONGPASS, a disabled user) reaches only the client's
  // 'error' event; the commands themselves then fail as "not connected".
  // Remembered so those failures are told apart from an outage.
  let loginRefused: Error | undefined;
  redis.on('error', (error: unknown) => {
    loginRefused = classifyRedisError(error)?.kind === 'refused' ? (error as Error) : undefined;
  });
  // The last visit Redis refused, for /readyz (see ping).
  let refused: { error: StoreRefusedError; at: number } | undefined;

  const toStoreError = (error: unknown): unknown => {
    const sorted = classifyRedisError(error);
    if (sorted === undefined) return error;
    if (sorted.kind === 'refused') return new StoreRefusedError(error, sorted.code);
    if (sorted.code === 'CONNECTION' && loginRefused) return new StoreRefusedError(loginRefused, classifyRedisError(loginRefused)!.code);
    return new StoreUnavailableError(error, sorted.code);
  };

  const guard = async <T>(command: () => Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      // Rejected in the check phase, after this turn's I/O: when the event loop
      // itself was stalled past the deadline (a cold or CPU-starved replica),
      // a reply that did arrive meanwhile is read first and wins. Only an
      // answer still missing by then is a timeout.
      timer = setTimeout(() => setImmediate(() => reject(new Error(`Command timed out (no answer within ${deadlineMs} ms)`))), deadlineMs);
    });
    try {
      // A command given up on may still run later; an increment that lands
      // so keeps its request id, and a retry finds it there.
      const result = await Promise.race([command(), deadline]);
      loginRefused = undefined;
      return result;
    } catch (error) {
      throw toStoreError(error);
    } finally {
      clearTimeout(timer);
    }
  };

  // No request id can contain ':' (web/app.ts), so no visit can meet these keys.
  const probeKey = requestKey(counterKey, 'readyz:probe');
  // The probe's own breakdown: one field that grows by one per probe that
  // misses (at most one a second), never the real breakdown.
  const probeShares = requestKey(counterKey, 'readyz:probe:replicas');

  const countOnce = async (requestId: string | undefined): Promise<CountedVisit> => {
    if (requestId === undefined) return { number: await redis.headcountCount2(counterKey, shares, replicaId), repeat: false };
    const [number, counted] = await redis.headcountCountOnce2(counterKey, requestKey(counterKey, requestId), shares, idempotencyTtlSeconds, replicaId);
    return { number, repeat: counted === 0 };
  };

  return {
    async countVisit(requestId) {
      try {
        const visit = await guard(() => countOnce(requestId));
        refused = undefined;
        return visit;
      } catch (error) {
        if (error instanceof StoreRefusedError) refused = { error, at: Date.now() };
        throw error;
      }
    },
    read: () => guard(async () => Number((await redis.get(counterKey)) ?? 0)),
    reset: (to = 0) =>
      guard(async () => {
        // SET ... GET swaps in the new count and hands back the old one; the
        // DEL of the breakdown runs in the same transaction, so no visit can
        // land in between: afterwards the remainder is exactly `to`.
        const replies = (await redis.multi().set(counterKey, to, 'GET').del(shares).exec()) ?? [];
        const failed = replies.find(([error]) => error)?.[0];
        if (failed || replies.length !== 2) throw failed ?? new Error('reset: the transaction was discarded');
        return { previous: Number(replies[0]![1] ?? 0), current: to };
      }),
    async snapshot(now = Date.now()) {
      const [total, pairs, live] = await guard(() => redis.headcountSnapshot2(counterKey, shares, presence, now, replicaId, now - LIVE_PRESENCE_MS));
      const breakdown: Record<string, number> = {};
      for (let i = 0; i < pairs.length; i += 2) breakdown[pairs[i]!] = Number(pairs[i + 1]);
      return { total: Number(total ?? 0), breakdown, live };
    },
    heartbeat: (now = Date.now()) => guard(async () => void (await redis.zadd(presence, now, replicaId))),
    leave: () => guard(async () => void (await redis.zrem(presence, replicaId))),
    // Readiness runs what a visit runs: the counting script, with the same
    // commands and permissions (GET, INCR, SET with expiry, HINCRBY), on probe
    // keys in the request-id namespace, which the web user's ACL covers; the
    // key expires after a second and the count itself is never touched. A
    // PING would pass while the ACL refuses every visit.
    async ping() {
      await guard(() => redis.headcountCountOnce2(probeKey, probeKey, probeShares, 1, 'probe'));
      // The probe passes, but a visit was refused lately (say WRONGTYPE on the
      // count's own key): not ready until a visit counts or it is old news.
      if (refused && Date.now() - refused.at < REFUSAL_MEMORY_MS) throw refused.error;
    },
  };
}
