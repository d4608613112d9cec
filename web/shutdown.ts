import type { Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Lifecycle } from './lifecycle.js';

export interface ShutdownDeps {
  server: Server;
  /** Further listeners of the same app (TAKEOVER_PORT), closed the same way; read at shutdown. */
  moreServers?: readonly Server[];
  /** The metrics listener: closed last, after the app's listeners drained, so the drain itself can be scraped. */
  metricsServer?: Server;
  redis: Redis;
  logger: Logger;
  lifecycle: Lifecycle;
  graceMs: number;
  /** How long to keep serving (readiness 503) before the listeners close: SHUTDOWN_DELAY_MS. */
  delayMs?: number;
  exit?: (code: number) => void;
}

/**
 * Twelve-factor IX: on SIGTERM or SIGINT stop taking work, finish what is in
 * flight, let go of Redis and exit 0, all within the grace period; a timer
 * forces exit 1 if something hangs.
 */
export function registerShutdown({ server, moreServers = [], metricsServer, redis, logger, lifecycle, graceMs, delayMs = 0, exit = process.exit }: ShutdownDeps) {
  let started = false;

  const shutdown = async (signal: string) => {
    if (started) return;
    started = true;
    const begun = performance.now();
    lifecycle.draining = true;
    logger.info({ signal, graceMs, delayMs }, 'draining');

    setTimeout(() => {
      logger.error({ graceMs, delayMs }, 'grace period over with requests still open; forcing exit');
      exit(1);
    }, delayMs + graceMs).unref();

    // Still listening, so a load balancer that has not yet re-resolved its
    // replicas finds this one answering, not refusing (SHUTDOWN_DELAY_MS).
    if (delayMs > 0) await sleep(delayMs);

    // Closing the listener takes this replica out of Nginx's rotation: new
    // connections are refused, and Nginx retries them on another replica.
    // close() also ends idle keep-alive sockets (Node >= 19); sockets that go
    // idle after their in-flight request are swept until none is left.
    const servers = [server, ...moreServers];
    const closed = Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    const sweep = setInterval(() => servers.forEach((s) => s.closeIdleConnections()), 50);
    await closed;
    clearInterval(sweep);
    // A scrape takes milliseconds: whatever is open now ends with its answer,
    // and Prometheus's idle keep-alive connection at once.
    if (metricsServer) {
      const metricsClosed = new Promise<void>((resolve) => metricsServer.close(() => resolve()));
      metricsServer.closeIdleConnections();
      await metricsClosed;
    }

    // QUIT waits for replies to commands already sent; a dead Redis rejects at once.
    await redis.quit().catch(() => redis.disconnect());
    logger.info({ ms: Math.round(performance.now() - begun) }, 'stopped');
    exit(0);
  };

  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
  return shutdown;
}
