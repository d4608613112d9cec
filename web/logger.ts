import { pino, type Logger } from 'pino';
import type { Config } from './config.js';

/** JSON lines on stdout (twelve-factor XI): the environment routes and stores them. */
export function createLogger(config: Pick<Config, 'LOG_LEVEL' | 'REPLICA_ID'>): Logger {
  return pino({
    level: config.LOG_LEVEL,
    base: { replica: config.REPLICA_ID, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
