import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { removeArtifactFolder } from '../../formation/artifact.js';
import type { ReleaseRecord } from '../../formation/ledger.js';
import { EXPORTER_SECRET, service } from '../../formation/swarm-docker.js';
import { waitFor } from '../../formation/wait.js';
import { createReleaseClone, type ReleaseClone } from '../docker/support/release-clone.js';
import { run } from '../docker/support/run.js';
import { createClient, tally, type Client } from './support/client.js';
import { makeSwarm, releaseInClone } from './support/formation.js';
import { promQuery, pushMonitoringStandIns } from './support/monitoring.js';
import { runningTasks, waitTasks, type Task } from './support/stack.js';
import { engines, recordFigure, swarmTier } from './support/tier.js';

// `make up MODE=swarm MONITORING=1` for real on the tier's two-node swarm:
// docker-compose.swarm.monitoring.yml beside the stack, its Prometheus finding
// the web tasks as `tasks.web` on both nodes, the nginx and Redis exporters
// scraped, the exporter's password secret created by make.
//
// What is NOT deployed here, plainly: Grafana. Its image cannot be pulled
// (no registry is reachable) and Debian has no Grafana package to build a
// stand-in from, so this file deploys the override with GRAFANA_REPLICAS=0:
// the grafana service exists with no task, and make up's output must say
// Grafana is not running. Its provisioning and dashboard are checked as files
// in the unit tier (test/unit/monitoring-grafana.test.ts).
// Prometheus and the exporters are stand-ins built from Debian's packages
// (test/docker/standins/monitoring/, pushed to the run's registry: support/monitoring.ts),
// tagged as the official images the override pins.

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const manager = () => engines().node1;
const nodes = () => [engines().node1, engines().node2];
const nodeName = (n: 1 | 2) => `hcsw${swarmTier().id}-node${n}`;
const query = (promql: string) => promQuery(nodes(), promql);
const PROMETHEUS_PORT = 9090;

let releasesDir: string;
let clone: ReleaseClone;
let release: ReleaseRecord;
let client: Client;
let upOutput: string;
const make = (target: string, vars: Record<string, string> = {}) =>
  makeSwarm(releasesDir, target, vars, { env: { ...process.env, ...swarmTier().managerEnv, GRAFANA_REPLICAS: '0' } });

/** The web targets Prometheus scrapes successfully, as instance addresses (address:port), sorted. */
async function upWebInstances(): Promise<string[]> {
  return (await query('up{job="headcount-web"} == 1')).map((s) => s.metric.instance!).sort();
}

/** What `tasks.web` should answer: each running web task's overlay address, at the metrics port. */
const instancesOf = (tasks: readonly Task[]) => tasks.map((t) => `${t.address}:9464`).sort();

/**
 * Waits until `count` web tasks run, then until Prometheus scrapes exactly
 * those; returns them, how long the tasks took, and how long Prometheus took after.
 */
async function waitTargetsAre(count: number, timeoutMs: number): Promise<{ tasks: Task[]; tasksMs: number; ms: number }> {
  const started = performance.now();
  const tasks = await waitTasks(manager(), 'web', (t) => t.length === count && t.every((x) => x.address), 120_000);
  const running = performance.now();
  let seen: string[] = [];
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(250)) {
    seen = await upWebInstances();
    if (JSON.stringify(seen) === JSON.stringify(instancesOf(tasks))) return { tasks, tasksMs: running - started, ms: performance.now() - running };
  }
  throw new Error(`Prometheus's up web targets ${JSON.stringify(seen)} never became the tasks' ${JSON.stringify(instancesOf(tasks))}`);
}

/** The sum of every replica's visits counter, once two scrapes in a row agree (every target scraped after the last visit). */
async function settledVisitsSum(): Promise<number> {
  let last = Number.NaN;
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(5_500)) {
    const value = Number((await query('sum(headcount_visits_counted_total)'))[0]?.value[1] ?? 'NaN');
    if (value === last) return value;
    last = value;
  }
  throw new Error('sum(headcount_visits_counted_total) did not settle within 60 s');
}

beforeAll(async () => {
  const { build } = engines();
  const standIns = await pushMonitoringStandIns(build, swarmTier().registry, (line) => process.stdout.write(`[swarm tier] ${line}\n`));
  for (const [image, what] of Object.entries(standIns.inside)) recordFigure(`stand-in ${image}`, `Debian sid ${what}`);
  recordFigure('push the monitoring stand-ins to the registry', seconds(standIns.pushMs));

  releasesDir = await mkdtemp(path.join(tmpdir(), 'headcount-swarm-mon-releases-'));
  clone = await createReleaseClone();
  release = (await releaseInClone(clone, releasesDir, clone.first)).record;

  const started = performance.now();
  const up = await make('up', { MONITORING: '1', PROMETHEUS_PORT: String(PROMETHEUS_PORT) });
  upOutput = up.stdout;
  expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0);
  recordFigure('make up MODE=swarm MONITORING=1 (4 web replicas, Prometheus, 2 exporters; Grafana 0 replicas)', seconds(performance.now() - started));
  client = createClient(swarmTier().clientAddress);
});

afterAll(async () => {
  client?.close();
  try {
    if (releasesDir) {
      const stop = await make('stop');
      expect(stop.code, stop.stderr).toBe(0);
    }
  } finally {
    // The next file of the tier starts from a swarm without this file's secrets and volumes.
    const secrets = (await manager().docker(['secret', 'ls', '--quiet', '--filter', 'name=headcount-'], { allowFailure: true })).stdout.split('\n').filter(Boolean);
    if (secrets.length) await manager().docker(['secret', 'rm', ...secrets], { allowFailure: true });
    for (const node of nodes()) {
      const volumes = (await node.docker(['volume', 'ls', '--quiet', '--filter', 'label=com.docker.stack.namespace=headcount'], { allowFailure: true })).stdout.split('\n').filter(Boolean);
      if (volumes.length) await node.docker(['volume', 'rm', '--force', ...volumes], { allowFailure: true });
    }
    await clone?.remove();
    if (releasesDir) removeArtifactFolder(releasesDir);
  }
});

describe('make up MODE=swarm MONITORING=1', () => {
  test('When the stack is deployed with monitoring, then make created the exporter secret, every monitoring service but Grafana runs, and the output says where Prometheus is and that Grafana is not running', async () => {
    expect(upOutput).toContain(`created secret ${EXPORTER_SECRET}`);
    expect(upOutput).toContain(`headcount is ready on Swarm: port 8080 of every node (4 replicas of release ${release.id})`);
    expect(upOutput).toContain(`Prometheus: prometheus:9090 on network headcount_net (task on node ${nodeName(1)}), not published. To open it at http://127.0.0.1:${PROMETHEUS_PORT}`);
    expect(upOutput).toContain('Grafana: not running (headcount_grafana deployed with 0 replicas, GRAFANA_REPLICAS=0).');
    for (const name of ['prometheus', 'nginx-exporter', 'redis-exporter'] as const) {
      expect(await runningTasks(manager(), name), name).toHaveLength(1);
    }
    const grafana = await manager().docker(['service', 'ls', '--filter', `name=${service('grafana')}`, '--format', '{{.Replicas}}']);
    expect(grafana.stdout.trim()).toBe('0/0');
  });

  test('When the command make up printed is run on the manager, then Prometheus answers on 127.0.0.1 of that node', async () => {
    const command = upOutput.split('\n').find((line) => line.trim().startsWith('docker run') && line.includes('prometheus-tunnel'))!.trim();
    const opened = await run('sh', ['-c', command], { env: { ...process.env, ...swarmTier().managerEnv }, allowFailure: true });
    expect(opened.code, opened.stderr).toBe(0);
    try {
      let ready = '';
      await waitFor(
        'Prometheus through the tunnel',
        async () => {
          const probe = await run('nsenter', [`--net=/var/run/netns/${manager().netns}`, 'curl', '-fsS', '-m', '2', `http://127.0.0.1:${PROMETHEUS_PORT}/-/ready`], { allowFailure: true });
          ready = probe.stdout;
          return probe.code === 0;
        },
        30_000,
        250,
      );
      expect(ready).toMatch(/Prometheus (Server )?is Ready/);
    } finally {
      await manager().docker(['rm', '--force', 'headcount-prometheus-tunnel'], { allowFailure: true });
    }
  });

  test('When Prometheus looks up tasks.web, then every web task on both nodes is an up target, by its overlay address', async () => {
    const { tasks, ms } = await waitTargetsAre(4, 60_000);

    expect(new Set(tasks.map((t) => t.node))).toEqual(new Set([nodeName(1), nodeName(2)]));
    const up = await query('up{job="headcount-web"}');
    expect(up.map((s) => s.value[1])).toEqual(['1', '1', '1', '1']);
    const nodeOf = new Map(tasks.map((t) => [`${t.address}:9464`, t.node]));
    expect(new Set(up.map((s) => nodeOf.get(s.metric.instance!)))).toEqual(new Set([nodeName(1), nodeName(2)]));
    // Each target is the replica it claims: headcount_info's replica is the container id, as X-Replica.
    const info = await query('headcount_info');
    expect(info.map((s) => s.metric.replica).sort()).toEqual(tasks.map((t) => t.replica).sort());
    recordFigure('4 web tasks up in Prometheus, after make up returned', seconds(ms));
  });

  test('When the exporters are scraped, then redis_up and nginx_up are 1, the Redis exporter logged in as headcount-exporter with the map make created', async () => {
    await waitFor('both exporters up', async () => (await query('up{job=~"nginx|redis"} == 1')).length === 2, 60_000, 500);

    expect((await query('redis_up')).map((s) => s.value[1])).toEqual(['1']);
    expect((await query('nginx_up')).map((s) => s.value[1])).toEqual(['1']);
    // The exporter has no password but the map's, and no user but headcount-exporter.
    const args = (await manager().docker(['service', 'inspect', '--format', '{{json .Spec.TaskTemplate.ContainerSpec.Args}}', service('redis-exporter')])).stdout;
    expect(JSON.parse(args)).toEqual(expect.arrayContaining(['--redis.user=headcount-exporter', '--redis.password-file=/run/secrets/redis-exporter-password-map']));
    // The map's password is headcount-exporter's in Redis, under both keys; a wrong one is refused.
    const redis = (await runningTasks(manager(), 'redis'))[0]!;
    const redisNode = redis.node === nodeName(1) ? engines().node1 : engines().node2;
    const id = (await redisNode.docker(['ps', '--quiet', '--filter', `label=com.docker.swarm.service.name=${service('redis')}`])).stdout.trim();
    const asExporter = (password: string) =>
      redisNode.docker(['exec', '--user', '0', '--env', `PW=${password}`, id, 'sh', '-c', 'redis-cli --no-auth-warning --user headcount-exporter --pass "$PW" INFO server | head -2; redis-cli --no-auth-warning --user headcount-exporter --pass "$PW" GET headcount:visits'], { allowFailure: true });
    const map = JSON.parse((await redisNode.docker(['exec', '--user', '0', id, 'cat', '/run/secrets/redis-exporter-password-map'])).stdout) as Record<string, string>;
    expect(Object.keys(map)).toEqual(['redis://redis:6379', 'redis://headcount-exporter@redis:6379']);
    expect(map['redis://redis:6379']).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(map['redis://headcount-exporter@redis:6379']).toBe(map['redis://redis:6379']);
    const right = await asExporter(map['redis://redis:6379']!);
    expect(right.stdout).toContain('redis_version');
    expect(right.stdout).toContain('NOPERM');
    const wrong = await asExporter('not-the-password');
    expect(`${wrong.stdout}${wrong.stderr}`).toContain('WRONGPASS');
    expect(wrong.stdout).not.toContain('redis_version');
  });

  test('When 300 visits arrive through the lb port at node 1, then sum(headcount_visits_counted_total) grows by exactly the visits counted', async () => {
    await waitTargetsAre(4, 60_000);
    const before = await settledVisitsSum();
    const countBefore = await client.count();

    const visits = await client.visitAll(300);
    const counted = (await client.count()) - countBefore;
    // Every visit answered 200 is in the count; on this shared 2-core machine
    // an odd visit can get a fast 503 (a Redis command over its timeout),
    // which then may or may not have counted: the count in Redis is the truth
    // the metrics must match.
    const ok = visits.filter((v) => v.status === 200).length;
    expect(ok).toBeGreaterThanOrEqual(295);
    expect(counted).toBeGreaterThanOrEqual(ok);
    expect(counted).toBeLessThanOrEqual(300);

    const started = performance.now();
    let after = Number.NaN;
    for (const deadline = Date.now() + 60_000; Date.now() < deadline && after !== before + counted; await sleep(250)) {
      after = Number((await query('sum(headcount_visits_counted_total)'))[0]?.value[1] ?? 'NaN');
    }
    const ms = performance.now() - started;
    expect(after - before).toBe(counted);
    // And it stays there: nothing counted twice, nothing late.
    expect((await settledVisitsSum()) - before).toBe(counted);
    recordFigure('300 visits through lb at node 1: answers / counted / in the summed counter', `${JSON.stringify(tally(visits))} / ${counted} / all ${counted}, ${seconds(ms)} after the last answer`);
  });

  test('When web is scaled 4 -> 6 -> 4, then the up targets follow the tasks with no Prometheus restart', async () => {
    const prometheusBefore = (await runningTasks(manager(), 'prometheus')).map((t) => t.id);
    const startBefore = (await query('process_start_time_seconds{job="prometheus"}'))[0]?.value[1];
    expect(startBefore).toBeDefined();

    try {
      await manager().docker(['service', 'scale', '--detach', `${service('web')}=6`]);
      const six = await waitTargetsAre(6, 60_000);
      recordFigure('web scaled 4 -> 6: 6 tasks running / all 6 up in Prometheus after that', `${seconds(six.tasksMs)} / ${seconds(six.ms)}`);
    } finally {
      await manager().docker(['service', 'scale', '--detach', `${service('web')}=4`]);
    }
    const four = await waitTargetsAre(4, 60_000);
    recordFigure('web scaled 6 -> 4: 4 tasks running / the 2 removed gone from up after that', `${seconds(four.tasksMs)} / ${seconds(four.ms)}`);
    expect(new Set(four.tasks.map((t) => t.node)).size).toBeGreaterThanOrEqual(1);

    expect((await runningTasks(manager(), 'prometheus')).map((t) => t.id)).toEqual(prometheusBefore);
    expect((await query('process_start_time_seconds{job="prometheus"}'))[0]?.value[1]).toBe(startBefore);
  });
});
