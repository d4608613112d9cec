import { ReplyError } from 'ioredis';

/**
 * What a Redis error means for a visitor. `unavailable`: Redis cannot serve
 * right now and a retry shortly may work (a 503 with Retry-After).
 * `refused`: Redis answered, and will answer the same until an operator
 * changes something (a 500, logged at error level, and /readyz fails).
 */
export interface RedisErrorKind {
  kind: 'unavailable' | 'refused';
  /** The reply's code (NOPERM, OOM, LOADING, ERR, ...), or CONNECTION / TIMEOUT when no reply came. */
  code: string;
  /** Logged at error level although answered 503: Redis is full (OOM) and needs an operator too. */
  alarming: boolean;
}

// Replies of a Redis that is starting (replaying its AOF), running a slow
// script, or failing over: each passes by itself.
// Docs: https://redis.io/docs/latest/develop/reference/protocol-spec/#simple-errors
const PASSING = new Set(['LOADING', 'BUSY', 'MASTERDOWN', 'READONLY', 'TRYAGAIN']);

// ioredis's own errors when no reply can come: the connection is down (with
// enableOfflineQueue off, "Stream isn't writeable ..."), it closed with the
// command in flight, or the command timed out (commandTimeout).
const NO_REPLY = /^(Stream isn't writeable|Connection is closed|Reached the max retries|Command timed out)/;
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/** Sorts an error from ioredis; undefined when it is not a Redis error at all (a bug: a plain 500). */
export function classifyRedisError(error: unknown): RedisErrorKind | undefined {
  if (error instanceof ReplyError) {
    // A reply error starts with its code in capitals: "NOPERM this user has no permissions ...".
    const code = /^[A-Z]+/.exec((error as Error).message)?.[0] ?? 'ERR';
    if (PASSING.has(code)) return { kind: 'unavailable', code, alarming: false };
    if (code === 'OOM') return { kind: 'unavailable', code, alarming: true };
    // NOPERM, NOAUTH, WRONGPASS, WRONGTYPE, and ERR (an unknown command, a
    // script error, a value that is not an integer): the same again on retry.
    return { kind: 'refused', code, alarming: true };
  }
  if (!(error instanceof Error)) return undefined;
  if (error.message.startsWith('Command timed out')) return { kind: 'unavailable', code: 'TIMEOUT', alarming: false };
  const socketCode = (error as NodeJS.ErrnoException).code;
  if (NO_REPLY.test(error.message) || (socketCode !== undefined && SOCKET_CODES.has(socketCode))) {
    return { kind: 'unavailable', code: 'CONNECTION', alarming: false };
  }
  return undefined;
}
