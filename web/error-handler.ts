import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from 'pino';
import { StoreUnavailableError } from './counter-store.js';

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
 * Retry-After (Nginx does not retry 503s, so the client hears fast), and any
 * other 5xx says nothing internal.
 */
export function createErrorHandler(logger: Logger): ErrorRequestHandler {
  return (error, _req, res, _next) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (error instanceof StoreUnavailableError) {
      res.status(503).set('Retry-After', '1').json({ error: 'counter store unavailable, retry shortly' });
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
