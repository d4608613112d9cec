import type { RequestHandler } from 'express';

/**
 * Where a replica is in its life, as the request path sees it: web/shutdown.ts
 * sets `draining`, /readyz and the middleware below read it.
 */
export interface Lifecycle {
  /** True once shutdown began: readiness fails and connections are not kept alive. */
  draining: boolean;
}

export const createLifecycle = (): Lifecycle => ({ draining: false });

/**
 * Once draining, every answer carries `Connection: close`, so nginx drops its
 * keep-alive connection to this replica and opens the next one elsewhere.
 */
export const closeConnectionsWhenDraining =
  (lifecycle: Lifecycle): RequestHandler =>
  (_req, res, next) => {
    if (lifecycle.draining) res.setHeader('Connection', 'close');
    next();
  };
