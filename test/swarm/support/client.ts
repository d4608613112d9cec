import http from 'node:http';
import { keepAliveGet } from '../../docker/support/load.js';

/** One visit's outcome as the client saw it. status 0: a transport error (no response). */
export interface Visit {
  status: number;
  count?: number;
  replica?: string;
  release?: string;
  /** nginx's $request_id (X-Request-Id), the visit's idempotency key in Redis. */
  requestId?: string;
  ms: number;
  /** When it ended, ms since the client was made. */
  at: number;
}

/**
 * Visits through the load balancer at node 1's address (the test's own link
 * into the namespaces), over at most `connections` keep-alive connections.
 */
export function createClient(address: string, port = 8080, connections = 64) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const origin = performance.now();
  const get = keepAliveGet(agent, address, port, 15_000);

  const visit = async (): Promise<Visit> => {
    const started = performance.now();
    try {
      const r = await get('/', { accept: 'application/json' });
      const count = r.status === 200 ? (JSON.parse(r.body) as { count: number }).count : undefined;
      const header = (name: string) => r.headers[name] as string | undefined;
      return {
        status: r.status,
        count,
        replica: header('x-replica'),
        release: header('x-release'),
        requestId: header('x-request-id'),
        ms: performance.now() - started,
        at: performance.now() - origin,
      };
    } catch {
      return { status: 0, ms: performance.now() - started, at: performance.now() - origin };
    }
  };

  return {
    get,
    visit,
    /** `n` visits, at most `connections` in flight. */
    visitAll: (n: number) => Promise.all(Array.from({ length: n }, visit)),
    async count(): Promise<number> {
      const r = await get('/api/count');
      if (r.status !== 200) throw new Error(`GET /api/count answered ${r.status}: ${r.body}`);
      return (JSON.parse(r.body) as { count: number }).count;
    },
    close: () => agent.destroy(),
  };
}

export type Client = ReturnType<typeof createClient>;

/**
 * A steady load for "while X happens": `concurrency` loops, one visit after
 * another each. Bounded in time (`maxMs`) and count (`maxVisits`) whatever
 * the test does.
 */
export function startLoad(client: Client, concurrency: number, { maxMs = 180_000, maxVisits = 200_000 } = {}) {
  const visits: Visit[] = [];
  let running = true;
  const deadline = Date.now() + maxMs;
  const loop = async () => {
    while (running && Date.now() < deadline && visits.length < maxVisits) visits.push(await client.visit());
  };
  const loops = Array.from({ length: concurrency }, loop);
  return {
    visits,
    async stop(): Promise<Visit[]> {
      running = false;
      await Promise.all(loops);
      return visits;
    },
  };
}

export const tally = (visits: readonly Visit[]) =>
  visits.reduce<Record<number, number>>((t, v) => ({ ...t, [v.status]: (t[v.status] ?? 0) + 1 }), {});
export const ok = (visits: readonly Visit[]) => visits.filter((v) => v.status >= 200 && v.status < 300);
