// One-off admin process (twelve-factor XII): `make reset-count`, or
// `node dist/admin/reset-count.js [value]` with the same environment as the
// web replicas. Resets the count (and clears the per-replica breakdown)
// atomically and says what it was.
import { once } from 'node:events';
import { loadConfig } from '../web/config.js';
import { loadEnvFile } from '../web/env-file.js';
import { createCounterStore } from '../web/counter-store.js';
import { createLogger } from '../web/logger.js';
import { createRedisClient } from '../web/redis-client.js';
import { failStartup } from '../web/startup-error.js';

// The same env file as the replicas and the formation (ENV_FILE, or .env), outside production.
try {
  if (process.env.NODE_ENV !== 'production') loadEnvFile(process.env);
} catch (error) {
  failStartup(error);
}

const arg = process.argv[2] ?? '0';
if (!/^\d{1,15}$/.test(arg)) failStartup(new Error(`reset-count: the new value must be a whole number, got "${arg}"`));

let config;
try {
  config = loadConfig({ ...process.env, REPLICA_ID: process.env.REPLICA_ID ?? 'admin' });
} catch (error) {
  failStartup(error);
}
const logger = createLogger({ ...config, LOG_LEVEL: 'warn' });
// A person waits for this one command: give Redis longer than a visit gets.
const commandTimeoutMs = Math.max(config.REDIS_COMMAND_TIMEOUT_MS, 2_000);
const redis = createRedisClient({ url: config.REDIS_URL, commandTimeoutMs, connectionName: 'headcount-admin' }, logger);
try {
  // The client fails fast rather than queueing, so wait for the connection first.
  if (redis.status !== 'ready') await once(redis, 'ready', { signal: AbortSignal.timeout(5_000) });
  const { previous, current } = await createCounterStore(redis, { ...config, REDIS_COMMAND_TIMEOUT_MS: commandTimeoutMs }).reset(Number(arg));
  // The breakdown went in the same transaction: the live page shows the new
  // value as the remainder until replicas count again.
  process.stdout.write(`reset ${config.COUNTER_KEY}: ${previous} -> ${current}; per-replica breakdown cleared (remainder ${current})\n`);
  await redis.quit();
} catch (error) {
  redis.disconnect();
  failStartup(new Error(`reset-count failed: ${error instanceof Error ? error.message : String(error)}`));
}
