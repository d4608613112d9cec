import { pino, type Logger } from 'pino';
import type { Config } from './config.js';

/**
 * JSON lines on stdout (twelve-factor XI): the environment routes and stores
 * them. Written in batches of at least 4 KiB (or every 250 ms) instead of one
 * write per line: a request log line per visit is then a fraction of a write
 * call. pino flushes what is buffered when the process exits; a SIGKILL loses
 * at most the last batch.
 */
export function createLogger(config: Pick<Config, 'LOG_LEVEL' | 'REPLICA_ID'> & Partial<Pick<Config, 'RELEASE_ID'>>): Logger {
  const destination = pino.destination({ dest: 1, sync: false, minLength: 4096 });
  setInterval(() => destination.flush(), 250).unref();
  return pino(
    {
      level: config.LOG_LEVEL,
      base: { replica: config.REPLICA_ID, release: config.RELEASE_ID ?? 'dev', pid: process.pid },
      // "time" in epoch milliseconds, pino's default: an ISO string costs a
      // Date and its formatting on every line.
    },
    destination,
  );
}
