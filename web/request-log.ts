import type { RequestHandler } from 'express';
import type { Logger } from 'pino';

/**
 * One JSON line per request, with the request id Nginx logged for it, so a
 * visit can be followed from the load balancer's log to the replica's.
 * (pino-http logs the whole request and response; this is the part we read.)
 */
export function createRequestLog(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    res.once('close', () => {
      logger.info(
        {
          reqId: req.get('x-request-id'),
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
