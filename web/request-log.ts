import type { RequestHandler } from 'express';
import type { Logger } from 'pino';
import type { Lifecycle } from './app.js';

/**
 * The one middleware every request passes: it names the replica in
 * X-Replica, asks Nginx to reconnect elsewhere once draining, and writes one
 * JSON line per request with the request id Nginx logged for it, so a visit
 * can be followed from the load balancer's log to the replica's. (pino-http
 * logs the whole request and response; this is the part we read, for less.)
 */
export function createRequestLog(logger: Logger, replicaId: string, lifecycle: Lifecycle): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    res.setHeader('X-Replica', replicaId);
    if (lifecycle.draining) res.setHeader('Connection', 'close');
    res.once('close', () => {
      logger.info(
        {
          reqId: req.headers['x-request-id'],
          method: req.method,
          url: req.originalUrl,
          status: res.statusCode,
          ms: Math.round((performance.now() - started) * 100) / 100,
          ...(res.writableFinished ? {} : { aborted: true }),
        },
        'request',
      );
    });
    next();
  };
}
