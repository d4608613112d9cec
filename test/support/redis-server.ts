import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import getPort from 'get-port';
import { REDIS_CONF } from '../../formation/local-formation.js';
import { requireExecutable } from '../../formation/prerequisites.js';
import { Service } from '../../formation/supervisor.js';
import { redisAnswers, waitFor } from '../../formation/wait.js';

export interface TestRedis {
  url: string;
  port: number;
  service: Service;
  /** Starts it again on the same port and data folder (the AOF is replayed). */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Stops it and removes its data folder. */
  destroy(): Promise<void>;
}

/** A real redis-server on a free port, with the formation's redis.conf and its own data folder. */
export async function startTestRedis(port?: number): Promise<TestRedis> {
  port ??= await getPort({ host: '127.0.0.1' });
  const dir = await mkdtemp(path.join(tmpdir(), 'headcount-redis-'));
  const url = `redis://127.0.0.1:${port}`;
  const service = new Service(
    {
      name: `redis-${port}`,
      command: requireExecutable('redis-server'),
      args: [REDIS_CONF, '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--loglevel', 'warning'],
    },
    () => {},
  );
  const start = async () => {
    service.start();
    await waitFor(`redis on port ${port}`, () => redisAnswers(url), 10_000);
  };
  await start();
  return {
    url,
    port,
    service,
    start,
    stop: () => service.stop(),
    async destroy() {
      await service.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
