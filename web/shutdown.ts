import type { Server } from 'node:http';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Lifecycle } from './lifecycle.js';

export interface ShutdownDeps {
  server: Server;
  /** Further listeners of the same app (TAKEOVER_PORT), closed the same way; read at shutdown. */
  moreServers?: readonly Server[];
  redis: Redis;
  logger: Logger;
  lifecycle: Lifecycle;
  graceMs: number;
  exit?: (code: number) => void;
}

/**
 * Twelve-factor IX: on SIGTERM or SIGINT stop taking work, finish what is in
 * flight, let go of Redis and exit 0, all within the grace period; a timer
 * forces exit 1 if something hangs.
 */
export function registerShutdown({ server, moreServers = [], redis, logger, lifecycle, graceMs, exit = process.exit }: ShutdownDeps) {
  let started = false;

  const shutdown = async (signal: string) => {
    if (started) return;
    started = true;
    const begun = performance.now();
    lifecycle.draining = true;
    logger.info({ signal, graceMs }, 'draining');

    setTimeout(() => {
      logger.error({ graceMs }, 'grace period over with requests still open; forcing exit');
      exit(1);
    }, graceMs).unref();

    // Closing the listener takes this replica out of Nginx's rotation: new
    // connections are refused, and Nginx retries them on another replica.
    // close() also ends idle keep-alive sockets (Node >= 19); sockets that go
    // idle after their in-flight request are swept until none is left.
    const servers = [server, ...moreServers];
    const closed = Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    const sweep = setInterval(() => servers.forEach((s) => s.closeIdleConnections()), 50);
    await closed;
    clearInterval(sweep);

    // QUIT waits for replies to commands already sent; a dead Redis rejects at once.
    await redis.quit().catch(() => redis.disconnect());
    logger.info({ ms: Math.round(performance.now() - begun) }, 'stopped');
    exit(0);
  };

  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
  return shutdown;
}
