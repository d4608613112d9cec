import { runAccuracy } from './accuracy.js';
import { describeViolations } from './invariants.js';
import type { LoadtestOptions } from './options.js';
import { machine, summaryTables, writeReports, type LoadtestReport } from './report.js';
import { resolveTarget, type Target } from './target.js';
import { runThroughput } from './throughput.js';

export interface LoadtestOutcome {
  report: LoadtestReport;
  files: { json: string; html: string };
  ok: boolean;
}

/**
 * `make loadtest`: the accuracy run (exit status), then the throughput run
 * (figures), then the summary table and the JSON and HTML reports.
 */
export async function runLoadtest(options: LoadtestOptions, target?: Target): Promise<LoadtestOutcome> {
  target ??= await resolveTarget(options.LB_URL, options.REPLICAS, options.LB_PORT);
  try {
    const startedAt = new Date().toISOString();
    const accuracy = await runAccuracy({
      url: target.lbUrl,
      requests: options.REQUESTS,
      connections: options.CONNECTIONS,
      replicas: target.replicas,
    });
    const targets: Record<string, string> = { 'load balancer': target.lbUrl };
    if (target.directUrl) targets['one replica direct'] = target.directUrl;
    const throughput = options.DURATION > 0 ? await runThroughput({ targets, connections: options.CONCURRENCIES, durationSeconds: options.DURATION }) : [];
    const report: LoadtestReport = {
      startedAt,
      machine: machine(),
      target: { lbUrl: target.lbUrl, replicas: target.replicas, directUrl: target.directUrl },
      accuracy: { ...accuracy, requests: options.REQUESTS, connections: options.CONNECTIONS },
      throughput,
    };
    const files = await writeReports(report);
    return { report, files, ok: accuracy.report.ok };
  } finally {
    await target.stop?.();
  }
}

export function describeOutcome({ report, files, ok }: LoadtestOutcome): string {
  const lines = [summaryTables(report), `report: ${files.json}`, `        ${files.html}`];
  if (!ok) lines.push(`accuracy FAILED:\n${describeViolations(report.accuracy.report.violations)}`);
  if (report.accuracy.rateLimited > 0) {
    lines.push(
      `${report.accuracy.rateLimited} requests were refused by nginx's per-client rate limit (429): run the load from an ` +
        `exempt address (LB_RATE_LIMIT_EXEMPT) or turn the limit off for the test (local: LB_RATE_LIMIT=0; Docker: LB_RATE_LIMIT_OFF='#').`,
    );
  }
  return lines.join('\n');
}
