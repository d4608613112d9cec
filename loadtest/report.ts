import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import path from 'node:path';
import Table from 'cli-table3';
import { fromRoot } from '../formation/paths.js';
import type { AccuracyRun } from './accuracy.js';
import { renderHtmlReport } from './report-html.js';
import type { ThroughputRow } from './throughput.js';

export interface LoadtestReport {
  startedAt: string;
  machine: { cpus: number; cpuModel: string; memoryGiB: number; node: string };
  target: { lbUrl: string; replicas?: string[]; directUrl?: string };
  accuracy: AccuracyRun & { requests: number; connections: number };
  throughput: ThroughputRow[];
}

export const machine = () => ({
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model ?? 'unknown',
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  node: process.version,
});

export const RESULTS_DIR = fromRoot('loadtest', 'results');

/** Writes report.json and a self-contained report.html into a new folder under loadtest/results/. */
export async function writeReports(report: LoadtestReport, name = 'loadtest'): Promise<{ json: string; html: string }> {
  const dir = path.join(RESULTS_DIR, `${name}-${report.startedAt.replace(/[:.]/g, '-')}`);
  await mkdir(dir, { recursive: true });
  const json = path.join(dir, 'report.json');
  const html = path.join(dir, 'report.html');
  await writeFile(json, `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(html, await renderHtmlReport(report));
  return { json, html };
}

const n = (value: number, digits = 0) => value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** The terminal summary: the accuracy verdict, then throughput per concurrency. */
export function summaryTables(report: LoadtestReport): string {
  const { accuracy } = report;
  const f = accuracy.report.figures;
  const verdict = new Table({ head: ['accuracy run', 'value'] });
  verdict.push(
    ['requests sent / 2xx / non-2xx', `${n(f.sent)} / ${n(f.ok)} / ${n(f.non2xx)}`],
    ['errors / timeouts', `${f.errors} / ${f.timeouts}`],
    ['count before -> after (delta)', `${n(accuracy.countBefore)} -> ${n(accuracy.countAfter)} (${n(f.delta)})`],
    ['distinct visitor numbers', `${n(f.uniqueNumbers)} (${f.duplicateNumbers} duplicates)`],
    ['per replica', Object.entries(f.perReplica).map(([id, c]) => `${id}: ${c}`).join(', ')],
    ['throughput', `${n(accuracy.requestsPerSecond)} req/s at ${accuracy.connections} connections`],
    ['latency p50 / p99 / max', `${accuracy.latency.p50} / ${accuracy.latency.p99} / ${accuracy.latency.max} ms`],
    ['verdict', accuracy.report.ok ? 'PASS: every invariant holds' : `FAIL: ${accuracy.report.violations.map((v) => v.invariant).join(', ')}`],
  );
  const speed = new Table({ head: ['target', 'connections', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'errors', 'non-2xx', 'vs direct'] });
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
  return `${verdict.toString()}\n${report.throughput.length > 0 ? speed.toString() : ''}`;
}
