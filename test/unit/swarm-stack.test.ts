import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, test } from 'vitest';
import { fromRoot, ROOT } from '../../formation/paths.js';
import { SECRETS, STACK_FILE } from '../../formation/swarm-docker.js';

// docker-compose.swarm.yml checked as a file: the properties the Swarm
// formation relies on (issue 9), and `docker stack config`, the CLI's own
// loader and schema for stack files, which needs no engine.

interface Mount {
  type?: string;
  source?: string;
  target?: string;
}
interface Service {
  image?: string;
  build?: unknown;
  depends_on?: unknown;
  environment?: Record<string, string>;
  volumes?: (Mount | string)[];
  ports?: { target: number; published: string | number; mode?: string }[];
  secrets?: { source: string; target?: string; uid?: string; mode?: number }[];
  configs?: { source: string; target: string }[];
  healthcheck?: { test?: string[] };
  stop_grace_period?: string;
  deploy?: {
    mode?: string;
    replicas?: number | string;
    endpoint_mode?: string;
    placement?: { constraints?: string[]; preferences?: { spread: string }[]; max_replicas_per_node?: number };
    update_config?: Record<string, unknown>;
    rollback_config?: Record<string, unknown>;
  };
}
interface StackFile {
  services: Record<string, Service>;
  networks?: Record<string, { driver?: string; attachable?: boolean }>;
  configs?: Record<string, { name?: string; file?: string }>;
  secrets?: Record<string, { external?: boolean; name?: string }>;
}

const text = readFileSync(fromRoot(STACK_FILE), 'utf8');
const stack = parse(text, { merge: true }) as StackFile;
const compose = parse(readFileSync(fromRoot('docker-compose.yml'), 'utf8'), { merge: true }) as StackFile;
const svc = (name: string) => {
  const found = stack.services[name];
  if (!found) throw new Error(`${STACK_FILE} has no service "${name}"`);
  return found;
};

/** `docker stack config` with the given environment, parsed; undefined when no docker CLI is installed. */
function stackConfig(env: Record<string, string>): StackFile | undefined {
  const result = spawnSync('docker', ['stack', 'config', '--compose-file', STACK_FILE], {
    cwd: ROOT,
    encoding: 'utf8',
    // No engine is needed, and none is asked: DOCKER_HOST points nowhere.
    env: { PATH: process.env.PATH, HOME: process.env.HOME, DOCKER_HOST: 'unix:///nonexistent.sock', ...env },
  });
  if (result.error) return undefined;
  if (result.status !== 0) throw new Error(`docker stack config failed:\n${result.stderr}`);
  return parse(result.stdout) as StackFile;
}
const hasDockerCli = spawnSync('docker', ['--version']).status === 0;

describe('docker-compose.swarm.yml: what `docker stack deploy` accepts', () => {
  test.skipIf(!hasDockerCli)('When the CLI loads it with WEB_IMAGE and RELEASE_ID set, then web runs that image and names that release', () => {
    const loaded = stackConfig({ WEB_IMAGE: 'registry.example:5000/headcount-web:1a2b3c4', RELEASE_ID: 'r7-1a2b3c4', CONFIG_DIGEST: 'abc' })!;
    expect(loaded.services.web).toMatchObject({
      image: 'registry.example:5000/headcount-web:1a2b3c4',
      environment: { RELEASE_ID: 'r7-1a2b3c4', REDIS_PASSWORD_FILE: '/run/secrets/redis-web-password' },
      deploy: { replicas: 4 },
    });
    expect(loaded.configs?.['nginx-template']?.name).toBe('headcount-nginx-template-abc');
  });

  test('When the stack is read, then no service has what stack deploy rejects or ignores: build, depends_on, bind mounts', () => {
    for (const [name, s] of Object.entries(stack.services)) {
      expect(s.build, name).toBeUndefined();
      expect(s.depends_on, name).toBeUndefined();
      for (const mount of s.volumes ?? []) {
        const type = typeof mount === 'string' ? (mount.startsWith('.') || mount.startsWith('/') ? 'bind' : 'volume') : mount.type;
        expect(type, `${name}: ${JSON.stringify(mount)}`).not.toBe('bind');
      }
    }
  });

  test('When the images are read, then they are the compose file images: the release image for web, the same pins for redis and nginx', () => {
    expect(svc('web').image).toBe('${WEB_IMAGE:-headcount-web:local}');
    expect(svc('redis').image).toBe(compose.services.redis?.image);
    expect(svc('lb').image).toBe(compose.services.lb?.image);
  });
});

describe('docker-compose.swarm.yml: web', () => {
  test('When web is updated, then one task at a time, the new one first, health-monitored, rolled back by Swarm on failure', () => {
    expect(svc('web').deploy).toMatchObject({
      update_config: { parallelism: 1, order: 'start-first', failure_action: 'rollback', max_failure_ratio: 0 },
      rollback_config: { parallelism: 1, order: 'start-first' },
    });
    expect(svc('web').deploy?.update_config?.monitor).toMatch(/^\d+s$/);
  });

  test('When Swarm probes a replica, then it asks /healthz (liveness), never /readyz, which fails on every replica during a Redis outage', () => {
    const probe = svc('web').healthcheck?.test?.join(' ') ?? '';
    expect(probe).toContain('/healthz');
    expect(probe).not.toContain('/readyz');
  });

  test('When replicas are placed, then they spread over the nodes with no per-node cap, so a lost node’s tasks can come back elsewhere', () => {
    expect(svc('web').deploy?.placement).toEqual({ preferences: [{ spread: 'node.id' }] });
    expect(svc('web').deploy?.endpoint_mode).toBe('dnsrr');
  });

  test('When web starts, then it has the compose file’s environment contract, RELEASE_ID, a shutdown delay above nginx\'s resolver cache, and its Redis password as its own secret', () => {
    const env = svc('web').environment ?? {};
    expect(Object.keys(env).sort()).toEqual([...Object.keys(compose.services.web?.environment ?? {}), 'SHUTDOWN_DELAY_MS'].sort());
    expect(env.RELEASE_ID).toBe('${RELEASE_ID:-dev}');
    // Swarm drops a stopping task from DNS at once; nginx keeps answers for valid=2s.
    const resolverValidMs = Number(/valid=(\d+)s/.exec(String(svc('lb').environment?.LB_RESOLVER))![1]) * 1000;
    expect(Number(env.SHUTDOWN_DELAY_MS)).toBeGreaterThan(resolverValidMs);
    expect(Number(env.SHUTDOWN_DELAY_MS) + 10_000).toBeLessThan(15_000);
    expect(svc('web').secrets).toEqual([
      { source: 'redis-web-password', target: 'redis-web-password', uid: '1000', gid: '1000', mode: 0o400 },
    ]);
    expect(svc('web').stop_grace_period).toBe(compose.services.web ? '15s' : undefined);
  });
});

describe('docker-compose.swarm.yml: redis and nginx', () => {
  test('When Redis is placed, then it stays on the labelled node with its volume, reached by name without a VIP', () => {
    expect(svc('redis').deploy).toMatchObject({
      replicas: 1,
      endpoint_mode: 'dnsrr',
      placement: { constraints: ['node.labels.headcount.redis == true'] },
      update_config: { order: 'stop-first' },
    });
    expect(svc('redis').volumes).toContain('redis-data:/data');
  });

  test('When Redis starts, then its three passwords come from Swarm secrets the stack does not create', () => {
    expect(svc('redis').environment).toMatchObject({
      REDIS_PASSWORD_FILE: '/run/secrets/redis-password',
      REDIS_WEB_PASSWORD_FILE: '/run/secrets/redis-web-password',
      REDIS_ADMIN_PASSWORD_FILE: '/run/secrets/redis-admin-password',
    });
    expect(Object.values(stack.secrets ?? {})).toEqual(SECRETS.map((name) => ({ external: true, name })));
    expect(readFileSync(fromRoot('redis/docker-start.sh'), 'utf8')).toMatch(/\$\{name\}_FILE/);
  });

  test('When the configs are read, then they are the very files the compose file mounts, named by their digest', () => {
    const files = Object.values(stack.configs ?? {}).map((c) => c.file);
    expect(files.sort()).toEqual(['./lb/nginx.conf.template', './redis/docker-start.sh', './redis/redis.conf', './redis/users.acl.template']);
    for (const c of Object.values(stack.configs ?? {})) expect(c.name).toMatch(/\$\{CONFIG_DIGEST:-0\}$/);
  });

  test('When nginx runs, then on every node, its port in host mode, balancing over every web task via Docker’s DNS', () => {
    const lb = svc('lb');
    expect(lb.deploy?.mode).toBe('global');
    expect(lb.ports).toEqual([{ target: 8080, published: '${LB_PORT:-8080}', protocol: 'tcp', mode: 'host' }]);
    expect(lb.environment?.LB_RESOLVER).toContain('resolver 127.0.0.11');
    // The same upstream parameters as the compose file (and formation/nginx-config.ts).
    expect(lb.environment?.LB_UPSTREAM_SERVERS).toBe(compose.services.lb?.environment?.LB_UPSTREAM_SERVERS);
    expect(stack.networks?.net).toEqual({ driver: 'overlay', attachable: true });
  });
});
