import { fire } from '../cannon.js';
import { visitRequest, type VisitResponse } from '../visit-request.js';

export interface TimedResult extends VisitResponse {
  /** When the response arrived, ms since the run started. */
  at: number;
}

export interface LoadRun {
  results: TimedResult[];
  sent: number;
  errors: number;
  timeouts: number;
  durationSeconds: number;
  /** Waits of the fault (LoadProgress) that the load ended before meeting: the fault then ran with no load. */
  missedMilestones: number;
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

/** What a fault sees of the load it runs under. */
export interface LoadProgress {
  /** ms since the load started. */
  elapsed(): number;
  /**
   * Resolves once `n` more responses have arrived (from now): the load is
   * flowing, whatever the machine's speed. False if the load ended first.
   */
  responses(n: number): Promise<boolean>;
  /** Resolves once `n` more 2xx responses have arrived (from now): counting works again. False if the load ended first. */
  successes(n: number): Promise<boolean>;
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
export async function underLoad(options: LoadOptions, during: (load: LoadProgress) => Promise<void>): Promise<LoadRun> {
  const results: TimedResult[] = [];
  const started = performance.now();
  let successes = 0;
  let missedMilestones = 0;
  const waiters: { target: () => boolean; resolve: (met: boolean) => void }[] = [];
  const wake = () => {
    for (const waiter of [...waiters]) {
      if (waiter.target()) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(true);
      }
    }
  };
  let ended = false;
  const until = (target: () => boolean) =>
    new Promise<boolean>((resolve) => {
      if (target()) resolve(true);
      else if (ended) {
        missedMilestones += 1;
        resolve(false);
      } else waiters.push({ target, resolve });
    });
  const progress: LoadProgress = {
    elapsed: () => performance.now() - started,
    responses(n) {
      const goal = results.length + n;
      return until(() => results.length >= goal);
    },
    successes(n) {
      const goal = successes + n;
      return until(() => successes >= goal);
    },
  };
  const rate = options.rate ?? 600;
  const amount = Math.round(rate * options.durationSeconds);
  const load = fire(
    {
      url: options.url,
      amount,
      overallRate: rate,
      connections: options.connections ?? 20,
      timeout: options.timeout ?? 10,
      requests: [
        visitRequest((response) => {
          results.push({ ...response, at: response.receivedAt - started });
          if (response.status >= 200 && response.status < 300) successes += 1;
          wake();
        }),
      ],
    },
    `chaos load: ${options.durationSeconds} s at ${options.connections ?? 20} connections`,
  );
  // A fault that waits for responses the load will never send must not hang the run.
  const done = load.finally(() => {
    ended = true;
    for (const waiter of waiters.splice(0)) {
      missedMilestones += 1;
      waiter.resolve(false);
    }
  });
  const [result] = await Promise.all([done, during(progress)]);
  // Every request is accounted for: a response, or a transport error.
  return {
    results,
    sent: results.length + result.errors,
    errors: result.errors,
    timeouts: result.timeouts,
    durationSeconds: result.duration,
    missedMilestones,
  };
}

/** The p-th percentile (0-100) of a list of numbers; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
