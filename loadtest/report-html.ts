import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { LoadtestReport } from './report.js';

const require = createRequire(import.meta.url);

/** Chart.js's browser bundle, inlined so the report opens anywhere, offline. */
async function chartJs(): Promise<string> {
  const main = require.resolve('chart.js');
  return readFile(path.join(path.dirname(main), 'chart.umd.min.js'), 'utf8');
}

const escapeHtml = (text: string) => text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
// JSON inside <script>: "</script>" in a string must not end the element.
const scriptJson = (value: unknown) => JSON.stringify(value).replace(/</g, '\\u003c');

/** A self-contained page: the verdict, the figures, and three charts drawn by Chart.js. */
export async function renderHtmlReport(report: LoadtestReport): Promise<string> {
  const { accuracy } = report;
  const statusClass = { PASS: 'pass', FAIL: 'fail', 'NOT CHECKED': 'unchecked' } as const;
  const verdict = `<p class="${statusClass[report.verdict.status]}">${escapeHtml(report.verdict.line)}</p>`;
  const checks = report.checks
    .map((c) => `<tr><td>${escapeHtml(c.name)}${c.required === false ? ' (figure)' : ''}</td><td class="${statusClass[c.status]}">${c.status}</td><td>${escapeHtml(c.detail)}</td></tr>`)
    .join('');
  const f = accuracy.report.figures;
  const rows = report.throughput
    .map(
      (r) =>
        `<tr><td>${escapeHtml(r.target)}</td><td>${r.connections}</td><td>${Math.round(r.requestsPerSecond)}</td>` +
        `<td>${r.latency.p50}</td><td>${r.latency.p90}</td><td>${r.latency.p99}</td><td>${r.latency.max}</td><td>${r.errors}</td><td>${r.non2xx}</td></tr>`,
    )
    .join('');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>headcount load test ${escapeHtml(report.startedAt)}</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #1d1d1f; padding: 0 1rem; }
  h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
  table { border-collapse: collapse; margin: 0.5rem 0; } td, th { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
  th { background: #f4f1ea; } td:first-child { text-align: left; }
  .pass { color: #0a7d32; font-weight: 700; } .fail { color: #b00020; font-weight: 700; } .unchecked { color: #8a5a00; font-weight: 700; }
  table.checks td { text-align: left; }
  .charts { display: grid; grid-template-columns: 1fr 1fr; gap: 1.5rem; } .wide { grid-column: 1 / -1; }
  figure { margin: 0; } figcaption { font-weight: 600; margin-bottom: 0.3rem; }
</style>
</head>
<body>
<h1>headcount load test</h1>
<p>${escapeHtml(report.startedAt)} &middot; target ${escapeHtml(report.target.lbUrl)} &middot;
${report.machine.cpus} CPUs (${escapeHtml(report.machine.cpuModel)}), ${report.machine.memoryGiB} GiB, Node ${escapeHtml(report.machine.node)}</p>

<h2>Accuracy: ${accuracy.requests} requests at ${accuracy.connections} connections</h2>
${verdict}
<table class="checks">
<tr><th>check</th><th>result</th><th>detail</th></tr>
${checks}
</table>
<table>
<tr><th>sent</th><th>2xx</th><th>non-2xx</th><th>errors</th><th>timeouts</th><th>count delta</th><th>distinct numbers</th><th>req/s</th></tr>
<tr><td>${f.sent}</td><td>${f.ok}</td><td>${f.non2xx}</td><td>${f.errors}</td><td>${f.timeouts}</td><td>${f.delta}</td><td>${f.uniqueNumbers}</td><td>${Math.round(accuracy.requestsPerSecond)}</td></tr>
</table>

<div class="charts">
  <figure><figcaption>Latency distribution</figcaption><canvas id="latency" data-testid="chart-latency"></canvas></figure>
  <figure><figcaption>Share of visits per replica</figcaption><canvas id="share" data-testid="chart-share"></canvas></figure>
  <figure class="wide"><figcaption>Throughput per concurrency</figcaption><canvas id="throughput" data-testid="chart-throughput"></canvas></figure>
</div>

<h2>Throughput</h2>
<table>
<tr><th>target</th><th>connections</th><th>req/s</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th><th>errors</th><th>non-2xx</th></tr>
${rows}
</table>

<script>${await chartJs()}</script>
<script>
const report = ${scriptJson(report)};
Chart.defaults.animation = false;
const curves = [{ label: 'accuracy run', points: report.accuracy.latency.distribution }].concat(
  report.throughput.map((r) => ({ label: r.target + ', ' + r.connections + ' conn', points: r.latency.distribution })));
new Chart(document.getElementById('latency'), {
  type: 'line',
  data: { datasets: curves.map((c) => ({ label: c.label, data: c.points.map((p) => ({ x: p.percentile, y: p.ms })), pointRadius: 2 })) },
  options: { scales: { x: { type: 'linear', min: 0, max: 100, title: { display: true, text: 'percentile' } },
                       y: { type: 'logarithmic', title: { display: true, text: 'latency (ms)' } } } },
});
const share = report.accuracy.report.figures.perReplica;
const ids = Object.keys(share).sort();
const even = report.accuracy.report.figures.ok / Math.max(ids.length, 1);
new Chart(document.getElementById('share'), {
  data: { labels: ids, datasets: [
    { type: 'bar', label: 'visits served', data: ids.map((id) => share[id]) },
    { type: 'line', label: 'even split \\u00b1 10%', data: ids.map(() => even), pointRadius: 0, borderDash: [6, 4] },
  ] },
  options: { scales: { y: { beginAtZero: true } } },
});
const levels = [...new Set(report.throughput.map((r) => r.connections))].sort((a, b) => a - b);
const targets = [...new Set(report.throughput.map((r) => r.target))];
new Chart(document.getElementById('throughput'), {
  type: 'bar',
  data: { labels: levels.map((c) => c + ' connections'), datasets: targets.map((t) => ({
    label: t, data: levels.map((c) => (report.throughput.find((r) => r.target === t && r.connections === c) || {}).requestsPerSecond ?? null) })) },
  options: { scales: { y: { beginAtZero: true, title: { display: true, text: 'requests per second' } } } },
});
window.chartsReady = true;
</script>
</body>
</html>
`;
}
