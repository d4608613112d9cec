import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, test } from 'vitest';
import { fromRoot } from '../../formation/paths.js';
import { METRIC_FIXTURE, readMetricFixture } from '../support/metric-fixture.js';
import { metricNames, withoutGrafanaMacros } from '../support/promql-names.js';
import { checkExpressions } from '../support/promtool.js';

// Grafana cannot run here, so its provisioning and the dashboard are checked
// as files: the raw dashboard model with fixed uids (the form file
// provisioning loads as it is), every panel on the provisioned datasource,
// every query parsed by promtool, and every metric a query or an alert names
// listed in test/fixtures/metric-names.txt, which the cluster tier checks
// against running exporters (test/cluster/dashboard-metrics.test.ts).

interface Target {
  refId: string;
  expr: string;
  datasource?: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Target[];
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  __inputs?: unknown;
}

const DASHBOARD = 'monitoring/grafana/dashboards/headcount.json';
const dashboardText = readFileSync(fromRoot(DASHBOARD), 'utf8');
const dashboard = JSON.parse(dashboardText) as Dashboard;
const datasources = (
  parse(readFileSync(fromRoot('monitoring/grafana/provisioning/datasources/prometheus.yml'), 'utf8')) as {
    datasources: { name: string; uid: string; type: string; url: string; isDefault?: boolean }[];
  }
).datasources;
const provider = (
  parse(readFileSync(fromRoot('monitoring/grafana/provisioning/dashboards/headcount.yml'), 'utf8')) as {
    providers: { type: string; options: { path: string }; allowUiUpdates?: boolean }[];
  }
).providers;
const targets = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, ...t })));
const rules = (
  parse(readFileSync(fromRoot('monitoring/prometheus/rules/headcount.rules.yml'), 'utf8')) as { groups: { rules: { expr: string }[] }[] }
).groups.flatMap((g) => g.rules);

describe('Grafana provisioning', () => {
  test('When the datasource file is read, then it provisions one Prometheus, the monitoring profile\'s, under a fixed uid', () => {
    expect(datasources).toEqual([
      expect.objectContaining({ name: 'Prometheus', type: 'prometheus', uid: 'headcount-prometheus', url: 'http://prometheus:9090', isDefault: true }),
    ]);
  });

  test('When the dashboards provider is read, then it loads files from one folder and the UI cannot save over them', () => {
    expect(provider).toEqual([expect.objectContaining({ type: 'file', allowUiUpdates: false, options: { path: '/etc/grafana/dashboards/headcount' } })]);
  });
});

describe('monitoring/grafana/dashboards/headcount.json: the raw dashboard model', () => {
  const uid = datasources[0]!.uid;

  test('When the file is read, then it is JSON with a fixed uid and none of the export-for-sharing placeholders file provisioning never fills in', () => {
    expect(dashboard.uid).toBe('headcount');
    expect(dashboard).not.toHaveProperty('__inputs');
    expect(dashboard).not.toHaveProperty('__requires');
    expect(dashboardText).not.toMatch(/\$\{DS_/);
  });

  test('When the panels are read, then each and each of its queries uses the provisioned datasource by uid', () => {
    expect(dashboard.panels.length).toBeGreaterThan(0);
    for (const panel of dashboard.panels) {
      expect(panel.datasource, panel.title).toEqual({ type: 'prometheus', uid });
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) expect(target.datasource, `${panel.title} ${target.refId}`).toEqual({ type: 'prometheus', uid });
    }
  });

  test('When the layout is read, then panel ids are unique and no two panels overlap on the 24-column grid', () => {
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
    const cells = new Set<string>();
    for (const { title, gridPos: g } of dashboard.panels) {
      expect(g.x + g.w, title).toBeLessThanOrEqual(24);
      for (let x = g.x; x < g.x + g.w; x += 1) {
        for (let y = g.y; y < g.y + g.h; y += 1) {
          expect(cells.has(`${x},${y}`), `${title} overlaps at ${x},${y}`).toBe(false);
          cells.add(`${x},${y}`);
        }
      }
    }
  });

  test('When every query is handed to promtool (Grafana\'s $__ macros replaced), then each parses as PromQL', () => {
    const result = checkExpressions(targets.map((t) => withoutGrafanaMacros(t.expr)));

    expect(result.output).toContain(`SUCCESS: ${targets.length} rules found`);
    expect(result.status).toBe(0);
  });

  test('When a query does not parse, then the same check fails', () => {
    const result = checkExpressions(['sum(rate(headcount_visits_counted_total[1m])']);

    expect(result.status).not.toBe(0);
  });

  test('When the panels are read, then issue 10\'s views are there: visits, per replica, status, latency, Redis, streams, event loop, nginx, Redis up', () => {
    const used = new Set(targets.flatMap((t) => metricNames(t.expr)));

    for (const name of [
      'headcount_visits_counted_total',
      'headcount_http_requests_total',
      'headcount_http_request_duration_seconds_bucket',
      'headcount_redis_command_duration_seconds_bucket',
      'headcount_redis_errors_total',
      'headcount_live_streams',
      'nodejs_eventloop_lag_p99_seconds',
      'nginx_connections_active',
      'redis_up',
    ]) {
      expect(used, name).toContain(name);
    }
    expect(targets.some((t) => /sum by \(replica\) \(rate\(headcount_visits_counted_total/.test(t.expr))).toBe(true);
    expect(targets.filter((t) => /histogram_quantile\(0\.(5|99), sum by \(le\) \(rate\(headcount_http_request_duration_seconds_bucket/.test(t.expr))).toHaveLength(2);
  });
});

describe(`${METRIC_FIXTURE}: every metric the dashboard and the alerts name`, () => {
  const fixture = readMetricFixture();
  const listed = Object.values(fixture).flat();
  const used = new Set([...targets.map((t) => t.expr), ...rules.map((r) => r.expr)].flatMap(metricNames));

  test('When the metric names are picked out of a query, then functions, labels, strings, durations and grouping are left out', () => {
    expect(
      metricNames('histogram_quantile(0.99, sum by (le, operation) (rate(x_bucket{route!="/a{b}", le=~"1"}[$__rate_interval]))) / on(instance) group_left(replica) y offset 5m or vector(0)'),
    ).toEqual(['x_bucket', 'y']);
  });

  test('When the dashboard\'s queries and the alerting rules are read, then every metric they select is in the fixture', () => {
    expect([...used].filter((name) => !listed.includes(name))).toEqual([]);
  });

  test('When the fixture is read, then it lists nothing that no query or alert uses, under the sources the cluster test checks', () => {
    expect(listed.filter((name) => !used.has(name))).toEqual([]);
    expect(Object.keys(fixture).sort()).toEqual(['nginx-exporter', 'prometheus', 'redis-exporter', 'replica']);
    expect(fixture.prometheus).toEqual(['up']);
  });

  test('When the contract\'s replica metrics are compared with the fixture, then the dashboard uses every one of them', () => {
    expect(fixture.replica).toEqual(
      expect.arrayContaining([
        'headcount_visits_counted_total',
        'headcount_http_requests_total',
        'headcount_http_request_duration_seconds_bucket',
        'headcount_redis_command_duration_seconds_bucket',
        'headcount_redis_errors_total',
        'headcount_live_streams',
        'headcount_info',
      ]),
    );
  });
});
