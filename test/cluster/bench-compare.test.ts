import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';
import { removeArtifactFolder } from '../../formation/artifact.js';
import { fromRoot } from '../../formation/paths.js';

// `make bench-compare`, small: one replica, two 1-second rounds. The figures
// are not the point here (make bench-compare prints them for people to read);
// that both sides ran the code they name, in alternating rounds, and that
// nothing is left behind, is.

const run = promisify(execFile);
const make = (vars: Record<string, string | number>) =>
  run('make', ['--no-print-directory', 'bench-compare', ...Object.entries(vars).map(([k, v]) => `${k}=${v}`)], { cwd: fromRoot(), timeout: 300_000 });
const git = async (...args: string[]) => (await run('git', args, { cwd: fromRoot() })).stdout.trim();
const formationDirs = () => readdirSync(fromRoot('.run')).filter((name) => name.startsWith('bench-compare-'));

describe('make bench-compare', () => {
  test('When BEFORE is missing or names no commit, then it exits 2 with one line saying so, and starts nothing', async () => {
    const missing = await make({}).catch((error: { code: number; stderr: string }) => error);
    const unknown = await make({ BEFORE: 'no-such-rev-here' }).catch((error: { code: number; stderr: string }) => error);

    expect(missing).toMatchObject({ code: 2 });
    expect((missing as { stderr: string }).stderr).toMatch(/^make bench-compare: invalid configuration: BEFORE is required/);
    expect(unknown).toMatchObject({ code: 2 });
    expect((unknown as { stderr: string }).stderr).toContain('make bench-compare: no-such-rev-here names no commit');
  });

  test('When BEFORE is HEAD, then HEAD is packaged and loaded in alternating rounds beside this checkout, the report holds both, and no formation or worktree is left', { timeout: 300_000 }, async () => {
    const tag = await git('rev-parse', '--short=7', 'HEAD');
    const artifact = fromRoot('.run', 'bench-compare', 'artifacts', tag);
    const cachedBefore = existsSync(artifact);
    const worktrees = await git('worktree', 'list', '--porcelain');
    const dirsBefore = formationDirs();
    let report: string | undefined;
    try {
      const { stdout } = await make({ BEFORE: 'HEAD', REPLICAS: 1, ROUNDS: 2, DURATION: 1, CONNECTIONS: 4 });
      report = /^report: (.+)$/m.exec(stdout)?.[1];
      const json = JSON.parse(readFileSync(report!, 'utf8')) as {
        before: { rounds: { requests: number }[]; summary: { requestsPerSecond: number } };
        after: { rounds: { requests: number }[]; summary: { requestsPerSecond: number } };
        paired: number[];
      };

      expect(stdout).toMatch(/^make bench-compare: 1 replicas via nginx, json answers, 2 rounds of 1 s each at 4 connections, alternating/m);
      expect(stdout).toContain(`before: HEAD (${await git('rev-parse', '--short=12', 'HEAD')})`);
      expect(stdout).toMatch(/after: this checkout/);
      expect(stdout).toMatch(/after \/ before req\/s, round by round: \d+\.\d{3} \d+\.\d{3} \(median/);
      for (const side of [json.before, json.after]) {
        expect(side.rounds).toHaveLength(2);
        expect(side.rounds.every((r) => r.requests > 0)).toBe(true);
        expect(side.summary.requestsPerSecond).toBeGreaterThan(0);
      }
      expect(json.paired).toHaveLength(2);
      // The artifact is HEAD's, as make package builds it.
      expect(JSON.parse(readFileSync(path.join(artifact, 'artifact.json'), 'utf8'))).toMatchObject({ commit: await git('rev-parse', 'HEAD') });
      expect(formationDirs()).toEqual(dirsBefore);
      expect(await git('worktree', 'list', '--porcelain')).toBe(worktrees);
    } finally {
      if (report) await rm(report, { force: true });
      if (!cachedBefore) removeArtifactFolder(artifact);
    }
  });
});
