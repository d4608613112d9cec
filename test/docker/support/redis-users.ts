import type { ComposeFormation } from './compose-formation.js';

/**
 * What a container's own Redis user may do, asked from inside that container
 * with its own configuration: web/config.ts turns REDIS_URL and
 * REDIS_PASSWORD_FILE into the URL the process connects with, as the replica
 * and the admin task do. Each attempt is 'allowed' or the first word of
 * Redis's refusal (NOPERM, NOAUTH, ...); each password file is 'readable' or
 * the error code that kept it from being read.
 */
const PROBE = `
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { loadConfig } from './dist/web/config.js';
const config = loadConfig(process.env);
const redis = new Redis(config.REDIS_URL, { enableReadyCheck: false, maxRetriesPerRequest: 0, lazyConnect: true });
const attempt = (p) => p.then(() => 'allowed', (e) => String(e.message).split(' ')[0]);
const readable = (file) => { try { readFileSync(file); return 'readable'; } catch (e) { return e.code; } };
await redis.connect();
const key = config.COUNTER_KEY;
const result = {
  user: new URL(config.REDIS_URL).username,
  readCount: await attempt(redis.get(key)),
  flushall: await attempt(redis.flushall()),
  config: await attempt(redis.config('GET', 'maxmemory')),
  keys: await attempt(redis.keys('*')),
  writeOtherKey: await attempt(redis.set('someone:else', '1')),
  deleteCount: await attempt(redis.del(key)),
  addToBreakdown: await attempt(redis.hincrby(key + ':replicas', 'probe', 0)),
  deleteBreakdown: await attempt(redis.del(key + ':replicas')),
  heartbeat: await attempt(redis.zadd(key + ':live', 0, 'probe')),
  scriptOnOtherKey: await attempt(redis.eval("return redis.call('SET', KEYS[1], 1)", 1, 'someone:else')),
  files: {
    web: readable('/run/secrets/redis-web/password'),
    admin: readable('/run/secrets/redis-admin/password'),
    operator: readable('/run/secrets/redis-admin/operator-password'),
  },
};
redis.disconnect();
console.log(JSON.stringify(result));
`;

export interface Probe {
  user: string;
  readCount: string;
  flushall: string;
  config: string;
  keys: string;
  writeOtherKey: string;
  deleteCount: string;
  addToBreakdown: string;
  deleteBreakdown: string;
  heartbeat: string;
  scriptOnOtherKey: string;
  files: { web: string; admin: string; operator: string };
}

const lastJsonLine = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1)!) as Probe;
const node = ['node', '--input-type=module', '-e', PROBE];

/** The probe in a running web replica. */
export async function probeWeb(formation: ComposeFormation): Promise<Probe> {
  return lastJsonLine((await formation.compose(['exec', '-T', 'web', ...node])).stdout);
}

/** The probe in a one-off admin container, as `make reset-count` starts one. */
export async function probeAdmin(formation: ComposeFormation): Promise<Probe> {
  return lastJsonLine((await formation.compose(['--profile', 'admin', 'run', '--rm', '-T', 'admin', ...node], 120_000)).stdout);
}

/** The three password files, as root in the redis container reads them. */
export async function readPasswords(formation: ComposeFormation): Promise<{ web: string; admin: string; operator: string }> {
  const read = async (file: string) => (await formation.compose(['exec', '-T', 'redis', 'cat', file])).stdout;
  return {
    web: await read('/run/secrets/redis-web/password'),
    admin: await read('/run/secrets/redis-admin/password'),
    operator: await read('/run/secrets/redis-admin/operator-password'),
  };
}

/** `redis-cli` in the redis container, as `user` with `password` (none: unauthenticated). The reply, trimmed. */
export async function redisCli(formation: ComposeFormation, args: readonly string[], user?: string, password?: string): Promise<string> {
  const auth = user === undefined ? [] : ['--no-auth-warning', '--user', user, '--pass', password ?? 'x'];
  // redis-cli exits non-zero on some refusals: the reply is what is asked for.
  const cli = ['sh', '-c', 'redis-cli "$@" 2>&1; true', 'sh', ...auth, ...args];
  return (await formation.compose(['exec', '-T', 'redis', ...cli])).stdout.trim();
}

/** The environment of every running web replica, as `docker inspect` shows it. */
export async function webEnvironments(formation: ComposeFormation): Promise<string[][]> {
  const ids = (await formation.compose(['ps', '--quiet', 'web'])).stdout.split('\n').filter(Boolean);
  const out = await formation.docker(['inspect', '--format', '{{json .Config.Env}}', ...ids]);
  return out.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as string[]);
}
