import getPort from 'get-port';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { waitFor } from '../../formation/wait.js';
import { ComposeFormation } from './support/compose-formation.js';
import { provideMonitoringStandIns } from './support/monitoring-standins.js';
import { promQuery, replicaAddresses } from './support/prometheus.js';
import { readPasswords, redisCli } from './support/redis-users.js';
import { dockerTier, recordFigure } from './support/tier.js';

// docker-compose.yml's `monitoring` profile for real: its Prometheus
// (monitoring/prometheus/prometheus.docker.yml, the rules beside it) finds the
// replicas through Docker's DNS (`web`, type A, port 9464) and follows
// `--scale` with no reload; the nginx and Redis exporters answer with their
// own users and ports. On the private engine (no registry) Prometheus and the
// exporters are stand-ins built from Debian's packages
// (test/docker/standins/monitoring/). Grafana is left out: it has no Debian
// package to stand in with, and nothing here could look at its pages; its
// provisioning and dashboard are checked as files in the unit tier
// (test/unit/monitoring-grafana.test.ts) and their metric names against real
// exporters in the cluster tier (test/cluster/dashboard-metrics.test.ts).

const SERVICES = ['redis', 'web', 'lb', 'prometheus', 'nginx-exporter', 'redis-exporter'];

let formation: ComposeFormation;
let prometheus: string;

const query = (promql: string) => promQuery(prometheus, promql);

/** headcount-web targets Prometheus scrapes successfully: their instance (address:port) and the replica id on headcount_info. */
async function upReplicas(): Promise<{ instances: string[]; ids: string[] }> {
  const up = await query('up{job="headcount-web"} == 1');
  const info = await query('headcount_info');
  return { instances: up.map((s) => s.metric.instance!).sort(), ids: info.map((s) => s.metric.replica!).sort() };
}

beforeAll(async () => {
  const tier = dockerTier();
  if (tier.engine === 'private') {
    const started = performance.now();
    const inside = await provideMonitoringStandIns({ ...process.env, ...tier.env }, tier.cacheDir, (line) => process.stdout.write(`[docker tier] ${line}\n`));
    for (const [image, what] of Object.entries(inside)) recordFigure(`stand-in ${image}`, `Debian sid ${what}`);
    recordFigure('monitoring stand-ins ready', `${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
  const port = await getPort({ host: '127.0.0.1' });
  prometheus = `http://127.0.0.1:${port}`;
  formation = await ComposeFormation.create({ PROMETHEUS_PORT: String(port) });
  const up = await formation.up(['--detach', '--wait', '--scale', 'web=4', ...SERVICES], 300_000, ['--profile', 'monitoring']);
  recordFigure('monitoring profile up (4 replicas, Prometheus, exporters) to healthy', `${(up.ms / 1000).toFixed(1)} s`);
});

afterAll(() => formation?.destroy());

describe('the monitoring profile: Prometheus follows the replicas through Docker\'s DNS', () => {
  test('When the profile starts with 4 replicas, then Prometheus scrapes exactly those 4, directly on their own addresses at METRICS_PORT 9464', async () => {
    const addresses = await replicaAddresses(formation);
    const ids = await formation.replicaIds();
    const started = performance.now();

    await waitFor('4 replicas up in Prometheus', async () => (await upReplicas()).instances.length === 4, 60_000, 250);

    expect(addresses).toHaveLength(4);
    expect(await upReplicas()).toEqual({ instances: addresses.map((a) => `${a}:9464`).sort(), ids: [...ids].sort() });
    recordFigure('Prometheus: 4 replicas up after the profile was healthy', `${((performance.now() - started) / 1000).toFixed(1)} s`);
  });

  test('When web is scaled to 6, then within seconds Prometheus scrapes 6, the 2 new replicas among them, with no reload', async () => {
    const before = await formation.replicaIds();
    const [prometheusBefore] = await formation.containers('prometheus');

    await formation.compose(['--profile', 'monitoring', 'up', '--detach', '--wait', '--scale', 'web=6', 'web'], 180_000);
    const healthy = performance.now();
    await waitFor('6 replicas up in Prometheus', async () => (await upReplicas()).instances.length === 6, 60_000, 250);
    const seconds = (performance.now() - healthy) / 1000;
    const after = await formation.replicaIds();
    const [prometheusAfter] = await formation.containers('prometheus');

    expect(after.filter((id) => !before.includes(id))).toHaveLength(2);
    expect(await upReplicas()).toEqual({ instances: (await replicaAddresses(formation)).map((a) => `${a}:9464`).sort(), ids: [...after].sort() });
    // Found by the DNS refresh (5 s), not by a restart or a reload.
    expect(prometheusAfter).toMatchObject({ id: prometheusBefore!.id, pid: prometheusBefore!.pid, restartCount: 0 });
    expect(seconds).toBeLessThan(20);
    recordFigure('Prometheus: scale 4 -> 6, all 6 up after healthy', `${seconds.toFixed(1)} s, no reload`);
  });

  test('When 60 visits are made through nginx, then the sum of the replicas\' visit counters in Prometheus rises by exactly 60', async () => {
    const sum = async () => Number((await query('sum(headcount_visits_counted_total)'))[0]?.value[1] ?? 'NaN');
    const before = await sum();

    const results = await formation.client.visitAll(60);
    await waitFor('the 60 visits in Prometheus', async () => (await sum()) === before + 60, 30_000, 250);

    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(await sum()).toBe(before + 60);
  });

  test('When the exporters are scraped, then nginx answers its exporter on LB_STATUS_LISTEN and Redis lets its exporter in as headcount-exporter', async () => {
    await waitFor('every job up', async () => (await query('up == 1')).length === 6 + 3, 60_000, 250);

    expect((await query('up')).filter((s) => s.value[1] !== '1')).toEqual([]);
    // When an exporter cannot read its source, its own log and Redis's ACL LOG say why.
    const why = async (service: string) =>
      `${(await formation.compose(['logs', '--tail', '15', service])).stdout}\n${await redisCli(formation, ['ACL', 'LOG', '5'], 'default', (await readPasswords(formation)).operator)}`;
    const nginxUp = await query('nginx_up');
    const redisUp = await query('redis_up');

    expect(nginxUp.map((s) => s.value[1]), nginxUp[0]?.value[1] === '1' ? '' : await why('nginx-exporter')).toEqual(['1']);
    expect(redisUp.map((s) => s.value[1]), redisUp[0]?.value[1] === '1' ? '' : await why('redis-exporter')).toEqual(['1']);
  });

  test('When the exporter\'s Redis user tries the count, then Redis refuses it, and its password is only in the map the exporter reads', async () => {
    const password = (await formation.compose(['exec', '-T', 'redis', 'cat', '/run/secrets/redis-exporter/password'])).stdout;
    const map = (await formation.compose(['exec', '-T', 'redis-exporter', 'cat', '/run/secrets/redis-exporter/password-map.json'])).stdout;

    const info = await redisCli(formation, ['INFO', 'server'], 'headcount-exporter', password);
    const get = await redisCli(formation, ['GET', 'headcount:visits'], 'headcount-exporter', password);
    const set = await redisCli(formation, ['SET', 'headcount:visits', '0'], 'headcount-exporter', password);

    expect(password).toMatch(/^[A-Za-z0-9]{32}$/);
    // Both keys: redis_exporter 1.45 looks the password up by the address, later ones with the user in it.
    expect(JSON.parse(map)).toEqual({ 'redis://redis:6379': password, 'redis://headcount-exporter@redis:6379': password });
    expect(info).toContain('redis_version');
    expect(get).toMatch(/^NOPERM/);
    expect(set).toMatch(/^NOPERM/);
    // Not readable to the replicas: web mounts its own password volume only.
    const fromWeb = await formation.compose(['exec', '-T', 'web', 'ls', '/run/secrets/redis-exporter'], 30_000).catch((error: Error) => error.message);
    expect(String(fromWeb)).toMatch(/No such file or directory/);
  });

  test('When Prometheus loads the rules, then every alerting rule is healthy and none fires on a healthy formation', async () => {
    const response = await fetch(`${prometheus}/api/v1/rules`);
    const body = (await response.json()) as { data: { groups: { name: string; rules: { name: string; health: string; state: string; lastError?: string }[] }[] } };
    const rules = body.data.groups.flatMap((g) => g.rules);

    expect(rules.map((r) => r.name)).toEqual(expect.arrayContaining(['HeadcountReplicaDown', 'HeadcountHighErrorRatio', 'HeadcountRedisDown', 'HeadcountLatencyP99High']));
    await waitFor('every rule evaluated', async () => {
      const latest = (await (await fetch(`${prometheus}/api/v1/rules`)).json()) as typeof body;
      return latest.data.groups.flatMap((g) => g.rules).every((r) => r.health === 'ok');
    }, 30_000, 500);
    expect(await query('ALERTS{alertstate="firing"}')).toEqual([]);
  });
});
