import { provideMonitoringStandIns } from '../../docker/support/monitoring-standins.js';
import { service } from '../../../formation/swarm-docker.js';
import type { Engine } from './topology.js';

/**
 * The monitoring override on the tier's swarm: its images and a way to ask
 * its Prometheus.
 *
 * The stand-ins for Prometheus and the two exporters are the Docker tier's
 * (test/docker/support/monitoring-standins.ts: Debian's packages, tagged as
 * the pins, cached in the same folder), built or loaded on the build engine
 * and pushed to the run's registry under their Docker Hub paths, which the
 * nodes pull through as their docker.io mirror. Grafana has none: no Debian
 * package, no reachable registry. The tier deploys it with 0 replicas
 * (GRAFANA_REPLICAS=0), so no node ever tries to pull it.
 */

/** The Docker tier's cache of stand-in images, shared with it. */
export const CACHE_DIR = process.env.HEADCOUNT_DOCKER_CACHE ?? '/var/cache/headcount-docker-tier';

/** Builds or loads the monitoring stand-ins on `build`, pushes them to `registry`; what is inside each, and the seconds the pushes took. */
export async function pushMonitoringStandIns(build: Engine, registry: string, log: (line: string) => void): Promise<{ inside: Record<string, string>; pushMs: number }> {
  const inside = await provideMonitoringStandIns({ ...process.env, ...build.env }, CACHE_DIR, log);
  let pushMs = 0;
  for (const image of Object.keys(inside)) {
    // prom/prometheus:v3.13.0 is docker.io/prom/prometheus: the mirror serves it as prom/prometheus.
    const mirrored = `${registry}/${image}`;
    await build.docker(['tag', image, mirrored]);
    pushMs += (await build.docker(['push', '--quiet', mirrored], { timeoutMs: 300_000 })).ms;
  }
  return { inside, pushMs };
}

export interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

/**
 * An instant query, asked of Prometheus inside its own container (wget, as its
 * healthcheck does) on whichever node runs it: nothing of the stack is
 * published, and the overlay's addresses are not reachable from the test.
 */
export async function promQuery(nodes: readonly Engine[], promql: string): Promise<Sample[]> {
  for (const node of nodes) {
    const ids = await node.docker(['ps', '--quiet', '--filter', `label=com.docker.swarm.service.name=${service('prometheus')}`], { allowFailure: true });
    const id = ids.stdout.trim().split('\n')[0];
    if (!id) continue;
    const url = `http://127.0.0.1:9090/api/v1/query?query=${encodeURIComponent(promql)}`;
    const out = await node.docker(['exec', id, 'wget', '-q', '-O', '-', url]);
    const body = JSON.parse(out.stdout) as { status: string; data: { result: Sample[] } };
    if (body.status !== 'success') throw new Error(`query ${promql}: ${out.stdout}`);
    return body.data.result;
  }
  throw new Error('no running Prometheus container on any node');
}
