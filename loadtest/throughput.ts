import { fire, latencyOf, requestsPerSecond } from './cannon.js';

export interface ThroughputRow {
  target: string;
  connections: number;
  requestsPerSecond: number;
  latency: ReturnType<typeof latencyOf>;
  errors: number;
  non2xx: number;
  /** Responses that were 2xx: each added one visit to the count. */
  counted: number;
}

export interface ThroughputOptions {
  /** Named targets, e.g. { 'load balancer': url, 'one replica direct': url }. */
  targets: Readonly<Record<string, string>>;
  connections: readonly number[];
  durationSeconds: number;
}

/**
 * The throughput run: a fixed duration at each concurrency, against each
 * target in turn (same machine, same run, so the figures compare).
 */
export async function runThroughput(options: ThroughputOptions): Promise<ThroughputRow[]> {
  const rows: ThroughputRow[] = [];
  for (const connections of options.connections) {
    for (const [target, url] of Object.entries(options.targets)) {
      const result = await fire(
        {
          url,
          connections,
          duration: options.durationSeconds,
          timeout: 10,
          requests: [{ method: 'GET', path: '/', headers: { accept: 'application/json' } }],
        },
        `throughput: ${target}, ${connections} connections, ${options.durationSeconds} s`,
      );
      rows.push({
        target,
        connections,
        requestsPerSecond: requestsPerSecond(result),
        latency: latencyOf(result),
        errors: result.errors,
        non2xx: result.non2xx,
        counted: result['2xx'],
      });
    }
  }
  return rows;
}
