import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { describe, expect, test } from 'vitest';
import { fromRoot } from '../../formation/paths.js';
import { promtool, withCopyOf } from '../support/promtool.js';

// monitoring/prometheus/rules/: the alerting rules, checked by Debian's
// promtool (`check rules` for syntax and PromQL, `test rules` for the unit
// tests in headcount.rules.test.yml), and read here for what promtool does not
// require: a `for:`, a severity, and a summary and description on every alert.

const RULES_DIR = 'monitoring/prometheus/rules';
const RULES = `${RULES_DIR}/headcount.rules.yml`;
const TESTS = `${RULES_DIR}/headcount.rules.test.yml`;

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const groups = (parse(readFileSync(fromRoot(RULES), 'utf8')) as { groups: { name: string; rules: Rule[] }[] }).groups;
const alerts = groups.flatMap((g) => g.rules).filter((r) => r.alert !== undefined);

describe('alerting rules: promtool', () => {
  test('When promtool checks the rules file, then it finds every rule valid', () => {
    const result = promtool(['check', 'rules', RULES]);

    expect(result.output).toContain(`SUCCESS: ${alerts.length} rules found`);
    expect(result.status).toBe(0);
  });

  test('When promtool runs the rules\' unit tests, then every one passes', () => {
    const result = promtool(['test', 'rules', TESTS]);

    expect(result.output).toContain('SUCCESS');
    expect(result.status).toBe(0);
  });

  test('When an alert loses what it deliberately leaves out (probes, the live stream) or its for:, then the unit tests catch it', () => {
    const result = withCopyOf(RULES_DIR, (dir) => {
      const file = path.join(dir, 'headcount.rules.yml');
      const broken = readFileSync(file, 'utf8')
        .replaceAll(',route!~"/readyz|/healthz"', '')
        .replaceAll('{route!~"/readyz|/healthz"}', '')
        .replaceAll('{route!="/api/live"}', '')
        .replace('for: 5m', 'for: 1m');
      writeFileSync(file, broken);
      return promtool(['test', 'rules', 'headcount.rules.test.yml'], dir);
    });

    expect(result.status).not.toBe(0);
    expect(result.output).toContain('alertname: HeadcountHighErrorRatio');
    expect(result.output).toContain('alertname: HeadcountLatencyP99High');
  });

  test('When a rule has a PromQL syntax error, then promtool check rules rejects the file', () => {
    const result = withCopyOf(RULES_DIR, (dir) => {
      const file = path.join(dir, 'headcount.rules.yml');
      writeFileSync(file, readFileSync(file, 'utf8').replace('expr: nginx_up == 0', 'expr: nginx_up == == 0'));
      return promtool(['check', 'rules', file]);
    });

    expect(result.status).not.toBe(0);
    expect(result.output).toMatch(/FAILED|parse error/);
  });
});

describe('alerting rules: what every alert carries', () => {
  test('When the rules are read, then the four alerts issue 10 asks for are there: a replica down, 5xx ratio, Redis unavailable, p99 above target', () => {
    expect(alerts.map((a) => a.alert)).toEqual(
      expect.arrayContaining(['HeadcountReplicaDown', 'HeadcountHighErrorRatio', 'HeadcountRedisDown', 'HeadcountLatencyP99High']),
    );
  });

  test.each(alerts.map((a) => [a.alert!, a] as const))('When %s is read, then it has a for:, a severity and a summary and description', (_name, alert) => {
    expect(alert.for).toMatch(/^\d+[smh]$/);
    expect(['critical', 'warning']).toContain(alert.labels?.severity);
    expect(alert.annotations?.summary).toBeTruthy();
    expect(alert.annotations?.description).toBeTruthy();
  });

  test('When the p99 alert is read, then its target is 10 ms, a bucket boundary of the replicas\' latency histogram', () => {
    const p99 = alerts.find((a) => a.alert === 'HeadcountLatencyP99High')!;

    expect(p99.expr).toMatch(/histogram_quantile\(0\.99,/);
    expect(p99.expr).toContain('headcount_http_request_duration_seconds_bucket');
    expect(p99.expr.trim()).toMatch(/> 0\.01$/);
  });

  test('When every alert is unit-tested, then each alert name appears in the test file', () => {
    const tests = readFileSync(fromRoot(TESTS), 'utf8');

    for (const alert of alerts) expect(tests, alert.alert).toContain(`alertname: ${alert.alert}\n`);
  });
});
