import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT, fromRoot } from './paths.js';

/**
 * The docker CLI for Swarm mode, asynchronous (a wait of minutes must not
 * block the caller's event loop: the tests run load in the same process), on
 * whatever engine the environment names (DOCKER_HOST, DOCKER_CONTEXT, or the
 * default): the user's manager.
 */

export type Env = Readonly<Record<string, string | undefined>>;

export interface DockerResult {
  code: number;
  stdout: string;
  stderr: string;
}

export const STACK = 'headcount';
export const STACK_FILE = 'docker-compose.swarm.yml';
export const STACK_FILE_MONITORING = 'docker-compose.swarm.monitoring.yml';
/** The stack's services: the formation's, and the monitoring override's (MONITORING=1). */
export type ServiceName = 'web' | 'redis' | 'lb' | MonitoringService;
export const MONITORING_SERVICES = ['prometheus', 'nginx-exporter', 'redis-exporter', 'grafana'] as const;
export type MonitoringService = (typeof MONITORING_SERVICES)[number];
export const service = (name: ServiceName) => `${STACK}_${name}`;
export const NETWORK = `${STACK}_net`;
export const SECRETS = ['headcount-redis-password', 'headcount-redis-web-password', 'headcount-redis-admin-password'] as const;
export const REDIS_LABEL = 'headcount.redis';
/** The Redis exporter's password, as the JSON map redis_exporter's --redis.password-file reads (MONITORING=1). */
export const EXPORTER_SECRET = 'headcount-redis-exporter-password-map';

/** 32 letters and digits, as redis/docker-start.sh generates passwords. */
export const randomPassword = () => randomBytes(48).toString('base64').replace(/[^A-Za-z0-9]/g, '').slice(0, 32);

/**
 * The exporter secret's content: one password under both keys redis_exporter
 * versions look it up by (docs/monitoring.md), the address first, on one line,
 * as redis/docker-start.sh's REDIS_EXPORTER_PASSWORD_MAP_FILE reader expects.
 */
export function exporterPasswordMap(password: string): string {
  if (!/^[A-Za-z0-9]{16,}$/.test(password)) throw new Error('the exporter password must be 16 or more letters and digits');
  return JSON.stringify({ 'redis://redis:6379': password, 'redis://headcount-exporter@redis:6379': password });
}

/** The compose files of a deploy: the stack, and the monitoring override when asked. */
export const stackFiles = (monitoring: boolean) => [STACK_FILE, ...(monitoring ? [STACK_FILE_MONITORING] : [])];

export function docker(args: readonly string[], env: Env, input?: string): Promise<DockerResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('docker', args, { cwd: ROOT, env: env as NodeJS.ProcessEnv, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** `docker <args>`, or an error naming the command and what it printed. */
export async function dockerOk(args: readonly string[], env: Env, input?: string): Promise<string> {
  const result = await docker(args, env, input);
  if (result.code !== 0) throw new Error(`docker ${args.join(' ')} failed:\n${(result.stderr || result.stdout).trim()}`);
  return result.stdout;
}

/** Swarm configs cannot change: their names carry a hash of the files (CONFIG_DIGEST in the stack file). */
export function configDigest(): string {
  return digestOf(['lb/nginx.conf.template', 'redis/redis.conf', 'redis/docker-start.sh', 'redis/users.acl.template']);
}

/**
 * The monitoring override's configs are named by a digest of their own
 * (MONITORING_CONFIG_DIGEST), so an edited Prometheus config or dashboard
 * never renames Redis's configs (which would restart Redis).
 */
export const MONITORING_CONFIG_FILES = [
  'monitoring/prometheus/prometheus.swarm.yml',
  'monitoring/prometheus/rules/headcount.rules.yml',
  'monitoring/grafana/provisioning/datasources/prometheus.yml',
  'monitoring/grafana/provisioning/dashboards/headcount.yml',
  'monitoring/grafana/dashboards/headcount.json',
] as const;
export const monitoringConfigDigest = () => digestOf(MONITORING_CONFIG_FILES);

function digestOf(files: readonly string[]): string {
  const hash = createHash('sha256');
  for (const file of files) hash.update(file).update('\0').update(readFileSync(fromRoot(file))).update('\0');
  return hash.digest('hex').slice(0, 12);
}

/** Polls `check` every `intervalMs` until it returns a value, or throws `what` after `timeoutMs`. */
export async function poll<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 1_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await sleep(intervalMs);
  }
}

export interface ServiceState {
  name: string;
  /** Running tasks (healthy ones: a task with a healthcheck runs only once healthy) and desired tasks. */
  running: number;
  desired: number;
}

/** The stack's services with their running/desired task counts. */
export async function stackServices(env: Env): Promise<ServiceState[]> {
  const out = await dockerOk(['service', 'ls', '--filter', `label=com.docker.stack.namespace=${STACK}`, '--format', '{{.Name}} {{.Replicas}}'], env);
  return out
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [name, replicas] = line.split(' ');
      const [running, desired] = (replicas ?? '0/0').split('/').map((n) => Number.parseInt(n, 10));
      return { name: name!, running: running ?? 0, desired: desired ?? 0 };
    });
}

export interface UpdateStatus {
  State?: string;
  StartedAt?: string;
  CompletedAt?: string;
  Message?: string;
}

export async function updateStatus(name: string, env: Env): Promise<UpdateStatus | undefined> {
  const out = await dockerOk(['service', 'inspect', '--format', '{{json .UpdateStatus}}', name], env);
  const parsed = JSON.parse(out.trim() || 'null') as UpdateStatus | null;
  return parsed ?? undefined;
}

/** The web service's image and RELEASE_ID as its spec says (what Swarm converges to). */
export async function webSpec(env: Env): Promise<{ image: string; release?: string; env: Record<string, string> } | undefined> {
  const result = await docker(['service', 'inspect', '--format', '{{json .Spec.TaskTemplate.ContainerSpec}}', service('web')], env);
  if (result.code !== 0) return undefined;
  const spec = JSON.parse(result.stdout) as { Image: string; Env?: string[] };
  const vars = Object.fromEntries((spec.Env ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  // The CLI pins the image by digest (image:tag@sha256:...): the name is what a person reads.
  return { image: spec.Image.replace(/@sha256:[0-9a-f]+$/, ''), release: vars.RELEASE_ID, env: vars };
}
