import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, test } from 'vitest';
import { httpOk, waitFor } from '../../formation/wait.js';
import { underLoad, type TimedResult } from '../../loadtest/chaos/load.js';
import { settledCount } from '../../loadtest/chaos/scenario.js';
import { requestKey } from '../../web/counter-store.js';
import { startTestFormation, type TestFormation } from '../support/formation.js';
import { startTestRedis, type TestRedis } from '../support/redis-server.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

/** How long visitors may see errors after one replica loses Redis: nginx's detection. */
const DETECTION_WINDOW_MS = 2_000;
const ownRedisReplica = [process.execPath, 'test/support/own-redis-replica.mjs'];

// A replica cut off from Redis while the others still reach it (a partition,
// a firewall rule, a broken sidecar). nginx retries its 503 on another replica
// (lb/nginx.conf.template), and the request id keeps that retry from counting
// twice, so visitors should not notice beyond the detection window.
describe('one replica cut off from Redis', () => {
  let redis: TestRedis | undefined;
  let proxy: TcpProxy | undefined;
  let formation: TestFormation | undefined;
  let ownUrls: string | undefined;
  afterEach(async () => {
    await formation?.destroy();
    if (ownUrls) await rm(ownUrls, { recursive: true, force: true });
    await proxy?.close();
    await redis?.destroy();
  });

  /** Of the requests not answered 2xx, how many were counted all the same (found by request id)? */
  const countedDespiteError = async (results: TimedResult[], counterKey: string) => {
    const ids = results.filter((r) => r.status < 200 || r.status >= 300).flatMap((r) => (r.requestId ? [r.requestId] : []));
    if (ids.length === 0) return 0;
    const client = new Redis(redis!.url, { maxRetriesPerRequest: 1 });
    try {
      return await client.exists(...ids.map((id) => requestKey(counterKey, id)));
    } finally {
      client.disconnect();
    }
  };

  test.each(['refuse', 'stall'] as const)(
    `When one replica's path to Redis is cut (%s) under fixed-count load, then errors stop within ${DETECTION_WINDOW_MS} ms and the count is exact`,
    async (how) => {
      redis = await startTestRedis();
      proxy = await startTcpProxy(redis.port);
      const counterKey = `test:partition:${randomUUID()}`;
      ownUrls = await mkdtemp(path.join(tmpdir(), 'headcount-own-redis-'));
      await writeFile(path.join(ownUrls, 'web-2'), `redis://127.0.0.1:${proxy.port}`);
      formation = await startTestFormation({
        replicas: 4,
        redisUrl: redis.url,
        replicaCommand: ownRedisReplica,
        replicaEnv: { COUNTER_KEY: counterKey, OWN_REDIS_URL_DIR: ownUrls },
      });
      const cutOff = formation.replicas[1]!;
      const before = await settledCount(formation.lbUrl);
      let cutAt = Number.NaN;
      let readyzDuringCut: unknown;

      const run = await underLoad({ url: formation.lbUrl, durationSeconds: 8, rate: 500 }, async (load) => {
        // About 2 s of load first.
        await load.responses(1_000);
        cutAt = load.elapsed();
        await proxy!.cut(how);
        await sleep(DETECTION_WINDOW_MS + 500);
        readyzDuringCut = await (await fetch(`${cutOff.url}/readyz`)).json();
      });
      // Back in business without a restart once its path returns; increments
      // that waited in a stalled path land now, so the count is read after.
      await proxy.restore();
      await waitFor(`${cutOff.id} ready again`, () => httpOk(`${cutOff.url}/readyz`), 10_000);
      const after = await settledCount(formation.lbUrl);

      const failed = run.results.filter((r) => r.status < 200 || r.status >= 300);
      const afterWindow = failed.filter((r) => r.at > cutAt + DETECTION_WINDOW_MS);
      const ok = run.results.length - failed.length;
      const counted = await countedDespiteError(run.results, counterKey);
      const servedByCutOff = run.results.filter((r) => r.at > cutAt + DETECTION_WINDOW_MS && r.replica === cutOff.id && r.status === 200);
      console.log(
        `partition (${how}): sent ${run.sent}, 2xx ${ok}, non-2xx ${failed.length} (${afterWindow.length} after the window), ` +
          `transport errors ${run.errors}, counted despite an error ${counted}, delta ${after - before}, slowest ${Math.round(Math.max(...run.results.map((r) => r.ms)))} ms`,
      );

      expect(cutAt).toBeGreaterThan(0);
      expect(afterWindow.map((r) => `${r.status} at ${Math.round(r.at - cutAt)} ms`)).toEqual([]);
      expect(run.errors).toBe(0);
      expect(after - before).toBe(ok + counted);
      expect(servedByCutOff).toEqual([]);
      expect(readyzDuringCut).toMatchObject({ status: 'redis unavailable' });
    },
    120_000,
  );
});
