import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import getPort from 'get-port';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readLedger, type ReleaseRecord } from '../../formation/ledger.js';
import { fromRoot } from '../../formation/paths.js';
import type { FormationState } from '../../formation/state.js';
import { httpOk, waitFor } from '../../formation/wait.js';
import { fire } from '../../loadtest/cannon.js';
import { makeIn, removeScratch, type Outcome } from '../support/release-repo.js';

// Build, release, run for real, in local mode: a temporary repository holding
// this checkout's files makes real commits (a changed welcome message; a counting
// contract no deploy can cross), packages and releases each with `make`, and a
// formation started from the clone is deployed and rolled back under load.
const run = promisify(execFile);
const scratch = await mkdtemp(path.join(tmpdir(), 'headcount-releases-'));
const clone = path.join(scratch, 'clone');
// Outside the clone: the deployed replicas run with no checkout around them.
const releasesDir = path.join(scratch, 'releases');
const emptyEnvFile = path.join(scratch, 'empty.env');
writeFileSync(emptyEnvFile, '');
const FIXED_WELCOME = 'Welcome to headcount, now with the typo fixed';
const REPLICAS = 3;
// Paced so the load outlasts a deploy of REPLICAS replicas (about 7 s each, most of it nginx's fail_timeout).
const LOAD_VISITS = 15_000;
const LOAD_RATE = 500;
let lbPort = 0;

/** `make <target>` in the clone; never throws, so refusals can be asserted. */
const make = makeIn(clone, () => ({ ...process.env, MODE: 'local', ENV_FILE: emptyEnvFile, RELEASES_DIR: releasesDir, LB_PORT: String(lbPort), REPLICAS: String(REPLICAS) }), 300_000);
const git = (...args: string[]) => run('git', args, { cwd: clone });
const lb = () => `http://127.0.0.1:${lbPort}`;
/** The clone's formation state (its .run/ folder, not this checkout's). */
const formationState = () => JSON.parse(readFileSync(path.join(clone, '.run', `lb-${lbPort}`, 'formation.json'), 'utf8')) as FormationState;
const count = async () => ((await (await fetch(`${lb()}/api/count`)).json()) as { count: number }).count;
const released = (outcome: Outcome) => /released (r\d+-[0-9a-f]{7})/.exec(outcome.stdout)?.[1];

/** Edits a file of the clone and commits it: a real second build. */
async function commit(file: string, from: string, to: string, message: string) {
  const full = path.join(clone, file);
  const text = readFileSync(full, 'utf8');
  if (!text.includes(from)) throw new Error(`${file} no longer holds ${from}`);
  writeFileSync(full, text.replace(from, to));
  await git('commit', '-qam', message);
}

let first: string;
let second: string;
let uncrossable: string;
let initialPorts: number[];

beforeAll(async () => {
  lbPort = await getPort({ host: '127.0.0.1' });
  // A repository whose first commit is this checkout's files as they are on disk (the code under
  // test, committed or not, as the other cluster tests run dist/ built from them), with this
  // checkout's installed node_modules linked in rather than installed again; their lockfile's
  // mtime is then older than the link's, so make does not reinstall.
  const listed = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: fromRoot(), maxBuffer: 16 * 1024 * 1024 });
  for (const file of listed.stdout.split('\0').filter((f) => f && existsSync(fromRoot(f)))) {
    mkdirSync(path.dirname(path.join(clone, file)), { recursive: true });
    cpSync(fromRoot(file), path.join(clone, file));
  }
  await run('git', ['init', '-q', clone]);
  await git('config', 'user.name', 'headcount test');
  await git('config', 'user.email', 'test@headcount.invalid');
  await git('add', '-A');
  await git('commit', '-qm', 'The code under test');
  symlinkSync(fromRoot('node_modules'), path.join(clone, 'node_modules'));
  for (const file of ['package.json', 'package-lock.json']) utimesSync(path.join(clone, file), new Date(0), new Date(0));
  // .gitignore's `node_modules/` matches folders only: keep the link out of `git status` too.
  writeFileSync(path.join(clone, '.git/info/exclude'), 'node_modules\n');

  const one = await make('release');
  if (!released(one)) throw new Error(`make release failed:\n${one.stdout}${one.stderr}`);
  first = released(one)!;
  await commit('web/page.ts', "'Welcome to headcount'", `'${FIXED_WELCOME}'`, 'Fix the welcome message');
  const two = await make('release');
  second = released(two)!;
  await commit('web/counting-contract.ts', 'version: 2,', 'version: 99,', 'A counting contract no rolling deploy can cross');
  const three = await make('release');
  uncrossable = released(three)!;
  await git('reset', '-q', '--hard', 'HEAD~1');
  if (!second || !uncrossable) throw new Error(`make release failed:\n${two.stdout}${two.stderr}\n${three.stdout}${three.stderr}`);

  const start = await make('start');
  if (start.code !== 0) throw new Error(`make start failed:\n${start.stdout}${start.stderr}`);
  initialPorts = formationState().replicas.map((r) => r.port);
}, 900_000);

afterAll(async () => {
  await make('stop');
  await removeScratch(scratch);
}, 120_000);

/** Replica by replica, the release each process names in its own /healthz (through its own port). */
async function releasesOfReplicas(): Promise<string[]> {
  const state = formationState();
  return Promise.all(state.replicas.map(async (r) => ((await (await fetch(`http://127.0.0.1:${r.port}/healthz`)).json()) as { release: string }).release));
}

interface LoadedDeploy {
  outcome: Outcome;
  visits: number;
  ok: number;
  non2xx: number;
  errors: number;
  delta: number;
  deploySeconds: number;
  loadSeconds: number;
  releasesSeen: Set<string>;
  /** Answers by status: what a failure was, when there is one. */
  statuses: Record<number, number>;
  deployEndedBeforeLoad: boolean;
}

/**
 * A fixed-count load (autocannon `amount`, paced so it outlasts the deploy)
 * through nginx while `make <target>` runs.
 */
async function underLoad(target: string, vars: Record<string, string> = {}): Promise<LoadedDeploy> {
  const before = await count();
  const releasesSeen = new Set<string>();
  const statuses: Record<number, number> = {};
  let loadEnded = 0;
  const load = fire(
    {
      url: lb(),
      amount: LOAD_VISITS,
      connections: 20,
      overallRate: LOAD_RATE,
      timeout: 10,
      requests: [
        {
          method: 'POST',
          path: '/api/visits',
          onResponse: (status, _body, _context, headers) => {
            statuses[status] = (statuses[status] ?? 0) + 1;
            const release = headers?.['x-release'] ?? headers?.['X-Release'];
            if (typeof release === 'string') releasesSeen.add(release);
          },
        },
      ],
    },
    `${target} under load`,
  ).finally(() => (loadEnded = performance.now()));
  // Let the load settle on the current release first.
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const started = performance.now();
  const outcome = await make(target, vars);
  const deployEnded = performance.now();
  const result = await load;
  const after = await count();
  return {
    outcome,
    visits: result.requests.total,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    delta: after - before,
    deploySeconds: (deployEnded - started) / 1000,
    loadSeconds: result.duration,
    releasesSeen,
    statuses,
    deployEndedBeforeLoad: deployEnded < loadEnded,
  };
}

/** The TCP ports each process listens on, by pid (ss, as `make status`'s reader would check it). */
async function listeningPorts(): Promise<Map<number, number[]>> {
  const { stdout } = await run('ss', ['-ltnpH']);
  const ports = new Map<number, number[]>();
  for (const line of stdout.split('\n')) {
    const port = Number(/:(\d+)\s+\S+:\*/.exec(line)?.[1]);
    for (const [, pid] of line.matchAll(/pid=(\d+)/g)) ports.set(Number(pid), [...(ports.get(Number(pid)) ?? []), port]);
  }
  return ports;
}

/** Every replica of the state listens on the ports the state names (its own and its metrics port), and on no other. */
async function expectPortsAsRecorded() {
  const listening = await listeningPorts();
  const sorted = (ports: readonly number[] | undefined) => [...(ports ?? [])].sort((a, b) => a - b);
  for (const replica of formationState().replicas) {
    expect(replica.metricsPort).toBeDefined();
    expect({ id: replica.id, ports: sorted(listening.get(replica.pid!)) }).toEqual({ id: replica.id, ports: sorted([replica.port, replica.metricsPort!]) });
  }
}

const pageText = async () => (await fetch(lb(), { headers: { accept: 'text/html' } })).text();

describe('build, release, run in local mode', () => {
  test('When make release runs on a dirty tree, then it refuses in one line and the ledger is unchanged', async () => {
    const ledgerBefore = readFileSync(path.join(releasesDir, 'ledger.jsonl'), 'utf8');
    writeFileSync(path.join(clone, 'README.md'), '\nan uncommitted line\n', { flag: 'a' });

    const outcome = await make('release').finally(() => git('checkout', '--', 'README.md'));

    expect(outcome.code).not.toBe(0);
    expect(outcome.stderr.trim().split('\n').filter((line) => !/^make(\[\d+\])?:/.test(line))).toEqual([
      expect.stringMatching(/^release refused: the tree is dirty \([0-9a-f]{7}-dirty\); commit or stash/),
    ]);
    expect(readFileSync(path.join(releasesDir, 'ledger.jsonl'), 'utf8')).toBe(ledgerBefore);
  });

  test('When the three commits are released, then the ledger holds three records, each with its commit, artifact, config digest and contract', () => {
    const records = readLedger(releasesDir);

    expect(records.map((r) => r.id)).toEqual([first, second, uncrossable]);
    expect(records.map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(records.map((r) => r.countingContract.version)).toEqual([2, 2, 99]);
    for (const record of records) {
      expect(record).toMatchObject<Partial<ReleaseRecord>>({ tag: record.commit.slice(0, 7), folder: path.join(releasesDir, 'artifacts', record.tag) });
      expect(record.configDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    }
  });

  test('When make package runs again on a packaged commit, then it says so and builds nothing', async () => {
    const outcome = await make('package');

    expect(outcome.stdout).toContain('is already packaged');
    expect(outcome.stdout).not.toContain('building');
  });

  test('When the artifact folder is copied away from any checkout, then a replica runs from it alone, read-only, naming its release', async () => {
    const record = readLedger(releasesDir).find((r) => r.id === first)!;
    const info = JSON.parse(readFileSync(path.join(record.folder!, 'artifact.json'), 'utf8')) as Record<string, unknown>;
    const elsewhere = path.join(scratch, 'elsewhere', 'artifact');
    cpSync(record.folder!, elsewhere, { recursive: true });
    const port = await getPort({ host: '127.0.0.1' });
    let replica: ChildProcess | undefined;

    try {
      // Only what a platform would set: no PATH into the checkout, no NODE_PATH.
      replica = spawn(process.execPath, ['dist/web/server.js'], {
        cwd: elsewhere,
        stdio: 'ignore',
        env: { NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(port), METRICS_PORT: '0', REDIS_URL: formationState().redisUrl, RELEASE_ID: first },
      });
      await waitFor('the copied artifact ready', () => httpOk(`http://127.0.0.1:${port}/readyz`), 20_000);
      const health = await fetch(`http://127.0.0.1:${port}/healthz`);

      expect(await health.json()).toEqual({ status: 'ok', release: first });
      expect(health.headers.get('x-release')).toBe(first);
    } finally {
      replica?.kill();
    }
    expect(info).toMatchObject({ tag: record.tag, commit: record.commit, countingContract: { version: 2, crossesFrom: [1] } });
    expect(readdirSync(record.folder!).sort()).toEqual(['artifact.json', 'dist', 'node_modules', 'package-lock.json', 'package.json']);
    expect(readdirSync(path.join(record.folder!, 'node_modules'))).not.toContain('vitest');
    expect(statSync(path.join(record.folder!, 'dist/web/server.js')).mode & 0o222).toBe(0);
    expect(statSync(record.folder!).mode & 0o222).toBe(0);
  });

  test('When the first release is deployed onto a formation of the checkout, then every replica runs it and make releases marks it', async () => {
    const outcome = await make('deploy', { RELEASE: first });
    const listing = await make('releases');

    expect(outcome.code).toBe(0);
    expect(await releasesOfReplicas()).toEqual(Array(REPLICAS).fill(first));
    const marked = listing.stdout.split('\n').filter((line) => line.startsWith('*'));
    expect(marked).toEqual([expect.stringContaining(first)]);
    expect(listing.stdout).toMatch(new RegExp(`${second}\\s+[0-9a-f]{12}\\s+\\S+Z\\s+sha256:[0-9a-f]{12}`));
  });

  test('When make deploy rolls out the second release under load, then no visit fails, every 2xx is counted once, and every replica serves the new page', async () => {
    const run = await underLoad('deploy', { RELEASE: second });
    console.log(`deploy under load: ${JSON.stringify({ ...run, outcome: undefined, releasesSeen: [...run.releasesSeen] })}`);

    expect(run.outcome).toMatchObject({ code: 0 });
    expect(run.deployEndedBeforeLoad).toBe(true);
    expect({ non2xx: run.non2xx, errors: run.errors, visits: run.visits }).toEqual({ non2xx: 0, errors: 0, visits: LOAD_VISITS });
    expect(run.delta).toBe(run.ok);
    expect([...run.releasesSeen].sort()).toEqual([first, second].sort());
    expect(await releasesOfReplicas()).toEqual(Array(REPLICAS).fill(second));
    expect(await pageText()).toContain(FIXED_WELCOME);
  });

  test('When make rollback runs under load, then it ends on the first release, with no failed visit and an exact count', async () => {
    const run = await underLoad('rollback');
    console.log(`rollback under load: ${JSON.stringify({ ...run, outcome: undefined, releasesSeen: [...run.releasesSeen] })}`);

    expect(run.outcome.stdout).toContain(`rolling back from ${second} to ${first}`);
    expect(run.outcome.code).toBe(0);
    expect(run.deployEndedBeforeLoad).toBe(true);
    expect({ non2xx: run.non2xx, errors: run.errors, visits: run.visits }).toEqual({ non2xx: 0, errors: 0, visits: LOAD_VISITS });
    expect(run.delta).toBe(run.ok);
    expect(await releasesOfReplicas()).toEqual(Array(REPLICAS).fill(first));
    const page = await pageText();
    expect(page).toContain('<h1>Welcome to headcount</h1>');
    expect(page).toContain(`<code data-testid="release">${first}</code>`);
  });

  test('When a release speaks a counting contract the running one cannot cross (version 99), then make deploy refuses in one line and nothing changes', async () => {
    const before = formationState().replicas;

    const outcome = await make('deploy', { RELEASE: uncrossable });

    expect(outcome.code).not.toBe(0);
    expect(outcome.stderr.trim().split('\n').filter((line) => !/^make(\[\d+\])?:/.test(line))).toEqual([
      `deploy of ${uncrossable} refused: counting contract 2 -> 99 cannot be crossed by a rolling deploy: a deploy crosses one version at a time`,
    ]);
    expect(formationState().replicas).toEqual(before);
    expect(await releasesOfReplicas()).toEqual(Array(REPLICAS).fill(first));
  });

  test('When releases have been deployed, then nginx still sends to the ports it started with: no reload was needed', () => {
    const conf = readFileSync(path.join(clone, '.run', `lb-${lbPort}`, 'nginx', 'nginx.conf'), 'utf8');
    const primaries = [...conf.matchAll(/server 127\.0\.0\.1:(\d+) max_fails/g)].map((m) => Number(m[1]));
    const live = formationState().replicas.map((r) => r.port);

    expect([...primaries].sort()).toEqual([...live].sort());
    expect(live).toEqual(initialPorts);
    expect(formationState().replicas.map((r) => r.release)).toEqual(Array(REPLICAS).fill(first));
  });

  test('When releases have been deployed, then each replica listens only on the port the state names: the handover closed its own', async () => {
    await expectPortsAsRecorded();
  });

  test('When make restart runs after a deploy, then every replica still runs the deployed release, on the port nginx knows', async () => {
    const outcome = await make('restart');

    expect(outcome.code).toBe(0);
    expect(formationState().replicas.map((r) => r.release)).toEqual(Array(REPLICAS).fill(first));
    expect(await releasesOfReplicas()).toEqual(Array(REPLICAS).fill(first));
    expect(formationState().replicas.map((r) => r.port)).toEqual(initialPorts);
    await expectPortsAsRecorded();
  });

  test('When Docker mode packages and releases with REGISTRY set, then the image is built from the exported tree with the contract labels and NODE_IMAGE, pushed, and recorded by its registry reference', async () => {
    // A stand-in docker client that records its arguments: the engine itself is the Docker tier's to test.
    const bin = path.join(scratch, 'fake-docker');
    const calls = path.join(scratch, 'docker-calls.txt');
    mkdirSync(bin, { recursive: true });
    writeFileSync(
      path.join(bin, 'docker'),
      `#!/bin/sh\nprintf '%s\\n' "$PWD $*" >> ${calls}\n[ "$1 $2" = "image inspect" ] && exit 1\n[ "$1" = build ] && [ ! -f web/Dockerfile ] && exit 3\nexit 0\n`,
      { mode: 0o755 },
    );
    const head = (await git('rev-parse', 'HEAD')).stdout.trim();
    const tag = head.slice(0, 7);

    const outcome = await make('release', { MODE: 'docker', REGISTRY: '127.0.0.1:5999/team', NODE_IMAGE: 'standin/node:test', PATH: `${bin}:${process.env.PATH}` });

    const lines = readFileSync(calls, 'utf8').trim().split('\n');
    const build = lines.find((line) => line.includes(' build '))!;
    expect(outcome.code).toBe(0);
    expect(build).toContain(`-t headcount-web:${tag}`);
    expect(build).toContain(`--label org.opencontainers.image.revision=${head}`);
    expect(build).toContain('--label io.headcount.counting-contract=2 --label io.headcount.crosses-from=1 ');
    expect(build).toContain('--build-arg NODE_IMAGE=standin/node:test');
    expect(build.split(' ')[0]).not.toBe(clone);
    expect(lines.filter((line) => !line.includes(' build ') && !line.includes(' inspect ')).map((line) => line.split(' ').slice(1).join(' '))).toEqual([
      `tag headcount-web:${tag} 127.0.0.1:5999/team/headcount-web:${tag}`,
      `push 127.0.0.1:5999/team/headcount-web:${tag}`,
    ]);
    expect(readLedger(releasesDir).at(-1)).toMatchObject({ tag, image: `127.0.0.1:5999/team/headcount-web:${tag}` });
  });

  test('When the formation is stopped and started plainly after a deploy, then it runs the checkout and says in one line which release the last one ran and how to run it again', async () => {
    expect(formationState().replicas.map((r) => r.release)).toEqual(Array(REPLICAS).fill(first));
    await make('stop');

    const outcome = await make('start');

    expect(outcome.code).toBe(0);
    expect(outcome.stdout.split('\n').filter((line) => line.includes(first))).toEqual([
      `the last formation on port ${lbPort} ran release ${first}; this one runs this checkout's build (dev). To run ${first} again: make stop LB_PORT=${lbPort}; make start RELEASE=${first} LB_PORT=${lbPort}`,
    ]);
    expect(await releasesOfReplicas()).toEqual(Array(REPLICAS).fill('dev'));
  });

  test('When make start names a release the ledger does not hold, then it refuses in one line and starts nothing', async () => {
    await make('stop');

    const outcome = await make('start', { RELEASE: 'r99-0000000' });

    expect(outcome.code).not.toBe(0);
    expect(outcome.stderr.trim().split('\n').filter((line) => !/^make(\[\d+\])?:/.test(line))).toEqual([expect.stringMatching(/^no release r99-0000000 in the ledger \(.*\); make releases lists them$/)]);
    expect(existsSync(path.join(clone, '.run', `lb-${lbPort}`, 'formation.json'))).toBe(false);
  });

  test('When make start RELEASE=<id> runs, then every replica runs that release from the start: the state, X-Release and the page name it, and make restart keeps it', async () => {
    const outcome = await make('start', { RELEASE: second });
    const response = await fetch(lb(), { headers: { accept: 'text/html' } });
    const page = await response.text();
    const restart = await make('restart');

    expect(outcome.code).toBe(0);
    expect(outcome.stdout).toContain(`(${REPLICAS} replicas, release ${second})`);
    expect(outcome.stdout).not.toContain('the last formation');
    expect(response.headers.get('x-release')).toBe(second);
    expect(page).toContain(FIXED_WELCOME);
    expect(restart.code).toBe(0);
    expect(formationState().replicas.map((r) => r.release)).toEqual(Array(REPLICAS).fill(second));
    expect(await releasesOfReplicas()).toEqual(Array(REPLICAS).fill(second));
    expect(readFileSync(path.join(clone, '.run', `lb-${lbPort}`, 'release'), 'utf8').trim()).toBe(second);
  });

  test('When a formation started with a release is rolled back, then make rollback finds the release it runs and ends on the one before', async () => {
    const outcome = await make('rollback');

    expect(outcome.stdout).toContain(`rolling back from ${second} to ${first}`);
    expect(outcome.code).toBe(0);
    expect(await releasesOfReplicas()).toEqual(Array(REPLICAS).fill(first));
    await expectPortsAsRecorded();
  });
});
