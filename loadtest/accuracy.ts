import { fire, latencyOf, requestsPerSecond } from './cannon.js';
import { checkAccuracy, type AccuracyInput, type AccuracyReport, type VisitResult } from './invariants.js';
import { visitRequest } from './visit-request.js';

export interface AccuracyRunOptions {
  /** The load balancer's base URL. */
  url: string;
  /** Fixed number of requests (autocannon `amount`). */
  requests: number;
  connections: number;
  /** Replica ids expected to share the load evenly, if known. */
  replicas?: readonly string[];
  /** Otherwise, how many replicas should answer (the X-Replica values seen are judged against it). */
  expectedReplicas?: AccuracyInput['expectedReplicas'];
}

export interface AccuracyRun {
  report: AccuracyReport;
  countBefore: number;
  countAfter: number;
  requestsPerSecond: number;
  latency: ReturnType<typeof latencyOf>;
  durationSeconds: number;
  /** Responses refused by nginx's per-client rate limit. */
  rateLimited: number;
}

export async function readCount(url: string): Promise<number> {
  const response = await fetch(new URL('/api/count', url), { signal: AbortSignal.timeout(5_000) });
  if (!response.ok) throw new Error(`GET /api/count answered ${response.status}`);
  return ((await response.json()) as { count: number }).count;
}

/**
 * The accuracy run: a fixed number of visits through the load balancer,
 * recording every response's visitor number and replica, judged by the
 * invariants in invariants.ts.
 */
export async function runAccuracy(options: AccuracyRunOptions): Promise<AccuracyRun> {
  const results: VisitResult[] = [];
  const countBefore = await readCount(options.url);
  const result = await fire(
    {
      url: options.url,
      amount: options.requests,
      connections: options.connections,
      timeout: 10,
      requests: [visitRequest((r) => results.push({ status: r.status, count: r.count, replica: r.replica }))],
    },
    `accuracy: ${options.requests} requests at ${options.connections} connections`,
  );
  const countAfter = await readCount(options.url);
  const report = checkAccuracy({
    countBefore,
    countAfter,
    sent: result.requests.sent,
    results,
    errors: result.errors,
    timeouts: result.timeouts,
    replicas: options.replicas,
    expectedReplicas: options.expectedReplicas,
  });
  return {
    report,
    countBefore,
    countAfter,
    requestsPerSecond: requestsPerSecond(result),
    latency: latencyOf(result),
    durationSeconds: result.duration,
    rateLimited: results.filter((r) => r.status === 429).length,
  };
}
