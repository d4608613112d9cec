import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { composeArgv, composeEnv, projectName } from './docker-commands.js';
import { readLedger } from './ledger.js';
import type { FormationOptions } from './options.js';
import { ROOT } from './paths.js';

/** What a deploy needs of a ledger record (formation/ledger.ts ReleaseRecord). */
export interface DockerRelease {
  id: string;
  tag: string;
  config: Readonly<Record<string, string>>;
  image?: string;
}

/** The RELEASE_ID a replica runs when nothing released it (web/config.ts's default). */
const UNRELEASED = 'dev';
// The image's healthcheck probes every 5 s after a 10 s start period; three
// failures make it unhealthy. A replica that is not healthy by then never will be.
const READY_TIMEOUT_MS = 90_000;
// nginx re-resolves `web` through Docker's DNS every 2 s (LB_RESOLVER in
// docker-compose.yml): a new replica is in its upstream after at most that,
// and a removed one out of it.
const RESOLVE_MS = 3_000;

export const webImageOf = (record: DockerRelease) => record.image ?? `headcount-web:${record.tag}`;

/**
 * The variables that make compose run `record`: its image and id, and its
 * non-secret config, which win over the env file the same way the shell does
 * (docker-compose.yml interpolates ${NAME:-default} from both).
 */
export function releaseEnv(record: DockerRelease): Record<string, string> {
  return { ...record.config, WEB_IMAGE: webImageOf(record), RELEASE_ID: record.id };
}

export interface Replica {
  id: string;
  image: string;
  release: string;
  created: string;
  status: string;
  health?: string;
}

type Env = NodeJS.ProcessEnv;

function docker(args: readonly string[], env: Env) {
  return spawnSync('docker', args, { cwd: ROOT, env, encoding: 'utf8' });
}

/** The formation's web containers, running or not, oldest first, each with the RELEASE_ID in its environment. */
export function webReplicas(options: Pick<FormationOptions, 'LB_PORT'>, env: Env = process.env): Replica[] {
  const ps = docker([...composeArgv(options, env), 'ps', '--all', '--quiet', 'web'], composeEnv(options, env));
  const ids = ps.stdout.split('\n').filter(Boolean);
  if (ps.status !== 0 || ids.length === 0) return [];
  const format = '{"id":{{json .Id}},"created":{{json .Created}},"status":{{json .State.Status}},"health":{{json .State.Health}},"env":{{json .Config.Env}},"image":{{json .Config.Image}}}';
  const inspect = docker(['inspect', '--format', format, ...ids], env);
  if (inspect.status !== 0) return [];
  return inspect.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const c = JSON.parse(line) as { id: string; created: string; status: string; health: { Status: string } | null; env: string[] | null; image: string };
      const release = c.env?.find((v) => v.startsWith('RELEASE_ID='))?.slice('RELEASE_ID='.length) ?? UNRELEASED;
      return { id: c.id, image: c.image, created: c.created, status: c.status, health: c.health?.Status, release };
    })
    .sort((a, b) => a.created.localeCompare(b.created));
}

/**
 * The release the formation runs: the RELEASE_ID of its newest running web
 * replica (after an interrupted deploy, the one that was being rolled out).
 * Undefined when no replica runs, or it runs a build that was never released.
 */
export function runningReleaseDocker(options: Pick<FormationOptions, 'LB_PORT'>, env: Env = process.env): string | undefined {
  const release = webReplicas(options, env)
    .filter((r) => r.status === 'running')
    .at(-1)?.release;
  return release === UNRELEASED ? undefined : release;
}

/**
 * What `make start` and `make up` in Docker mode add to compose's environment
 * when the formation runs a release: its image, id and config (from the
 * ledger, else the image and id the replica runs), so compose finds the web
 * service unchanged and recreates nothing. Without them it would rebuild
 * headcount-web:local from the working tree and put every replica back on it
 * at once. Undefined when no release runs, or WEB_IMAGE is set by the caller.
 */
export function keepRunningRelease(options: Pick<FormationOptions, 'LB_PORT' | 'RELEASES_DIR'>, env: Env = process.env): Record<string, string> | undefined {
  if (env.WEB_IMAGE) return undefined;
  const newest = webReplicas(options, env)
    .filter((r) => r.status === 'running')
    .at(-1);
  if (!newest || newest.release === UNRELEASED) return undefined;
  const record = readLedger(path.resolve(ROOT, options.RELEASES_DIR)).find((r) => r.id === newest.release);
  return record ? releaseEnv(record) : { WEB_IMAGE: newest.image, RELEASE_ID: newest.release };
}

/**
 * `make deploy MODE=docker`: replaces the web replicas one at a time with
 * `record`'s, the way docker-rollout (github.com/wowu/docker-rollout) does it
 * with plain compose: scale web up by one with the new image, wait until the
 * new container is healthy (its /readyz), give nginx time to resolve it, then
 * stop (SIGTERM: readiness 503, the listener closed, in-flight requests
 * finished within web.stop_grace_period) and remove the oldest replica of
 * another release. Replicas already on `record` stay. A new replica that never
 * becomes healthy is removed again and the deploy stops with the old ones
 * still serving.
 *
 * Docker's DNS is not health-aware: a container is in `web`'s answer from its
 * start until its process exits (measured by test/docker/release-deploy.test.ts:
 * gone from DNS within 0.2 s of the exit), and nginx keeps each answer 2 s. So
 * nginx does send new requests to a replica that is not listening yet (it
 * connects to Redis first), to one that drains (it closes its listener first)
 * and, for up to 2 s, to the address of one that exited. Each of those fails
 * at connect time, before anything was counted, and nginx retries it once on
 * another replica (proxy_next_upstream in lb/nginx.conf.template). That retry
 * is safe only while at most one address in the upstream is bad: hence the
 * wait after a new replica is healthy (in nginx's upstream before an old one
 * leaves) and again after an old one is removed (out of it before the next
 * new one starts). Without the second wait a run measured 32 of 12000 502s:
 * requests whose retry hit the next starting replica after the exited one.
 * The limit that stays: a new replica that never becomes healthy is in the
 * upstream, failing, until its healthcheck gives up (about 25 s); on a busy
 * machine a few visits then fail twice (measured: 0 to 10 of 10000).
 *
 * With no replica running, the formation is started on `record` instead.
 */
export async function deployDocker(options: FormationOptions, record: DockerRelease, env: Env = process.env): Promise<number> {
  const say = (line: string) => process.stderr.write(`${line}\n`);
  const runEnv = { ...composeEnv(options, env), ...releaseEnv(record) };
  const compose = composeArgv(options, env);
  const replicas = webReplicas(options, env).filter((r) => r.status === 'running');

  if (replicas.length === 0) {
    say(`no web replica runs in compose project ${projectName(options)}: starting the formation on ${record.id}`);
    // --no-build: the release's image is the artifact; never build the working tree under its tag.
    const up = [...compose, 'up', '--detach', '--wait', '--no-build', '--scale', `web=${options.REPLICAS}`];
    say(`+ docker ${up.join(' ')}`);
    return spawnSync('docker', up, { cwd: ROOT, env: runEnv, stdio: 'inherit' }).status ?? 1;
  }

  const old = replicas.filter((r) => r.release !== record.id);
  const total = replicas.length;
  say(`deploying ${record.id} (${webImageOf(record)}) to ${old.length} of ${total} web replicas, one at a time`);
  for (const [i, leaving] of old.entries()) {
    const before = new Set(webReplicas(options, env).map((r) => r.id));
    const up = [...compose, 'up', '--detach', '--no-deps', '--no-recreate', '--no-build', '--scale', `web=${total + 1}`, 'web'];
    say(`+ docker ${up.join(' ')}`);
    if (spawnSync('docker', up, { cwd: ROOT, env: runEnv, stdio: ['ignore', 'ignore', 'inherit'] }).status !== 0) return 1;
    const started = webReplicas(options, env).find((r) => !before.has(r.id));
    if (!started) {
      say('docker compose up started no new web replica');
      return 1;
    }
    const ready = await waitHealthy(started.id, env);
    if (ready !== 'healthy') {
      say(`web replica ${short(started.id)} on ${record.id} is ${ready}, not healthy: removing it; the ${total} replicas before it keep serving`);
      remove(started.id, env);
      return 1;
    }
    await sleep(RESOLVE_MS);
    say(`web replica ${short(started.id)} on ${record.id} is ready (${i + 1}/${old.length}); stopping ${short(leaving.id)} (${leaving.release})`);
    // The container's own stop signal and grace period (web.stop_grace_period).
    if (!remove(leaving.id, env)) return 1;
    await sleep(RESOLVE_MS);
  }
  say(`deployed ${record.id}: ${total} web replicas`);
  return 0;
}

const short = (id: string) => id.slice(0, 12);

/** Stops (SIGTERM, its grace period) and removes one container. */
function remove(id: string, env: Env): boolean {
  if (docker(['stop', id], env).status !== 0 || docker(['rm', id], env).status !== 0) {
    process.stderr.write(`could not stop and remove ${short(id)}: docker stop ${short(id)} && docker rm ${short(id)}\n`);
    return false;
  }
  return true;
}

/** Waits until the container's healthcheck says healthy; else what it said last (unhealthy, exited, ...). */
async function waitHealthy(id: string, env: Env): Promise<string> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = 'starting';
  while (Date.now() < deadline) {
    const r = docker(['inspect', '--format', '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}', id], env);
    const [status, health] = r.stdout.trim().split(' ');
    last = status === 'running' ? (health ?? 'running') : (status ?? 'gone');
    if (last === 'healthy' || last === 'unhealthy' || status !== 'running') return last;
    await sleep(500);
  }
  return `${last} after ${READY_TIMEOUT_MS / 1000} s`;
}
