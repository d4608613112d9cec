import type { Server } from 'node:http';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { createApp } from './app.js';
import type { Config } from './config.js';
import { createCounterStore, type CounterStore, type LiveStore } from './counter-store.js';
import { createExpressServer } from './express-server.js';
import { createLifecycle } from './lifecycle.js';
import { createLiveHub, type LiveHub } from './live-hub.js';
import { createLogger } from './logger.js';
import { createMetrics, instrumentStore, type Metrics } from './metrics.js';
import { createMetricsServer, listenMetrics } from './metrics-server.js';
import { createRedisClient } from './redis-client.js';
import { registerShutdown } from './shutdown.js';
import { connectSupervisorChannel, type RequestStats } from './supervisor-channel.js';

export interface Replica {
  server: Server;
  /** The live hub: `live.openStreams()` for the metrics gauge. */
  live: LiveHub;
  redis: Redis;
  logger: Logger;
  port: number;
  /** The metrics listener's port; undefined when METRICS_PORT=off. */
  metricsPort: number | undefined;
  /** Its registry and timers (timeRedis('live', ...) for the live page's tick); undefined when METRICS_PORT=off. */
  metrics: Metrics | undefined;
  shutdown: (signal: string) => Promise<void>;
}

/** Which counter a replica uses. Production always takes the default; tests swap in unsafe ones. */
export type StoreFactory = (redis: Redis, config: Config) => CounterStore;

/** Resolves true once the client is connected, or false after `timeoutMs`. */
function redisReady(redis: Redis, timeoutMs: number): Promise<boolean> {
  if (redis.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      resolve(false);
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve(true);
    };
    redis.once('ready', onReady);
  });
}

/** What the replica's parts other than the store feed into it. */
export interface ReplicaParts {
  /** Live-page streams open now (the live module's openStreams()), for headcount_live_streams. */
  liveStreams?: () => number;
}

/** Builds one replica from validated config, binds its ports and registers graceful shutdown. */
export async function startReplica(config: Config, createStore: StoreFactory = createCounterStore, parts: ReplicaParts = {}): Promise<Replica> {
  const logger = createLogger(config);
  const redis = createRedisClient(
    {
      url: config.REDIS_URL,
      commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
      connectionName: `headcount-${config.REPLICA_ID}`,
    },
    logger,
  );
  const stats: RequestStats = { requests: 0, non2xx: 0 };
  connectSupervisorChannel(redis, stats);
  const lifecycle = createLifecycle();
  const metrics =
    config.METRICS_PORT === 'off'
      ? undefined
      : createMetrics({ release: config.RELEASE_ID, replica: config.REPLICA_ID, liveStreams: parts.liveStreams ?? (() => live.openStreams()) });
  // The live panel always reads through the real store (a test's unsafe
  // counter replaces counting only); its tick is timed as operation="live".
  const liveStore = createCounterStore(redis, config);
  const timedLive: LiveStore = metrics
    ? {
        snapshot: (now) => metrics.timeRedis('live', () => liveStore.snapshot(now)),
        heartbeat: (now) => metrics.timeRedis('live', () => liveStore.heartbeat(now)),
        leave: () => metrics.timeRedis('live', () => liveStore.leave()),
      }
    : liveStore;
  const live = createLiveHub({ store: timedLive, replicaId: config.REPLICA_ID, logger, maxStreamMs: config.LIVE_STREAM_MAX_SECONDS * 1_000 });
  // SIGTERM never waits on a stream: they all end as draining begins.
  lifecycle.onDrain(() => void live.drain());
  const rawStore = createStore(redis, config);
  const store = metrics ? instrumentStore(rawStore, metrics) : rawStore;
  const app = createApp({ store, replicaId: config.REPLICA_ID, release: config.RELEASE_ID, logger, lifecycle, stats, live, metrics });
  const metricsServer = metrics && createMetricsServer(metrics.registry, logger);

  const newServer = () => {
    const created = createExpressServer(app);
    // Nginx closes idle upstream connections after 60 s; Node must wait longer,
    // or it closes a socket just as Nginx sends on it (a sporadic 502).
    created.keepAliveTimeout = config.KEEP_ALIVE_TIMEOUT_MS;
    created.headersTimeout = config.KEEP_ALIVE_TIMEOUT_MS + 1_000;
    return created;
  };
  const server = newServer();

  // Opening the listener puts the replica into nginx's rotation (nginx does
  // not poll /readyz), so connect to Redis first: a replica listening before
  // it can count would answer its first visits with 503. If Redis is down,
  // listen anyway after a few seconds, and answer 503 until it returns.
  if (!(await redisReady(redis, 5_000))) logger.warn('redis not ready after 5 s; listening anyway');

  // Metrics first: a replica in nginx's rotation is one Prometheus can see.
  let metricsPort: number | undefined;
  try {
    if (metricsServer) metricsPort = await listenMetrics(metricsServer, config.METRICS_PORT as number, config.HOST);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.PORT, config.HOST, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    metricsServer?.close();
    redis.disconnect();
    throw error;
  }
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.PORT;
  logger.info({ host: config.HOST, port, metricsPort: metricsPort ?? 'off' }, 'listening');
  live.start();

  const moreServers: Server[] = [];
  const shutdown = registerShutdown({
    server,
    moreServers,
    metricsServer,
    redis,
    logger,
    lifecycle,
    graceMs: config.SHUTDOWN_GRACE_MS,
    delayMs: config.SHUTDOWN_DELAY_MS,
  });
  if (config.TAKEOVER_PORT !== undefined) {
    // Once the replica holds the port nginx knows, its own port has done its
    // job (the formation checked readiness and the release there) and nothing
    // sends to it again: it closes, so the replica listens on one port only,
    // the one `make status` names. Connections still open on it finish first.
    takeOver(newServer(), config.HOST, config.TAKEOVER_PORT, lifecycle, logger, moreServers, () => {
      server.close();
      server.closeIdleConnections();
      logger.info({ host: config.HOST, port }, 'closed its own port');
    });
  }
  return { server, redis, logger, port, metricsPort, metrics, shutdown, live };
}

const TAKEOVER_RETRY_MS = 10;

/**
 * Binds `port` as soon as the replica holding it lets go (a deploy's old
 * replica closes its listener when it drains): tried every TAKEOVER_RETRY_MS,
 * so nginx finds the port refused for a few milliseconds at most, and retries
 * those visits on another replica. Gives up when this replica drains.
 */
function takeOver(server: Server, host: string, port: number, lifecycle: { draining: boolean }, logger: Logger, servers: Server[], onBound: () => void) {
  const attempt = () => {
    if (lifecycle.draining) return;
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EADDRINUSE') return void logger.error({ err: error, port }, 'cannot take over port');
      setTimeout(attempt, TAKEOVER_RETRY_MS);
    });
    server.listen(port, host, () => {
      server.removeAllListeners('error');
      servers.push(server);
      logger.info({ host, port }, 'took over port');
      onBound();
    });
  };
  attempt();
}
