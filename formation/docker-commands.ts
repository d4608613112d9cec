import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { keepRunningRelease } from './docker-deploy.js';
import { defaultPrometheusPort } from './monitoring.js';
import type { FormationOptions } from './options.js';
import { ROOT } from './paths.js';

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Docker mode: the same verbs as the local formation, as docker compose
 * commands on docker-compose.yml. A formation on a port other than 8080 gets
 * its own project name, so `make stop LB_PORT=p` touches only that one.
 */
export const projectName = (o: Pick<FormationOptions, 'LB_PORT'>) => (o.LB_PORT === 8080 ? 'headcount' : `headcount-${o.LB_PORT}`);

/**
 * The env file compose interpolates docker-compose.yml from: ENV_FILE (default
 * `.env`, which compose reads by itself), relative to the directory make runs
 * in. A missing `.env` is a fresh clone's normal state; any other file that is
 * missing is a mistake worth stopping for.
 */
export function envFileOf(env: Env, cwd = process.cwd()): string | undefined {
  const name = env.ENV_FILE;
  if (name === undefined || name === '') return undefined;
  const file = path.resolve(cwd, name);
  if (existsSync(file)) return file;
  if (name === '.env' || file === path.join(ROOT, '.env')) return undefined;
  throw new Error(`ENV_FILE=${name}: no such file (${file})`);
}

/** `docker compose` and its global options for the formation on LB_PORT: the project, and the env file when ENV_FILE names one. */
export function composeArgv(options: Pick<FormationOptions, 'LB_PORT'>, env: Env = process.env): string[] {
  const envFile = envFileOf(env);
  return ['compose', '-p', projectName(options), ...(envFile ? ['--env-file', envFile] : [])];
}

/**
 * PROMETHEUS_PORT for the monitoring profile: the one set, else local mode's
 * default (LB_PORT + 1010: 9090 beside 8080), so a second formation's
 * Prometheus, or one beside LB_PORT=9090, has a port of its own.
 */
export const prometheusPortOf = (options: Pick<FormationOptions, 'LB_PORT'> & Partial<Pick<FormationOptions, 'PROMETHEUS_PORT'>>) =>
  options.PROMETHEUS_PORT ?? defaultPrometheusPort(options.LB_PORT);

/** The environment every docker command of the formation runs with: the caller's (COMPOSE_FILE too), with the formation's LB_PORT. */
export const composeEnv = (
  options: Pick<FormationOptions, 'LB_PORT'> & Partial<Pick<FormationOptions, 'MONITORING' | 'PROMETHEUS_PORT'>>,
  env: Env = process.env,
): NodeJS.ProcessEnv => ({
  ...env,
  LB_PORT: String(options.LB_PORT),
  // MONITORING=1: the `monitoring` profile (Prometheus, exporters, Grafana) in
  // every compose command of the formation, so `make stop` stops it too, and
  // its Prometheus on the port the options say (docker-compose.yml's own
  // default, 9090, would collide between two formations).
  ...(options.MONITORING
    ? { COMPOSE_PROFILES: [env.COMPOSE_PROFILES, 'monitoring'].filter(Boolean).join(','), PROMETHEUS_PORT: String(prometheusPortOf(options)) }
    : {}),
});

/** One service's line of `docker compose ps --format json` (the fields read here). */
export interface ComposePsEntry {
  Service: string;
  State?: string;
  Publishers?: { URL?: string; TargetPort?: number; PublishedPort?: number }[] | null;
}

/** `docker compose ps --format json`: one object a line (Compose 2.21 and later) or one array (before). */
export function parseComposePs(stdout: string): ComposePsEntry[] {
  const text = stdout.trim();
  if (text === '') return [];
  if (text.startsWith('[')) return JSON.parse(text) as ComposePsEntry[];
  return text.split('\n').filter(Boolean).map((line) => JSON.parse(line) as ComposePsEntry);
}

/**
 * ` Prometheus: ..., Grafana: ....` for the ready line: the monitoring UIs
 * that run, each at the address compose published it on (docker-compose.yml:
 * 127.0.0.1), as `docker compose ps` reports them. A service that does not run
 * (Grafana left out by an override, say) is not named: the line promises only
 * what answers.
 */
export function monitoringUrlsNote(options: Partial<Pick<FormationOptions, 'MONITORING'>>, running: readonly ComposePsEntry[]): string {
  if (!options.MONITORING) return '';
  const urlOf = (service: string, targetPort: number) => {
    const entry = running.find((e) => e.Service === service && (e.State ?? 'running') === 'running');
    const published = entry?.Publishers?.find((p) => p.TargetPort === targetPort && p.PublishedPort);
    if (!published) return undefined;
    const host = !published.URL || published.URL === '0.0.0.0' || published.URL === '::' ? 'localhost' : published.URL;
    return `http://${host.includes(':') ? `[${host}]` : host}:${published.PublishedPort}`;
  };
  const urls = [
    ['Prometheus', urlOf('prometheus', 9090)],
    ['Grafana', urlOf('grafana', 3000)],
  ].filter((pair): pair is [string, string] => pair[1] !== undefined);
  return urls.length === 0 ? '' : ` ${urls.map(([name, url]) => `${name}: ${url}`).join(', ')}.`;
}

function compose(options: FormationOptions, args: readonly string[], extraEnv: Record<string, string> = {}): number {
  const argv = [...composeArgv(options), ...args];
  process.stderr.write(`+ docker ${argv.join(' ')}\n`);
  const result = spawnSync('docker', argv, { cwd: ROOT, stdio: 'inherit', env: { ...composeEnv(options), ...extraEnv } });
  return result.status ?? 1;
}

export const scaleArgs = (options: Pick<FormationOptions, 'REPLICAS'>) => ['--scale', `web=${options.REPLICAS}`];

/**
 * `up`'s build flag and extra environment: --build from the working tree,
 * unless a release runs (formation/docker-deploy.ts keepRunningRelease): then
 * its image as it is, never rebuilt under the release's tag.
 */
export function upBuild(options: FormationOptions, env: Env = process.env): { args: string[]; env: Record<string, string> } {
  const release = keepRunningRelease(options, composeEnv(options, env));
  return release ? { args: ['--no-build'], env: release } : { args: ['--build'], env: {} };
}

export const dockerCommands = {
  start: (o: FormationOptions) => {
    const build = upBuild(o);
    return compose(o, ['up', ...build.args, '--detach', '--wait', ...scaleArgs(o)], build.env);
  },
  stop: (o: FormationOptions) => compose(o, ['down']),
  status: (o: FormationOptions) => compose(o, ['ps']),
  // Every service's output, prefixed by container, as it comes (Ctrl-C ends it).
  logs: (o: FormationOptions) => compose(o, ['logs', '--follow']),
  // The admin task runs the running release's image, as the replicas do.
  resetCount: (o: FormationOptions, value = '0') =>
    compose(o, ['--profile', 'admin', 'run', '--rm', 'admin', 'node', 'dist/admin/reset-count.js', value], keepRunningRelease(o, composeEnv(o))),
  // One replica at a time, so the others keep serving (`docker compose restart
  // web` would stop them all at once). `docker restart` stops with the
  // container's own grace period (web.stop_grace_period) and signal.
  restart: (o: FormationOptions) => {
    const ids = spawnSync('docker', [...composeArgv(o), 'ps', '--quiet', 'web'], { cwd: ROOT, encoding: 'utf8', env: composeEnv(o) });
    const replicas = ids.stdout.split('\n').filter(Boolean);
    if (ids.status !== 0 || replicas.length === 0) {
      process.stderr.write(`no running web replicas in compose project ${projectName(o)}\n${ids.stderr}`);
      return 1;
    }
    for (const [i, id] of replicas.entries()) {
      const before = containerState(id)?.StartedAt;
      process.stderr.write(`+ docker restart ${id.slice(0, 12)} (${i + 1}/${replicas.length})\n`);
      if (spawnSync('docker', ['restart', id], { stdio: ['ignore', 'ignore', 'inherit'] }).status !== 0) return 1;
      if (waitHealthy(id, before) !== 0) return 1;
      // nginx re-resolves `web` every 2 s (LB_RESOLVER in docker-compose.yml):
      // let it pick up the restarted replica's address before the next goes.
      if (i < replicas.length - 1) spawnSync('sleep', ['3']);
    }
    return 0;
  },
};

interface ContainerState {
  StartedAt: string;
  Health?: { Status: string; Log?: { Start: string }[] };
}

function containerState(id: string): ContainerState | undefined {
  const r = spawnSync('docker', ['inspect', '--format', '{{json .State}}', id], { encoding: 'utf8' });
  return r.status === 0 ? (JSON.parse(r.stdout) as ContainerState) : undefined;
}

/**
 * Healthy again after the restart: started anew, and a probe run since then
 * passed (the status alone can still be the one from before the restart).
 */
function waitHealthy(id: string, startedBefore: string | undefined): number {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const state = containerState(id);
    const lastProbe = state?.Health?.Log?.at(-1)?.Start;
    if (
      state &&
      state.StartedAt !== startedBefore &&
      state.Health?.Status === 'healthy' &&
      lastProbe !== undefined &&
      Date.parse(lastProbe) > Date.parse(state.StartedAt)
    ) {
      return 0;
    }
    spawnSync('sleep', ['0.5']);
  }
  process.stderr.write(`container ${id.slice(0, 12)} did not become healthy within 60 s\n`);
  return 1;
}
