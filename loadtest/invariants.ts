/**
 * The accuracy invariants: what "every visit counted exactly once" means,
 * checked from the outside. The cluster tests and `make loadtest` both judge
 * runs with this one function.
 */

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
  /** Relative tolerance around sent / replicas (0.1 = ±10%). */
  shareTolerance?: number;
}

export interface Violation {
  invariant: 'no-errors' | 'all-2xx' | 'count-delta' | 'unique-numbers' | 'contiguous-range' | 'replica-share';
  detail: string;
}

export interface AccuracyReport {
  ok: boolean;
  violations: Violation[];
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

export function checkAccuracy(input: AccuracyInput): AccuracyReport {
  const { countBefore, countAfter, sent, results, errors = 0, timeouts = 0, shareTolerance = 0.1 } = input;
  const violations: Violation[] = [];
  const ok = results.filter((r) => r.status >= 200 && r.status < 300);
  const non2xx = results.length - ok.length;
  const delta = countAfter - countBefore;

  if (errors > 0 || timeouts > 0) {
    violations.push({ invariant: 'no-errors', detail: `${errors} errors and ${timeouts} timeouts (want 0)` });
  }
  if (non2xx > 0) violations.push({ invariant: 'all-2xx', detail: `${non2xx} of ${results.length} responses were not 2xx` });
  if (delta !== sent || delta !== ok.length) {
    violations.push({
      invariant: 'count-delta',
      detail: `the count grew by ${delta} (${countBefore} -> ${countAfter}); requests sent ${sent}, 2xx ${ok.length}`,
    });
  }

  const numbers = ok.map((r) => r.count).filter((n): n is number => typeof n === 'number');
  const unique = new Set(numbers);
  const duplicates = numbers.length - unique.size;
  if (duplicates > 0 || numbers.length !== ok.length) {
    violations.push({
      invariant: 'unique-numbers',
      detail: `${duplicates} visitor numbers were handed out more than once; ${ok.length - numbers.length} 2xx carried no number`,
    });
  }
  const outside = [...unique].filter((n) => n <= countBefore || n > countAfter).length;
  if (outside > 0 || unique.size !== delta) {
    violations.push({
      invariant: 'contiguous-range',
      detail: `want exactly the ${delta} numbers ${countBefore + 1}..${countAfter}; got ${unique.size} distinct, ${outside} outside that range`,
    });
  }

  const perReplica: Record<string, number> = {};
  for (const r of ok) perReplica[r.replica ?? '(none)'] = (perReplica[r.replica ?? '(none)'] ?? 0) + 1;
  if (input.replicas && input.replicas.length > 0) {
    const even = ok.length / input.replicas.length;
    const off = input.replicas
      .map((id) => ({ id, served: perReplica[id] ?? 0 }))
      .filter(({ served }) => Math.abs(served - even) > shareTolerance * even);
    const unknown = Object.keys(perReplica).filter((id) => !input.replicas!.includes(id));
    if (off.length > 0 || unknown.length > 0) {
      violations.push({
        invariant: 'replica-share',
        detail:
          `even split is ${even.toFixed(1)} ± ${(shareTolerance * 100).toFixed(0)}%; ` +
          off.map(({ id, served }) => `${id} served ${served}`).join(', ') +
          (unknown.length > 0 ? `; unexpected replicas: ${unknown.join(', ')}` : ''),
      });
    }
  }

  return {
    ok: violations.length === 0,
    violations,
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
