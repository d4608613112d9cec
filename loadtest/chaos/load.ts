import { fire } from '../cannon.js';
import type { VisitResult } from '../invariants.js';

export interface TimedResult extends VisitResult {
  /** Time from sending to the response, in ms (autocannon keeps one request in flight per connection). */
  ms: number;
  /** When the response arrived, ms since the run started. */
  at: number;
  retryAfter?: string;
  /** nginx's $request_id, echoed in X-Request-Id: the key of this visit's idempotency record. */
  requestId?: string;
}

export interface LoadRun {
  results: TimedResult[];
  sent: number;
  errors: number;
  timeouts: number;
  durationSeconds: number;
}

export interface LoadOptions {
  url: string;
  durationSeconds: number;
  connections?: number;
  /** Requests per second over all connections (default 600, well below capacity). */
  rate?: number;
  /** Per-request timeout in seconds. */
  timeout?: number;
}

/**
 * A bounded autocannon load on `GET /` that records every response's status,
 * visitor number, replica, latency and Retry-After, while `during` injects
 * the fault. Resolves when both are done.
 *
 * The load is a fixed number of requests (rate x duration) at a fixed rate,
 * not a duration: autocannon then waits for every response, so each request
 * sent is accounted for (a duration-bound run drops the replies still in
 * flight when time is up, though the server counted them).
 */
export async function underLoad(options: LoadOptions, during: (elapsedMs: () => number) => Promise<void>): Promise<LoadRun> {
  const results: TimedResult[] = [];
  const started = performance.now();
  const elapsed = () => performance.now() - started;
  const load = fire(
    {
      url: options.url,
      amount: Math.round((options.rate ?? 600) * options.durationSeconds),
      overallRate: options.rate ?? 600,
      connections: options.connections ?? 20,
      timeout: options.timeout ?? 10,
      requests: [
        {
          method: 'GET',
          path: '/',
          headers: { accept: 'application/json' },
          setupRequest: (request, context) => {
            (context as { sentAt?: number }).sentAt = performance.now();
            return request;
          },
          onResponse: (status, body, context, headers) => {
            const now = performance.now();
            let count: number | undefined;
            try {
              count = (JSON.parse(body) as { count?: number }).count;
            } catch {
              // an error page
            }
            const header = (name: string) => {
              const value = headers?.[name] ?? headers?.[name.toLowerCase()];
              return typeof value === 'string' ? value : undefined;
            };
            results.push({
              status,
              count,
              replica: header('X-Replica'),
              retryAfter: header('Retry-After'),
              requestId: header('X-Request-Id'),
              ms: now - ((context as { sentAt?: number }).sentAt ?? now),
              at: now - started,
            });
          },
        },
      ],
    },
    `chaos load: ${options.durationSeconds} s at ${options.connections ?? 20} connections`,
  );
  const [result] = await Promise.all([load, during(elapsed)]);
  // Every request is accounted for: a response, or a transport error.
  return { results, sent: results.length + result.errors, errors: result.errors, timeouts: result.timeouts, durationSeconds: result.duration };
}

/** The p-th percentile (0-100) of a list of numbers; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
