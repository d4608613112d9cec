import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import getPort from 'get-port';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readLedger } from '../../formation/ledger.js';
import { fromRoot } from '../../formation/paths.js';
import { fire } from '../../loadtest/cannon.js';
import { readSnapshot } from '../support/live-snapshot.js';
import { makeIn, removeScratch, type Outcome } from '../support/release-repo.js';

// Counting contract 1 -> 2 across a rolling deploy, for real: the release
// before the breakdown (the parent of the commit that made the contract
// version 2, from this repository's history) and the code under test are
// each released with `make release` in a temporary repository, the first is
// started, and the second deployed onto it under load. Visits the version 1
// replicas count land in the remainder; nothing is counted twice or lost.
const run = promisify(execFile);
const scratch = await mkdtemp(path.join(tmpdir(), 'headcount-live-deploy-'));
const clone = path.join(scratch, 'clone');
const releasesDir = path.join(scratch, 'releases');
const emptyEnvFile = path.join(scratch, 'empty.env');
writeFileSync(emptyEnvFile, '');
const REPLICAS = 3;
const LOAD_VISITS = 6_000;
const LOAD_RATE = 400;
let lbPort = 0;
let v1 = '';
let v2 = '';

/** `make <target>` in the clone; never throws, so refusals can be asserted. */
const make = makeIn(clone, () => ({ ...process.env, MODE: 'local', ENV_FILE: emptyEnvFile, RELEASES_DIR: releasesDir, LB_PORT: String(lbPort), REPLICAS: String(REPLICAS) }), 600_000);
const git = (...args: string[]) => run('git', args, { cwd: clone, maxBuffer: 64 * 1024 * 1024 });
const released = (outcome: Outcome) => /released (r\d+-[0-9a-f]{7})/.exec(outcome.stdout)?.[1];
const lb = () => `http://127.0.0.1:${lbPort}`;
const count = async () => ((await (await fetch(`${lb()}/api/count`)).json()) as { count: number }).count;

/** Replaces the clone's files (all but .git and node_modules) with `files`, each put in place by `copy`. */
function writeTree(files: string[], copy: (file: string, to: string) => void) {
  for (const entry of readdirSync(clone)) if (entry !== '.git' && entry !== 'node_modules') rmSync(path.join(clone, entry), { recursive: true, force: true });
  for (const file of files) {
    mkdirSync(path.dirname(path.join(clone, file)), { recursive: true });
    copy(file, path.join(clone, file));
  }
}

beforeAll(async () => {
  lbPort = await getPort({ host: '127.0.0.1' });
  // The last commit with counting contract 1: the parent of the one that made it 2.
  const { stdout: firstV2 } = await run('git', ['log', '--format=%H', '--reverse', '-S', 'version: 2, crossesFrom', '--', 'web/counting-contract.ts'], { cwd: fromRoot() });
  const introduced = firstV2.split('\n')[0]!.trim();
  if (!introduced) throw new Error('no commit in this repository\'s history made the counting contract 2: a shallow clone cannot run this test (fetch-depth: 0)');
  const base = `${introduced}^`;
  await run('git', ['init', '-q', clone]);
  await git('config', 'user.name', 'headcount test');
  await git('config', 'user.email', 'test@headcount.invalid');

  // Release 1: the base commit's tree, as git archive gives it.
  const archive = path.join(scratch, 'base.tar');
  await run('git', ['archive', '--format=tar', '-o', archive, base], { cwd: fromRoot() });
  await run('tar', ['-xf', archive, '-C', clone]);
  symlinkSync(fromRoot('node_modules'), path.join(clone, 'node_modules'));
  writeFileSync(path.join(clone, '.git/info/exclude'), 'node_modules\n');
  for (const file of ['package.json', 'package-lock.json']) utimesSync(path.join(clone, file), new Date(0), new Date(0));
  await git('add', '-A');
  await git('commit', '-qm', 'The release before the breakdown (counting contract 1)');
  const one = await make('release');
  v1 = released(one) ?? '';
  if (!v1) throw new Error(`make release (v1) failed:\n${one.stdout}${one.stderr}`);

  // Release 2: this checkout's files as they are on disk (the code under test).
  const { stdout: listed } = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: fromRoot(), maxBuffer: 16 * 1024 * 1024 });
  writeTree(
    listed.split('\0').filter((f) => f && existsSync(fromRoot(f))),
    (file, to) => cpSync(fromRoot(file), to),
  );
  for (const file of ['package.json', 'package-lock.json']) utimesSync(path.join(clone, file), new Date(0), new Date(0));
  await git('add', '-A');
  await git('commit', '-qm', 'The code under test (counting contract 2)');
  const two = await make('release');
  v2 = released(two) ?? '';
  if (!v2) throw new Error(`make release (v2) failed:\n${two.stdout}${two.stderr}`);

  const start = await make('start', { RELEASE: v1 });
  if (start.code !== 0) throw new Error(`make start RELEASE=${v1} failed:\n${start.stdout}${start.stderr}`);
}, 1_200_000);

afterAll(async () => {
  await make('stop');
  await removeScratch(scratch);
}, 120_000);

describe('the per-replica breakdown across a rolling deploy from counting contract 1 to 2', () => {
  test('When make deploy rolls out version 2 onto version 1 under load, then no visit fails or counts twice, and the shares plus the remainder are the total, the remainder holding version 1\'s visits', async () => {
    const before = await count();
    const load = fire(
      { url: lb(), amount: LOAD_VISITS, connections: 20, overallRate: LOAD_RATE, timeout: 10, requests: [{ method: 'POST', path: '/api/visits' }] },
      'deploy v1 -> v2 under load',
    );
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const deploy = await make('deploy', { RELEASE: v2 });
    const result = await load;
    const after = await count();
    const snapshot = await readSnapshot(lb());
    const shares = snapshot.replicas.reduce((sum, r) => sum + r.count, 0);

    // After the deploy only version 2 counts: the remainder stays, the shares grow.
    await Promise.all(Array.from({ length: 30 }, () => fetch(`${lb()}/api/visits`, { method: 'POST' })));
    const later = await readSnapshot(lb(), Date.now() + 1_100);
    console.log(`deploy v1 -> v2 under load: ${result['2xx']} visits, total ${snapshot.total}, shares ${shares}, remainder ${snapshot.remainder}`);

    expect(deploy.code).toBe(0);
    expect({ non2xx: result.non2xx, errors: result.errors + result.timeouts, visits: result.requests.total }).toEqual({ non2xx: 0, errors: 0, visits: LOAD_VISITS });
    expect(after - before).toBe(result['2xx']);
    expect(snapshot.total).toBe(after);
    expect(shares + snapshot.remainder).toBe(snapshot.total);
    // Version 1 counted the visits before the deploy and during part of it; version 2 the rest.
    expect(snapshot.remainder).toBeGreaterThanOrEqual(before + 300);
    expect(shares).toBeGreaterThan(0);
    expect(later.total).toBe(after + 30);
    expect(later.remainder).toBe(snapshot.remainder);
    expect(later.replicas.reduce((sum, r) => sum + r.count, 0)).toBe(shares + 30);
  });

  test('When version 2 is packaged, then its artifact carries the page\'s script, style and icon, and its replicas serve them', async () => {
    const record = readLedger(releasesDir).find((r) => r.id === v2);
    const script = await fetch(`${lb()}/assets/live.js`);

    expect(readdirSync(path.join(record!.folder!, 'dist', 'web', 'assets')).sort()).toEqual(['favicon.svg', 'live.js', 'page.css']);
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(script.headers.get('x-release')).toBe(v2);
  });
});
