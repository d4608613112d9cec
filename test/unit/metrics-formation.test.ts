import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { defaultPrometheusPort, PROMETHEUS_TEMPLATE, renderPrometheusConfig, RULES_GLOB, webTargetsFileOf, writeWebTargets } from '../../formation/monitoring.js';
import { composeEnv, monitoringUrlsNote, parseComposePs } from '../../formation/docker-commands.js';
import { findExecutable } from '../../formation/prerequisites.js';

const scratch = mkdtempSync(path.join(tmpdir(), 'headcount-monitoring-unit-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const values = {
  RULES_GLOB,
  WEB_TARGETS_FILE: webTargetsFileOf(scratch),
  NGINX_EXPORTER_ADDRESS: '127.0.0.1:19113',
  REDIS_EXPORTER_ADDRESS: '127.0.0.1:19121',
  PROMETHEUS_ADDRESS: '127.0.0.1:19090',
};

describe('the local formation\'s Prometheus (formation/monitoring.ts)', () => {
  test('When the target list is written, then it is file_sd JSON with one entry per replica labelled replica, and no temporary file is left', async () => {
    const file = webTargetsFileOf(scratch);

    await writeWebTargets(file, [
      { replica: 'web-1', metricsPort: 41001 },
      { replica: 'web-2', metricsPort: 41002 },
    ]);
    await writeWebTargets(file, [{ replica: 'web-2', metricsPort: 41002 }]);

    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual([{ targets: ['127.0.0.1:41002'], labels: { replica: 'web-2' } }]);
    expect(readdirSync(path.dirname(file))).toEqual(['web.json']);
  });

  test('When the template is rendered, then it scrapes the four jobs of the contract, the replicas through the target list', () => {
    const config = parse(renderPrometheusConfig(readFileSync(PROMETHEUS_TEMPLATE, 'utf8'), values)) as {
      rule_files: string[];
      scrape_configs: { job_name: string; file_sd_configs?: { files: string[] }[]; static_configs?: { targets: string[] }[] }[];
    };

    expect(config.scrape_configs.map((c) => c.job_name)).toEqual(['headcount-web', 'nginx', 'redis', 'prometheus']);
    expect(config.scrape_configs[0]!.file_sd_configs![0]!.files).toEqual([webTargetsFileOf(scratch)]);
    expect(config.scrape_configs.slice(1).map((c) => c.static_configs![0]!.targets[0])).toEqual(['127.0.0.1:19113', '127.0.0.1:19121', '127.0.0.1:19090']);
    expect(config.rule_files).toEqual([RULES_GLOB]);
  });

  test('When a placeholder has no value, then rendering names it', () => {
    expect(() => renderPrometheusConfig('targets: [${NGINX_EXPORTER_ADDRESS}]', {})).toThrow(/NGINX_EXPORTER_ADDRESS/);
  });

  test('When promtool checks the rendered config, then it passes (and a broken copy fails)', () => {
    const promtool = findExecutable('promtool');
    expect(promtool, 'promtool (Debian package prometheus) must be installed').toBeDefined();
    const good = path.join(scratch, 'good.yml');
    const bad = path.join(scratch, 'bad.yml');
    const rendered = renderPrometheusConfig(readFileSync(PROMETHEUS_TEMPLATE, 'utf8'), values);
    writeFileSync(good, rendered);
    writeFileSync(bad, rendered.replace('scrape_interval: 1s', 'scrape_interval: often'));

    const passed = spawnSync(promtool!, ['check', 'config', good], { encoding: 'utf8' });
    const failed = spawnSync(promtool!, ['check', 'config', bad], { encoding: 'utf8' });

    expect(passed.status, passed.stderr + passed.stdout).toBe(0);
    expect(failed.status).not.toBe(0);
  });

  test('When LB_PORT is the default or another, then Prometheus\'s default port is 9090 or as far from that LB_PORT', () => {
    expect([defaultPrometheusPort(8080), defaultPrometheusPort(8081), defaultPrometheusPort(65_000)]).toEqual([9090, 9091, 63_990]);
  });

  test('When MONITORING=1 in docker mode, then every compose command gets the monitoring profile, and Prometheus the port local mode would give it', () => {
    expect(composeEnv({ LB_PORT: 8080, MONITORING: true }, {})).toMatchObject({ COMPOSE_PROFILES: 'monitoring', PROMETHEUS_PORT: '9090' });
    expect(composeEnv({ LB_PORT: 8080, MONITORING: true }, { COMPOSE_PROFILES: 'admin' }).COMPOSE_PROFILES).toBe('admin,monitoring');
    // A second formation's Prometheus, and one beside LB_PORT=9090, get ports of their own; PROMETHEUS_PORT wins.
    expect(composeEnv({ LB_PORT: 18080, MONITORING: true }, { PROMETHEUS_PORT: '9090' }).PROMETHEUS_PORT).toBe('19090');
    expect(composeEnv({ LB_PORT: 9090, MONITORING: true }, {}).PROMETHEUS_PORT).toBe('10100');
    expect(composeEnv({ LB_PORT: 18080, MONITORING: true, PROMETHEUS_PORT: 9999 }, {}).PROMETHEUS_PORT).toBe('9999');
    // The caller's COMPOSE_FILE (an override of their own) reaches compose.
    expect(composeEnv({ LB_PORT: 8080, MONITORING: true }, { COMPOSE_FILE: 'docker-compose.yml:mine.yml' }).COMPOSE_FILE).toBe('docker-compose.yml:mine.yml');
    expect(composeEnv({ LB_PORT: 8080, MONITORING: false }, {})).not.toHaveProperty('COMPOSE_PROFILES');
    expect(composeEnv({ LB_PORT: 8080, MONITORING: false }, {})).not.toHaveProperty('PROMETHEUS_PORT');
  });

  test('When the ready line is written, then it names each monitoring UI that runs, at the address compose published it on, and no other', () => {
    const prometheus = { Service: 'prometheus', State: 'running', Publishers: [{ URL: '127.0.0.1', TargetPort: 9090, PublishedPort: 19090 }] };
    const grafana = { Service: 'grafana', State: 'running', Publishers: [{ URL: '127.0.0.1', TargetPort: 3000, PublishedPort: 3000 }] };
    const web = { Service: 'web', State: 'running', Publishers: [{ URL: '', TargetPort: 9464, PublishedPort: 0 }] };

    expect(monitoringUrlsNote({ MONITORING: true }, [web, prometheus, grafana])).toBe(' Prometheus: http://127.0.0.1:19090, Grafana: http://127.0.0.1:3000.');
    // Grafana left out (an override, or its image missing): not named.
    expect(monitoringUrlsNote({ MONITORING: true }, [web, prometheus])).toBe(' Prometheus: http://127.0.0.1:19090.');
    expect(monitoringUrlsNote({ MONITORING: true }, [web, prometheus, { ...grafana, State: 'restarting' }])).toBe(' Prometheus: http://127.0.0.1:19090.');
    expect(monitoringUrlsNote({ MONITORING: true }, [web])).toBe('');
    expect(monitoringUrlsNote({ MONITORING: true }, [{ ...prometheus, Publishers: [{ URL: '0.0.0.0', TargetPort: 9090, PublishedPort: 9090 }] }])).toBe(
      ' Prometheus: http://localhost:9090.',
    );
    expect(monitoringUrlsNote({ MONITORING: false }, [web, prometheus, grafana])).toBe('');
  });

  test('When docker compose ps --format json answers, then both of its forms (one object a line; one array) parse', () => {
    const entries = [{ Service: 'web', State: 'running' }, { Service: 'prometheus', State: 'running' }];

    expect(parseComposePs(entries.map((e) => JSON.stringify(e)).join('\n') + '\n')).toEqual(entries);
    expect(parseComposePs(JSON.stringify(entries))).toEqual(entries);
    expect(parseComposePs('')).toEqual([]);
  });
});
