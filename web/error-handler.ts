import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from 'pino';
import { StoreRefusedError, StoreUnavailableError } from './counter-store.js';
import { createThrottledLog } from './throttled-log.js';

/** Unknown paths: a 404 that counts nothing. */
export const notFound: RequestHandler = (_req, res) => {
  res.status(404).json({ error: 'not found' });
};

/** A known path asked with a method it does not support. */
export const methodNotAllowed =
  (allow: string): RequestHandler =>
  (_req, res) => {
    res.status(405).set('Allow', allow).json({ error: `method not allowed; allowed: ${allow}` });
  };

/**
 * The one error handler: 4xx say what was wrong, a Redis outage is a 503 with
 * Retry-After, a Redis that refuses the replica is a 500, and no 5xx says
 * anything internal. Every Redis failure is logged, once per kind per
 * interval: an outage at warn, what needs an operator (OOM, NOPERM,
 * WRONGPASS, WRONGTYPE, a script error) at error, with Redis's code and words.
 */
export function createErrorHandler(logger: Logger): ErrorRequestHandler {
  const log = createThrottledLog(logger);
  return (error, _req, res, _next) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (error instanceof StoreUnavailableError) {
      const cause = error.cause instanceof Error ? error.cause.message : String(error.cause);
      if (error.code === 'OOM') log('error', 'OOM', { code: 'OOM', cause }, 'redis is out of memory: visits answered 503 until memory is freed or maxmemory raised');
      else log('warn', error.code, { code: error.code, cause }, 'redis unavailable: visits answered 503');
      res.status(503).set('Retry-After', '1').json({ error: 'counter store unavailable, retry shortly' });
      return;
    }
    if (error instanceof StoreRefusedError) {
      log('error', error.code, { code: error.code, cause: error.reason }, 'redis refuses the replica: visits answered 500 until an operator fixes it');
      res.status(500).json({ error: 'internal error' });
      return;
    }
    const status = Number(error?.status ?? error?.statusCode);
    if (status >= 400 && status < 500) {
      res.status(status).json({ error: error.expose === false ? 'bad request' : String(error.message) });
      return;
    }
    logger.error({ err: error }, 'unhandled error');
    res.status(500).json({ error: 'internal error' });
  };
}
