import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, test } from 'vitest';
import { fromRoot, ROOT } from '../../formation/paths.js';

// The `monitoring` profile of docker-compose.yml and its Swarm sibling,
// docker-compose.swarm.monitoring.yml, checked as files (the whole compose
// file is validated against the Compose Specification in docker-files.test.ts;
// the Docker tier runs the profile's Prometheus for real:
// test/docker/monitoring.test.ts).

interface Service {
  image?: string;
  profiles?: string[];
  command?: string[];
  environment?: Record<string, string>;
  volumes?: (string | { type?: string; source?: string; target?: string })[];
  ports?: string[];
  expose?: string[];
  secrets?: { source: string; target?: string; uid?: string; gid?: string; mode?: number }[];
  configs?: { source: string; target: string }[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test?: string[] };
  read_only?: boolean;
  cap_drop?: string[];
  networks?: string[];
  deploy?: { placement?: { constraints?: string[] } };
}
interface ComposeFile {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
  configs?: Record<string, { name?: string; file?: string }>;
  secrets?: Record<string, { external?: boolean; name?: string }>;
}
const readCompose = (file: string) => parse(readFileSync(fromRoot(file), 'utf8'), { merge: true }) as ComposeFile;
const compose = readCompose('docker-compose.yml');
const swarmOverride = readCompose('docker-compose.swarm.monitoring.yml');
const MONITORING = ['prometheus', 'nginx-exporter', 'redis-exporter', 'grafana'];
const svc = (file: ComposeFile, name: string) => {
  const found = file.services[name];
  if (!found) throw new Error(`no service "${name}"`);
  return found;
};
/** The start script's literal shell variable, e.g. EXPORTER_DIR=/run/secrets/redis-exporter. */
const startScript = readFileSync(fromRoot('redis/docker-start.sh'), 'utf8');
const scriptValue = (name: string) => new RegExp(`^${name}=(\\S+)$`, 'm').exec(startScript)?.[1];

describe('docker-compose.yml: the monitoring profile', () => {
  test('When the profile is read, then Prometheus, both exporters and Grafana are in it and in no other, each on a pinned official image', () => {
    const inProfile = Object.entries(compose.services).filter(([, s]) => s.profiles?.includes('monitoring')).map(([n]) => n);

    expect(inProfile).toEqual(MONITORING);
    for (const name of MONITORING) expect(svc(compose, name).profiles).toEqual(['monitoring']);
    expect(svc(compose, 'prometheus').image).toMatch(/^prom\/prometheus:v3\.\d+\.\d+$/);
    expect(svc(compose, 'nginx-exporter').image).toMatch(/^nginx\/nginx-prometheus-exporter:1\.\d+\.\d+$/);
    expect(svc(compose, 'redis-exporter').image).toMatch(/^oliver006\/redis_exporter:v1\.\d+\.\d+$/);
    expect(svc(compose, 'grafana').image).toMatch(/^grafana\/grafana:\d+\.\d+\.\d+$/);
  });

  test('When Prometheus starts, then it loads prometheus.docker.yml with the rules beside it, keeps its TSDB on a volume, and publishes on loopback only', () => {
    const prometheus = svc(compose, 'prometheus');

    expect(prometheus.command).toEqual(expect.arrayContaining(['--config.file=/etc/prometheus/prometheus.yml', '--storage.tsdb.path=/prometheus']));
    expect(prometheus.volumes).toEqual([
      './monitoring/prometheus/prometheus.docker.yml:/etc/prometheus/prometheus.yml:ro',
      './monitoring/prometheus/rules:/etc/prometheus/rules:ro',
      'prometheus-data:/prometheus',
    ]);
    expect(prometheus.ports).toEqual(['127.0.0.1:${PROMETHEUS_PORT:-9090}:9090']);
    expect(prometheus.healthcheck?.test?.join(' ')).toContain('http://127.0.0.1:9090/-/ready');
    expect(compose.volumes).toHaveProperty('prometheus-data');
  });

  test('When the replicas and the lb are read, then web serves METRICS_PORT 9464 (the port Prometheus scrapes) and lb its stub_status on 8081, neither published', () => {
    expect(svc(compose, 'web').environment?.METRICS_PORT).toBe('9464');
    expect(svc(compose, 'web').expose).toContain('9464');
    expect(svc(compose, 'lb').environment?.LB_STATUS_LISTEN).toBe('8081');
    expect(svc(compose, 'lb').ports).toEqual(['${LB_PORT:-8080}:8080']);
    expect(readFileSync(fromRoot('monitoring/prometheus/prometheus.docker.yml'), 'utf8')).toMatch(/names: \[web\]\n\s+type: A\n\s+port: 9464/);
  });

  test('When the Redis exporter logs in, then as headcount-exporter with the JSON password map that only redis writes and only it reads', () => {
    const exporter = svc(compose, 'redis-exporter');
    const dir = scriptValue('EXPORTER_DIR')!;

    expect(exporter.command).toEqual(
      expect.arrayContaining(['--redis.addr=redis://redis:6379', '--redis.user=headcount-exporter', `--redis.password-file=${dir}/password-map.json`]),
    );
    // The map's key must be the address exactly (redis_exporter looks it up by --redis.addr).
    expect(scriptValue('EXPORTER_ADDR')).toBe('redis://redis:6379');
    expect(scriptValue('EXPORTER_USER')).toBe('headcount-exporter');
    expect(exporter.volumes).toEqual([`redis-exporter-secret:${dir}:ro`]);
    expect(svc(compose, 'redis').volumes).toContain(`redis-exporter-secret:${dir}`);
    expect(svc(compose, 'redis').environment?.REDIS_EXPORTER_PASSWORD).toBe('${REDIS_EXPORTER_PASSWORD:-}');
    for (const other of ['web', 'admin', 'lb', 'prometheus', 'grafana']) {
      expect((svc(compose, other).volumes ?? []).map(String).join(' '), other).not.toContain('redis-exporter-secret');
    }
    expect(startScript).toContain('ensure "$EXPORTER_DIR/password" 0400 0 REDIS_EXPORTER_PASSWORD');
    expect(startScript).toContain(`s|\${REDIS_EXPORTER_PASSWORD}|`);
    expect(exporter.depends_on).toEqual({ redis: { condition: 'service_healthy' } });
  });

  test('When Grafana starts, then it reads the provisioning folder and the dashboards at the path the provider names, and publishes on loopback only', () => {
    const grafana = svc(compose, 'grafana');
    const provider = parse(readFileSync(fromRoot('monitoring/grafana/provisioning/dashboards/headcount.yml'), 'utf8')) as {
      providers: { options: { path: string } }[];
    };

    expect(grafana.volumes).toEqual(
      expect.arrayContaining([
        './monitoring/grafana/provisioning:/etc/grafana/provisioning:ro',
        `./monitoring/grafana/dashboards:${provider.providers[0]!.options.path}:ro`,
      ]),
    );
    expect(grafana.ports).toEqual(['127.0.0.1:${GRAFANA_PORT:-3000}:3000']);
    expect(grafana.depends_on).toEqual({ prometheus: { condition: 'service_healthy' } });
  });

  test('When the monitoring services are read, then each drops every capability, and all but Grafana run on a read-only root', () => {
    for (const name of MONITORING) expect(svc(compose, name).cap_drop, name).toEqual(['ALL']);
    for (const name of ['prometheus', 'nginx-exporter', 'redis-exporter']) expect(svc(compose, name).read_only, name).toBe(true);
  });
});

describe('docker-compose.swarm.monitoring.yml: the same monitoring on Swarm', () => {
  test('When the override is read, then it has the profile\'s services with the same images, plus the exporter secret for redis', () => {
    expect(Object.keys(swarmOverride.services).sort()).toEqual([...MONITORING, 'redis'].sort());
    for (const name of MONITORING) expect(svc(swarmOverride, name).image, name).toBe(svc(compose, name).image);
    expect(svc(swarmOverride, 'redis').environment).toEqual({ REDIS_EXPORTER_PASSWORD_MAP_FILE: '/run/secrets/redis-exporter-password-map' });
    expect(startScript).toContain('REDIS_EXPORTER_PASSWORD_MAP_FILE');
    expect(swarmOverride.secrets).toEqual({ 'redis-exporter-password-map': { external: true, name: 'headcount-redis-exporter-password-map' } });
    expect(svc(swarmOverride, 'redis-exporter').command).toContain('--redis.password-file=/run/secrets/redis-exporter-password-map');
    expect(svc(swarmOverride, 'redis-exporter').secrets).toEqual([
      { source: 'redis-exporter-password-map', target: 'redis-exporter-password-map', uid: '59000', gid: '59000', mode: 0o400 },
    ]);
  });

  test('When the override is read, then nothing is a bind mount or published, and every config is a file in this repository named by its digest', () => {
    for (const [name, s] of Object.entries(swarmOverride.services)) {
      expect(s.ports, name).toBeUndefined();
      for (const mount of s.volumes ?? []) expect(typeof mount === 'string' ? mount : mount.source, name).not.toMatch(/^[./]/);
    }
    for (const config of Object.values(swarmOverride.configs ?? {})) {
      expect(existsSync(fromRoot(config.file!)), config.file).toBe(true);
      expect(config.name).toMatch(/\$\{MONITORING_CONFIG_DIGEST:-0\}$/);
    }
    expect(svc(swarmOverride, 'prometheus').configs).toEqual([
      { source: 'prometheus-config', target: '/etc/prometheus/prometheus.yml' },
      { source: 'prometheus-rules', target: '/etc/prometheus/rules/headcount.rules.yml' },
    ]);
    expect(swarmOverride.configs?.['prometheus-config']?.file).toBe('./monitoring/prometheus/prometheus.swarm.yml');
  });

  const hasDockerCli = spawnSync('docker', ['--version']).status === 0;
  test.skipIf(!hasDockerCli)('When `docker stack config` loads the stack with the override, then redis gets the exporter secret beside its own and the monitoring services join the stack', () => {
    const result = spawnSync(
      'docker',
      ['stack', 'config', '--compose-file', 'docker-compose.swarm.yml', '--compose-file', 'docker-compose.swarm.monitoring.yml'],
      { cwd: ROOT, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: process.env.HOME, DOCKER_HOST: 'unix:///nonexistent.sock', CONFIG_DIGEST: 'abc', MONITORING_CONFIG_DIGEST: 'def' } },
    );
    expect(result.stderr).toBe('');
    const loaded = parse(result.stdout) as ComposeFile;

    expect(loaded.services.redis?.secrets?.map((s) => s.source).sort()).toEqual([
      'redis-admin-password',
      'redis-exporter-password-map',
      'redis-password',
      'redis-web-password',
    ]);
    expect(loaded.services.redis?.environment).toHaveProperty('REDIS_WEB_PASSWORD_FILE');
    expect(Object.keys(loaded.services)).toEqual(expect.arrayContaining([...MONITORING, 'web', 'lb', 'redis']));
    expect(loaded.services.web?.environment?.METRICS_PORT).toBe('9464');
    expect(loaded.configs?.['prometheus-config']?.name).toBe('headcount-prometheus-config-def');
  });
});
