/**
 * Verdicts that count only what was checked (Jepsen's checkers answer
 * `:valid? :unknown` the same way). Every check of `make loadtest` and
 * `make chaos` is PASS, FAIL, or NOT CHECKED with the reason, and the verdict
 * line says how many were not checked.
 *
 * Exit codes: 0 when every required check PASSED; 1 when any FAILED; 3 when
 * none failed but a required check could not run (NOT CHECKED), unless the
 * user accepted that check by name (ACCEPT_NOT_CHECKED=replica-share, or
 * `all`). 2 stays the usage / configuration error. A run that could not check
 * what it promised never looks green by accident.
 */

export type Status = 'PASS' | 'FAIL' | 'NOT CHECKED';

export interface Check {
  name: string;
  status: Status;
  /** The figures behind a PASS or FAIL, or why it could not be checked. */
  detail: string;
  /** False for figures that do not gate the run (e.g. the direct comparison); default true. */
  required?: boolean;
}

export const EXIT = { pass: 0, fail: 1, usage: 2, notChecked: 3 } as const;

export const pass = (name: string, detail: string, required = true): Check => ({ name, status: 'PASS', detail, required });
export const fail = (name: string, detail: string, required = true): Check => ({ name, status: 'FAIL', detail, required });
export const notChecked = (name: string, reason: string, required = true): Check => ({ name, status: 'NOT CHECKED', detail: reason, required });

/** PASS when `holds`, FAIL otherwise; NOT CHECKED when `holds` is undefined (the figure could not be measured). */
export function judgeOne(name: string, holds: boolean | undefined, detail: string, reasonIfUnknown = detail): Check {
  if (holds === undefined) return notChecked(name, reasonIfUnknown);
  return holds ? pass(name, detail) : fail(name, detail);
}

export interface Verdict {
  status: Status;
  /** One line: the status word, then how many passed, failed and were not checked. */
  line: string;
  exitCode: number;
  passed: number;
  failed: number;
  notChecked: number;
}

/** Check names from ACCEPT_NOT_CHECKED (comma-separated, or `all`). */
export const parseAccepted = (value: string | undefined): readonly string[] =>
  (value ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name.length > 0);

const isAccepted = (check: Check, accepted: readonly string[]) => accepted.includes('all') || accepted.includes(check.name);

/**
 * The verdict over `checks`: FAIL if a required check failed; else NOT CHECKED
 * if a required check could not run and was not accepted; else PASS. The line
 * always counts what was not checked, so a PASS is never bare.
 */
export function judge(checks: readonly Check[], options: { noun?: string; accepted?: readonly string[] } = {}): Verdict {
  const { noun = 'checks', accepted = [] } = options;
  const required = (c: Check) => c.required !== false;
  const failed = checks.filter((c) => c.status === 'FAIL');
  const skipped = checks.filter((c) => c.status === 'NOT CHECKED');
  const passed = checks.filter((c) => c.status === 'PASS');
  const blocking = skipped.filter((c) => required(c) && !isAccepted(c, accepted));
  const status: Status = failed.some(required) ? 'FAIL' : blocking.length > 0 ? 'NOT CHECKED' : 'PASS';

  const parts = [`${passed.length} of ${checks.length} ${noun} passed`];
  parts.push(failed.length > 0 ? `${failed.length} failed (${failed.map((c) => c.name).join(', ')})` : '0 failed');
  if (skipped.length === 0) parts.push('0 not checked');
  else {
    const why = skipped.map((c) => {
      const tags = [!required(c) ? 'not required' : '', required(c) && isAccepted(c, accepted) ? 'accepted by ACCEPT_NOT_CHECKED' : '']
        .filter(Boolean)
        .join(', ');
      return tags ? `${c.name}, ${tags}` : c.name;
    });
    parts.push(`${skipped.length} not checked (${why.join('; ')})`);
  }
  const exitCode = status === 'FAIL' ? EXIT.fail : status === 'NOT CHECKED' ? EXIT.notChecked : EXIT.pass;
  let line = `${status}: ${parts.join(', ')}`;
  if (status === 'NOT CHECKED') {
    line += `; exit ${exitCode}: a required check could not run (accept it with ACCEPT_NOT_CHECKED=${blocking.map((c) => c.name).join(',')})`;
  }
  return { status, line, exitCode, passed: passed.length, failed: failed.length, notChecked: skipped.length };
}

/** One line per check that did not pass, for terminals and test failures. */
export const describeChecks = (checks: readonly Check[]) =>
  checks
    .filter((c) => c.status !== 'PASS')
    .map((c) => `${c.status} ${c.name}: ${c.detail}`)
    .join('\n');
