import getPort from 'get-port';
import { ROOT } from '../../../formation/paths.js';
import { createLbClient, type LbClient } from './load.js';
import { run, type RunResult } from './run.js';
import { dockerTier } from './tier.js';

export interface ContainerState {
  id: string;
  /** The first 12 hex digits: the container's hostname, so the replica's REPLICA_ID. */
  shortId: string;
  name: string;
  pid: number;
  startedAt: string;
  restartCount: number;
  exitCode: number;
  status: string;
  health?: string;
  oomKilled: boolean;
}

/**
 * One formation from docker-compose.yml, on a free host port, in a compose
 * project of its own: `headcount-<port>`, the name `make ... MODE=docker
 * LB_PORT=<port>` uses, so the make targets find it. Commands are the
 * README's, unchanged: the project name and port come from the environment
 * (COMPOSE_PROJECT_NAME, LB_PORT), as a user's shell would set them.
 */
export class ComposeFormation {
  readonly project: string;
  readonly client: LbClient;

  private constructor(
    readonly port: number,
    private readonly shellEnv: Record<string, string>,
  ) {
    this.project = `headcount-${port}`;
    this.client = createLbClient(port, dockerTier().maxConnections);
  }

  /**
   * `shellEnv`: more variables for the user's shell (a password, LB_RATE_LIMIT_OFF: '' to keep the limit on).
   * `port`: the LB_PORT, when the test needs one with a property (a free port beside it); else any free port.
   */
  static async create(shellEnv: Record<string, string> = {}, port?: number): Promise<ComposeFormation> {
    return new ComposeFormation(port ?? (await getPort({ host: '127.0.0.1' })), shellEnv);
  }

  /** The environment a user's shell would have: the engine, the port, LB_NOFILE where the engine needs it. */
  get env(): NodeJS.ProcessEnv {
    const tier = dockerTier();
    // No COMPOSE_FILE from the caller's shell: the files are the README's.
    const { COMPOSE_FILE: _callers, ...callerEnv } = process.env;
    return {
      ...callerEnv,
      ...tier.env,
      COMPOSE_PROJECT_NAME: this.project,
      LB_PORT: String(this.port),
      ...(tier.lbNofile ? { LB_NOFILE: tier.lbNofile } : {}),
      // Every load here comes from this host, so from the compose network's
      // gateway, one client to nginx's per-client rate limit: off, as the
      // local formation exempts 127.0.0.1 where its load tests run from.
      LB_RATE_LIMIT_OFF: '#',
      // A fresh clone's: no Redis password set, so redis generates them.
      REDIS_PASSWORD: '',
      REDIS_WEB_PASSWORD: '',
      REDIS_ADMIN_PASSWORD: '',
      REDIS_EXPORTER_PASSWORD: '',
      ...this.shellEnv,
    };
  }

  /** `docker compose <args>` in the repository, as typed there. */
  compose(args: readonly string[], timeoutMs = 180_000): Promise<RunResult> {
    return run('docker', ['compose', ...args], { env: this.env, cwd: ROOT, timeoutMs });
  }

  /**
   * `docker compose [files] up <args>`; when it fails, the error also says why: each
   * container that is not healthy, with its last probes and log lines.
   */
  async up(args: readonly string[], timeoutMs = 300_000, files: readonly string[] = []): Promise<RunResult> {
    try {
      return await this.compose([...files, 'up', ...args], timeoutMs);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${await this.explain().catch((e: Error) => `(no explanation: ${e.message})`)}`);
    }
  }

  /** Every container that is not running and healthy: its state, last healthcheck outputs and last log lines. */
  async explain(): Promise<string> {
    const ids = (await this.compose(['ps', '--all', '--quiet'])).stdout.split('\n').filter(Boolean);
    const parts: string[] = [];
    for (const id of ids) {
      const state = JSON.parse((await this.docker(['inspect', '--format', '{{json .State}}', id])).stdout) as {
        Status: string;
        ExitCode: number;
        Health?: { Status: string; Log?: { ExitCode: number; Output: string }[] };
      };
      if (state.Status === 'running' && (state.Health?.Status ?? 'healthy') === 'healthy') continue;
      const probes = (state.Health?.Log ?? []).slice(-3).map((p) => `    probe exit ${p.ExitCode}: ${p.Output.trim().slice(0, 300)}`);
      const logs = await this.docker(['logs', '--tail', '8', id], 30_000).catch((e: Error) => ({ stdout: '', stderr: e.message }));
      const lines = `${logs.stdout}${logs.stderr}`.trim().split('\n').map((l) => `    ${l.slice(0, 300)}`);
      parts.push(`  ${id.slice(0, 12)}: ${state.Status} (exit ${state.ExitCode}), health ${state.Health?.Status ?? 'none'}`, ...probes, ...lines);
    }
    return parts.length > 0 ? `containers not healthy:\n${parts.join('\n')}` : 'every container is running and healthy';
  }

  docker(args: readonly string[], timeoutMs = 60_000): Promise<RunResult> {
    return run('docker', args, { env: this.env, cwd: ROOT, timeoutMs });
  }

  /** `make <target> MODE=docker LB_PORT=<port>`: the formation's front door. */
  make(target: string, vars: Record<string, string> = {}, timeoutMs = 300_000): Promise<RunResult> {
    const args = ['--no-print-directory', target, 'MODE=docker', `LB_PORT=${this.port}`, ...Object.entries(vars).map(([k, v]) => `${k}=${v}`)];
    return run('make', args, { env: this.env, cwd: ROOT, timeoutMs });
  }

  /** The service's containers, running or not, oldest first. */
  async containers(service: string): Promise<ContainerState[]> {
    const ids = (await this.compose(['ps', '--all', '--quiet', service])).stdout.split('\n').filter(Boolean);
    if (ids.length === 0) return [];
    // The whole State as JSON, not .State.Health.Status: a container without a
    // healthcheck (the exporters) has no Health key, and the engine's template
    // fails on a missing key even inside {{if}}.
    const format =
      '{"id":"{{.Id}}","name":"{{.Name}}","restartCount":{{.RestartCount}},"state":{{json .State}},"created":"{{.Created}}"}';
    type Inspected = {
      id: string;
      name: string;
      restartCount: number;
      created: string;
      state: { Pid: number; StartedAt: string; ExitCode: number; Status: string; OOMKilled: boolean; Health?: { Status: string } };
    };
    const lines = (await this.docker(['inspect', '--format', format, ...ids])).stdout.split('\n').filter(Boolean);
    return lines
      .map((line) => JSON.parse(line) as Inspected)
      .sort((a, b) => a.created.localeCompare(b.created))
      .map(({ id, name, restartCount, state }) => ({
        id,
        name: name.replace(/^\//, ''),
        shortId: id.slice(0, 12),
        pid: state.Pid,
        startedAt: state.StartedAt,
        restartCount,
        exitCode: state.ExitCode,
        status: state.Status,
        oomKilled: state.OOMKilled,
        health: state.Health?.Status || undefined,
      }));
  }

  /** The REPLICA_IDs of the running web replicas. */
  async replicaIds(): Promise<string[]> {
    return (await this.containers('web')).filter((c) => c.status === 'running').map((c) => c.shortId);
  }

  /** Stops and removes everything the formation created, its volume too. Never throws. */
  async destroy(): Promise<void> {
    this.client.close();
    await this.compose(['--profile', 'admin', '--profile', 'loadtest', '--profile', 'monitoring', 'down', '--volumes', '--remove-orphans', '--timeout', '5'], 120_000).catch((error: Error) =>
      process.stderr.write(`cleanup of ${this.project} failed: ${error.message}\n`),
    );
  }
}
