import { EXPORTER_SECRET, NETWORK, STACK, docker, dockerOk, exporterPasswordMap, randomPassword, service, type Env } from './swarm-docker.js';

/**
 * MONITORING=1 on Swarm: docker-compose.swarm.monitoring.yml beside the stack
 * (Prometheus, the nginx and Redis exporters, Grafana). What the override
 * needs before a deploy (the exporter's secret), and what `make up` prints
 * after it: where Prometheus (and Grafana, when it runs) can be reached.
 */

/** The image the tunnel runs: the stack's own nginx, which every node has pulled already. */
export const TUNNEL_IMAGE = 'nginx:1.31.6-trixie';

/**
 * Creates the exporter's password map as a Swarm secret when it is missing:
 * a random password under both keys (exporterPasswordMap). An existing one is
 * never changed: Redis and the exporter read the same secret at every start.
 * Returns whether it created one.
 */
export async function ensureExporterSecret(env: Env, say: (line: string) => void): Promise<boolean> {
  if ((await docker(['secret', 'inspect', EXPORTER_SECRET], env)).code === 0) return false;
  await dockerOk(['secret', 'create', EXPORTER_SECRET, '-'], env, exporterPasswordMap(randomPassword()));
  say(`created secret ${EXPORTER_SECRET}`);
  return true;
}

/**
 * The command that makes a service of the stack reachable on this machine's
 * loopback: a throwaway nginx on the stack's attachable network, publishing
 * `localPort` on 127.0.0.1 of the engine it runs on (the manager the CLI talks
 * to) and proxying to `target` (e.g. prometheus:9090). Nothing of the stack is
 * published itself: a Swarm port cannot be bound to the loopback, and neither
 * Prometheus nor Grafana asks for a login. Plain HTTP proxying, so it needs no
 * stream module. `docker rm -f <name>` closes it.
 */
export function tunnelCommand(name: string, localPort: number, target: string): string {
  const conf = `events {} pid /tmp/nginx.pid; http { server { listen ${target.split(':')[1]}; location / { proxy_pass http://${target}; } } }`;
  return [
    'docker run --rm --detach',
    `--name ${STACK}-${name}-tunnel`,
    `--network ${NETWORK}`,
    `--publish 127.0.0.1:${localPort}:${target.split(':')[1]}`,
    TUNNEL_IMAGE,
    `sh -c 'echo "${conf}" >/tmp/n.conf && exec nginx -c /tmp/n.conf -g "daemon off;"'`,
  ].join(' ');
}

export interface MonitoringState {
  /** The node (hostname) Prometheus's task runs on, if it runs. */
  prometheusNode?: string;
  grafana: { running: number; desired: number; node?: string };
  prometheusPort: number;
  grafanaPort: number;
}

/**
 * What `make up MODE=swarm MONITORING=1` prints after the ready line: where
 * Prometheus is and the command that opens it on 127.0.0.1; Grafana's the
 * same when it runs, and plainly that it does not when it was deployed with
 * no replica (GRAFANA_REPLICAS=0).
 */
export function monitoringReadyLines(state: MonitoringState): string[] {
  const lines = [
    `Prometheus: prometheus:9090 on network ${NETWORK} (task on node ${state.prometheusNode ?? 'unknown'}), not published. ` +
      `To open it at http://127.0.0.1:${state.prometheusPort} on this manager:`,
    `  ${tunnelCommand('prometheus', state.prometheusPort, 'prometheus:9090')}`,
  ];
  if (state.grafana.desired === 0) {
    lines.push(`Grafana: not running (${service('grafana')} deployed with 0 replicas, GRAFANA_REPLICAS=0).`);
  } else {
    lines.push(
      `Grafana: grafana:3000 on network ${NETWORK} (${state.grafana.running}/${state.grafana.desired} running, node ${state.grafana.node ?? 'unknown'}). ` +
        `To open it at http://127.0.0.1:${state.grafanaPort}:`,
      `  ${tunnelCommand('grafana', state.grafanaPort, 'grafana:3000')}`,
    );
  }
  return lines;
}
