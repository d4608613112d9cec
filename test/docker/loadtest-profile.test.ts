import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { fromRoot, ROOT } from '../../formation/paths.js';
import { ComposeFormation } from './support/compose-formation.js';
import { statusTally } from './support/load.js';
import { probeWeb, readPasswords, webEnvironments } from './support/redis-users.js';
import { run } from './support/run.js';
import { pinnedImages } from './support/standins.js';

// A formation as a user with an uncommitted `.env` would start it: the Redis
// passwords set in the environment, and the rate limit left on, as
// docker-compose.yml has it. Its k6 service (the `loadtest` profile) runs a
// stand-in for k6 (test/docker/k6-standin.sh): no engine here can pull the
// official image, so what is proven is everything around k6: `make
// loadtest-k6` picks the profile for a running Docker formation, the load
// arrives from 127.0.0.1 inside the lb and is not rate-limited, and the
// reports land in loadtest/results/ owned by the caller.

const RESULTS = fromRoot('loadtest/results');
const given = {
  REDIS_PASSWORD: `operator-${randomBytes(9).toString('base64url')}`,
  REDIS_WEB_PASSWORD: `web-${randomBytes(9).toString('base64url')}`,
  REDIS_ADMIN_PASSWORD: `admin-${randomBytes(9).toString('base64url')}`,
};
let formation: ComposeFormation;
let resultsBefore: Set<string>;

/** The k6 service's files: docker-compose.yml and the stand-in override. */
const standInEnv = () => ({
  ...formation.env,
  COMPOSE_FILE: ['docker-compose.yml', 'test/docker/compose.k6-standin.yml'].join(path.delimiter),
  K6_STANDIN_IMAGE: pinnedImages().nginx,
});

const newReports = () => readdirSync(RESULTS).filter((f) => f.startsWith('k6-standin-') && !resultsBefore.has(f));

beforeAll(async () => {
  mkdirSync(RESULTS, { recursive: true });
  resultsBefore = new Set(readdirSync(RESULTS));
  formation = await ComposeFormation.create({ ...given, LB_RATE_LIMIT_OFF: '' });
  await formation.compose(['up', '-d', '--scale', 'web=1', '--wait'], 300_000);
});

afterAll(async () => {
  for (const file of newReports()) rmSync(path.join(RESULTS, file), { force: true });
  await formation?.destroy();
});

describe('Redis passwords from the environment (an uncommitted .env)', () => {
  test('When REDIS_*PASSWORD are set, then Redis uses them, and the web replica counts with its own', async () => {
    const written = await readPasswords(formation);
    const web = await probeWeb(formation);
    const visit = await formation.client.visit();

    expect(written).toEqual({ operator: given.REDIS_PASSWORD, web: given.REDIS_WEB_PASSWORD, admin: given.REDIS_ADMIN_PASSWORD });
    expect(web).toMatchObject({ user: 'headcount-web', readCount: 'allowed', flushall: 'NOPERM' });
    expect(visit).toMatchObject({ status: 200 });
  });

  test('When the configuration and the replica are inspected, then web and admin hold no password, only redis does', async () => {
    const config = JSON.parse((await formation.compose(['--profile', 'admin', 'config', '--format', 'json'])).stdout) as {
      services: Record<string, { environment?: Record<string, string> }>;
    };
    const environments = await webEnvironments(formation);
    const passwords = Object.values(given);

    for (const name of ['web', 'admin']) {
      for (const password of passwords) expect(JSON.stringify(config.services[name])).not.toContain(password);
    }
    for (const env of environments) for (const password of passwords) expect(env.join('\n')).not.toContain(password);
    // Redis renders them into its ACL file; in its environment, they are the user's own `.env`.
    expect(config.services.redis?.environment).toMatchObject(given);
  });
});

describe('rate limit and the k6 `loadtest` profile', () => {
  test('When 100 visits arrive at once from the Docker host, then the rate limit is on: some get 429 and only the others are counted', async () => {
    const before = await formation.client.count();

    const results = await formation.client.visitAll(100);
    const tally = statusTally(results);
    // /api/count is limited too: let the host's bucket drain (40 over the
    // rate, at 20 r/s: 2 s), or the reads below would get 429 themselves.
    await sleep(2_500);

    expect(Object.keys(tally).sort()).toEqual(['200', '429']);
    expect(tally[200]).toBeGreaterThanOrEqual(40);
    expect(await formation.client.count()).toBe(before + tally[200]!);
  });

  test('When make loadtest-k6 runs against the running Docker formation, then k6 runs in the profile, is never rate-limited, and its reports belong to the caller', async () => {
    const before = await formation.client.count();

    const make = await run('make', ['--no-print-directory', 'loadtest-k6', `LB_PORT=${formation.port}`], {
      env: standInEnv(),
      cwd: ROOT,
      timeoutMs: 180_000,
    });
    const reports = newReports();

    // Both scenarios, each 150 visits from 127.0.0.1 inside the lb, all 200.
    expect(make.stdout.match(/"statuses":\{"200":150\},"delta":150/g)).toHaveLength(2);
    expect(make.stdout).toContain('"lb_url":"http://127.0.0.1:8080"');
    expect(await formation.client.count()).toBe(before + 300);
    expect(reports.map((f) => f.split('-')[2]).sort()).toEqual(['accuracy', 'throughput']);
    for (const file of reports) expect(statSync(path.join(RESULTS, file)).uid).toBe(process.getuid!());
  });

  test('When the same k6 load goes to lb:8080 instead, then it arrives from the lb\'s own address and is rate-limited (the exemption is 127.0.0.1 alone)', async () => {
    const args = ['compose', '--profile', 'loadtest', 'run', '--rm', '--no-deps', 'k6'];
    const scenario = ['run', '-e', 'LB_URL=http://lb:8080', '-e', 'RESULTS_DIR=/tmp', '/loadtest/k6/accuracy.ts'];

    const result = await run('docker', [...args, ...scenario], { env: standInEnv(), cwd: ROOT, timeoutMs: 120_000, allowFailure: true });

    expect(result.code).toBe(99);
    expect(result.stdout).toMatch(/"429":\d+/);
  });
});
