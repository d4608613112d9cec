import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, test } from 'vitest';
import { removeArtifactFolder } from '../../formation/artifact.js';
import { fromRoot } from '../../formation/paths.js';
import { withChildren } from '../../loadtest/cpu.js';
import { startTestFormation, type TestFormation } from '../support/formation.js';

// `make bench-compare`, small: one replica, two 1-second rounds. The figures
// are not the point here (make bench-compare prints them for people to read);
// that both sides ran the code they name, in alternating rounds, and that
// nothing is left behind, is.

const run = promisify(execFile);
const make = (vars: Record<string, string | number>) =>
  run('make', ['--no-print-directory', 'bench-compare', ...Object.entries(vars).map(([k, v]) => `${k}=${v}`)], { cwd: fromRoot(), timeout: 300_000 });
const git = async (...args: string[]) => (await run('git', args, { cwd: fromRoot() })).stdout.trim();
type Side = { rounds: { requests: number }[]; summary: { requestsPerSecond: number }; configFiles: { nginxTemplate: string; redisConf: string } };
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
        before: Side;
        after: Side;
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
      // Each side's formation ran its own rev's nginx template and redis.conf.
      expect(readFileSync(json.before.configFiles.nginxTemplate, 'utf8')).toBe(await git('show', 'HEAD:lb/nginx.conf.template'));
      expect(readFileSync(json.before.configFiles.redisConf, 'utf8')).toBe(await git('show', 'HEAD:redis/redis.conf'));
      expect(json.after.configFiles).toEqual({ nginxTemplate: fromRoot('lb/nginx.conf.template'), redisConf: fromRoot('redis/redis.conf') });
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

describe("a formation with another commit's config files (make bench-compare's sides)", () => {
  let formation: TestFormation | undefined;
  let folder: string | undefined;
  afterEach(async () => {
    await formation?.destroy();
    if (folder) await rm(folder, { recursive: true, force: true });
    formation = undefined;
  });

  test('When configFiles name a changed nginx template and redis.conf, then nginx and Redis run with those, not the checkout\'s', async () => {
    folder = await mkdtemp(path.join(tmpdir(), 'headcount-config-files-'));
    const template = readFileSync(fromRoot('lb/nginx.conf.template'), 'utf8');
    const redisConf = readFileSync(fromRoot('redis/redis.conf'), 'utf8');
    // Three workers is neither `auto` on this machine's two cores nor nginx's default of one.
    expect(template).toMatch(/^worker_processes auto;$/m);
    expect(redisConf).toMatch(/^appendfsync always$/m);
    const configFiles = { nginxTemplate: path.join(folder, 'nginx.conf.template'), redisConf: path.join(folder, 'redis.conf') };
    await writeFile(configFiles.nginxTemplate, template.replace(/^worker_processes auto;$/m, 'worker_processes 3;'));
    await writeFile(configFiles.redisConf, redisConf.replace(/^appendfsync always$/m, 'appendfsync everysec'));

    formation = await startTestFormation({ replicas: 1, configFiles });
    const workers = withChildren(formation.nginx.pid!).length - 1;
    const redis = new Redis(formation.redisUrl);
    const appendfsync = ((await redis.config('GET', 'appendfsync')) as string[])[1];
    redis.disconnect();
    const visit = await fetch(`${formation.lbUrl}/api/count`);

    expect(workers).toBe(3);
    expect(appendfsync).toBe('everysec');
    expect(visit.status).toBe(200);
  });
});
