import { runAccuracy } from './accuracy.js';
import type { LoadtestOptions } from './options.js';
import { machine, reportDirFor, summaryTables, writeReports, type LoadtestReport } from './report.js';
import { resolveTarget, type Target } from './target.js';
import { verdictText } from './terminal.js';
import { runThroughput } from './throughput.js';
import { judge, notChecked, parseAccepted, pass, type Check, type Verdict } from './verdict.js';

export interface LoadtestOutcome {
  report: LoadtestReport;
  files: { json: string; html: string };
  /** Exit code 0: every required check passed (or its NOT CHECKED was accepted). */
  ok: boolean;
  verdict: Verdict;
}

const n = (value: number) => value.toLocaleString('en-US');
/** 17,780 -> "18,000": an estimate should not look measured. */
const about = (value: number) => n(Number(value.toPrecision(2)));

/** What the run will do to the count, said before it starts: the accuracy run is exact, the throughput run is not bounded. */
export function describePlan(options: LoadtestOptions, target: Target, reportDir: string): string {
  const who = target.throwaway
    ? `a throwaway formation started for this run at ${target.lbUrl} (its count is deleted with it)`
    : `the formation at ${target.lbUrl}`;
  const replicas = target.replicas
    ? `${target.replicas.length} replicas listed by the formation (${target.replicas.join(', ')})`
    : target.expectedReplicas
      ? `replica list unknown: the X-Replica values seen are checked against ${target.expectedReplicas.count} expected (${target.expectedReplicas.source})`
      : 'replica list and expected count unknown: replica-share will be NOT CHECKED';
  const lines = [`make loadtest: ${who}; ${replicas}.`];
  const accuracy = `exactly ${n(options.REQUESTS)} visits from the accuracy run (REQUESTS)`;
  if (options.DURATION === 0) {
    lines.push(`It adds ${accuracy} to that count; no throughput run (DURATION=0).`);
  } else {
    const targets = target.directUrl ? ['load balancer', 'one replica direct'] : ['load balancer'];
    const seconds = options.DURATION * options.CONCURRENCIES.length * targets.length;
    const list = `${options.CONCURRENCIES.join(', ')} connections`;
    const levels = options.CONCURRENCIES.length === 1 ? `one concurrency (${list})` : `each of ${options.CONCURRENCIES.length} concurrencies (${list})`;
    lines.push(
      `It adds ${accuracy} to that count, then one more per request of the throughput run, which runs for a time, not a number ` +
        `of requests: ${options.DURATION} s at ${levels} ` +
        `against ${targets.join(' and ')}, ${seconds} s in all (DURATION=0 skips it).`,
    );
  }
  lines.push(`Reports will be written to ${reportDir}/ (report.json, report.html).`);
  return lines.join('\n');
}

/** The direct comparison is a figure, not an invariant: reported, never gating the exit code. */
function directComparison(options: LoadtestOptions, target: Target): Check {
  const name = 'direct comparison';
  if (options.DURATION === 0) return notChecked(name, 'no throughput run (DURATION=0)', false);
  if (!target.directUrl) {
    return notChecked(
      name,
      `no replica URL known: no local state file describes the formation at ${target.lbUrl} (LB_URL elsewhere, or Docker), so only the load balancer was measured`,
      false,
    );
  }
  return pass(name, `the load balancer against one replica direct (${target.directUrl}) at each concurrency: the "vs direct" column`, false);
}

/**
 * `make loadtest`: the accuracy run (the gate), then the throughput run
 * (figures), then the summary table and the JSON and HTML reports. `say`
 * receives what the run will add to the count, before it starts.
 */
export async function runLoadtest(options: LoadtestOptions, target?: Target, say: (text: string) => void = () => {}): Promise<LoadtestOutcome> {
  target ??= await resolveTarget(options.LB_URL, options.REPLICAS, options.LB_PORT);
  try {
    const startedAt = new Date().toISOString();
    say(describePlan(options, target, reportDirFor(startedAt)));
    const accuracy = await runAccuracy({
      url: target.lbUrl,
      requests: options.REQUESTS,
      connections: options.CONNECTIONS,
      replicas: target.replicas,
      expectedReplicas: target.replicas ? undefined : target.expectedReplicas,
    });
    const targets: Record<string, string> = { 'load balancer': target.lbUrl };
    if (target.directUrl) targets['one replica direct'] = target.directUrl;
    if (options.DURATION > 0) {
      const seconds = options.DURATION * options.CONCURRENCIES.length * Object.keys(targets).length;
      say(
        `Throughput run: ${seconds} s; at the accuracy run's ${n(Math.round(accuracy.requestsPerSecond))} req/s that would be ` +
          `${about(accuracy.requestsPerSecond * seconds)} more visits, a rough guess: each concurrency runs at its own speed (the total is printed at the end).`,
      );
    }
    const throughput = options.DURATION > 0 ? await runThroughput({ targets, connections: options.CONCURRENCIES, durationSeconds: options.DURATION }) : [];
    const checks = [...accuracy.report.checks, directComparison(options, target)];
    const verdict = judge(checks, { noun: 'checks', accepted: parseAccepted(options.ACCEPT_NOT_CHECKED) });
    const report: LoadtestReport = {
      startedAt,
      machine: machine(),
      target: { lbUrl: target.lbUrl, replicas: target.replicas, expectedReplicas: target.expectedReplicas, directUrl: target.directUrl, throwaway: target.throwaway },
      accuracy: { ...accuracy, requests: options.REQUESTS, connections: options.CONNECTIONS },
      throughput,
      checks,
      verdict,
      visitsAdded: { accuracy: accuracy.report.figures.ok, throughput: throughput.reduce((sum, row) => sum + row.counted, 0) },
    };
    const files = await writeReports(report);
    return { report, files, ok: verdict.exitCode === 0, verdict };
  } finally {
    await target.stop?.();
  }
}

export function describeOutcome({ report, files, verdict }: LoadtestOutcome, colour?: boolean): string {
  const { accuracy, throughput } = report.visitsAdded;
  const lines = [
    summaryTables(report, colour),
    `visits added to the count${report.target.throwaway ? ' (of the throwaway formation, now deleted)' : ''}: ` +
      `${n(accuracy + throughput)} (accuracy run ${n(accuracy)}, throughput run ${n(throughput)})`,
    `reports: ${files.json}`,
    `         ${files.html}`,
  ];
  if (report.accuracy.rateLimited > 0) {
    lines.push(
      `${report.accuracy.rateLimited} requests were refused by nginx's per-client rate limit (429): run the load from an ` +
        `exempt address (LB_RATE_LIMIT_EXEMPT) or turn the limit off for the test (local: LB_RATE_LIMIT=0; Docker: LB_RATE_LIMIT_OFF='#').`,
    );
  }
  lines.push(`verdict: ${verdictText(verdict.line, colour)}`);
  return lines.join('\n');
}
