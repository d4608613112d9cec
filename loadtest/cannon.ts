import autocannon from 'autocannon';
import { colourOn } from './terminal.js';

export type CannonOptions = autocannon.Options;
export type CannonResult = autocannon.Result;

/**
 * Runs autocannon (programmatic API) to completion, with its progress bar on
 * stderr when that is a terminal. Nothing else is printed: callers summarise.
 */
export function fire(options: CannonOptions, label: string): Promise<CannonResult> {
  return new Promise((resolve, reject) => {
    const instance = autocannon({ ...options, title: label }, (error, result) => (error ? reject(error) : resolve(result)));
    if (process.stderr.isTTY) {
      process.stderr.write(`${label}\n`);
      autocannon.track(instance, {
        outputStream: process.stderr,
        renderProgressBar: true,
        renderResultsTable: false,
        renderLatencyTable: false,
        // autocannon's default paints "running" green whatever NO_COLOR says.
        ...(colourOn(process.stderr) ? {} : { progressBarString: 'running [:bar] :percent' }),
      });
    }
  });
}

/** The latency figures every report shows, in milliseconds. */
export function latencyOf(result: CannonResult) {
  const { p50, p90, p99, max, mean } = result.latency;
  return { p50, p90, p99, max, mean, distribution: latencyDistribution(result) };
}

/**
 * Requests per second over the whole run (completed requests / elapsed time),
 * not autocannon's mean of per-second samples, which a short run skews.
 */
export const requestsPerSecond = (result: CannonResult) => result.requests.total / Math.max(result.duration, 0.001);

/** The latency distribution as (percentile, ms) points, for the report's chart. */
export function latencyDistribution(result: CannonResult): { percentile: number; ms: number }[] {
  return Object.entries(result.latency)
    .filter(([key]) => /^p\d+(_\d+)?$/.test(key))
    .map(([key, ms]) => ({ percentile: Number(key.slice(1).replace('_', '.')), ms: Number(ms) }))
    .sort((a, b) => a.percentile - b.percentile);
}
