import { spawn, spawnSync } from 'node:child_process';
import { ROOT } from './paths.js';

type Env = Readonly<Record<string, string | undefined>>;

/**
 * `make loadtest` against a Docker formation, with nginx's per-client rate
 * limit on as shipped. From the Docker host, every client arrives at nginx
 * from the compose network's gateway and shares one bucket of 20 r/s, so a
 * load from the host is refused with 429s by design. The load therefore runs
 * in a container that shares the load balancer's network namespace (as the
 * compose k6 service does, `network_mode: service:lb`): it reaches nginx on
 * 127.0.0.1:8080, the one address LB_RATE_LIMIT_EXEMPT exempts, and which no
 * client outside that namespace can send from. Clients from the host and from
 * other machines stay limited.
 *
 * The container runs this same CLI (dist/loadtest/cli.js) from the checkout,
 * mounted at the same path so the report paths it prints are the host's, with
 * the image the replicas run (it has node), as the caller (callerInContainer)
 * so the reports are theirs. The replica list (container hostnames, the X-Replica
 * values) and one replica's own address are handed in, so the per-replica
 * split and the direct comparison are checked as for a local formation.
 */

/** Set in the container's environment: the target, as JSON. Its presence also means "already in the container". */
export const TARGET_VARIABLE = 'HEADCOUNT_LOADTEST_TARGET';

export interface DockerTarget {
  lbUrl: string;
  replicas: string[];
  directUrl?: string;
  /** What the load runs against, for the report: the compose project. */
  formation: string;
}

interface DockerFormation {
  project: string;
  lbId: string;
  image: string;
  replicas: string[];
  directUrl?: string;
}

/** The target handed to the CLI in the container, if this process runs there. */
export function dockerTarget(env: Env = process.env): DockerTarget | undefined {
  const json = env[TARGET_VARIABLE];
  return json ? (JSON.parse(json) as DockerTarget) : undefined;
}

/** The host port the load would go to: LB_URL's when it names this machine, else LB_PORT; undefined for another machine. */
export function targetPort(env: Env): number | undefined {
  if (env.LB_URL) {
    const url = new URL(env.LB_URL);
    if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) return undefined;
    return Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  }
  return Number(env.LB_PORT || 8080);
}

const docker = (args: readonly string[], env: Env) =>
  spawnSync('docker', args, { env: env as NodeJS.ProcessEnv, encoding: 'utf8', timeout: 15_000 });

/**
 * The compose formation whose lb publishes `port`, whatever started it (`make
 * up`, `docker compose up --scale web=4`, another project name): found by the
 * published port and compose's labels, not by a project name.
 */
export function findDockerFormation(port: number, env: Env): DockerFormation | undefined {
  const lb = docker(
    ['ps', '--filter', `publish=${port}`, '--filter', 'label=com.docker.compose.service=lb', '--format', '{{.ID}} {{.Label "com.docker.compose.project"}}'],
    env,
  );
  // No docker client, no engine, or no such container: not a Docker formation.
  if (lb.status !== 0) return undefined;
  const [lbId, project] = lb.stdout.trim().split('\n')[0]?.split(' ') ?? [];
  if (!lbId || !project) return undefined;
  const web = docker(
    [
      'ps',
      '--filter', `label=com.docker.compose.project=${project}`,
      '--filter', 'label=com.docker.compose.service=web',
      '--filter', 'status=running',
      '--format', '{{.ID}} {{.Image}}',
    ],
    env,
  );
  const rows = web.stdout.split('\n').filter(Boolean).map((line) => line.split(' '));
  if (web.status !== 0 || rows.length === 0) throw new Error(`compose project ${project} publishes port ${port}, but no web replica runs in it`);
  // `docker ps` shows the 12-digit short id: the container's hostname, so its REPLICA_ID.
  const replicas = rows.map(([id]) => id!);
  const address = docker(['inspect', '--format', '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}', replicas[0]!], env).stdout.trim().split(' ')[0];
  return { project, lbId, image: rows[0]![1]!, replicas, directUrl: address ? `http://${address}:3000` : undefined };
}

/** Variables the loadtest CLI reads (loadtest/options.ts), plus what the terminal output depends on. */
const PASSED_ON = ['REQUESTS', 'CONNECTIONS', 'DURATION', 'CONCURRENCIES', 'REPLICAS', 'NO_COLOR', 'FORCE_COLOR', 'TERM', 'COLUMNS'];

/**
 * The user the load runs as, so the reports in loadtest/results/ are the
 * caller's: their uid and gid; with rootless Docker, the container's root,
 * which is the caller on the host (their own uid would map to a subordinate
 * id that cannot write to the checkout).
 */
export function callerInContainer(env: Env): string {
  const info = docker(['info', '--format', '{{json .SecurityOptions}}'], env);
  if (info.status === 0 && info.stdout.includes('name=rootless')) return '0:0';
  return `${process.getuid?.() ?? 1000}:${process.getgid?.() ?? 1000}`;
}

/** The `docker run` arguments that run the loadtest CLI in the lb's network namespace. */
export function loadtestRunArgs(formation: DockerFormation, argv: readonly string[], env: Env, tty: boolean, user: string): string[] {
  const target: DockerTarget = {
    lbUrl: 'http://127.0.0.1:8080',
    replicas: formation.replicas,
    directUrl: formation.directUrl,
    formation: `docker compose project ${formation.project}`,
  };
  const passed = PASSED_ON.filter((name) => env[name] !== undefined).flatMap((name) => ['--env', `${name}=${env[name]}`]);
  return [
    'run', '--rm',
    ...(tty ? ['--interactive', '--tty'] : []),
    // Node as PID 1 would ignore Ctrl-C; docker's init passes it on.
    '--init',
    '--network', `container:${formation.lbId}`,
    '--user', user,
    '--volume', `${ROOT}:${ROOT}`,
    '--workdir', ROOT,
    '--read-only', '--tmpfs', '/tmp', '--env', 'HOME=/tmp',
    '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges:true',
    '--env', `${TARGET_VARIABLE}=${JSON.stringify(target)}`,
    ...passed,
    '--entrypoint', 'node',
    formation.image,
    'dist/loadtest/cli.js', ...argv,
  ];
}

/**
 * Runs `make loadtest` in the lb's network namespace when a Docker formation
 * publishes the target port, and returns its exit status; undefined when
 * there is none (MODE=local, another machine's LB_URL, no engine), so the
 * caller loads the target itself. With MODE=docker and no such formation, it
 * throws rather than let the caller start a local one.
 */
export async function loadtestInDocker(argv: readonly string[], env: Env = process.env): Promise<number | undefined> {
  if (dockerTarget(env) || env.MODE === 'local') return undefined;
  const port = targetPort(env);
  const formation = port === undefined ? undefined : findDockerFormation(port, env);
  if (!formation && env.MODE === 'docker' && port !== undefined) {
    // Not a local formation started in its place: MODE=docker asked for Docker.
    throw new Error(`MODE=docker, but no compose formation publishes port ${port}: start one first (make start MODE=docker LB_PORT=${port})`);
  }
  if (!formation) return undefined;
  process.stderr.write(
    `Docker formation on port ${port} (compose project ${formation.project}, replicas ${formation.replicas.join(', ')}): ` +
      "the load runs in a container in the load balancer's network namespace, so nginx sees 127.0.0.1, which its rate limit exempts\n",
  );
  const tty = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const args = loadtestRunArgs(formation, argv, env, tty, callerInContainer(env));
  return new Promise((resolve) => {
    const child = spawn('docker', args, { env: env as NodeJS.ProcessEnv, stdio: 'inherit' });
    child.on('error', (error) => {
      process.stderr.write(`docker: ${error.message}\n`);
      resolve(2);
    });
    child.on('close', (code) => resolve(code ?? 2));
  });
}
