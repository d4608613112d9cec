import http from 'node:http';
import type { VisitResult } from '../../../loadtest/invariants.js';

/**
 * Visits through the load balancer's published port, with at most
 * `connections` keep-alive connections (the tier's budget for the engine's
 * port proxy): more requests than that are in flight at once and queue on the
 * client's side, as a browser's do.
 */
export interface LbClient {
  /** One counting visit (GET / as JSON): status, visitor number, replica. A transport error is status 0. */
  visit(): Promise<VisitResult>;
  /** `n` visits sent at once. */
  visitAll(n: number): Promise<VisitResult[]>;
  get(path: string, headers?: http.OutgoingHttpHeaders): Promise<GetResult>;
  count(): Promise<number>;
  close(): void;
}

export type GetResult = { status: number; headers: http.IncomingHttpHeaders; body: string };

/** GET over `agent`'s keep-alive connections to host:port, the whole body as text; a request taking longer than `timeoutMs` is an error. */
export function keepAliveGet(agent: http.Agent, host: string, port: number, timeoutMs: number) {
  return (path: string, headers: http.OutgoingHttpHeaders = {}) =>
    new Promise<GetResult>((resolve, reject) => {
      const request = http.request({ host, port, path, agent, headers, timeout: timeoutMs }, (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
        response.on('error', reject);
      });
      request.on('timeout', () => request.destroy(new Error(`GET ${path} timed out after ${timeoutMs / 1000} s`)));
      request.on('error', reject);
      request.end();
    });
}

export function createLbClient(port: number, connections: number): LbClient {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const get = keepAliveGet(agent, '127.0.0.1', port, 30_000);

  const visit = async (): Promise<VisitResult> => {
    try {
      const response = await get('/', { accept: 'application/json' });
      const count = response.status === 200 ? (JSON.parse(response.body) as { count: number }).count : undefined;
      return { status: response.status, count, replica: response.headers['x-replica'] as string | undefined };
    } catch {
      return { status: 0 };
    }
  };

  return {
    visit,
    get,
    visitAll: (n) => Promise.all(Array.from({ length: n }, visit)),
    async count() {
      const response = await get('/api/count');
      if (response.status !== 200) throw new Error(`GET /api/count answered ${response.status}: ${response.body}`);
      return (JSON.parse(response.body) as { count: number }).count;
    },
    close: () => agent.destroy(),
  };
}

export interface Load {
  /** Stops sending, waits for the requests in flight, and returns every result. */
  stop(): Promise<VisitResult[]>;
}

/**
 * A steady load for "while X happens" tests: `concurrency` loops, each sending
 * one visit after another. Bounded: it stops by itself after `maxMs` even if
 * nobody calls stop().
 */
export function startLoad(client: LbClient, concurrency: number, maxMs = 120_000): Load {
  const results: VisitResult[] = [];
  let running = true;
  const deadline = Date.now() + maxMs;
  const loop = async () => {
    while (running && Date.now() < deadline) results.push(await client.visit());
  };
  const loops = Array.from({ length: concurrency }, loop);
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return results;
    },
  };
}

/** Status code → how many, for failure messages. */
export const statusTally = (results: readonly VisitResult[]) =>
  results.reduce<Record<number, number>>((tally, r) => ({ ...tally, [r.status]: (tally[r.status] ?? 0) + 1 }), {});
