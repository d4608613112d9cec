import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import getPort from 'get-port';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { httpOk, waitFor } from '../../formation/wait.js';
import { METRIC_FIXTURE, readMetricFixture } from '../support/metric-fixture.js';
import { startTestRedis, type TestRedis } from '../support/redis-server.js';
import { spawnReplica, type ReplicaProcess } from '../support/replica-process.js';

// test/fixtures/metric-names.txt against reality: every metric name the
// Grafana dashboard and the alerting rules select (test/unit/monitoring-grafana.test.ts
// holds them to the fixture) appears on the /metrics page of what really
// exports it: a real replica (dist/web/server.js, its METRICS_PORT listener)
// that has counted a visit, Debian's nginx exporter in front of a real nginx's
// stub_status, and Debian's Redis exporter in front of a real redis-server.
// Then a real Prometheus (Debian's) scrapes all three under the contract's job
// names and holds a series of every name, `up` included.

const NGINX = '/usr/sbin/nginx';
const NGINX_EXPORTER = '/usr/bin/prometheus-nginx-exporter';
const REDIS_EXPORTER = '/usr/bin/prometheus-redis-exporter';
const PROMETHEUS = '/usr/bin/prometheus';

interface Proc {
  name: string;
  child: ChildProcess;
  output: string[];
}
const procs: Proc[] = [];

function start(name: string, command: string, args: string[]): Proc {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  child.stdout!.on('data', (d: Buffer) => output.push(d.toString()));
  child.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
  child.on('error', (error) => output.push(`cannot start ${command}: ${error.message}`));
  const proc = { name, child, output };
  procs.push(proc);
  return proc;
}

async function stop({ child }: Proc) {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/** The sample names on a Prometheus text page: the first token of every line that is not a comment. */
async function sampleNames(url: string): Promise<Set<string>> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  expect(response.status, url).toBe(200);
  const text = await response.text();
  return new Set(text.split('\n').filter((line) => line && !line.startsWith('#')).map((line) => /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(line)![0]));
}

async function waitUp(proc: Proc, url: string) {
  await waitFor(`${proc.name} at ${url}`, () => httpOk(url), 15_000, 100).catch((error: Error) => {
    throw new Error(`${error.message}\n${proc.name} said:\n${proc.output.join('')}`);
  });
}

const fixture = readMetricFixture();
let dir: string;
let redis: TestRedis;
let replica: ReplicaProcess;
const urls = { replica: '', 'nginx-exporter': '', 'redis-exporter': '', prometheus: '' };

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'headcount-dashboard-metrics-'));
  redis = await startTestRedis();

  // A replica, and one counted visit: labelled series appear on the first observation.
  const metricsPort = await getPort({ host: '127.0.0.1' });
  replica = await spawnReplica({ REDIS_URL: redis.url, METRICS_PORT: String(metricsPort), COUNTER_KEY: `dashboard-metrics:${process.pid}` });
  await replica.waitReady();
  expect((await fetch(`${replica.url}/`)).status).toBe(200);
  urls.replica = `http://127.0.0.1:${metricsPort}/metrics`;

  // nginx with stub_status only, as the lb's LB_STATUS_LISTEN server has it.
  const nginxPort = await getPort({ host: '127.0.0.1' });
  const conf = path.join(dir, 'nginx.conf');
  await writeFile(
    conf,
    `daemon off;\npid ${dir}/nginx.pid;\nerror_log stderr;\nevents {}\nhttp {\n  access_log off;\n` +
      `  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;\n` +
      `  server { listen 127.0.0.1:${nginxPort}; location = /stub_status { stub_status; } }\n}\n`,
  );
  const nginx = start('nginx', NGINX, ['-c', conf, '-e', 'stderr']);
  await waitUp(nginx, `http://127.0.0.1:${nginxPort}/stub_status`);

  const nginxExporterPort = await getPort({ host: '127.0.0.1' });
  const nginxExporter = start('nginx exporter', NGINX_EXPORTER, [
    `-nginx.scrape-uri=http://127.0.0.1:${nginxPort}/stub_status`,
    `-web.listen-address=127.0.0.1:${nginxExporterPort}`,
  ]);
  urls['nginx-exporter'] = `http://127.0.0.1:${nginxExporterPort}/metrics`;
  await waitUp(nginxExporter, urls['nginx-exporter']);

  const redisExporterPort = await getPort({ host: '127.0.0.1' });
  const redisExporter = start('redis exporter', REDIS_EXPORTER, [`-redis.addr=${redis.url}`, `-web.listen-address=127.0.0.1:${redisExporterPort}`]);
  urls['redis-exporter'] = `http://127.0.0.1:${redisExporterPort}/metrics`;
  await waitUp(redisExporter, urls['redis-exporter']);

  // Prometheus scraping the three every second, under the contract's job names.
  const prometheusPort = await getPort({ host: '127.0.0.1' });
  const target = (url: string) => new URL(url).host;
  await writeFile(
    path.join(dir, 'prometheus.yml'),
    JSON.stringify({
      global: { scrape_interval: '1s', scrape_timeout: '1s' },
      scrape_configs: [
        { job_name: 'headcount-web', static_configs: [{ targets: [target(urls.replica)] }] },
        { job_name: 'nginx', static_configs: [{ targets: [target(urls['nginx-exporter'])] }] },
        { job_name: 'redis', static_configs: [{ targets: [target(urls['redis-exporter'])] }] },
      ],
    }),
  );
  const prometheus = start('prometheus', PROMETHEUS, [
    `--config.file=${dir}/prometheus.yml`,
    `--storage.tsdb.path=${dir}/tsdb`,
    `--web.listen-address=127.0.0.1:${prometheusPort}`,
  ]);
  urls.prometheus = `http://127.0.0.1:${prometheusPort}`;
  await waitUp(prometheus, `${urls.prometheus}/-/ready`);
});

afterAll(async () => {
  for (const proc of procs.reverse()) await stop(proc);
  await replica?.kill();
  await redis?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function query(promql: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const response = await fetch(`${urls.prometheus}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await response.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
  expect(body.status).toBe('success');
  return body.data.result;
}

describe(`${METRIC_FIXTURE} against running exporters`, () => {
  test.each(['replica', 'nginx-exporter', 'redis-exporter'] as const)(
    'When the %s\'s /metrics is read, then every name the fixture lists for it is there',
    async (source) => {
      const names = await sampleNames(urls[source]);

      expect(fixture[source]!.length).toBeGreaterThan(0);
      expect(fixture[source]!.filter((name) => !names.has(name))).toEqual([]);
    },
  );

  test('When a real Prometheus scrapes the three, then every target is up and it holds a series of every name the fixture lists', async () => {
    await waitFor(
      'every target up in Prometheus',
      async () => (await query('up == 1')).length === 3,
      30_000,
      250,
    );
    const all = Object.values(fixture).flat();

    const missing: string[] = [];
    for (const name of all) if ((await query(`count({__name__="${name}"})`)).length === 0) missing.push(name);

    expect(missing).toEqual([]);
    expect((await query('up')).map((r) => r.metric.job).sort()).toEqual(['headcount-web', 'nginx', 'redis']);
  });
});
