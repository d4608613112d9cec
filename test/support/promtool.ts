import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fromRoot } from '../../formation/paths.js';

/**
 * Debian's promtool (package `prometheus`, 2.42, the same release the local
 * formation runs). Never skipped: where it is missing, every check that needs
 * it fails and says which package to install (.ci/run installs it).
 */
export const PROMTOOL = process.env.PROMTOOL ?? '/usr/bin/promtool';

export interface PromtoolResult {
  status: number | null;
  /** stdout and stderr together: promtool prints its findings on either. */
  output: string;
}

export function promtool(args: string[], cwd = fromRoot()): PromtoolResult {
  const result = spawnSync(PROMTOOL, args, { cwd, encoding: 'utf8', timeout: 60_000 });
  if (result.error) {
    throw new Error(`cannot run ${PROMTOOL} (${result.error.message}): install Debian's \`prometheus\` package, which ships promtool`);
  }
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/**
 * A scratch copy of a folder, for checks that break a file on purpose and
 * expect promtool to notice. `edit` gets the copy's path; the copy is removed
 * afterwards whatever happens.
 */
export function withCopyOf<T>(folder: string, edit: (dir: string) => T): T {
  const dir = mkdtempSync(path.join(tmpdir(), 'headcount-promtool-'));
  try {
    cpSync(fromRoot(folder), dir, { recursive: true });
    return edit(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Checks that PromQL expressions parse, the one way promtool offers: each
 * becomes a recording rule in a scratch rules file for `promtool check rules`.
 */
export function checkExpressions(exprs: string[]): PromtoolResult {
  const dir = mkdtempSync(path.join(tmpdir(), 'headcount-promql-'));
  try {
    const file = path.join(dir, 'exprs.rules.yml');
    const rules = exprs.map((expr, i) => ({ record: `headcount_check:expr_${i}`, expr }));
    // JSON is YAML: no quoting of PromQL to get wrong.
    writeFileSync(file, JSON.stringify({ groups: [{ name: 'exprs', rules }] }, null, 2));
    return promtool(['check', 'rules', file]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
