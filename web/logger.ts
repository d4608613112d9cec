import { pino, type Logger } from 'pino';
import type { Config } from './config.js';

/**
 * JSON lines on stdout (twelve-factor XI): the environment routes and stores
 * them. Written in batches of at least 4 KiB (or every 250 ms) instead of one
 * write per line: a request log line per visit is then a fraction of a write
 * call. The batch is written synchronously, from the event loop: an
 * asynchronous write goes through libuv's thread pool, whose hand-offs cost
 * about one futex call per two visits and, on a busy 2-core host, 12 % more
 * replica CPU per visit (docs/load-testing.md, "Tuning for issue 11"). A
 * stdout that stops reading then slows the replica instead of growing its
 * memory. What is buffered is written when the process exits (pino does that
 * itself only for asynchronous destinations); a SIGKILL loses at most the
 * last batch.
 */
export function createLogger(config: Pick<Config, 'LOG_LEVEL' | 'REPLICA_ID'> & Partial<Pick<Config, 'RELEASE_ID'>>): Logger {
  const destination = pino.destination({ dest: 1, sync: true, minLength: 4096 });
  setInterval(() => destination.flush(), 250).unref();
  process.once('exit', () => destination.flushSync());
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
