import type { Logger } from 'pino';

export type ThrottledLog = (level: 'warn' | 'error', kind: string, fields: Record<string, unknown>, message: string) => void;

/**
 * Logs the first occurrence of each kind of failure at once, then at most one
 * line per kind per interval, saying how many were left out in between: a
 * failure that hits every request must not become a log line per request.
 */
export function createThrottledLog(logger: Logger, intervalMs = 10_000): ThrottledLog {
  const last = new Map<string, { at: number; leftOut: number }>();
  return (level, kind, fields, message) => {
    const now = Date.now();
    const seen = last.get(kind);
    if (seen && now - seen.at < intervalMs) {
      seen.leftOut += 1;
      return;
    }
    last.set(kind, { at: now, leftOut: 0 });
    logger[level]({ ...fields, ...(seen?.leftOut ? { alsoSince: seen.leftOut } : {}) }, message);
  };
}
