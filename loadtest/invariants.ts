/**
 * The accuracy invariants: what "every visit counted exactly once" means,
 * checked from the outside. The cluster tests, `make loadtest` and `make chaos`
 * all judge runs with this one function. Each invariant is PASS, FAIL or NOT
 * CHECKED with the reason (loadtest/verdict.ts).
 */
import { fail, judge, notChecked, pass, type Check, type Verdict } from './verdict.js';

export interface VisitResult {
  status: number;
  /** The visitor number the response carried (2xx only). */
  count?: number;
  /** The X-Replica header. */
  replica?: string;
}

export interface AccuracyInput {
  countBefore: number;
  countAfter: number;
  /** Requests the client sent. */
  sent: number;
  results: readonly VisitResult[];
  /** Transport errors and timeouts, as the client saw them. */
  errors?: number;
  timeouts?: number;
  /** Replicas expected to share the load; each must serve within `shareTolerance` of an even split. */
  replicas?: readonly string[];
  /**
   * When the replica list is unknown (a formation this run cannot inspect):
   * how many replicas should answer, and where that number came from
   * (`REPLICAS=4`). The X-Replica values seen are judged against it: a replica
   * that never answered is a FAIL, not a smaller split.
   */
  expectedReplicas?: { count: number; source: string };
  /** Relative tolerance around sent / replicas (0.1 = ±10%). */
  shareTolerance?: number;
}

export const INVARIANTS = ['no-errors', 'all-2xx', 'count-delta', 'unique-numbers', 'contiguous-range', 'replica-share'] as const;
export type Invariant = (typeof INVARIANTS)[number];

export interface Violation {
  invariant: Invariant;
  detail: string;
}

export interface AccuracyReport {
  /**
   * True when no invariant FAILED. It does not say every invariant was
   * checked: `verdict` does (an unchecked invariant is never a pass).
   */
  ok: boolean;
  /** Every invariant, in INVARIANTS order: PASS, FAIL or NOT CHECKED with the reason. */
  checks: Check[];
  /** The invariants that FAILED. */
  violations: Violation[];
  verdict: Verdict;
  figures: {
    sent: number;
    ok: number;
    non2xx: number;
    errors: number;
    timeouts: number;
    delta: number;
    uniqueNumbers: number;
    duplicateNumbers: number;
    perReplica: Record<string, number>;
  };
}

const NONE = '(none)';

function replicaShare(input: AccuracyInput, okCount: number, perReplica: Record<string, number>): Check {
  const name = 'replica-share';
  const tolerance = input.shareTolerance ?? 0.1;
  if (okCount === 0) return notChecked(name, 'no 2xx response to split among replicas');
  const served = (id: string) => perReplica[id] ?? 0;
  const split = (ids: readonly string[]) => ids.map((id) => `${id} ${served(id)}`).join(', ');
  let expected: readonly string[];
  let unexpected: string[];
  let note: string;
  if (input.replicas && input.replicas.length > 0) {
    expected = input.replicas;
    unexpected = Object.keys(perReplica).filter((id) => !expected.includes(id));
    note = `${expected.length} replicas listed by the formation`;
  } else if (input.expectedReplicas) {
    const { count, source } = input.expectedReplicas;
    const seen = Object.keys(perReplica).filter((id) => id !== NONE).sort();
    if (seen.length === 0) return notChecked(name, `no 2xx response carried X-Replica, so replicas cannot be told apart (expected ${count}, ${source})`);
    if (seen.length < count) {
      return fail(
        name,
        `expected ${count} replicas (${source}); only ${seen.length} answered (${split(seen)}): a replica that never answered is a failure`,
      );
    }
    if (seen.length > count) {
      return fail(name, `expected ${count} replicas (${source}); ${seen.length} answered (${split(seen)}): set REPLICAS to the formation's size`);
    }
    expected = seen;
    unexpected = served(NONE) > 0 ? [NONE] : [];
    note = `replica list unknown: the ${seen.length} X-Replica values seen, against ${count} expected (${source})`;
  } else {
    return notChecked(name, 'no replica list and no expected replica count given');
  }
  const even = okCount / expected.length;
  const off = expected.filter((id) => Math.abs(served(id) - even) > tolerance * even);
  const bounds = `even split ${even.toFixed(1)} ± ${(tolerance * 100).toFixed(0)}%`;
  if (off.length > 0 || unexpected.length > 0) {
    return fail(
      name,
      `${bounds}; ` +
        off.map((id) => `${id} served ${served(id)}`).join(', ') +
        (unexpected.length > 0 ? `; unexpected replicas: ${unexpected.map((id) => `${id} served ${served(id)}`).join(', ')}` : ''),
    );
  }
  return pass(name, `${split(expected)} (${bounds}; ${note})`);
}

export function checkAccuracy(input: AccuracyInput): AccuracyReport {
  const { countBefore, countAfter, sent, results, errors = 0, timeouts = 0 } = input;
  const checks: Check[] = [];
  const ok = results.filter((r) => r.status >= 200 && r.status < 300);
  const non2xx = results.length - ok.length;
  const delta = countAfter - countBefore;

  checks.push(
    errors > 0 || timeouts > 0
      ? fail('no-errors', `${errors} errors and ${timeouts} timeouts (want 0)`)
      : pass('no-errors', `0 errors, 0 timeouts in ${sent} requests`),
  );
  checks.push(
    non2xx > 0
      ? fail('all-2xx', `${non2xx} of ${results.length} responses were not 2xx`)
      : results.length === 0
        ? notChecked('all-2xx', 'no response arrived')
        : pass('all-2xx', `${ok.length} of ${results.length} responses were 2xx`),
  );
  const deltaDetail = `the count grew by ${delta} (${countBefore} -> ${countAfter}); requests sent ${sent}, 2xx ${ok.length}`;
  checks.push(
    delta !== sent || delta !== ok.length
      ? fail('count-delta', deltaDetail)
      : sent === 0
        ? notChecked('count-delta', 'no request was sent')
        : pass('count-delta', deltaDetail),
  );

  const numbers = ok.map((r) => r.count).filter((n): n is number => typeof n === 'number');
  const unique = new Set(numbers);
  const duplicates = numbers.length - unique.size;
  if (duplicates > 0 || numbers.length !== ok.length) {
    checks.push(
      fail('unique-numbers', `${duplicates} visitor numbers were handed out more than once; ${ok.length - numbers.length} 2xx carried no number`),
    );
  } else if (ok.length === 0) {
    checks.push(notChecked('unique-numbers', 'no 2xx response carried a visitor number'));
  } else {
    checks.push(pass('unique-numbers', `${unique.size} numbers, none handed out twice`));
  }
  const outside = [...unique].filter((n) => n <= countBefore || n > countAfter).length;
  const rangeDetail = `want exactly the ${delta} numbers ${countBefore + 1}..${countAfter}; got ${unique.size} distinct, ${outside} outside that range`;
  if (outside > 0 || unique.size !== delta) checks.push(fail('contiguous-range', rangeDetail));
  else if (delta === 0) checks.push(notChecked('contiguous-range', 'the count did not move: no range to check'));
  else checks.push(pass('contiguous-range', rangeDetail));

  const perReplica: Record<string, number> = {};
  for (const r of ok) perReplica[r.replica ?? NONE] = (perReplica[r.replica ?? NONE] ?? 0) + 1;
  checks.push(replicaShare(input, ok.length, perReplica));

  const violations = checks.filter((c) => c.status === 'FAIL').map((c) => ({ invariant: c.name as Invariant, detail: c.detail }));
  return {
    ok: violations.length === 0,
    checks,
    violations,
    verdict: judge(checks, { noun: 'invariants' }),
    figures: {
      sent,
      ok: ok.length,
      non2xx,
      errors,
      timeouts,
      delta,
      uniqueNumbers: unique.size,
      duplicateNumbers: duplicates,
      perReplica,
    },
  };
}

/** One line per broken invariant, for terminals and test failures. */
export const describeViolations = (violations: readonly Violation[]) =>
  violations.map((v) => `${v.invariant}: ${v.detail}`).join('\n');
