import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import path from 'node:path';
import { fromRoot } from '../formation/paths.js';
import type { AccuracyRun } from './accuracy.js';
import { renderHtmlReport } from './report-html.js';
import { newTable, statusText } from './terminal.js';
import type { ThroughputRow } from './throughput.js';
import type { Check, Verdict } from './verdict.js';

export interface LoadtestReport {
  startedAt: string;
  machine: { cpus: number; cpuModel: string; memoryGiB: number; node: string };
  target: { lbUrl: string; replicas?: string[]; expectedReplicas?: { count: number; source: string }; directUrl?: string; throwaway?: boolean };
  accuracy: AccuracyRun & { requests: number; connections: number };
  throughput: ThroughputRow[];
  /** Every check of the run (the accuracy invariants, then the direct comparison), PASS, FAIL or NOT CHECKED. */
  checks: Check[];
  verdict: Verdict;
  /** Visits this run added to the count: the accuracy run's 2xx plus the throughput run's. */
  visitsAdded: { accuracy: number; throughput: number };
}

/** The middle value (the mean of the two middle ones for an even count). */
export const median = (values: readonly number[]) => {
  const sorted = values.toSorted((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

export const machine = () => ({
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model ?? 'unknown',
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  node: process.version,
});

export const RESULTS_DIR = fromRoot('loadtest', 'results');

export const reportDirFor = (startedAt: string, name = 'loadtest') => path.join(RESULTS_DIR, `${name}-${startedAt.replace(/[:.]/g, '-')}`);

/** Writes report.json and a self-contained report.html into a new folder under loadtest/results/. */
export async function writeReports(report: LoadtestReport, name = 'loadtest'): Promise<{ json: string; html: string }> {
  const dir = reportDirFor(report.startedAt, name);
  await mkdir(dir, { recursive: true });
  const json = path.join(dir, 'report.json');
  const html = path.join(dir, 'report.html');
  await writeFile(json, `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(html, await renderHtmlReport(report));
  return { json, html };
}

const n = (value: number, digits = 0) => value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** The terminal summary: the accuracy figures, every check with its result, throughput per concurrency. */
export function summaryTables(report: LoadtestReport, colour?: boolean): string {
  const { accuracy } = report;
  const f = accuracy.report.figures;
  const figures = newTable(['accuracy run', 'value'], { colour });
  figures.push(
    ['requests sent / 2xx / non-2xx', `${n(f.sent)} / ${n(f.ok)} / ${n(f.non2xx)}`],
    ['errors / timeouts', `${f.errors} / ${f.timeouts}`],
    ['count before -> after (delta)', `${n(accuracy.countBefore)} -> ${n(accuracy.countAfter)} (${n(f.delta)})`],
    ['distinct visitor numbers', `${n(f.uniqueNumbers)} (${f.duplicateNumbers} duplicates)`],
    ['per replica', Object.entries(f.perReplica).map(([id, c]) => `${id}: ${c}`).join(', ')],
    ['throughput', `${n(accuracy.requestsPerSecond)} req/s at ${accuracy.connections} connections`],
    ['latency p50 / p99 / max', `${accuracy.latency.p50} / ${accuracy.latency.p99} / ${accuracy.latency.max} ms`],
  );
  const checks = newTable(['check', 'result', 'detail'], { colour, colWidths: [20, 13, 72] });
  for (const c of report.checks) checks.push([c.required === false ? `${c.name} (figure)` : c.name, statusText(c.status, colour), c.detail]);
  const speed = newTable(['target', 'connections', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'errors', 'non-2xx', 'vs direct'], { colour });
  for (const row of report.throughput) {
    const direct = report.throughput.find((r) => r.connections === row.connections && r.target !== row.target && r.target.includes('direct'));
    speed.push([
      row.target,
      row.connections,
      n(row.requestsPerSecond),
      row.latency.p50,
      row.latency.p90,
      row.latency.p99,
      row.latency.max,
      row.errors,
      row.non2xx,
      direct && !row.target.includes('direct') ? `${n(row.requestsPerSecond / direct.requestsPerSecond, 2)}x` : '',
    ]);
  }
  return [figures.toString(), checks.toString(), report.throughput.length > 0 ? speed.toString() : ''].filter(Boolean).join('\n');
}
