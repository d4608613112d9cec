// Shared by the k6 scenarios. k6 >= 1.0 runs TypeScript as it is; nothing here
// is imported from the network, only from k6 itself.
import http from 'k6/http';

/**
 * The load balancer: `-e LB_URL=...`. The default also serves the compose
 * `loadtest` profile, whose k6 shares the load balancer's network namespace.
 */
export const LB_URL = __ENV.LB_URL || 'http://127.0.0.1:8080';

/** Where handleSummary writes, beside the autocannon reports. */
const RESULTS_DIR = __ENV.RESULTS_DIR || 'loadtest/results';

export function readCount(): number {
  const response = http.get(`${LB_URL}/api/count`, { tags: { name: 'read count' } });
  if (response.status !== 200) throw new Error(`GET /api/count answered ${response.status}`);
  return (response.json() as { count: number }).count;
}

type Summary = { metrics: Record<string, { values: Record<string, number>; thresholds?: Record<string, { ok: boolean }> }> };

/** The JSON summary file, and a few lines on stdout (jslib's text summary would be a network import). */
export function summaryFiles(scenario: string, data: Summary): Record<string, string> {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const lines = [`k6 ${scenario} summary`];
  for (const [name, metric] of Object.entries(data.metrics)) {
    if (!metric.thresholds) continue;
    for (const [threshold, { ok }] of Object.entries(metric.thresholds)) {
      lines.push(`  ${ok ? 'ok  ' : 'FAIL'} ${name} ${threshold}`);
    }
  }
  const duration = data.metrics.http_req_duration?.values;
  if (duration) lines.push(`  http_req_duration p(95)=${duration['p(95)']?.toFixed(2)} ms p(99)=${duration['p(99)']?.toFixed(2)} ms`);
  const file = `${RESULTS_DIR}/k6-${scenario}-${stamp}.json`;
  lines.push(`  report: ${file}`);
  return { [file]: JSON.stringify(data, null, 2), stdout: `${lines.join('\n')}\n` };
}
