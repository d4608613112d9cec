import type { RequestHandler } from 'express';
import type { Logger } from 'pino';
import type { Metrics } from './metrics.js';
import type { RequestStats } from './supervisor-channel.js';

/**
 * The first middleware every request passes: it names the replica in
 * X-Replica and its release in X-Release (on every answer: 404s and errors
 * too, so a deploy can be followed from any response), and writes one JSON line per request with the request id Nginx
 * logged for it, so a visit can be followed from the load balancer's log to
 * the replica's. (pino-http logs the whole request and response; this is the
 * part we read, for less.)
 */
export function createRequestLog(logger: Logger, replicaId: string, stats?: RequestStats, release = 'dev', metrics?: Metrics): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    res.setHeader('X-Replica', replicaId);
    res.setHeader('X-Release', release);
    res.once('close', () => {
      const ms = performance.now() - started;
      // By route, not URL: Express's route path ('/', '/api/visits'), or
      // `other` when none matched (a 404), so the series stay few.
      metrics?.observeRequest(req.method, req.route?.path, res.statusCode, ms / 1_000);
      // Probes (the supervisor's, nginx's, Docker's) are not traffic.
      if (stats && req.url !== '/readyz' && req.url !== '/healthz') {
        stats.requests += 1;
        if (res.statusCode < 200 || res.statusCode >= 300) stats.non2xx += 1;
      }
      logger.info(
        {
          reqId: req.headers['x-request-id'],
          method: req.method,
          url: req.originalUrl,
          status: res.statusCode,
          ms: Math.round(ms * 100) / 100,
          ...(res.writableFinished ? {} : { aborted: true }),
        },
        'request',
      );
    });
    next();
  };
}
