import type { RequestHandler } from 'express';
import type { Logger } from 'pino';

/**
 * The first middleware every request passes: it names the replica in
 * X-Replica and writes one JSON line per request with the request id Nginx
 * logged for it, so a visit can be followed from the load balancer's log to
 * the replica's. (pino-http logs the whole request and response; this is the
 * part we read, for less.)
 */
export function createRequestLog(logger: Logger, replicaId: string): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    res.setHeader('X-Replica', replicaId);
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
