import type { Redis, Result } from 'ioredis';

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
  /** Resolves when the store answers; rejects with StoreUnavailableError otherwise. */
  ping(): Promise<void>;
}

/** The backing service did not answer in time, or at all: a 503, never a 500. */
export class StoreUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`counter store unavailable: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'StoreUnavailableError';
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
}

/** The key under which a request id's visitor number is remembered. */
export const requestKey = (counterKey: string, requestId: string) => `${counterKey}:req:${requestId}`;

export function createRedisCounterStore(redis: Redis, options: RedisCounterOptions): CounterStore {
  const { counterKey, idempotencyTtlSeconds } = options;
  // defineCommand sends EVALSHA and falls back to EVAL after a Redis restart
  // emptied the script cache, so the script is never sent twice per call.
  redis.defineCommand('headcountCountOnce', { numberOfKeys: 2, lua: COUNT_ONCE });

  const guard = async <T>(command: () => Promise<T>): Promise<T> => {
    try {
      return await command();
    } catch (error) {
      throw new StoreUnavailableError(error);
    }
  };

  return {
    countVisit: (requestId) =>
      guard(() =>
        requestId === undefined
          ? redis.incr(counterKey)
          : redis.headcountCountOnce(counterKey, requestKey(counterKey, requestId), idempotencyTtlSeconds),
      ),
    read: () => guard(async () => Number((await redis.get(counterKey)) ?? 0)),
    reset: (to = 0) =>
      guard(async () => {
        // SET ... GET swaps in one atomic command: no visit can slip between
        // reading the old value and writing the new one.
        const previous = await redis.set(counterKey, to, 'GET');
        return { previous: Number(previous ?? 0), current: to };
      }),
    ping: () => guard(async () => void (await redis.ping())),
  };
}
