import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { waitFor } from '../../formation/wait.js';
import { startTestFormation, type TestFormation } from '../support/formation.js';

// Per-client rate limiting at nginx (lb/nginx.conf.template: limit_req),
// through the real formation. Locally every client is 127.0.0.1, which the
// formation exempts (the load tests run from it), so a limited client here
// sends from another loopback address. Each test uses its own client address,
// so no test inherits another's bucket.

const RATE_PER_SECOND = 10;
const BURST = 5;

interface Visit {
  status: number;
  replica: string | undefined;
}

/** One counting visit (GET / as JSON) on its own connection, from `localAddress`. */
function visitFrom(lbPort: number, localAddress: string, path: string): Promise<Visit> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: '127.0.0.1', port: lbPort, path, localAddress, agent: false, headers: { accept: 'application/json' }, timeout: 10_000 },
      (response) => {
        response.resume();
        response.on('end', () => resolve({ status: response.statusCode ?? 0, replica: response.headers['x-replica'] as string | undefined }));
      },
    );
    request.on('timeout', () => request.destroy(new Error(`GET ${path} from ${localAddress} timed out`)));
    request.on('error', reject);
    request.end();
  });
}

/** `n` visits sent at once from one client address; also how long the burst took. */
async function burstFrom(lbPort: number, localAddress: string, n: number, path: string) {
  const started = performance.now();
  const visits = await Promise.all(Array.from({ length: n }, () => visitFrom(lbPort, localAddress, path)));
  return { visits, seconds: (performance.now() - started) / 1_000 };
}

const tally = (visits: Visit[]) =>
  visits.reduce<Record<number, number>>((counts, { status }) => ({ ...counts, [status]: (counts[status] ?? 0) + 1 }), {});

/** Counting scripts Redis has run (the replica sends EVALSHA, EVAL after a Redis restart). */
async function countingCommands(redis: Redis): Promise<number> {
  const info = await redis.info('commandstats');
  return [...info.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
}

/** Lines the formation printed that contain `part`, once at least `n` are there (logs are buffered for up to a second). */
async function linesWith(formation: TestFormation, part: string, n: number): Promise<string[]> {
  const found = () => formation.lines.filter((line) => line.includes(part));
  await waitFor(`${n} log lines with ${part}`, async () => found().length >= n, 5_000, 100).catch(() => {});
  return found();
}

/**
 * Waits until every replica has logged everything it logged so far: a marker
 * request sent straight to each replica comes out of its one output stream
 * after every earlier line, so once each marker is in, no earlier line is
 * still buffered.
 */
async function replicaLogsFlushed(formation: TestFormation): Promise<void> {
  const marker = randomUUID();
  await Promise.all(formation.replicas.map((r) => fetch(`${r.url}/healthz?flushed=${marker}`).then((response) => response.arrayBuffer())));
  await waitFor('every replica to log its marker', async () => formation.replicas.every((r) => formation.lines.some((line) => line.startsWith(`${r.id} |`) && line.includes(marker))), 5_000, 50);
}

/** A formation with these LB_* settings for nginx (passed in, not through process.env). */
const startWithLbEnv = (lbEnv: Record<string, string>) => startTestFormation({ replicas: 4, replicaEnv: { LOG_LEVEL: 'info' }, lbEnv });

describe(`rate limit on: ${RATE_PER_SECOND}r/s, burst ${BURST}, 127.0.0.1 exempt`, () => {
  let formation: TestFormation;
  let redis: Redis;
  beforeAll(async () => {
    formation = await startWithLbEnv({
      LB_RATE_LIMIT: `${RATE_PER_SECOND}r/s`,
      LB_RATE_BURST: String(BURST),
      LB_RATE_LIMIT_EXEMPT: '127.0.0.1',
    });
    redis = new Redis(formation.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
  });
  afterAll(async () => {
    redis?.disconnect();
    await formation?.destroy();
  });

  test('When one client (127.0.0.2) sends 60 visits at once, then the excess gets 429, never 503, and only the admitted visits reach a replica and Redis', async () => {
    const tag = `/?client=${randomUUID()}`;
    const countBefore = await formation.count();
    const scriptsBefore = await countingCommands(redis);

    const { visits, seconds } = await burstFrom(formation.lbPort, '127.0.0.2', 60, tag);

    const statuses = tally(visits);
    const admitted = statuses[200] ?? 0;
    expect(Object.keys(statuses).sort()).toEqual(['200', '429']);
    // The leaky bucket: the first request plus BURST at once (nodelay), then
    // RATE_PER_SECOND more per second the burst lasted, at most.
    expect(admitted).toBeGreaterThanOrEqual(1 + BURST);
    expect(admitted).toBeLessThanOrEqual(1 + BURST + Math.ceil(RATE_PER_SECOND * seconds) + 1);
    // A 429 is nginx's own answer: no replica was asked.
    for (const visit of visits.filter((v) => v.status === 429)) expect(visit.replica).toBeUndefined();
    expect(await formation.count()).toBe(countBefore + admitted);
    expect(await countingCommands(redis)).toBe(scriptsBefore + admitted);
    // Every request is in nginx's log; only the admitted ones in a replica's.
    const nginxLines = await linesWith(formation, `"uri":"${tag}"`, 60);
    expect(nginxLines).toHaveLength(60);
    for (const line of nginxLines.filter((l) => l.includes('"status":429'))) expect(line).toContain('"upstream_addr":""');
    await replicaLogsFlushed(formation);
    expect(formation.lines.filter((line) => line.includes(`"url":"${tag}"`) && line.includes('"msg":"request"'))).toHaveLength(admitted);
  });

  test('When a limited client waits for its bucket to drain, then it is served again: a rate, not a ban', async () => {
    const tag = `/?client=${randomUUID()}`;
    const first = await burstFrom(formation.lbPort, '127.0.0.3', 30, tag);
    expect(tally(first.visits)[429]).toBeGreaterThan(0);

    // Ask again until served: a refused request does not fill the bucket, so
    // the asking does not delay the drain, (1 + BURST) / RATE_PER_SECOND = 0.6 s.
    const countBefore = await formation.count();
    const limitedAt = performance.now();
    let again: Visit | undefined;
    await waitFor('127.0.0.3 to be served again', async () => (again = await visitFrom(formation.lbPort, '127.0.0.3', tag)).status === 200, 5_000, 100);
    const drainedSeconds = (performance.now() - limitedAt) / 1_000;

    expect(again).toMatchObject({ status: 200, replica: expect.stringMatching(/^web-\d$/) });
    expect(drainedSeconds).toBeLessThan(((1 + BURST) / RATE_PER_SECOND) * 3);
    expect(await formation.count()).toBe(countBefore + 1);
  });

  test('When the same 60 visits at once come from the exempt address 127.0.0.1 (where the load tests run), then none is limited', async () => {
    const tag = `/?client=${randomUUID()}`;
    const countBefore = await formation.count();

    const { visits } = await burstFrom(formation.lbPort, '127.0.0.1', 60, tag);

    expect(tally(visits)).toEqual({ 200: 60 });
    expect(await formation.count()).toBe(countBefore + 60);
  });
});

describe('rate limit off: LB_RATE_LIMIT=0', () => {
  let formation: TestFormation;
  beforeAll(async () => {
    formation = await startWithLbEnv({ LB_RATE_LIMIT: '0', LB_RATE_BURST: String(BURST), LB_RATE_LIMIT_EXEMPT: '127.0.0.1' });
  });
  afterAll(() => formation?.destroy());

  test('When one client (127.0.0.2) sends 60 visits at once with the limit set to 0, then every one is served and counted', async () => {
    const tag = `/?client=${randomUUID()}`;
    const countBefore = await formation.count();

    const { visits } = await burstFrom(formation.lbPort, '127.0.0.2', 60, tag);

    expect(tally(visits)).toEqual({ 200: 60 });
    expect(await formation.count()).toBe(countBefore + 60);
  });
});
