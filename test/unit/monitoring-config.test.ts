import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { describe, expect, test } from 'vitest';
import { fromRoot } from '../../formation/paths.js';
import { promtool, withCopyOf } from '../support/promtool.js';

// The Prometheus configurations shipped for Docker and Swarm, checked by
// Debian's `promtool check config` (which also checks the rule files they
// name), and read here for what the formation relies on: the job names of
// issue 10's contract, and each replica scraped directly through DNS on
// METRICS_PORT (9464), never through nginx.

const CONFIGS = ['monitoring/prometheus/prometheus.docker.yml', 'monitoring/prometheus/prometheus.swarm.yml'];

interface ScrapeConfig {
  job_name: string;
  honor_labels?: boolean;
  dns_sd_configs?: { names: string[]; type?: string; port?: number; refresh_interval?: string }[];
  static_configs?: { targets: string[] }[];
  relabel_configs?: { source_labels?: string[]; target_label?: string }[];
}
interface PrometheusConfig {
  global: { scrape_interval: string; evaluation_interval: string };
  rule_files: string[];
  scrape_configs: ScrapeConfig[];
}
const read = (file: string) => parse(readFileSync(fromRoot(file), 'utf8')) as PrometheusConfig;
const job = (config: PrometheusConfig, name: string) => config.scrape_configs.find((c) => c.job_name === name);

describe('Prometheus configurations: promtool check config', () => {
  test.each(CONFIGS)('When promtool checks %s, then the config and the rule file it names are valid', (file) => {
    const result = promtool(['check', 'config', file]);

    expect(result.output).toContain(`SUCCESS: ${file} is valid prometheus config file syntax`);
    expect(result.output).toMatch(/Checking .*rules\/headcount\.rules\.yml\s+SUCCESS: \d+ rules found/);
    expect(result.status).toBe(0);
  });

  test('When a copy names an unknown service discovery field and a missing rule file, then promtool check config rejects it', () => {
    const result = withCopyOf('monitoring/prometheus', (dir) => {
      const file = path.join(dir, 'prometheus.docker.yml');
      writeFileSync(
        file,
        readFileSync(file, 'utf8').replace('        type: A\n', '        kind: A\n').replace('rules/headcount.rules.yml', 'rules/missing.rules.yml'),
      );
      return promtool(['check', 'config', file]);
    });

    expect(result.status).not.toBe(0);
    expect(result.output).toMatch(/field kind not found|missing\.rules\.yml/);
  });
});

describe('Prometheus configurations: what the formation relies on', () => {
  test.each([
    ['monitoring/prometheus/prometheus.docker.yml', 'web'],
    ['monitoring/prometheus/prometheus.swarm.yml', 'tasks.web'],
  ])('When %s is read, then job headcount-web finds every replica as %s (type A) on port 9464, directly', (file, name) => {
    const web = job(read(file), 'headcount-web');

    expect(web?.dns_sd_configs).toEqual([{ names: [name], type: 'A', port: 9464, refresh_interval: '5s' }]);
    expect(web?.static_configs).toBeUndefined();
    // Every series carries `replica` (the contract); the replica's own on headcount_info wins.
    expect(web?.relabel_configs).toContainEqual({ source_labels: ['__address__'], target_label: 'replica' });
    expect(web?.honor_labels).toBe(true);
  });

  test.each(CONFIGS)('When %s is read, then it has the contract\'s four jobs, the exporters by service name, and the rules', (file) => {
    const config = read(file);

    expect(config.scrape_configs.map((c) => c.job_name)).toEqual(['headcount-web', 'nginx', 'redis', 'prometheus']);
    expect(job(config, 'nginx')?.static_configs).toEqual([{ targets: ['nginx-exporter:9113'] }]);
    expect(job(config, 'redis')?.static_configs).toEqual([{ targets: ['redis-exporter:9121'] }]);
    expect(job(config, 'prometheus')?.static_configs).toEqual([{ targets: ['localhost:9090'] }]);
    expect(config.rule_files).toEqual(['rules/headcount.rules.yml']);
  });

  test('When the two configurations are compared, then they differ only in the name the replicas are found by', () => {
    const [docker, swarm] = CONFIGS.map(read);

    expect(JSON.stringify(swarm).replace('"tasks.web"', '"web"')).toBe(JSON.stringify(docker));
  });

  test('When the nginx exporter reads stub_status, then it asks the lb on LB_STATUS_LISTEN (8081), the port the compose files give the lb', () => {
    const compose = parse(readFileSync(fromRoot('docker-compose.yml'), 'utf8'), { merge: true }) as {
      services: Record<string, { command?: string[]; environment?: Record<string, string> }>;
    };

    expect(compose.services['nginx-exporter']?.command).toContain('--nginx.scrape-uri=http://lb:8081/stub_status');
    expect(compose.services.lb?.environment?.LB_STATUS_LISTEN).toBe('8081');
  });
});
