import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fromRoot } from './paths.js';
import { requireExecutable } from './prerequisites.js';
import { Service, type LineSink } from './supervisor.js';
import { httpOk, waitFor } from './wait.js';

// The local formation's monitoring (`make up MONITORING=1`): Debian's
// Prometheus, nginx exporter and Redis exporter as supervised processes beside
// the formation, stopped with it. docs/metrics.md says what each exports.

export const PROMETHEUS_TEMPLATE = fromRoot('monitoring', 'prometheus', 'prometheus.local.yml.template');
/** The alerting rules, when the checkout has them (monitoring/prometheus/rules/). */
export const RULES_GLOB = fromRoot('monitoring', 'prometheus', 'rules', '*.rules.yml');

/** Where Prometheus keeps its config, data and the replicas' target list, per formation. */
export const prometheusDirOf = (stateDir: string) => path.resolve(stateDir, 'prometheus');
/** The file_sd target list of the headcount-web job, which the supervisor keeps current. */
export const webTargetsFileOf = (stateDir: string) => path.join(prometheusDirOf(stateDir), 'targets', 'web.json');

/**
 * PROMETHEUS_PORT's default: 9090 beside the default LB_PORT 8080, and as far
 * from any other LB_PORT, so a second formation's Prometheus has a port of its own.
 */
export const defaultPrometheusPort = (lbPort: number) => (lbPort + 1_010 <= 65_535 ? lbPort + 1_010 : lbPort - 1_010);

export interface ScrapeTarget {
  replica: string;
  metricsPort: number;
}

/**
 * Writes the headcount-web target list: one entry per replica, labelled
 * `replica`. Written beside and renamed over, so Prometheus (which rereads it
 * on inotify) never reads half a file.
 */
export async function writeWebTargets(file: string, targets: readonly ScrapeTarget[]): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const list = targets.map((t) => ({ targets: [`127.0.0.1:${t.metricsPort}`], labels: { replica: t.replica } }));
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(list, null, 2)}\n`);
  await rename(temporary, file);
}

/** Fills the template's ${NAME} placeholders; a name without a value is an error, not an empty string. */
export function renderPrometheusConfig(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\$\{([A-Z_]+)\}/g, (_m, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`prometheus.local.yml.template needs ${name}`);
    return value;
  });
}

export interface MonitoringOptions {
  stateDir: string;
  prometheusPort: number;
  /** nginx's stub_status URL (its LB_STATUS_LISTEN listener). */
  stubStatusUrl: string;
  /** Where the Redis exporter logs in (redis://host:port) and as whom. */
  redis: { address: string; user?: string; password?: string };
  nginxExporterPort: number;
  redisExporterPort: number;
  sink: LineSink;
  outputOf: (name: string) => number | undefined;
  announce: boolean;
  /** Each started service is handed here at once, so a failed start still stops it. */
  onStarted: (service: Service) => void;
}

/** Starts both exporters, then Prometheus, and waits until each answers. Resolves with Prometheus's URL. */
export async function startMonitoring(options: MonitoringOptions): Promise<string> {
  const { stateDir, prometheusPort, sink, outputOf, announce } = options;
  const dir = prometheusDirOf(stateDir);
  await mkdir(path.join(dir, 'data'), { recursive: true });

  const run = async (name: string, program: string, args: string[], readyUrl: string, env?: Record<string, string>) => {
    const service = new Service({ name, command: requireExecutable(program), args, env, restart: true, logFd: outputOf(name), announce }, sink);
    service.start();
    options.onStarted(service);
    await waitFor(`${name} at ${readyUrl}`, () => httpOk(readyUrl), 20_000, 100);
    if (announce) sink(name, `ready at ${readyUrl}`);
  };

  const nginxExporter = `127.0.0.1:${options.nginxExporterPort}`;
  await run('nginx-exporter', 'prometheus-nginx-exporter', ['-nginx.scrape-uri', options.stubStatusUrl, '-web.listen-address', nginxExporter], `http://${nginxExporter}/metrics`);

  const redisExporter = `127.0.0.1:${options.redisExporterPort}`;
  await run(
    'redis-exporter',
    'prometheus-redis-exporter',
    ['-redis.addr', options.redis.address, ...(options.redis.user ? ['-redis.user', options.redis.user] : []), '-web.listen-address', redisExporter],
    `http://${redisExporter}/metrics`,
    // 1.45 reads the password from REDIS_PASSWORD when -redis.password is not
    // given: in its environment, it stays off the command line (ps). Always
    // set, so an operator's REDIS_PASSWORD in this environment never leaks in.
    { REDIS_PASSWORD: options.redis.password ?? '' },
  );

  const prometheusAddress = `127.0.0.1:${prometheusPort}`;
  const config = renderPrometheusConfig(await readFile(PROMETHEUS_TEMPLATE, 'utf8'), {
    RULES_GLOB,
    WEB_TARGETS_FILE: webTargetsFileOf(stateDir),
    NGINX_EXPORTER_ADDRESS: nginxExporter,
    REDIS_EXPORTER_ADDRESS: redisExporter,
    PROMETHEUS_ADDRESS: prometheusAddress,
  });
  const configFile = path.join(dir, 'prometheus.yml');
  await writeFile(configFile, config);
  const url = `http://${prometheusAddress}`;
  await run(
    'prometheus',
    'prometheus',
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      // A local demo's history: two days is plenty, and keeps .run small.
      '--storage.tsdb.retention.time=2d',
      `--web.listen-address=${prometheusAddress}`,
    ],
    `${url}/-/ready`,
  );
  return url;
}
