import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { findRelease } from './ledger.js';
import { defaultPrometheusPort } from './monitoring.js';
import type { FormationOptions } from './options.js';
import { ROOT } from './paths.js';
import {
  configDigest,
  docker,
  dockerOk,
  monitoringConfigDigest,
  NETWORK,
  poll,
  randomPassword,
  REDIS_LABEL,
  SECRETS,
  service,
  STACK,
  stackFiles,
  stackServices,
  updateStatus,
  webSpec,
  type Env,
  type ServiceState,
  type UpdateStatus,
} from './swarm-docker.js';
import { ensureExporterSecret, monitoringReadyLines } from './swarm-monitoring.js';

/**
 * MODE=swarm: the formation as the stack docker-compose.swarm.yml on the swarm
 * the environment's Docker engine manages (DOCKER_HOST or DOCKER_CONTEXT name
 * a manager). It never creates a swarm (`docker swarm init` is the operator's
 * decision): it deploys onto one. Every verb returns the process's exit code.
 */

type SwarmOptions = Pick<FormationOptions, 'LB_PORT' | 'REPLICAS'> & Partial<Pick<FormationOptions, 'MONITORING' | 'PROMETHEUS_PORT'>>;

/** What a deploy needs of a release record (formation/ledger.ts ReleaseRecord fits). */
export interface SwarmRelease {
  id: string;
  /** The registry-qualified image every node can pull. */
  image?: string;
  /** The release's non-secret replica config (COUNTER_KEY, ...): the stack file's ${...} take these values. */
  config?: Record<string, string>;
}

const say = (line: string) => process.stdout.write(`${line}\n`);
const complain = (line: string) => process.stderr.write(`${line}\n`);

/** This engine is a swarm manager, or an error that says what to do. */
async function requireManager(env: Env): Promise<void> {
  const info = await docker(['info', '--format', '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}'], env);
  if (info.code !== 0) throw new Error(`no Docker engine answers (DOCKER_HOST, DOCKER_CONTEXT):\n${info.stderr.trim()}`);
  if (info.stdout.trim() !== 'active true') {
    throw new Error(
      `this Docker engine is not a swarm manager (swarm: ${info.stdout.trim()}). Point DOCKER_HOST or DOCKER_CONTEXT at a manager; ` +
        'a new swarm is made by `docker swarm init`, which headcount never runs for you (docs/swarm.md)',
    );
  }
}

/** The three Redis passwords as Swarm secrets: created with random values when missing, never changed. */
async function ensureSecrets(env: Env): Promise<void> {
  for (const name of SECRETS) {
    if ((await docker(['secret', 'inspect', name], env)).code === 0) continue;
    await dockerOk(['secret', 'create', name, '-'], env, randomPassword());
    say(`created secret ${name}`);
  }
}

/** Redis and its volume stay on the node labelled headcount.redis=true; the manager we talk to, if none is. */
async function ensureRedisNode(env: Env): Promise<void> {
  const labelled = await dockerOk(['node', 'ls', '--quiet', '--filter', `node.label=${REDIS_LABEL}=true`], env);
  if (labelled.trim()) return;
  const self = (await dockerOk(['info', '--format', '{{.Swarm.NodeID}}'], env)).trim();
  await dockerOk(['node', 'update', '--label-add', `${REDIS_LABEL}=true`, self], env);
  say(`labelled node ${self.slice(0, 12)} ${REDIS_LABEL}=true: Redis and its volume live there`);
}

/**
 * Whether a deploy includes the monitoring override: asked for (MONITORING=1),
 * or already running. A deploy without the override onto a stack that has it
 * would take the exporter's secret away from Redis, which would then give the
 * exporter's user a password nobody knows.
 */
async function withMonitoring(options: SwarmOptions, env: Env): Promise<boolean> {
  if (options.MONITORING) return true;
  return (await docker(['service', 'inspect', service('prometheus')], env)).code === 0;
}

/** `docker stack deploy` with the release's image and id, and the formation's knobs. */
async function stackDeploy(options: SwarmOptions, release: SwarmRelease, env: Env, monitoring: boolean): Promise<void> {
  if (!release.image) throw new Error(`release ${release.id} has no image: make release with REGISTRY set builds and pushes one`);
  const deployEnv = {
    ...env,
    ...release.config,
    WEB_IMAGE: release.image,
    RELEASE_ID: release.id,
    CONFIG_DIGEST: configDigest(),
    ...(monitoring ? { MONITORING_CONFIG_DIGEST: monitoringConfigDigest() } : {}),
    LB_PORT: String(options.LB_PORT),
    REPLICAS: String(options.REPLICAS),
  };
  const files = stackFiles(monitoring).flatMap((file) => ['--compose-file', file]);
  complain(`+ docker stack deploy --with-registry-auth ${files.join(' ').replaceAll('--compose-file', '-c')} ${STACK}   (WEB_IMAGE=${release.image} RELEASE_ID=${release.id})`);
  await dockerOk(['stack', 'deploy', '--detach=true', '--with-registry-auth', ...files, STACK], deployEnv);
}

/**
 * Converged: every service has all its desired tasks running (healthy), and
 * every one but Grafana wants at least one (GRAFANA_REPLICAS=0 deploys
 * Grafana with none; docker-compose.swarm.monitoring.yml).
 */
export function converged(services: readonly ServiceState[], monitoring: boolean): boolean {
  const expected = monitoring ? 7 : 3;
  const mayBeEmpty = new Set([service('grafana')]);
  return (
    services.length === expected &&
    services.every((s) => s.running === s.desired && (s.desired > 0 || (monitoring && mayBeEmpty.has(s.name))))
  );
}

/** Every service of the stack has all its tasks running (healthy), and web runs `release`. */
async function waitConverged(release: SwarmRelease, env: Env, timeoutMs: number, monitoring: boolean) {
  return poll(
    'every task of the stack running and healthy',
    async () => {
      const services = await stackServices(env);
      const web = await webSpec(env);
      const done = converged(services, monitoring) && web?.release === release.id;
      return done ? services : undefined;
    },
    timeoutMs,
  );
}

/** Follows web's rolling update to its end: completed, or Swarm's own rollback (an error). */
async function followUpdate(before: UpdateStatus | undefined, env: Env, timeoutMs: number): Promise<UpdateStatus | undefined> {
  let last = '';
  return poll(
    "web's rolling update to finish",
    async () => {
      const status = await updateStatus(service('web'), env);
      if (!status || status.StartedAt === before?.StartedAt) return undefined;
      const line = `${status.State}${status.Message ? `: ${status.Message}` : ''}`;
      if (line !== last) complain(`web update ${line}`);
      last = line;
      if (status.State === 'completed') return status;
      if (status.State === 'rollback_completed' || status.State === 'rollback_paused' || status.State === 'paused') {
        throw new Error(`Swarm did not complete the update (${line})`);
      }
      return undefined;
    },
    timeoutMs,
  );
}

async function up(options: SwarmOptions, release: SwarmRelease, env: Env = process.env): Promise<number> {
  await requireManager(env);
  await ensureSecrets(env);
  const monitoring = await withMonitoring(options, env);
  if (monitoring) await ensureExporterSecret(env, say);
  await ensureRedisNode(env);
  await stackDeploy(options, release, env, monitoring);
  const services = await waitConverged(release, env, 300_000, monitoring);
  // nginx asks Docker's DNS for `web` every 2 s (LB_RESOLVER): a load balancer
  // that started before the replicas were healthy knows them one such period later.
  await sleep(3_000);
  const web = services.find((s) => s.name === service('web'));
  say(
    `headcount is ready on Swarm: port ${options.LB_PORT} of every node (${web?.running} replicas of release ${release.id}). ` +
      'make status MODE=swarm shows the tasks; make stop MODE=swarm removes the stack.',
  );
  if (monitoring) {
    const grafana = services.find((s) => s.name === service('grafana')) ?? { running: 0, desired: 0 };
    const lines = monitoringReadyLines({
      prometheusNode: await nodeOfTask(service('prometheus'), env),
      grafana: { running: grafana.running, desired: grafana.desired, node: grafana.desired > 0 ? await nodeOfTask(service('grafana'), env) : undefined },
      prometheusPort: options.PROMETHEUS_PORT ?? defaultPrometheusPort(options.LB_PORT),
      grafanaPort: Number.parseInt(env.GRAFANA_PORT ?? '', 10) || 3000,
    });
    for (const line of lines) say(line);
  }
  return 0;
}

/** The node (hostname) a running task of `name` is on. */
async function nodeOfTask(name: string, env: Env): Promise<string | undefined> {
  const out = await docker(['service', 'ps', '--filter', 'desired-state=running', '--format', '{{.Node}} {{.CurrentState}}', name], env);
  return out.stdout.split('\n').find((line) => / Running /.test(`${line} `))?.split(' ')[0];
}

/**
 * A rolling update to `release`: Swarm replaces one task at a time, the new
 * one started and healthy before an old one stops (docker-compose.swarm.yml
 * update_config), and rolls back by itself when a new task fails.
 */
async function deploy(options: SwarmOptions, release: SwarmRelease, env: Env = process.env): Promise<number> {
  await requireManager(env);
  const current = await webSpec(env);
  if (!current) {
    complain(`no stack ${STACK} runs on this swarm: make up MODE=swarm first`);
    return 1;
  }
  const before = await updateStatus(service('web'), env);
  const monitoring = await withMonitoring(options, env);
  if (monitoring) await ensureExporterSecret(env, say);
  await stackDeploy(options, release, env, monitoring);
  try {
    if (current.image !== release.image || current.release !== release.id) await followUpdate(before, env, 600_000);
    await waitConverged(release, env, 120_000, monitoring);
  } catch (error) {
    const now = await webSpec(env);
    complain(`deploy of ${release.id} failed: ${(error as Error).message}; web runs release ${now?.release ?? 'unknown'} (${now?.image ?? '?'})`);
    return 1;
  }
  say(`deployed release ${release.id} on Swarm (${release.image})`);
  return 0;
}

async function status(options: SwarmOptions, env: Env = process.env): Promise<number> {
  await requireManager(env);
  const web = await webSpec(env);
  if (!web) {
    say(`no stack ${STACK} runs on this swarm`);
    return 1;
  }
  say(`stack ${STACK}: release ${web.release ?? 'unknown'} (${web.image}), port ${options.LB_PORT} of every node`);
  say((await dockerOk(['stack', 'services', STACK], env)).trimEnd());
  say((await dockerOk(['stack', 'ps', STACK, '--filter', 'desired-state=running', '--format', 'table {{.Name}}\t{{.Node}}\t{{.CurrentState}}\t{{.Image}}'], env)).trimEnd());
  return 0;
}

/**
 * The admin one-off process as a Swarm job: the running release's image, on
 * the stack's network, with the admin's Redis user and secret; its output
 * printed, the job removed.
 */
async function resetCount(_options: SwarmOptions, value = '0', env: Env = process.env): Promise<number> {
  await requireManager(env);
  const web = await webSpec(env);
  if (!web) {
    complain(`no stack ${STACK} runs on this swarm: make up MODE=swarm first`);
    return 1;
  }
  const name = `${STACK}-reset-count-${Date.now().toString(36)}`;
  await dockerOk(
    [
      'service', 'create', '--detach', '--quiet',
      '--name', name,
      '--mode', 'replicated-job',
      '--restart-condition', 'none',
      '--network', NETWORK,
      '--secret', `source=headcount-redis-admin-password,target=redis-admin-password,uid=1000,gid=1000,mode=0400`,
      '--env', 'NODE_ENV=production',
      '--env', 'REDIS_URL=redis://headcount-admin@redis:6379',
      '--env', 'REDIS_PASSWORD_FILE=/run/secrets/redis-admin-password',
      '--env', `COUNTER_KEY=${web.env.COUNTER_KEY ?? 'headcount:visits'}`,
      '--env', `RELEASE_ID=${web.release ?? 'dev'}`,
      '--no-healthcheck',
      '--read-only',
      web.image,
      'node', 'dist/admin/reset-count.js', value,
    ],
    env,
  );
  try {
    const state = await poll(
      'the reset-count job to finish',
      async () => {
        const states = (await dockerOk(['service', 'ps', name, '--format', '{{.CurrentState}}'], env)).trim();
        return /^(Complete|Failed|Rejected)/.test(states) ? states : undefined;
      },
      120_000,
    );
    const logs = await docker(['service', 'logs', '--raw', name], env);
    process.stdout.write(logs.stdout);
    process.stderr.write(logs.stderr);
    return state.startsWith('Complete') ? 0 : 1;
  } finally {
    await docker(['service', 'rm', name], env);
  }
}

/** `docker stack rm`, and wait until its services and network are gone. Secrets and the Redis volume stay. */
async function stop(_options: SwarmOptions, env: Env = process.env): Promise<number> {
  await requireManager(env);
  await dockerOk(['stack', 'rm', STACK], env);
  await poll(
    `stack ${STACK} to be removed`,
    async () => {
      const left = await docker(['network', 'ls', '--quiet', '--filter', `label=com.docker.stack.namespace=${STACK}`], env);
      const services = await stackServices(env);
      return services.length === 0 && left.stdout.trim() === '' ? true : undefined;
    },
    120_000,
  );
  say(`stack ${STACK} removed (secrets and the Redis volume kept)`);
  return 0;
}

/** `make up MODE=swarm`: the newest release of the ledger (RELEASES_DIR), or RELEASE=id. */
async function upNewest(options: FormationOptions, env: Env = process.env): Promise<number> {
  const record = findRelease(path.resolve(ROOT, options.RELEASES_DIR), options.RELEASE);
  if (!record) {
    complain(
      options.RELEASE
        ? `no release ${options.RELEASE} in the ledger; make releases lists them`
        : 'no release to run: make release MODE=swarm REGISTRY=<a registry every node can pull from> creates one',
    );
    return 1;
  }
  return up(options, record, env);
}

export const swarmCommands = {
  up,
  upNewest,
  deploy,
  /** The same rolling update, to the release before the running one (the caller picks it from the ledger). */
  rollback: deploy,
  status,
  resetCount,
  stop,
};

/**
 * The release id web's spec names on this swarm, or undefined when no stack
 * runs. Synchronous, as the shared deploy flow asks it (formation/release-commands.ts).
 */
export function runningReleaseSwarm(_options: SwarmOptions, env: Env = process.env): string | undefined {
  const result = spawnSync('docker', ['service', 'inspect', '--format', '{{json .Spec.TaskTemplate.ContainerSpec.Env}}', service('web')], {
    encoding: 'utf8',
    env: env as NodeJS.ProcessEnv,
    timeout: 30_000,
  });
  if (result.status !== 0) return undefined;
  const vars = (JSON.parse(result.stdout || 'null') as string[] | null) ?? [];
  return vars.find((kv) => kv.startsWith('RELEASE_ID='))?.slice('RELEASE_ID='.length);
}
