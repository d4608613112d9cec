import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import getPort from 'get-port';
import { Redis, ReplyError } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readLiveState, stateDirFor, type FormationState } from '../../formation/state.js';
import { waitFor } from '../../formation/wait.js';

// A real Prometheus (Debian's 2.42) scraping a local formation that
// `make start MONITORING=1` started, on this file's own LB_PORT and
// PROMETHEUS_PORT: the replicas through the supervisor's target list, nginx
// and Redis through their exporters, and itself. The local template scrapes
// every second, so each wait below is a few seconds at most.

const run = promisify(execFile);
const scratch = await mkdtemp(path.join(tmpdir(), 'headcount-metrics-'));
const emptyEnvFile = path.join(scratch, 'empty.env');
await writeFile(emptyEnvFile, '');
// Known, so the test can log in as the exporter's Redis user.
const exporterPassword = randomBytes(12).toString('base64url');
const make = (target: string, vars: Record<string, string | number>) =>
  run('make', ['--no-print-directory', target, ...Object.entries(vars).map(([k, v]) => `${k}=${v}`)], {
    env: { ...process.env, MODE: 'local', ENV_FILE: emptyEnvFile, REDIS_EXPORTER_PASSWORD: exporterPassword },
    timeout: 120_000,
  });

interface Target {
  labels: Record<string, string>;
  scrapeUrl: string;
  health: string;
  lastError: string;
}
interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

let lbPort: number;
let prometheusPort: number;
let prometheus: string;
let startLine = '';
const REPLICAS = 3;

const api = async <T>(pathAndQuery: string): Promise<T> => {
  const response = await fetch(`${prometheus}${pathAndQuery}`, { signal: AbortSignal.timeout(2_000) });
  const body = (await response.json()) as { status: string; data: T; error?: string };
  if (body.status !== 'success') throw new Error(`Prometheus says: ${body.error}`);
  return body.data;
};
const targets = async () => (await api<{ activeTargets: Target[] }>('/api/v1/targets?state=active')).activeTargets;
const query = async (promql: string) => (await api<{ result: Sample[] }>(`/api/v1/query?query=${encodeURIComponent(promql)}`)).result;
/** One value, or undefined when the query has no result (yet). */
const scalar = async (promql: string) => {
  const [first] = await query(promql);
  return first === undefined ? undefined : Number(first.value[1]);
};

/** Waits (bounded) until every job's targets are up: `replicas` web targets, nginx, redis, prometheus; returns them. */
async function everyTargetUp(replicas: number, timeoutMs = 30_000): Promise<Target[]> {
  let last: Target[] = [];
  try {
    await waitFor(
      'every Prometheus target up',
      async () => {
        last = await targets();
        const web = last.filter((t) => t.labels.job === 'headcount-web');
        return web.length === replicas && last.length === replicas + 3 && last.every((t) => t.health === 'up');
      },
      timeoutMs,
      250,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; targets: ${JSON.stringify(last.map((t) => [t.labels.job, t.labels.replica, t.health, t.lastError]))}`);
  }
  return last;
}

const state = (): FormationState => {
  const live = readLiveState(lbPort);
  if (!live) throw new Error(`no formation on port ${lbPort}`);
  return live;
};

beforeAll(async () => {
  lbPort = await getPort({ host: '127.0.0.1' });
  prometheusPort = await getPort({ host: '127.0.0.1', exclude: [lbPort] });
  prometheus = `http://127.0.0.1:${prometheusPort}`;
  startLine = (await make('start', { LB_PORT: lbPort, REPLICAS, MONITORING: 1, PROMETHEUS_PORT: prometheusPort })).stdout;
});

afterAll(async () => {
  if (lbPort !== undefined) {
    await make('stop', { LB_PORT: lbPort }).catch(() => {});
    await rm(stateDirFor(lbPort), { recursive: true, force: true });
  }
  await rm(scratch, { recursive: true, force: true });
});

describe('Prometheus beside the local formation (make start MONITORING=1)', () => {
  test('When the formation is ready, then the ready line names Prometheus, and every target is up: each replica, nginx, Redis and Prometheus itself', async () => {
    const up = await everyTargetUp(REPLICAS);

    expect(startLine).toContain(`Prometheus: ${prometheus}.`);
    expect(up.map((t) => t.labels.job).sort()).toEqual(['headcount-web', 'headcount-web', 'headcount-web', 'nginx', 'prometheus', 'redis']);
    // Each replica is scraped directly on its own metrics port, labelled with its name.
    const web = up.filter((t) => t.labels.job === 'headcount-web');
    expect(web.map((t) => t.labels.replica).sort()).toEqual(['web-1', 'web-2', 'web-3']);
    expect(web.map((t) => t.scrapeUrl).sort()).toEqual(state().replicas.map((r) => `http://127.0.0.1:${r.metricsPort}/metrics`).sort());
    expect(await scalar('nginx_up')).toBe(1);
    expect(await scalar('redis_up')).toBe(1);
  });

  test('When /metrics or /stub_status is asked of the load balancer, then it is a 404: only the internal listeners serve them', async () => {
    const metrics = await fetch(`http://127.0.0.1:${lbPort}/metrics`);
    const stubStatus = await fetch(`http://127.0.0.1:${lbPort}/stub_status`);
    const direct = await fetch(`http://127.0.0.1:${state().replicas[0]!.metricsPort}/metrics`);

    expect(metrics.status).toBe(404);
    expect(stubStatus.status).toBe(404);
    expect(direct.status).toBe(200);
    expect(await direct.text()).toContain('headcount_visits_counted_total');
  });

  test('When 90 visits go through the load balancer, then the sum over replicas of headcount_visits_counted_total in Prometheus is exactly 90, shared by every replica', async () => {
    await everyTargetUp(REPLICAS);
    const sumQuery = 'sum(headcount_visits_counted_total{job="headcount-web"})';
    const before = (await scalar(sumQuery)) ?? 0;
    const countBefore = ((await (await fetch(`http://127.0.0.1:${lbPort}/api/count`)).json()) as { count: number }).count;

    for (let i = 0; i < 9; i++) {
      const answers = await Promise.all(Array.from({ length: 10 }, () => fetch(`http://127.0.0.1:${lbPort}/`, { headers: { accept: 'application/json' } })));
      expect(answers.map((a) => a.status)).toEqual(Array(10).fill(200));
    }
    let seen: number | undefined;
    await waitFor('Prometheus to see 90 more visits', async () => (seen = await scalar(sumQuery)) === before + 90, 15_000, 250).catch(() => {});
    const perReplica = await query('headcount_visits_counted_total{job="headcount-web"}');
    const countAfter = ((await (await fetch(`http://127.0.0.1:${lbPort}/api/count`)).json()) as { count: number }).count;

    expect(seen! - before).toBe(90);
    expect(countAfter - countBefore).toBe(90);
    expect(perReplica.map((s) => s.metric.replica).sort()).toEqual(['web-1', 'web-2', 'web-3']);
    expect(perReplica.every((s) => Number(s.value[1]) > 0)).toBe(true);
  });

  test('When one visit reaches every replica with the same X-Request-Id (as nginx retries it), then the count and the sum of the replicas\' visit counters each move by 1', async () => {
    const replicas = state().replicas;
    // Straight from each replica: what Prometheus would scrape next.
    const counted = async () => {
      let sum = 0;
      for (const r of replicas) {
        const text = await (await fetch(`http://127.0.0.1:${r.metricsPort}/metrics`)).text();
        sum += Number(/^headcount_visits_counted_total (\S+)$/m.exec(text)![1]);
      }
      return sum;
    };
    const countOf = async () => ((await (await fetch(`http://127.0.0.1:${lbPort}/api/count`)).json()) as { count: number }).count;
    const before = { counted: await counted(), count: await countOf() };
    const id = `retried-${randomBytes(8).toString('hex')}`;

    const answers = [];
    for (const r of replicas) {
      const answer = await fetch(`http://127.0.0.1:${r.port}/`, { headers: { accept: 'application/json', 'x-request-id': id } });
      answers.push({ status: answer.status, ...((await answer.json()) as { count: number }) });
    }

    expect(new Set(answers.map((a) => `${a.status} ${a.count}`))).toEqual(new Set([`200 ${before.count + 1}`]));
    expect(await countOf()).toBe(before.count + 1);
    expect((await counted()) - before.counted).toBe(1);
  });

  test('When the Redis exporter logs in, then its user reads server figures only: INFO works, the count cannot be read or written', async () => {
    const redisPort = new URL(state().redisUrl).port;
    const exporter = new Redis(`redis://headcount-exporter:${exporterPassword}@127.0.0.1:${redisPort}`, { enableReadyCheck: false, maxRetriesPerRequest: 0 });
    const refusal = (promise: Promise<unknown>) =>
      promise.then(
        () => 'allowed',
        (error: unknown) => (error instanceof ReplyError && /NOPERM/.test((error as Error).message) ? 'NOPERM' : String(error)),
      );
    try {
      const attempts = {
        info: await refusal(exporter.info('server')),
        getCount: await refusal(exporter.get('headcount:visits')),
        setCount: await refusal(exporter.set('headcount:visits', '0')),
        keys: await refusal(exporter.keys('*')),
        configSet: await refusal(exporter.config('SET', 'maxmemory', '1')),
        eval: await refusal(exporter.eval("return redis.call('GET', KEYS[1])", 1, 'headcount:visits')),
      };

      expect(attempts).toEqual({ info: 'allowed', getCount: 'NOPERM', setCount: 'NOPERM', keys: 'NOPERM', configSet: 'NOPERM', eval: 'NOPERM' });
      // And what it may do is all its scrape needs: no error in the last scrape, none logged.
      expect(await scalar('redis_exporter_last_scrape_error')).toBe(0);
      const log = readFileSync(path.join(state().logDir, 'redis-exporter.log'), 'utf8');
      expect(log).not.toMatch(/NOPERM/);
    } finally {
      exporter.disconnect();
    }
  });

  test('When make restart replaces every replica, then every target is up again, each a new process', async () => {
    await everyTargetUp(REPLICAS);
    const startsBefore = new Map((await query('process_start_time_seconds{job="headcount-web"}')).map((s) => [s.metric.replica, Number(s.value[1])]));

    await make('restart', { LB_PORT: lbPort });
    let startsAfter = new Map<string | undefined, number>();
    await waitFor(
      'every replica scraped as a new process',
      async () => {
        startsAfter = new Map((await query('process_start_time_seconds{job="headcount-web"}')).map((s) => [s.metric.replica, Number(s.value[1])]));
        return [...startsBefore].every(([replica, started]) => (startsAfter.get(replica) ?? 0) > started);
      },
      15_000,
      250,
    ).catch(() => {});
    await everyTargetUp(REPLICAS);

    expect(startsBefore.size).toBe(REPLICAS);
    for (const [replica, started] of startsBefore) expect(startsAfter.get(replica), replica).toBeGreaterThan(started);
  });

  test('When make stop runs, then Prometheus and the exporters stop with the formation, and the target list is empty', async () => {
    const { logDir } = state();
    const targetsFile = path.join(path.dirname(logDir), 'prometheus', 'targets', 'web.json');

    await make('stop', { LB_PORT: lbPort });
    const prometheusAfter = await fetch(`${prometheus}/-/ready`).then(
      () => 'answers',
      () => 'refused',
    );

    expect(prometheusAfter).toBe('refused');
    expect(JSON.parse(readFileSync(targetsFile, 'utf8'))).toEqual([]);
    expect(readLiveState(lbPort)).toBeUndefined();
  });
});
