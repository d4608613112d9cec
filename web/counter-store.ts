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
   * number first given to it instead of counting again.
   */
  countVisit(requestId?: string): Promise<number>;
  read(): Promise<number>;
  /** Sets the count to `to` atomically and says what it was. */
  reset(to?: number): Promise<{ previous: number; current: number }>;
  /**
   * Resolves when the store can count right now; rejects with
   * StoreUnavailableError or StoreRefusedError (saying why) otherwise.
   */
  ping(): Promise<void>;
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

// One round trip, applied atomically: if this request id was counted before,
// hand back its number; otherwise INCR and remember the number under the id
// for `ttl` seconds. Redis runs a script without interleaving other commands.
const COUNT_ONCE = `
local seen = redis.call('GET', KEYS[2])
if seen then return tonumber(seen) end
local n = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], n, 'EX', ARGV[1])
return n
`;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    headcountCountOnce(counterKey: string, requestKey: string, ttlSeconds: number): Result<number, Context>;
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
}

/** The key under which a request id's visitor number is remembered. */
export const requestKey = (counterKey: string, requestId: string) => `${counterKey}:req:${requestId}`;

/** How long a refused visit keeps /readyz failing, unless a visit is counted again first. */
export const REFUSAL_MEMORY_MS = 10_000;

/** The counter every process uses (replicas, the admin task, test replicas), configured the one way. */
export const createCounterStore = (
  redis: Redis,
  config: Pick<Config, 'COUNTER_KEY' | 'IDEMPOTENCY_TTL_SECONDS' | 'REDIS_COMMAND_TIMEOUT_MS'>,
): CounterStore =>
  createRedisCounterStore(redis, {
    counterKey: config.COUNTER_KEY,
    idempotencyTtlSeconds: config.IDEMPOTENCY_TTL_SECONDS,
    deadlineMs: config.REDIS_COMMAND_TIMEOUT_MS,
  });

export function createRedisCounterStore(redis: Redis, options: RedisCounterOptions): CounterStore {
  const { counterKey, idempotencyTtlSeconds, deadlineMs } = options;
  // defineCommand sends EVALSHA and falls back to EVAL after a Redis restart
  // emptied the script cache, so the script is never sent twice per call.
  redis.defineCommand('headcountCountOnce', { numberOfKeys: 2, lua: COUNT_ONCE });

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
      timer = setTimeout(() => reject(new Error(`Command timed out (no answer within ${deadlineMs} ms)`)), deadlineMs);
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

  // No request id can contain ':' (web/app.ts), so no visit can meet this key.
  const probeKey = requestKey(counterKey, 'readyz:probe');

  const countOnce = (requestId: string | undefined) =>
    requestId === undefined
      ? redis.incr(counterKey)
      : redis.headcountCountOnce(counterKey, requestKey(counterKey, requestId), idempotencyTtlSeconds);

  return {
    async countVisit(requestId) {
      try {
        const number = await guard(() => countOnce(requestId));
        refused = undefined;
        return number;
      } catch (error) {
        if (error instanceof StoreRefusedError) refused = { error, at: Date.now() };
        throw error;
      }
    },
    read: () => guard(async () => Number((await redis.get(counterKey)) ?? 0)),
    reset: (to = 0) =>
      guard(async () => {
        // SET ... GET swaps in one atomic command: no visit can slip between
        // reading the old value and writing the new one.
        const previous = await redis.set(counterKey, to, 'GET');
        return { previous: Number(previous ?? 0), current: to };
      }),
    // Readiness runs what a visit runs: the counting script, with the same
    // commands and permissions (GET, INCR, SET with expiry), on one probe key
    // in the request-id namespace, which the web user's ACL covers, as both
    // of its keys; the key expires after a second and the count itself is
    // never touched. A PING would pass while the ACL refuses every visit.
    async ping() {
      await guard(() => redis.headcountCountOnce(probeKey, probeKey, 1));
      // The probe passes, but a visit was refused lately (say WRONGTYPE on the
      // count's own key): not ready until a visit counts or it is old news.
      if (refused && Date.now() - refused.at < REFUSAL_MEMORY_MS) throw refused.error;
    },
  };
}
