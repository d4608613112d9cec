import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { removeArtifactFolder } from '../../formation/artifact.js';
import type { ReleaseRecord } from '../../formation/ledger.js';
import { runningReleaseSwarm } from '../../formation/swarm-commands.js';
import { service } from '../../formation/swarm-docker.js';
import { createReleaseClone, replaceIn, type ReleaseClone } from '../docker/support/release-clone.js';
import { makeInClone, makeSwarm, managerEnv, releaseInClone } from './support/formation.js';
import { createClient, ok, startLoad, tally, type Client, type Visit } from './support/client.js';
import { redisCli, runningTasks, waitTasks } from './support/stack.js';
import { engines, recordFigure, swarmTier } from './support/tier.js';
import { killNode, startEngine, waitNodesReady } from './support/topology.js';

// One stack for the whole file, on the tier's two-node swarm, driven through
// the front door: `make <target> MODE=swarm` with the manager in DOCKER_HOST,
// as a user's shell would. Every release it deploys is made the same way, by
// `make release MODE=swarm REGISTRY=<the tier's registry>` in a temporary
// clone (test/docker/support/release-clone.ts) with the build engine in
// DOCKER_HOST: packaged, its image built and pushed, appended to a ledger of
// the test's own (RELEASES_DIR) that the make targets here read too.
// The tests run in order; each leaves 4 healthy web replicas on the first
// release, on both nodes, for the next.
const options = { LB_PORT: 8080, REPLICAS: 4 };
const COUNTER_KEY = 'headcount:visits';
const SECOND_WELCOME = 'Welcome to headcount, second release';
const env = managerEnv;
const manager = () => engines().node1;
const nodeName = (n: 1 | 2) => `hcsw${swarmTier().id}-node${n}`;
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

let releasesDir: string;
let clone: ReleaseClone;
let firstRelease: ReleaseRecord;
const first = () => firstRelease;

/** `make <target> MODE=swarm` with the test's ledger (support/formation.ts). */
const make = (target: string, vars: Record<string, string> = {}, how: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) =>
  makeSwarm(releasesDir, target, vars, how);
const inClone = (target: 'package' | 'release', commit: string) => makeInClone(clone, releasesDir, target, commit);
const release = (commit: string) => releaseInClone(clone, releasesDir, commit);

let client: Client;

/** The count once it stops moving (increments whose answers were lost may still land). */
async function settledCount(): Promise<number> {
  let last = Number.NaN;
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; await sleep(200)) {
    const value = await client.count().catch(() => Number.NaN);
    if (value === last) return value;
    last = value;
  }
  throw new Error('the count did not settle within 20 s');
}

/** Visits that failed but whose increment was applied all the same: their request id's key is in Redis. */
async function appliedDespiteError(visits: readonly Visit[]): Promise<number> {
  const ids = visits.filter((v) => (v.status < 200 || v.status >= 300) && v.requestId).map((v) => `${COUNTER_KEY}:req:${v.requestId}`);
  if (ids.length === 0) return 0;
  const values = (await redisCli([manager(), engines().node2], ['MGET', ...ids])).split('\n').slice(0, ids.length);
  return values.filter((value) => value.trim() !== '').length;
}

/** What a load saw, as one line for the figures table. */
const summary = (visits: readonly Visit[]) => `${visits.length} visits, ${visits.length - ok(visits).length} failed ${JSON.stringify(tally(visits))}`;

async function expectTasksOn(release: { id: string; image?: string }) {
  const tasks = await runningTasks(manager(), 'web');
  expect(tasks).toHaveLength(4);
  expect(tasks.map((t) => ({ release: t.release, image: t.image }))).toEqual(Array(4).fill({ release: release.id, image: release.image }));
}

/** Every web task back on both nodes (Swarm never moves running tasks by itself): a forced rolling update. */
async function rebalance() {
  await manager().docker(['service', 'update', '--detach=false', '--quiet', '--force', service('web')], { timeoutMs: 300_000 });
  await waitTasks(manager(), 'web', (tasks) => tasks.length === 4 && new Set(tasks.map((t) => t.node)).size === 2, 60_000);
}

beforeAll(async () => {
  releasesDir = await mkdtemp(path.join(tmpdir(), 'headcount-swarm-releases-'));
  clone = await createReleaseClone(SECOND_WELCOME);
  const one = await release(clone.first);
  firstRelease = one.record;
  recordFigure('first release: make release in the clone (package, image build, push)', seconds(one.ms));
  const started = performance.now();
  const up = await make('up');
  expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0);
  expect(up.stdout).toContain(`headcount is ready on Swarm: port 8080 of every node (4 replicas of release ${first().id})`);
  recordFigure('make up MODE=swarm (4 web replicas, first pull on both nodes)', seconds(performance.now() - started));
  client = createClient(swarmTier().clientAddress);
});

afterAll(async () => {
  client?.close();
  await clone?.remove();
  // Artifacts are read-only once built: removeArtifactFolder makes the folders writable first.
  if (releasesDir) removeArtifactFolder(releasesDir);
});

describe('A two-node swarm built from scratch', () => {
  test('When the stack is deployed with 4 web replicas, then each node runs at least one, all on the first release', async () => {
    const tasks = await runningTasks(manager(), 'web');
    expect(tasks).toHaveLength(4);
    expect([...new Set(tasks.map((t) => t.node))].sort()).toEqual([nodeName(1), nodeName(2)]);
    await expectTasksOn(first());
  });

  test('When 5000 visits arrive through nginx at node 1, then the count grows by exactly 5000, answered by replicas on both nodes', async () => {
    const nodeOf = new Map((await runningTasks(manager(), 'web')).map((t) => [t.replica, t.node]));
    const before = await client.count();

    const started = performance.now();
    const visits = await client.visitAll(5000);
    const ms = performance.now() - started;

    expect(tally(visits)).toEqual({ 200: 5000 });
    expect((await client.count()) - before).toBe(5000);
    expect(new Set(visits.map((v) => v.count)).size).toBe(5000);
    expect([...new Set(visits.map((v) => nodeOf.get(v.replica ?? '')))].sort()).toEqual([nodeName(1), nodeName(2)]);
    recordFigure('5000 visits through nginx at node 1 (64 connections)', `${seconds(ms)} (${Math.round(5000 / (ms / 1000))}/s), 0 failed`);
  });
});

describe('make status and make reset-count MODE=swarm', () => {
  test('When make status runs, then it names the running release and the tasks on both nodes', async () => {
    const status = await make('status');
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`stack headcount: release ${first().id}`);
    expect(status.stdout).toContain(nodeName(1));
    expect(status.stdout).toContain(nodeName(2));
  });

  test('When make reset-count VALUE runs, then a Swarm job with the admin secret resets the count and says old and new', async () => {
    const before = await client.count();
    const reset = await make('reset-count', { VALUE: '42' });
    expect(reset.code, reset.stderr).toBe(0);
    expect(reset.stdout).toContain(`reset ${COUNTER_KEY}: ${before} -> 42`);
    expect(await client.count()).toBe(42);
    const jobs = await manager().docker(['service', 'ls', '--quiet', '--filter', 'name=headcount-reset-count']);
    expect(jobs.stdout.trim()).toBe('');
  });
});

describe('Redis stopped for 10 s under Swarm', () => {
  test('When Redis is down for 10 s under load, then visitors get only fast 503s, no web task is replaced, and the count stays exact', async () => {
    const tasksBefore = (await runningTasks(manager(), 'web')).map((t) => t.id).sort();
    const before = await settledCount();
    const load = startLoad(client, 8, { maxMs: 90_000 });

    let down = Number.NaN;
    try {
      await sleep(2_000);
      await manager().docker(['service', 'scale', '--detach', `${service('redis')}=0`]);
      await waitTasks(manager(), 'redis', (tasks) => tasks.length === 0, 30_000);
      down = performance.now();
      await sleep(10_000);
    } finally {
      // Back whatever happened: the tests after this one need Redis.
      await manager().docker(['service', 'scale', '--detach', `${service('redis')}=1`]);
    }
    await waitTasks(manager(), 'redis', (tasks) => tasks.length === 1, 60_000);
    for (const deadline = Date.now() + 30_000; Date.now() < deadline && load.visits.at(-1)?.status !== 200; ) await sleep(200);
    const outageMs = performance.now() - down;
    await sleep(2_000);
    const visits = await load.stop();

    const failed = visits.filter((v) => v.status !== 200);
    expect(Object.keys(tally(visits)).sort()).toEqual(['200', '503']);
    const slowest = Math.max(...failed.map((v) => v.ms));
    expect(slowest).toBeLessThan(1_500);
    expect((await runningTasks(manager(), 'web')).map((t) => t.id).sort()).toEqual(tasksBefore);
    expect((await settledCount()) - before).toBe(ok(visits).length + (await appliedDespiteError(visits)));
    recordFigure('Redis down 10 s: visits', summary(visits));
    recordFigure('Redis down 10 s: slowest 503', `${slowest.toFixed(0)} ms (Redis gone for ${seconds(outageMs)}); 0 web tasks replaced`);
  });
});

describe('make deploy and make rollback MODE=swarm under load', () => {
  let second: ReleaseRecord;
  let broken: string;

  beforeAll(async () => {
    const two = await release(clone.second);
    second = two.record;
    recordFigure('second release: make release of the clone’s second commit (package, image build, push)', seconds(two.ms));
    // Never healthy: the process runs but never listens, so /healthz never answers.
    // A commit on the first; packaged now, released (pushed, in the ledger) by its own test.
    broken = await clone.commitOn(clone.first, 'a release that never becomes healthy', (dir) =>
      replaceIn(dir, 'web/server.ts', 'await startReplica(loadConfig(process.env));', 'void startReplica; void loadConfig; setInterval(() => {}, 60_000);'),
    );
    recordFigure('broken release: make package (folder, image build)', seconds(await inClone('package', broken)));
  });

  /** `make <target>` under a steady load; the visits and the count delta. */
  async function underLoad(target: string) {
    const before = await settledCount();
    const load = startLoad(client, 8, { maxMs: 300_000 });
    await sleep(1_000);
    const started = performance.now();
    const result = await make(target);
    const ms = performance.now() - started;
    await sleep(1_000);
    const visits = await load.stop();
    return { result, ms, visits, delta: (await settledCount()) - before };
  }

  test('When make deploy runs the second release under load, then 0 visits fail, the count is exact, every task runs it and the page shows its message', async () => {
    const { result, ms, visits, delta } = await underLoad('deploy');

    expect(result.code, result.stderr).toBe(0);
    expect(tally(visits)).toEqual({ 200: visits.length });
    expect(delta).toBe(ok(visits).length);
    await expectTasksOn(second);
    expect(runningReleaseSwarm(options, env())).toBe(second.id);
    for (let i = 0; i < 8; i += 1) {
      const page = await client.get('/', { accept: 'text/html' });
      expect(page.body).toContain(`<h1>${clone.newWelcome}</h1>`);
      expect(page.headers['x-release']).toBe(second.id);
    }
    recordFigure('make deploy MODE=swarm (4 replicas, start-first)', `${seconds(ms)}; ${summary(visits)}`);
  });

  test('When make rollback runs under load, then 0 visits fail, the count is exact, and every task is back on the first release', async () => {
    const { result, ms, visits, delta } = await underLoad('rollback');

    expect(result.code, result.stderr).toBe(0);
    expect(tally(visits)).toEqual({ 200: visits.length });
    expect(delta).toBe(ok(visits).length);
    await expectTasksOn(first());
    const page = await client.get('/', { accept: 'text/html' });
    expect(page.body).toContain(`<h1>${clone.oldWelcome}</h1>`);
    expect(page.headers['x-release']).toBe(first().id);
    recordFigure('make rollback MODE=swarm', `${seconds(ms)}; ${summary(visits)}`);
  });

  test('When a release whose replicas never become healthy is deployed under load, then Swarm rolls it back itself, with 0 failed visits', async () => {
    const { record: third } = await release(broken);

    const { result, ms, visits, delta } = await underLoad('deploy');

    // The CLI exits 1; make reports a failed recipe as 2.
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(`deploy of ${third.id} failed: Swarm did not complete the update (rollback_completed`);
    expect(tally(visits)).toEqual({ 200: visits.length });
    expect(delta).toBe(ok(visits).length);
    await waitTasks(manager(), 'web', (tasks) => tasks.length === 4 && tasks.every((t) => t.release === first().id), 60_000);
    await expectTasksOn(first());
    recordFigure('broken release, rolled back by Swarm', `${seconds(ms)}; ${summary(visits)}`);
  });
});

describe('Node 2 drained, then killed, under load', () => {
  test('When node 2 is drained under load, then its tasks move to node 1 with 0 failed visits and an exact count', async () => {
    const node2 = (await runningTasks(manager(), 'web')).filter((t) => t.node === nodeName(2));
    expect(node2.length).toBeGreaterThan(0);
    const before = await settledCount();
    const load = startLoad(client, 8, { maxMs: 120_000 });
    await sleep(1_000);

    const started = performance.now();
    let ms: number;
    try {
      await manager().docker(['node', 'update', '--availability', 'drain', nodeName(2)]);
      await waitTasks(manager(), 'web', (tasks) => tasks.length === 4 && tasks.every((t) => t.node === nodeName(1)), 90_000);
      ms = performance.now() - started;
      await sleep(3_000);
    } finally {
      await load.stop();
      await manager().docker(['node', 'update', '--availability', 'active', nodeName(2)]);
    }
    const visits = load.visits;

    expect(tally(visits)).toEqual({ 200: visits.length });
    expect((await settledCount()) - before).toBe(ok(visits).length);
    recordFigure('node 2 drained: tasks on node 1 after', `${seconds(ms)}; ${summary(visits)}`);
    await rebalance();
  });

  test('When node 2 is killed whole under load, then every visit is accounted for, 4 replicas serve again, and node 2 rejoins and gets tasks', async () => {
    const { id } = swarmTier();
    const { node2 } = engines();
    expect(new Set((await runningTasks(manager(), 'web')).map((t) => t.node)).size).toBe(2);
    const before = await settledCount();
    const load = startLoad(client, 8, { maxMs: 180_000 });
    await sleep(2_000);

    // dockerd, containerd, the shims and every container of node 2: all of its cgroup.
    const killed = performance.now();
    await killNode(id, 'node2');
    let downMs = Number.NaN;
    for (const deadline = Date.now() + 120_000; ; await sleep(500)) {
      if (Number.isNaN(downMs)) {
        const state = await manager().docker(['node', 'inspect', '--format', '{{.Status.State}}', nodeName(2)]);
        if (state.stdout.trim() === 'down') downMs = performance.now() - killed;
      }
      const onNode1 = (await runningTasks(manager(), 'web')).filter((t) => t.node === nodeName(1));
      if (onNode1.length === 4) break;
      if (Date.now() > deadline) throw new Error(`4 web tasks did not run on node 1 within 120 s of the kill: ${onNode1.length}`);
    }
    const backMs = performance.now() - killed;
    await sleep(3_000);
    const visits = await load.stop();

    const applied = await appliedDespiteError(visits);
    expect((await settledCount()) - before).toBe(ok(visits).length + applied);
    const failed = visits.length - ok(visits).length;
    recordFigure('node 2 killed: visits', `${summary(visits)}; ${applied} failed visits counted all the same (found by request id)`);
    recordFigure('node 2 killed: marked Down / 4 replicas on node 1', `${seconds(downMs)} / ${seconds(backMs)} after the kill`);
    expect(failed).toBeLessThan(visits.length / 10);

    const restarted = performance.now();
    await startEngine(id, node2);
    await waitNodesReady(manager(), 2, 120_000);
    await waitTasks(manager(), 'lb', (tasks) => tasks.some((t) => t.node === nodeName(2)), 120_000);
    await rebalance();
    const tasks = await runningTasks(manager(), 'web');
    expect(tasks.filter((t) => t.node === nodeName(2)).length).toBeGreaterThan(0);
    recordFigure('node 2 restarted: Ready, its lb task and web tasks again', seconds(performance.now() - restarted));
  });
});

describe('make stop MODE=swarm', () => {
  test('When make stop runs, then the stack’s services and network are gone and its secrets stay for the next make up', async () => {
    const stop = await make('stop');

    expect(stop.code, stop.stderr).toBe(0);
    expect((await manager().docker(['service', 'ls', '--quiet'])).stdout.trim()).toBe('');
    expect((await manager().docker(['network', 'ls', '--quiet', '--filter', 'label=com.docker.stack.namespace=headcount'])).stdout.trim()).toBe('');
    expect((await manager().docker(['secret', 'ls', '--format', '{{.Name}}'])).stdout.split('\n').filter(Boolean).sort()).toEqual([
      'headcount-redis-admin-password',
      'headcount-redis-password',
      'headcount-redis-web-password',
    ]);
  });
});
