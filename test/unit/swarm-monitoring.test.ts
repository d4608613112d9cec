import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { describe, expect, test } from 'vitest';
import { fromRoot } from '../../formation/paths.js';
import { converged } from '../../formation/swarm-commands.js';
import {
  configDigest,
  EXPORTER_SECRET,
  exporterPasswordMap,
  MONITORING_CONFIG_FILES,
  MONITORING_SERVICES,
  monitoringConfigDigest,
  randomPassword,
  service,
  STACK_FILE_MONITORING,
  stackFiles,
} from '../../formation/swarm-docker.js';
import { monitoringReadyLines, TUNNEL_IMAGE, tunnelCommand } from '../../formation/swarm-monitoring.js';

// The pure parts of `make up MODE=swarm MONITORING=1` (formation/swarm-commands.ts,
// swarm-monitoring.ts): the exporter's secret, the files deployed, when the
// stack counts as converged, and what make prints. The Swarm tier deploys it
// for real (test/swarm/monitoring.test.ts).

describe('The exporter password secret', () => {
  test('When make creates it, then it is a one-line JSON map with one random password under both keys redis_exporter looks up', () => {
    const password = randomPassword();
    const map = exporterPasswordMap(password);

    expect(password).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(randomPassword()).not.toBe(password);
    expect(map).not.toContain('\n');
    expect(JSON.parse(map)).toEqual({ 'redis://redis:6379': password, 'redis://headcount-exporter@redis:6379': password });
    expect(Object.keys(JSON.parse(map) as object)[0]).toBe('redis://redis:6379');
  });

  test('When redis/docker-start.sh reads the map make created, then it takes out the same password', () => {
    const password = randomPassword();
    const dir = mkdtempSync(path.join(tmpdir(), 'headcount-swarm-map-'));
    try {
      writeFileSync(path.join(dir, 'map'), exporterPasswordMap(password));
      const script = readFileSync(fromRoot('redis/docker-start.sh'), 'utf8');
      const reader = script.split('\n').find((line) => line.includes('REDIS_EXPORTER_PASSWORD=$(sed'))!.trim();
      const addr = /^EXPORTER_ADDR=(\S+)$/m.exec(script)![1]!;
      const result = spawnSync('sh', ['-c', `EXPORTER_ADDR=${addr}; REDIS_EXPORTER_PASSWORD_MAP_FILE=${path.join(dir, 'map')}; ${reader}; printf %s "$REDIS_EXPORTER_PASSWORD"`], {
        encoding: 'utf8',
      });

      expect(result.stdout).toBe(password);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('When a password is not letters and digits, or short, then no map is made', () => {
    expect(() => exporterPasswordMap('a"b')).toThrow();
    expect(() => exporterPasswordMap('short')).toThrow();
  });

  test('When the override names its secret, then it is the one make creates', () => {
    const override = parse(readFileSync(fromRoot(STACK_FILE_MONITORING), 'utf8')) as { secrets: Record<string, { name: string }> };
    expect(Object.values(override.secrets).map((s) => s.name)).toEqual([EXPORTER_SECRET]);
  });
});

describe('What a Swarm deploy sends', () => {
  test('When MONITORING is on, then the override follows the stack file; when off, the stack file alone', () => {
    expect(stackFiles(true)).toEqual(['docker-compose.swarm.yml', 'docker-compose.swarm.monitoring.yml']);
    expect(stackFiles(false)).toEqual(['docker-compose.swarm.yml']);
  });

  test('When the override is read, then its services are the ones make waits for, and every config file it names is in the monitoring digest', () => {
    const override = parse(readFileSync(fromRoot(STACK_FILE_MONITORING), 'utf8')) as {
      services: Record<string, unknown>;
      configs: Record<string, { file: string }>;
    };
    expect(Object.keys(override.services).filter((s) => s !== 'redis').sort()).toEqual([...MONITORING_SERVICES].sort());
    expect(Object.values(override.configs).map((c) => c.file.replace(/^\.\//, '')).sort()).toEqual([...MONITORING_CONFIG_FILES].sort());
  });

  test('When the monitoring digest is taken, then it is its own: twelve hex digits, not the stack configs\' digest', () => {
    expect(monitoringConfigDigest()).toMatch(/^[0-9a-f]{12}$/);
    expect(monitoringConfigDigest()).not.toBe(configDigest());
    expect(monitoringConfigDigest()).toBe(monitoringConfigDigest());
  });
});

describe('When the stack counts as converged', () => {
  const state = (name: string, running: number, desired: number) => ({ name: service(name as 'web'), running, desired });
  const stack = [state('redis', 1, 1), state('web', 4, 4), state('lb', 2, 2)];
  const monitoring = [state('prometheus', 1, 1), state('nginx-exporter', 1, 1), state('redis-exporter', 1, 1)];

  test('When every desired task runs, then converged; Grafana alone may have none (GRAFANA_REPLICAS=0)', () => {
    expect(converged(stack, false)).toBe(true);
    expect(converged([...stack, ...monitoring, state('grafana', 1, 1)], true)).toBe(true);
    expect(converged([...stack, ...monitoring, state('grafana', 0, 0)], true)).toBe(true);
  });

  test('When a task is missing, a service wants none, or a service is missing, then not converged', () => {
    expect(converged([...stack, ...monitoring, state('grafana', 0, 1)], true)).toBe(false);
    expect(converged([...stack, state('prometheus', 0, 0), state('nginx-exporter', 1, 1), state('redis-exporter', 1, 1), state('grafana', 1, 1)], true)).toBe(false);
    expect(converged([...stack, ...monitoring], true)).toBe(false);
    expect(converged([...stack, ...monitoring, state('grafana', 1, 1)], false)).toBe(false);
    expect(converged([state('redis', 1, 1), state('web', 3, 4), state('lb', 2, 2)], false)).toBe(false);
  });
});

describe('What make up MODE=swarm MONITORING=1 prints', () => {
  test('When Grafana runs, then it says where Prometheus and Grafana are and the command that opens each on the loopback', () => {
    const lines = monitoringReadyLines({ prometheusNode: 'node-a', grafana: { running: 1, desired: 1, node: 'node-a' }, prometheusPort: 9090, grafanaPort: 3000 });

    expect(lines[0]).toBe('Prometheus: prometheus:9090 on network headcount_net (task on node node-a), not published. To open it at http://127.0.0.1:9090 on this manager:');
    expect(lines[1]).toBe(`  ${tunnelCommand('prometheus', 9090, 'prometheus:9090')}`);
    expect(lines[2]).toContain('Grafana: grafana:3000 on network headcount_net (1/1 running, node node-a). To open it at http://127.0.0.1:3000');
    expect(lines[3]).toBe(`  ${tunnelCommand('grafana', 3000, 'grafana:3000')}`);
  });

  test('When Grafana was deployed with no replica, then it says so and prints no way to open it', () => {
    const lines = monitoringReadyLines({ prometheusNode: 'node-a', grafana: { running: 0, desired: 0 }, prometheusPort: 9191, grafanaPort: 3000 });

    expect(lines).toHaveLength(3);
    expect(lines[2]).toBe('Grafana: not running (headcount_grafana deployed with 0 replicas, GRAFANA_REPLICAS=0).');
    expect(lines.join('\n')).not.toContain('grafana-tunnel');
  });

  test('When the tunnel command is built, then it publishes on 127.0.0.1 only, on the stack network, with the stack\'s nginx image, proxying to the service', () => {
    const command = tunnelCommand('prometheus', 9191, 'prometheus:9090');

    expect(command).toContain('--publish 127.0.0.1:9191:9090 ');
    expect(command).toContain('--network headcount_net ');
    expect(command).toContain('--name headcount-prometheus-tunnel ');
    expect(command).toContain('proxy_pass http://prometheus:9090;');
    const stack = parse(readFileSync(fromRoot('docker-compose.swarm.yml'), 'utf8')) as { services: { lb: { image: string } } };
    expect(TUNNEL_IMAGE).toBe(stack.services.lb.image);
  });
});
