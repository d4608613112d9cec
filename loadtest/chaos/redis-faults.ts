// Faults of the one shared Redis: stopped, hung, restarted, gone for long.
// Each runs through redisFault(), which accounts for every increment: the
// count grew by the 2xx plus the increments applied despite a 503.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import type { LocalFormation } from '../../formation/local-formation.js';
import type { Service } from '../../formation/supervisor.js';
import { waitFor } from '../../formation/wait.js';
import { requestKey } from '../../web/counter-store.js';
import { readCount } from '../accuracy.js';
import { percentile, type LoadProgress, type LoadRun } from './load.js';
import { check, measure, responsesIn, type Scenario, type ScenarioResult } from './scenario.js';

const COMMAND_TIMEOUT_MS = 250;

/**
 * Of the requests answered 503, how many were counted all the same? A 503
 * can hide an increment Redis applied but could not acknowledge (its reply
 * was lost when it stopped, or arrived after the command timeout). Each such
 * increment left an idempotency record under its request id (nginx echoes the
 * id to the client), so they can be counted exactly instead of estimated.
 */
async function appliedDespite503(formation: LocalFormation, counterKey: string, run: LoadRun): Promise<{ applied: number } | { reason: string }> {
  const unavailable = run.results.filter((r) => r.status === 503);
  const ids = unavailable.filter((r) => r.requestId).map((r) => r.requestId!);
  if (ids.length < unavailable.length) return { reason: `${unavailable.length - ids.length} 503s carried no X-Request-Id, so whether they were applied cannot be looked up` };
  if (ids.length === 0) return { applied: 0 };
  const redis = new Redis(formation.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    return { applied: await redis.exists(...ids.map((id) => requestKey(counterKey, id))) };
  } catch (error) {
    return { reason: `Redis could not be asked for the 503s' idempotency records: ${(error as Error).message}` };
  } finally {
    redis.disconnect();
  }
}

const replicasCrashed = (formation: LocalFormation) => formation.replicas.reduce((sum, r) => sum + r.service.crashes, 0);

/** Resident memory of a process in MiB, from /proc; NaN when it cannot be read. */
function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

interface RedisFault {
  load: LoadProgress;
  redis: Service;
  /** Marks the moment Redis is back: counting must resume within `resumeWithinMs` of it. */
  back(): void;
}

/**
 * One Redis fault under load, and the checks every Redis fault shares: every
 * increment accounted for (2xx plus those applied despite a 503, found by
 * request id), no number handed out twice, counting resumed in time after
 * Redis came back, and no replica exited.
 */
async function redisFault(
  f: LocalFormation,
  counterKey: string,
  scenario: { name: string; proves: string },
  options: { durationSeconds: number; rate?: number; resumeWithinMs?: number },
  fault: (fault: RedisFault) => Promise<void>,
): Promise<{ run: LoadRun; result: ScenarioResult; applied: number | undefined; backAt: number }> {
  const redis = f.redis!;
  let backAt = Number.NaN;
  const { run, result } = await measure(f, scenario.name, scenario.proves, options, (load) =>
    fault({ load, redis, back: () => (backAt = load.elapsed()) }),
  );
  if (options.resumeWithinMs !== undefined) {
    const resumed = run.results.find((r) => r.at > backAt && r.status === 200);
    const after = resumed ? Math.round(resumed.at - backAt) : Number.NaN;
    result.figures['resumed after ms'] = after;
    check(
      result,
      `counting resumed within ${options.resumeWithinMs / 1000} s`,
      Number.isNaN(backAt) ? undefined : resumed !== undefined && after <= options.resumeWithinMs,
      Number.isNaN(backAt) ? 'Redis was never brought back' : resumed ? `${after} ms after Redis was back` : 'no 2xx after Redis was back',
    );
  }
  check(result, 'no replica exited', replicasCrashed(f) === 0, `${replicasCrashed(f)} replica exits`);
  const lookup = await appliedDespite503(f, counterKey, run);
  const applied = 'applied' in lookup ? lookup.applied : undefined;
  const { delta, ok } = result.figures;
  if (applied !== undefined) result.figures['applied despite 503'] = applied;
  check(
    result,
    'count delta = 2xx + applied despite 503',
    applied === undefined ? undefined : delta === ok + applied,
    'reason' in lookup ? lookup.reason : `count delta ${delta}, 2xx ${ok}, applied despite a 503 ${applied}`,
  );
  return { run, result, applied, backAt };
}

export const redisFaults: Scenario[] = [
  {
    name: 'Redis stopped 5 s under load',
    proves: 'an outage is a fast 503 with Retry-After, no replica exits, and counting resumes within 2 s',
    quick: true,
    async run(f, counterKey) {
      let stoppedAt = 0;
      const { run, result, applied } = await redisFault(f, counterKey, this, { durationSeconds: 12, resumeWithinMs: 2_000 }, async ({ load, redis, back }) => {
        await load.responses(responsesIn(2));
        stoppedAt = load.elapsed();
        await redis.stop();
        await sleep(5_000); // the outage itself
        back();
        redis.start();
      });
      const unavailable = run.results.filter((r) => r.status === 503);
      const others = run.results.filter((r) => r.status !== 503 && (r.status < 200 || r.status >= 300));
      const p99 = percentile(unavailable.map((r) => r.ms), 99);
      Object.assign(result.figures, { '503s': unavailable.length, '503 p99 ms': Math.round(p99) });
      check(result, 'the outage was seen', stoppedAt > 0 && unavailable.length > 0, `${unavailable.length} requests answered 503`);
      check(result, 'no non-2xx but 503', others.length === 0, `${others.length} non-2xx responses other than 503`);
      check(result, 'every 503 has Retry-After: 1', unavailable.every((r) => r.retryAfter === '1'), `${unavailable.filter((r) => r.retryAfter !== '1').length} without`);
      check(result, '503 p99 < 500 ms', unavailable.length > 0 ? p99 < 500 : undefined, unavailable.length > 0 ? `${Math.round(p99)} ms` : 'no 503 to time');
      check(result, 'no transport errors', result.figures.errors === 0, `${result.figures.errors} transport errors`);
      if (applied !== undefined) {
        result.notes.push(
          `${applied} increments were applied though answered 503: Redis executed them in the event-loop turn in which it shut down, and the replies were lost (each found by its request id)`,
        );
      }
      return result;
    },
  },
  {
    name: 'Redis hung 5 s (SIGSTOP)',
    proves: 'a hung Redis costs each request at most the command timeout; some timed-out increments still land',
    quick: true,
    async run(f, counterKey) {
      const { run, result, applied } = await redisFault(f, counterKey, this, { durationSeconds: 12, resumeWithinMs: 2_000 }, async ({ load, redis, back }) => {
        await load.responses(responsesIn(2));
        redis.signal('SIGSTOP');
        try {
          await sleep(5_000); // the hang itself
        } finally {
          redis.signal('SIGCONT');
          back();
        }
      });
      const timedOut = run.results.filter((r) => r.status === 503).length;
      const slowest = run.results.length > 0 ? Math.max(...run.results.map((r) => r.ms)) : Number.NaN;
      Object.assign(result.figures, { '503s': timedOut, 'slowest ms': Math.round(slowest) });
      // A request waits for one command timeout; the margin covers a busy
      // two-core machine's event loops and nginx.
      const bound = COMMAND_TIMEOUT_MS + 750;
      check(result, `slowest request < ${bound} ms`, run.results.length > 0 ? slowest < bound : undefined, run.results.length > 0 ? `${Math.round(slowest)} ms` : 'no response to time');
      check(
        result,
        'applied <= timed out',
        applied === undefined ? undefined : applied <= timedOut,
        applied === undefined ? 'applied despite 503 unknown (see the count check)' : `${applied} applied of ${timedOut} timed out`,
      );
      if (applied !== undefined) result.notes.push(`${applied} of ${timedOut} increments that timed out (503) were applied when Redis resumed (each found by its request id)`);
      return result;
    },
  },
  {
    name: 'Redis restarted: graceful, then kill -9',
    proves: 'the AOF (appendfsync always) keeps the count across a restart and loses no acknowledged visit in a crash',
    quick: true,
    async run(f, counterKey) {
      let beforeGraceful = Number.NaN;
      let afterGraceful = Number.NaN;
      const { run, result, applied } = await redisFault(f, counterKey, this, { durationSeconds: 10 }, async ({ load, redis }) => {
        await load.responses(responsesIn(2));
        beforeGraceful = await readCount(f.lbUrl);
        await redis.stop();
        redis.start();
        await waitFor('the count to be readable again', async () => ((afterGraceful = await readCount(f.lbUrl)), true), 5_000);
        await load.successes(responsesIn(2));
        redis.signal('SIGKILL'); // the supervisor restarts it, as Docker's restart policy would
      });
      const highest = Math.max(0, ...run.results.filter((r) => r.status === 200).map((r) => r.count ?? 0));
      const countAfter = await readCount(f.lbUrl);
      Object.assign(result.figures, { 'highest acknowledged': highest, 'count after': countAfter });
      check(result, 'graceful restart kept the count', afterGraceful >= beforeGraceful, `${beforeGraceful} -> ${afterGraceful}`);
      check(result, 'no acknowledged visit lost', countAfter >= highest, `count ${countAfter}, highest acknowledged visitor number ${highest}`);
      if (applied !== undefined) result.notes.push(`${applied} increments were applied but not acknowledged (in flight at a restart; each found by its request id)`);
      return result;
    },
  },
  {
    name: 'Redis stopped 30 s (long outage)',
    proves: 'no burst of replayed increments on recovery, and replica memory stays flat through the outage',
    quick: false,
    async run(f, counterKey) {
      // Resident memory of every replica every 2 s of the outage. The first
      // seconds of 503s grow the heap once (measured: about 25 MiB); a leak
      // would keep growing after that, so the first 10 s are the baseline.
      const samples: number[][] = [];
      const { result, applied } = await redisFault(f, counterKey, this, { durationSeconds: 40, rate: 500 }, async ({ load, redis, back }) => {
        await load.responses(responsesIn(3, 500));
        await redis.stop();
        for (let s = 0; s < 15; s++) {
          await sleep(2_000); // the sampling interval through the outage
          samples.push(f.replicas.map((r) => rssMiB(r.service.pid)));
        }
        back();
        redis.start();
      });
      const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!;
      const growth = Math.max(...f.replicas.map((_, i) => median(samples.slice(-5).map((s) => s[i]!)) - median(samples.slice(3, 6).map((s) => s[i]!))));
      const measurable = Number.isFinite(growth);
      result.figures['replica RSS growth MiB'] = measurable ? Math.round(growth * 10) / 10 : 'not measured';
      check(
        result,
        'replica memory flat (< 15 MiB growth)',
        measurable ? growth < 15 : undefined,
        measurable ? `largest growth ${growth.toFixed(1)} MiB between the outage's 10th and 30th second` : 'resident memory unreadable (no /proc, or a replica had no process)',
      );
      if (applied !== undefined) result.notes.push(`${applied} increments applied though answered 503 (at the moment Redis stopped); none replayed after recovery`);
      return result;
    },
  },
];
