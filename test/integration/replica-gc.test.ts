import autocannon from 'autocannon';
import { afterEach, describe, expect, test } from 'vitest';
import { REPLICA_NODE_FLAGS } from '../../formation/local-formation.js';
import { median } from '../../loadtest/report.js';
import { spawnReplica, type ReplicaProcess } from '../support/replica-process.js';
import { startTestRedis, type TestRedis } from '../support/redis-server.js';

const started: ReplicaProcess[] = [];
const redises: TestRedis[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((r) => r.kill()));
  await Promise.all(redises.splice(0).map((r) => r.destroy()));
});

/** Bytes V8 promoted in each scavenge, from `--trace-gc-nvp` lines on the replica's stdout (from line `from` on). */
const promotedPerScavenge = (stdout: string[], from: number) =>
  stdout
    .slice(from)
    .map((line) => /\bgc=s\b.*\bpromoted=(\d+)/.exec(line))
    .filter((match) => match !== null)
    .map((match) => Number(match[1]));

describe('the replica under V8 (garbage collection)', () => {
  // What a visit allocates must die young: at one visit in flight, almost
  // nothing is alive when a scavenge runs. Express's per-request
  // Object.setPrototypeOf on a plain Node request, or ioredis's autopipelining
  // Pipelines, made V8 keep every visit's objects through scavenges (2.8 MB and
  // 1.1 MB promoted per scavenge here, 8-10 ms each: docs/load-testing.md,
  // "Requests born with Express's prototypes"); born with Express's prototypes
  // and without autopipelining, about 12 KB.
  test('When visits come one at a time, then a scavenge promotes almost nothing of them to the old generation', async () => {
    const redis = await startTestRedis();
    redises.push(redis);
    const replica = await spawnReplica({ REDIS_URL: redis.url }, [...REPLICA_NODE_FLAGS, '--trace-gc-nvp']);
    started.push(replica);
    await replica.waitReady();
    const visits = (connections: number, amount: number) =>
      autocannon({ url: `${replica.url}/`, connections, amount, headers: { accept: 'application/json', 'x-request-id': '[<id>]' }, idReplacement: true });

    // Warm, with many in flight: what a burst leaves behind must not carry over.
    await visits(32, 3_000);
    const from = replica.stdout.length;
    const result = await visits(1, 4_000);
    const promoted = promotedPerScavenge(replica.stdout, from);

    expect(result.non2xx + result.errors).toBe(0);
    // A check that saw no scavenge would prove nothing.
    expect(promoted.length).toBeGreaterThanOrEqual(5);
    expect(median(promoted)).toBeLessThan(256 * 1024);
  }, 30_000);
});
