import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { requestKey } from '../../web/counter-store.js';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LocalFormation } from '../../formation/local-formation.js';
import { readCount } from '../accuracy.js';
import { checkAccuracy } from '../invariants.js';
import { percentile, underLoad, type LoadRun } from './load.js';

export interface ScenarioResult {
  name: string;
  proves: string;
  figures: {
    sent: number;
    ok: number;
    non2xx: number;
    errors: number;
    timeouts: number;
    delta: number;
    uniqueNumbers: boolean;
    [extra: string]: number | boolean | string;
  };
  /** What the figures mean beyond pass/fail (e.g. which errors were expected). */
  notes: string[];
  /** Broken expectations; empty when the scenario passed. */
  failures: string[];
}

export interface Scenario {
  name: string;
  proves: string;
  /** Quick scenarios also run in `make test`. */
  quick: boolean;
  run(formation: LocalFormation, counterKey: string): Promise<ScenarioResult>;
  /** Settings this scenario's formation needs (runScenario applies them). */
  formation?: { replicaEnv?: Record<string, string>; lbEnv?: Record<string, string> };
}

/**
 * Of the requests answered 503, how many were counted all the same? A 503
 * can hide an increment Redis applied but could not acknowledge (its reply
 * was lost when it stopped, or arrived after the command timeout). Each such
 * increment left an idempotency record under its request id (nginx echoes the
 * id to the client), so they can be counted exactly instead of estimated.
 */
async function appliedDespite503(formation: LocalFormation, counterKey: string, run: LoadRun): Promise<number> {
  const ids = run.results.filter((r) => r.status === 503 && r.requestId).map((r) => r.requestId!);
  if (ids.length === 0) return 0;
  const redis = new Redis(formation.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const found = await redis.exists(...ids.map((id) => requestKey(counterKey, id)));
    return found;
  } finally {
    redis.disconnect();
  }
}

const SHUTDOWN_GRACE_MS = 10_000;
const COMMAND_TIMEOUT_MS = 250;

/** The figures every scenario prints, from one load run and the count around it. */
function measured(name: string, proves: string, run: LoadRun, before: number, after: number): ScenarioResult {
  // The same figures make loadtest judges; which invariants must hold is up to each scenario.
  const { figures, violations } = checkAccuracy({
    countBefore: before,
    countAfter: after,
    sent: run.sent,
    results: run.results,
    errors: run.errors,
    timeouts: run.timeouts,
  });
  return {
    name,
    proves,
    figures: {
      sent: figures.sent,
      ok: figures.ok,
      non2xx: figures.non2xx,
      errors: figures.errors,
      timeouts: figures.timeouts,
      delta: figures.delta,
      uniqueNumbers: !violations.some((v) => v.invariant === 'unique-numbers'),
    },
    notes: [],
    failures: [],
  };
}

/** Records a failure unless `condition` holds. */
function expect(result: ScenarioResult, condition: boolean, failure: string) {
  if (!condition) result.failures.push(failure);
}

/** "502 x3, 504 x1": the statuses of the responses that were not 2xx. */
function non2xxStatuses(run: LoadRun): string {
  const counts = new Map<number, number>();
  for (const r of run.results) if (r.status < 200 || r.status >= 300) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
  return [...counts].map(([status, n]) => `${status} x${n}`).join(', ');
}

function expectExact(result: ScenarioResult, run: LoadRun, { errors = true } = {}) {
  const f = result.figures;
  expect(result, f.non2xx === 0, `${f.non2xx} non-2xx responses (want 0): ${non2xxStatuses(run)}`);
  if (errors) expect(result, f.errors === 0, `${f.errors} transport errors (want 0)`);
  expect(result, f.delta === f.ok, `count delta ${f.delta} != 2xx ${f.ok}`);
  expect(result, f.uniqueNumbers, 'a visitor number was handed out twice');
}

async function measure(
  formation: LocalFormation,
  name: string,
  proves: string,
  load: { durationSeconds: number; connections?: number; rate?: number },
  fault: (elapsedMs: () => number) => Promise<void>,
) {
  const before = await readCount(formation.lbUrl);
  const run = await underLoad({ url: formation.lbUrl, ...load }, fault);
  await sleep(300); // let the last increments settle before reading
  return { run, result: measured(name, proves, run, before, await readCount(formation.lbUrl)) };
}

/** The count once Redis answers again (503s until the replicas reconnect). */
async function readCountWhenBack(url: string): Promise<number> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    try {
      return await readCount(url);
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(50);
    }
  }
}

/** How often nginx found an upstream keep-alive connection closed under it (from the formation's log). */
function upstreamPrematureCloses(f: LocalFormation): number {
  if (!f.logFile) return 0;
  return (readFileSync(f.logFile, 'utf8').match(/upstream prematurely closed|reset by peer|Broken pipe/g) ?? []).length;
}

/**
 * The exact account of a Redis fault: the count grew by the 2xx plus the
 * increments applied despite a 503 (found by request id), and no number was
 * handed out twice. Returns how many were applied despite a 503.
 */
async function expectAccountedFor(result: ScenarioResult, f: LocalFormation, counterKey: string, run: LoadRun): Promise<number> {
  const applied = await appliedDespite503(f, counterKey, run);
  result.figures['applied despite 503'] = applied;
  const { delta, ok } = result.figures;
  expect(result, delta === ok + applied, `count delta ${delta} != 2xx ${ok} + ${applied} applied despite a 503`);
  expect(result, result.figures.uniqueNumbers, 'a visitor number was handed out twice');
  return applied;
}

const replicasCrashed = (formation: LocalFormation) => formation.replicas.reduce((sum, r) => sum + r.service.crashes, 0);

/** Resident memory of a process in MiB, from /proc. */
function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

export const scenarios: Scenario[] = [
  {
    name: 'kill -9 one replica mid-run',
    proves: 'nginx fails over, and the idempotency key absorbs its retry of a request the dead replica had counted',
    quick: true,
    async run(f, counterKey) {
      const { run, result } = await measure(f, this.name, this.proves, { durationSeconds: 6 }, async () => {
        await sleep(2_000);
        f.replicas[1]!.service.signal('SIGKILL');
      });
      expectExact(result, run);
      return result;
    },
  },
  {
    name: 'SIGTERM one replica mid-run',
    proves: 'a replica drains in-flight requests and exits 0 within its grace period, losing nothing',
    quick: true,
    async run(f, counterKey) {
      const victim = f.replicas[1]!.service;
      let signalledAt = 0;
      const { run, result } = await measure(f, this.name, this.proves, { durationSeconds: 6 }, async () => {
        await sleep(2_000);
        signalledAt = Date.now();
        victim.signal('SIGTERM');
        await victim.waitForExit();
      });
      const exit = victim.lastExit;
      result.figures.exitCode = String(exit?.code);
      result.figures.exitMs = exit ? exit.at - signalledAt : Number.NaN;
      expectExact(result, run);
      expect(result, exit?.code === 0, `the replica exited with ${exit?.code ?? exit?.signal} (want 0)`);
      expect(result, (exit?.at ?? Infinity) - signalledAt <= SHUTDOWN_GRACE_MS, 'the replica outlived its grace period');
      return result;
    },
  },
  {
    name: 'rolling restart of all replicas',
    proves: 'make restart replaces every replica, one at a time, with no failed request',
    quick: true,
    async run(f, counterKey) {
      const { run, result } = await measure(f, this.name, this.proves, { durationSeconds: 26 }, async () => {
        await sleep(1_000);
        for (let i = 0; i < f.replicas.length; i++) await f.restartReplica(i);
      });
      expectExact(result, run);
      return result;
    },
  },
  {
    name: 'nginx reload x5 under load',
    proves: 'reloads drop no request; only idle client keep-alive connections closed by old workers error',
    quick: true,
    async run(f, counterKey) {
      const connections = 20;
      const { run, result } = await measure(f, this.name, this.proves, { durationSeconds: 8, connections }, async () => {
        for (let i = 0; i < 5; i++) {
          await sleep(1_000);
          await f.reloadNginx();
        }
      });
      expectExact(result, run, { errors: false });
      // An old worker closes each idle keep-alive connection once when it
      // retires; the client's next request on it fails before nginx reads it.
      expect(result, result.figures.errors <= connections * 5, `${result.figures.errors} transport errors, more than one per connection per reload`);
      result.notes.push(`${result.figures.errors} transport errors: keep-alive connections closed by retiring workers (at most ${connections} per reload); none was counted`);
      return result;
    },
  },
  {
    name: 'keep-alive race',
    proves: 'nginx, not Node, closes idle upstream connections: bursts after idle gaps around both timeouts meet no closed connection',
    // About 30 s of bursts and gaps: make chaos only.
    quick: false,
    // The production order, scaled down from 60 s / 65 s so the gaps take seconds.
    formation: { replicaEnv: { KEEP_ALIVE_TIMEOUT_MS: '2000' }, lbEnv: { LB_UPSTREAM_KEEPALIVE_TIMEOUT: '1s' } },
    async run(f) {
      const before = await readCount(f.lbUrl);
      const runs: LoadRun[] = [];
      // Gaps in 10 ms steps across nginx's 1 s and Node's 2 s, each followed by
      // a burst on 40 connections. With the order reversed (Node 1 s, nginx
      // 2 s) the same bursts met 1 to 9 connections closed under nginx here.
      const gaps = [970, 980, 990, 1_000, 1_010, 1_020, 1_030, 1_970, 1_980, 1_990, 2_000, 2_010, 2_020, 2_030];
      for (const gapMs of gaps) {
        await sleep(gapMs);
        runs.push(await underLoad({ url: f.lbUrl, durationSeconds: 0.25, rate: 800, connections: 40 }, async () => {}));
      }
      const run: LoadRun = {
        results: runs.flatMap((r) => r.results),
        sent: runs.reduce((n, r) => n + r.sent, 0),
        errors: runs.reduce((n, r) => n + r.errors, 0),
        timeouts: runs.reduce((n, r) => n + r.timeouts, 0),
        durationSeconds: runs.reduce((n, r) => n + r.durationSeconds, 0),
      };
      await sleep(300);
      const result = measured(this.name, this.proves, run, before, await readCount(f.lbUrl));
      const closes = upstreamPrematureCloses(f);
      result.figures['upstream closed under nginx'] = closes;
      expectExact(result, run);
      // nginx retries these on another replica, so the client never sees them:
      // only nginx's error log tells.
      expect(result, closes === 0, `nginx met ${closes} upstream connections closed under it`);
      return result;
    },
  },
  {
    name: 'Redis stopped 5 s under load',
    proves: 'an outage is a fast 503 with Retry-After, no replica exits, and counting resumes within 2 s',
    quick: true,
    async run(f, counterKey) {
      const redis = f.redis!;
      let stoppedAt = 0;
      let restartedAt = 0;
      const { run, result } = await measure(f, this.name, this.proves, { durationSeconds: 12 }, async (elapsed) => {
        await sleep(2_000);
        stoppedAt = elapsed();
        await redis.stop();
        await sleep(5_000);
        restartedAt = elapsed();
        redis.start();
      });
      const unavailable = run.results.filter((r) => r.status === 503);
      const others = run.results.filter((r) => r.status !== 503 && (r.status < 200 || r.status >= 300));
      const resumed = run.results.find((r) => r.at > restartedAt && r.status === 200);
      const p99 = percentile(unavailable.map((r) => r.ms), 99);
      Object.assign(result.figures, {
        '503s': unavailable.length,
        '503 p99 ms': Math.round(p99),
        'resumed after ms': resumed ? Math.round(resumed.at - restartedAt) : Number.NaN,
      });
      expect(result, stoppedAt > 0 && unavailable.length > 0, 'no request saw the outage');
      expect(result, others.length === 0, `${others.length} non-2xx responses other than 503`);
      expect(result, unavailable.every((r) => r.retryAfter === '1'), 'a 503 without Retry-After');
      expect(result, p99 < 500, `p99 of the 503s is ${Math.round(p99)} ms (want < 500)`);
      expect(result, replicasCrashed(f) === 0, 'a replica exited during the outage');
      expect(result, resumed !== undefined && resumed.at - restartedAt <= 2_000, 'counting did not resume within 2 s');
      expect(result, result.figures.errors === 0, `${result.figures.errors} transport errors`);
      const applied = await expectAccountedFor(result, f, counterKey, run);
      result.notes.push(
        `${applied} increments were applied though answered 503: Redis executed them in the event-loop turn in which it shut down, and the replies were lost (each found by its request id)`,
      );
      return result;
    },
  },
  {
    name: 'Redis hung 5 s (SIGSTOP)',
    proves: 'a hung Redis costs each request at most the command timeout; some timed-out increments still land',
    quick: true,
    async run(f, counterKey) {
      const redis = f.redis!;
      let resumedAt = 0;
      const { run, result } = await measure(f, this.name, this.proves, { durationSeconds: 12 }, async (elapsed) => {
        await sleep(2_000);
        redis.signal('SIGSTOP');
        try {
          await sleep(5_000);
        } finally {
          redis.signal('SIGCONT');
          resumedAt = elapsed();
        }
      });
      const timedOut = run.results.filter((r) => r.status === 503).length;
      const slowest = Math.max(...run.results.map((r) => r.ms));
      const resumed = run.results.find((r) => r.at > resumedAt && r.status === 200);
      const applied = await expectAccountedFor(result, f, counterKey, run);
      Object.assign(result.figures, {
        '503s': timedOut,
        'slowest ms': Math.round(slowest),
        'resumed after ms': resumed ? Math.round(resumed.at - resumedAt) : Number.NaN,
      });
      // A request waits for one command timeout; the margin covers a busy
      // two-core machine's event loops and nginx.
      expect(result, slowest < COMMAND_TIMEOUT_MS + 750, `a request took ${Math.round(slowest)} ms (want < ${COMMAND_TIMEOUT_MS + 750})`);
      expect(result, resumed !== undefined && resumed.at - resumedAt <= 2_000, 'counting did not resume within 2 s');
      expect(result, applied <= timedOut, `${applied} applied of ${timedOut} timed out`);
      result.notes.push(`${applied} of ${timedOut} increments that timed out (503) were applied when Redis resumed (each found by its request id)`);
      return result;
    },
  },
  {
    name: 'Redis restarted: graceful, then kill -9',
    proves: 'the AOF (appendfsync always) keeps the count across a restart and loses no acknowledged visit in a crash',
    quick: true,
    async run(f, counterKey) {
      const redis = f.redis!;
      let beforeGraceful = Number.NaN;
      let afterGraceful = Number.NaN;
      const { run, result } = await measure(f, this.name, this.proves, { durationSeconds: 10 }, async () => {
        await sleep(2_000);
        beforeGraceful = await readCount(f.lbUrl);
        await redis.stop();
        redis.start();
        afterGraceful = await readCountWhenBack(f.lbUrl);
        await sleep(2_000);
        redis.signal('SIGKILL'); // the supervisor restarts it, as Docker's restart policy would
      });
      const highest = Math.max(0, ...run.results.filter((r) => r.status === 200).map((r) => r.count ?? 0));
      const countAfter = await readCount(f.lbUrl);
      Object.assign(result.figures, { 'highest acknowledged': highest, 'count after': countAfter });
      expect(result, afterGraceful >= beforeGraceful, `the graceful restart lost count: ${beforeGraceful} -> ${afterGraceful}`);
      expect(result, countAfter >= highest, `count ${countAfter} is below an acknowledged visitor number ${highest}`);
      const applied = await expectAccountedFor(result, f, counterKey, run);
      result.notes.push(`${applied} increments were applied but not acknowledged (in flight at a restart; each found by its request id)`);
      return result;
    },
  },
  {
    name: 'Redis stopped 30 s (long outage)',
    proves: 'no burst of replayed increments on recovery, and replica memory stays flat through the outage',
    quick: false,
    async run(f, counterKey) {
      const redis = f.redis!;
      // Resident memory of every replica every 2 s of the outage. The first
      // seconds of 503s grow the heap once (measured: about 25 MiB); a leak
      // would keep growing after that, so the first 10 s are the baseline.
      const samples: number[][] = [];
      const { run, result } = await measure(f, this.name, this.proves, { durationSeconds: 40, rate: 500 }, async () => {
        await sleep(3_000);
        await redis.stop();
        for (let s = 0; s < 15; s++) {
          await sleep(2_000);
          samples.push(f.replicas.map((r) => rssMiB(r.service.pid)));
        }
        redis.start();
      });
      const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!;
      const growth = Math.max(
        ...f.replicas.map((_, i) => median(samples.slice(-5).map((s) => s[i]!)) - median(samples.slice(3, 6).map((s) => s[i]!))),
      );
      const applied = await expectAccountedFor(result, f, counterKey, run);
      result.figures['replica RSS growth MiB'] = Math.round(growth * 10) / 10;
      expect(result, growth < 15, `a replica grew by ${growth.toFixed(1)} MiB between the outage's 10th and 30th second`);
      expect(result, replicasCrashed(f) === 0, 'a replica exited during the outage');
      result.notes.push(`${applied} increments applied though answered 503 (at the moment Redis stopped); none replayed after recovery`);
      return result;
    },
  },
];
