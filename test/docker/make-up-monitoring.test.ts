import path from 'node:path';
import getPort from 'get-port';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { defaultPrometheusPort } from '../../formation/monitoring.js';
import { waitFor } from '../../formation/wait.js';
import { ComposeFormation } from './support/compose-formation.js';
import { portFree, startForegroundMake, type ForegroundMake } from './support/foreground-make.js';
import { provideMonitoringStandIns } from './support/monitoring-standins.js';
import { promQuery, replicaAddresses } from './support/prometheus.js';
import { dockerTier, recordFigure } from './support/tier.js';

// `make up MODE=docker MONITORING=1`, as a user types it: in the foreground, in
// its own process group as a terminal runs it, with the shipped defaults (rate
// limit on) and no PROMETHEUS_PORT, so Prometheus gets the default the ready
// line must name. Then what the user does next: open Prometheus, make visits,
// `make status`, Ctrl-C; and `make start` / `make stop` the same way.
//
// GRAFANA IS LEFT OUT. The monitoring profile's grafana/grafana:12.4.0 cannot
// be pulled on this machine (no registry is reachable) and Debian has no
// Grafana package to build a stand-in from, as the tier does for Prometheus
// and the two exporters (test/docker/standins/monitoring/). So every make
// command here runs with COMPOSE_FILE naming a test-only override,
// test/docker/compose.no-grafana.yml, which moves Grafana to a profile nobody
// enables; `make` hands the caller's COMPOSE_FILE to compose as it is. What
// this proves about Grafana is only that the ready line does not name a
// Grafana that does not run. Its provisioning and dashboard are checked as
// files in the unit tier (test/unit/monitoring-grafana.test.ts).
//
// On the private engine Prometheus and the exporters are those stand-ins,
// tagged as docker-compose.yml pins them; on an engine that can pull, the
// official images.

const NO_GRAFANA = 'test/docker/compose.no-grafana.yml';
const PROFILE = ['prometheus', 'nginx-exporter', 'redis-exporter'];
const READY = /^headcount is ready: http:\/\/localhost:(\d+) \((\d+) replicas\)\.(.*) Ctrl-C stops it; make logs LB_PORT=\1 shows every line\.$/;

let formation: ComposeFormation;
let prometheusPort: number;
let up: ForegroundMake | undefined;

const prometheusUrl = () => `http://127.0.0.1:${prometheusPort}`;
const query = (promql: string) => promQuery(prometheusUrl(), promql);

/** The compose files of every make command here: the user's, the private engine's build override, and Grafana left out. */
function composeFiles(withGrafana = false): string {
  const files = ['docker-compose.yml', ...(dockerTier().engine === 'private' ? ['test/docker/compose.build-host.yml'] : []), ...(withGrafana ? [] : [NO_GRAFANA])];
  return files.join(path.delimiter);
}

/** A free LB_PORT whose default Prometheus port (LB_PORT + 1010) is free too. */
async function portPair(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await getPort({ host: '127.0.0.1' });
    if (port + 1_010 <= 65_535 && (await portFree(port + 1_010))) return port;
  }
  throw new Error('no free port p with p + 1010 free too');
}

/** The project's containers that run now, by service name. */
async function runningServices(f: ComposeFormation): Promise<string[]> {
  const ids = (await f.docker(['ps', '--quiet', '--filter', `label=com.docker.compose.project=${f.project}`])).stdout.split('\n').filter(Boolean);
  if (ids.length === 0) return [];
  const out = await f.docker(['inspect', '--format', '{{index .Config.Labels "com.docker.compose.service"}}', ...ids]);
  return out.stdout.split('\n').filter(Boolean).sort();
}

beforeAll(async () => {
  const tier = dockerTier();
  if (tier.engine === 'private') {
    await provideMonitoringStandIns({ ...process.env, ...tier.env }, tier.cacheDir, (line) => process.stdout.write(`[docker tier] ${line}\n`));
  }
  const port = await portPair();
  prometheusPort = defaultPrometheusPort(port);
  // The shipped default: the rate limit on. COMPOSE_FILE: Grafana left out (above).
  formation = await ComposeFormation.create({ LB_RATE_LIMIT_OFF: '', COMPOSE_FILE: composeFiles() }, port);
});

afterAll(async () => {
  up?.kill();
  await formation?.destroy();
});

describe('make up MODE=docker MONITORING=1, literally, with Grafana left out (its image cannot be pulled here)', () => {
  test('When make up MODE=docker MONITORING=1 runs in the foreground, then its ready line names Prometheus at 127.0.0.1:LB_PORT+1010, and not Grafana, which does not run', async () => {
    const started = performance.now();

    up = startForegroundMake(formation, 'up', { MONITORING: '1' });
    await up.waitForLine(READY, 280_000);
    const seconds = (performance.now() - started) / 1000;

    expect(up.running(), `make up exited early:\n${up.tail()}`).toBe(true);
    const ready = READY.exec(up.lines.find((line) => READY.test(line))!)!;
    expect(ready.slice(1)).toEqual([String(formation.port), '4', ` Prometheus: http://127.0.0.1:${prometheusPort}.`]);
    const running = await runningServices(formation);
    for (const service of PROFILE) expect(running).toContain(service);
    expect(running).not.toContain('grafana');
    expect(await formation.containers('grafana')).toEqual([]);
    recordFigure('make up MODE=docker MONITORING=1 to the ready line (no Grafana)', `${seconds.toFixed(1)} s`);
  });

  test('When Prometheus\'s port is inspected, then it is published on 127.0.0.1 only, and Prometheus answers ready there', async () => {
    const [container] = await formation.containers('prometheus');

    const ports = JSON.parse((await formation.docker(['inspect', '--format', '{{json .NetworkSettings.Ports}}', container!.id])).stdout) as Record<
      string,
      { HostIp: string; HostPort: string }[] | null
    >;
    const ready = await fetch(`${prometheusUrl()}/-/ready`, { signal: AbortSignal.timeout(5_000) });

    expect(ports).toEqual({ '9090/tcp': [{ HostIp: '127.0.0.1', HostPort: String(prometheusPort) }] });
    expect(ready.status).toBe(200);
  });

  test('When Prometheus has scraped, then every replica (on its own address) and both exporters and Prometheus itself are up == 1', async () => {
    const expected = 4 + 3;
    const started = performance.now();

    await waitFor('every target up', async () => (await query('up == 1')).length === expected, 60_000, 250).catch(async (error: Error) => {
      throw new Error(`${error.message}: ${JSON.stringify(await query('up'))}`);
    });
    const seconds = (performance.now() - started) / 1000;
    const up1 = await query('up');
    const web = up1.filter((s) => s.metric.job === 'headcount-web').map((s) => s.metric.instance).sort();

    expect(up1).toHaveLength(expected);
    expect(up1.filter((s) => s.value[1] !== '1')).toEqual([]);
    expect(up1.map((s) => s.metric.job).sort()).toEqual(['headcount-web', 'headcount-web', 'headcount-web', 'headcount-web', 'nginx', 'prometheus', 'redis']);
    expect(web).toEqual((await replicaAddresses(formation)).map((a) => `${a}:9464`).sort());
    expect((await query('nginx_up')).map((s) => s.value[1])).toEqual(['1']);
    expect((await query('redis_up')).map((s) => s.value[1])).toEqual(['1']);
    recordFigure('make up MONITORING=1: every target up after the ready line', `${seconds.toFixed(1)} s`);
  });

  test('When 30 visits are made through the load balancer, then sum(headcount_visits_counted_total) rises by exactly 30', async () => {
    const sum = async () => Number((await query('sum(headcount_visits_counted_total)'))[0]?.value[1] ?? 'NaN');
    const before = await sum();
    const countBefore = await formation.client.count();

    const results = await formation.client.visitAll(30);
    await waitFor('the 30 visits in Prometheus', async () => (await sum()) >= before + 30, 30_000, 250).catch(() => undefined);

    expect(results.map((r) => r.status)).toEqual(Array(30).fill(200));
    expect(await formation.client.count()).toBe(countBefore + 30);
    expect(await sum()).toBe(before + 30);
  });

  test('When make status MODE=docker runs, with MONITORING=1 and without, then both list Prometheus and both exporters as running', async () => {
    const withFlag = await formation.make('status', { MONITORING: '1' });
    const without = await formation.make('status');

    for (const out of [withFlag.stdout, without.stdout]) {
      for (const service of PROFILE) expect(out).toMatch(new RegExp(`^\\S+-${service}-1\\s.*\\bUp\\b`, 'm'));
      expect(out).not.toMatch(/grafana/);
    }
  });

  test('When Ctrl-C reaches make up\'s process group, then every container stops, the profile\'s too, and both ports are free', async () => {
    const started = performance.now();

    up!.interrupt();
    const code = await Promise.race([up!.exit, new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 90_000))]);
    const seconds = (performance.now() - started) / 1000;
    const profile = (await Promise.all(PROFILE.map((s) => formation.containers(s)))).flat();

    expect(code, up!.tail()).not.toBe('timeout');
    expect(up!.lines.join('\n')).toContain(`headcount stopped: no container of compose project ${formation.project} runs`);
    expect(await runningServices(formation)).toEqual([]);
    expect(profile).toHaveLength(3);
    for (const c of profile) expect(c).toMatchObject({ status: 'exited', oomKilled: false });
    expect(await portFree(prometheusPort)).toBe(true);
    expect(await portFree(formation.port)).toBe(true);
    recordFigure('make up MODE=docker MONITORING=1: Ctrl-C to every container stopped', `${seconds.toFixed(1)} s`);
  });

  test('When make start MODE=docker MONITORING=1 and then a plain make stop MODE=docker run, then no container of the project is left, the profile\'s neither', async () => {
    await formation.make('start', { MONITORING: '1' });
    const startedServices = await runningServices(formation);

    const stop = await formation.make('stop');
    const left = (await formation.docker(['ps', '--all', '--quiet', '--filter', `label=com.docker.compose.project=${formation.project}`])).stdout.trim();

    for (const service of PROFILE) expect(startedServices).toContain(service);
    expect(stop.code).toBe(0);
    expect(left, `${stop.stdout}\n${stop.stderr}`).toBe('');
    expect(await portFree(prometheusPort)).toBe(true);
  });
});

describe('make up MODE=docker MONITORING=1 where Grafana\'s image cannot be pulled (no override)', () => {
  // Only on the private engine, which can pull nothing: on an engine that can,
  // Grafana would be pulled and run, and there is nothing to check here.
  test.skipIf(dockerTier().engine !== 'private')(
    'When make up MODE=docker MONITORING=1 runs without the override, then it exits non-zero, names the image it could not pull and the ways out, and leaves nothing running',
    async () => {
      const plain = await ComposeFormation.create({ LB_RATE_LIMIT_OFF: '', COMPOSE_FILE: composeFiles(true) });
      const started = performance.now();
      const run = startForegroundMake(plain, 'up', { MONITORING: '1' });
      try {
        const code = await Promise.race([run.exit, new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 240_000))]);
        const seconds = (performance.now() - started) / 1000;
        const said = run.lines.join('\n');

        expect(code, run.tail()).not.toBe('timeout');
        expect(code, run.tail()).not.toBe(0);
        expect(said, run.tail()).toContain('docker compose up failed (exit 1): not on this engine, and compose could not pull it (its error is above): grafana/grafana:12.4.0 (grafana).');
        expect(said).toContain('or leave grafana out with a compose override in COMPOSE_FILE (docs/monitoring.md)');
        // Not the line for containers that failed: none was created to ask.
        expect(said).not.toContain('What the containers said');
        expect(await runningServices(plain)).toEqual([]);
        recordFigure('make up MODE=docker MONITORING=1, Grafana unpullable: to the exit', `${seconds.toFixed(1)} s`);
      } finally {
        run.kill();
        await plain.destroy();
      }
    },
  );
});
