// What every fault scenario shares: its result, its checks, and the run of a
// fault under load with the count read around it.
import type { LocalFormation } from '../../formation/local-formation.js';
import { waitFor } from '../../formation/wait.js';
import { readCount } from '../accuracy.js';
import { checkAccuracy, type AccuracyReport } from '../invariants.js';
import { judge, judgeOne, type Check, type Verdict } from '../verdict.js';
import { underLoad, type LoadProgress, type LoadRun } from './load.js';

export interface ScenarioResult {
  name: string;
  proves: string;
  /** The accuracy run's counts (loadtest/invariants.ts), whether every number was unique, and the scenario's own figures. */
  figures: Pick<AccuracyReport['figures'], 'sent' | 'ok' | 'non2xx' | 'errors' | 'timeouts' | 'delta'> & {
    uniqueNumbers: boolean;
    [extra: string]: number | boolean | string;
  };
  /** What the figures mean beyond the checks (e.g. which errors were expected). */
  notes: string[];
  /** Every expectation of the scenario: PASS, FAIL, or NOT CHECKED with the reason. */
  checks: Check[];
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

export const verdictOf = (result: ScenarioResult): Verdict => judge(result.checks);

/**
 * Records a check: PASS when `holds`, FAIL when not, NOT CHECKED (with
 * `detail` as the reason) when `holds` is undefined because the figure could
 * not be measured.
 */
export function check(result: ScenarioResult, name: string, holds: boolean | undefined, detail: string) {
  result.checks.push(judgeOne(name, holds, detail));
}

/** The figures every scenario prints, from one load run and the count around it. */
export function measured(name: string, proves: string, run: LoadRun, before: number, after: number): ScenarioResult {
  // The same figures make loadtest judges; which invariants must hold is up to each scenario.
  const { figures, checks } = checkAccuracy({
    countBefore: before,
    countAfter: after,
    sent: run.sent,
    results: run.results,
    errors: run.errors,
    timeouts: run.timeouts,
  });
  const result: ScenarioResult = {
    name,
    proves,
    figures: {
      sent: figures.sent,
      ok: figures.ok,
      non2xx: figures.non2xx,
      errors: figures.errors,
      timeouts: figures.timeouts,
      delta: figures.delta,
      uniqueNumbers: checks.find((c) => c.name === 'unique-numbers')?.status === 'PASS',
    },
    notes: [],
    checks: [],
  };
  const unique = checks.find((c) => c.name === 'unique-numbers')!;
  result.checks.push({ ...unique, name: 'no number handed out twice' });
  check(
    result,
    'fault injected under load',
    run.missedMilestones === 0 ? true : undefined,
    run.missedMilestones === 0
      ? `${run.sent} requests around the fault`
      : `the load ended before the fault's cue (${run.missedMilestones} waits unmet): the fault ran with no load`,
  );
  return result;
}

/** "502 x3, 504 x1": the statuses of the responses that were not 2xx. */
export function non2xxStatuses(run: LoadRun): string {
  const counts = new Map<number, number>();
  for (const r of run.results) if (r.status < 200 || r.status >= 300) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
  return [...counts].map(([status, n]) => `${status} x${n}`).join(', ');
}

/** Nothing lost, nothing doubled, no error seen by a client. */
export function expectExact(result: ScenarioResult, run: LoadRun, { errors = true } = {}) {
  const f = result.figures;
  check(result, 'no non-2xx', f.non2xx === 0, f.non2xx === 0 ? `0 of ${f.sent}` : `${f.non2xx} non-2xx responses (want 0): ${non2xxStatuses(run)}`);
  if (errors) check(result, 'no transport errors', f.errors === 0, `${f.errors} transport errors (want 0)`);
  check(result, 'count delta = 2xx', f.delta === f.ok, `count delta ${f.delta}, 2xx ${f.ok}`);
}

/**
 * The count once it stops moving: two reads 100 ms apart agree. Increments
 * whose responses were lost (a timeout, a killed replica) can still land after
 * the load ends; this waits for them instead of sleeping a guessed time. Reads
 * that fail (Redis still reconnecting) are retried.
 */
export async function settledCount(url: string, timeoutMs = 10_000): Promise<number> {
  let last = Number.NaN;
  let value = Number.NaN;
  await waitFor(
    'the count to settle',
    async () => {
      value = await readCount(url);
      const same = value === last;
      last = value;
      return same;
    },
    timeoutMs,
    100,
  );
  return value;
}

/** A fault under a bounded load, with the count read (settled) before and after. */
export async function measure(
  formation: LocalFormation,
  name: string,
  proves: string,
  load: { durationSeconds: number; connections?: number; rate?: number },
  fault: (load: LoadProgress) => Promise<void>,
) {
  const before = await settledCount(formation.lbUrl);
  const run = await underLoad({ url: formation.lbUrl, ...load }, fault);
  return { run, result: measured(name, proves, run, before, await settledCount(formation.lbUrl)) };
}

/** Responses at the default chaos rate (600/s) in `seconds`: the cue for a fault, counted in responses, not slept. */
export const responsesIn = (seconds: number, rate = 600) => Math.round(seconds * rate);
