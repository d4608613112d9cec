import type { RequestHandler } from 'express';

/**
 * Where a replica is in its life, as the request path sees it: web/shutdown.ts
 * sets `draining`, /readyz and the middleware below read it, and what holds
 * connections open on its own (the live streams, web/live-hub.ts) listens.
 */
export interface Lifecycle {
  /** True once shutdown began: readiness fails and connections are not kept alive. */
  draining: boolean;
  /** Calls `listener` once, synchronously, when `draining` first turns true. */
  onDrain(listener: () => void): void;
}

export const createLifecycle = (): Lifecycle => {
  let draining = false;
  const listeners: (() => void)[] = [];
  return {
    get draining() {
      return draining;
    },
    set draining(value: boolean) {
      const starts = value && !draining;
      draining = value;
      if (starts) for (const listener of listeners.splice(0)) listener();
    },
    onDrain(listener) {
      if (draining) listener();
      else listeners.push(listener);
    },
  };
};

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
