import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { composeArgv, envFileOf } from '../../formation/docker-commands.js';
import { releaseEnv } from '../../formation/docker-deploy.js';
import { callerInContainer, loadtestInDocker, loadtestRunArgs, targetPort, TARGET_VARIABLE } from '../../formation/docker-loadtest.js';
import { lifecycleLine } from '../../formation/docker-up.js';
import { REPLICA_NODE_FLAGS } from '../../formation/local-formation.js';
import { BACKUP_SERVER_PARAMS, TEMPLATE_PATH, UPSTREAM_SERVER_PARAMS } from '../../formation/nginx-config.js';
import { fromRoot, ROOT } from '../../formation/paths.js';
import { loadConfig } from '../../web/config.js';

// No Docker engine runs where these tests run, so the Docker files are checked
// as files: the compose files against the Compose Specification's own schema
// (test/fixtures/schemas/README.md) plus the properties the formation relies on, and the
// Dockerfile by its instructions.

interface Service {
  image?: string;
  build?: unknown;
  container_name?: string;
  hostname?: string;
  ports?: unknown[];
  expose?: string[];
  environment?: Record<string, string>;
  profiles?: string[];
  volumes?: string[];
  tmpfs?: string[];
  network_mode?: string;
  command?: string[];
  user?: string;
  read_only?: boolean;
  cap_drop?: string[];
  security_opt?: string[];
  ulimits?: Record<string, unknown>;
  restart?: string;
  stop_grace_period?: string;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test?: string[]; disable?: boolean };
  deploy?: { replicas?: number };
}
interface ComposeFile {
  name?: string;
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

const readText = (file: string) => readFileSync(fromRoot(file), 'utf8');
// Anchors and merge keys resolved, as docker compose resolves them.
const readCompose = (file: string) => parse(readText(file), { merge: true }) as ComposeFile;

const compose = readCompose('docker-compose.yml');
const scaleOverride = readCompose('docker-compose.scale.yml');

function service(name: string): Service {
  const found = compose.services[name];
  if (!found) throw new Error(`docker-compose.yml has no service "${name}"`);
  return found;
}

function environment(name: string): Record<string, string> {
  const env = service(name).environment;
  if (env === undefined || Array.isArray(env)) throw new Error(`service "${name}" needs its environment as a map`);
  return env;
}

/** Compose durations ("15s", "1m30s", "500ms") in milliseconds. */
function durationMs(value: string): number {
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1, us: 0.001 };
  const parts = [...value.matchAll(/(\d+(?:\.\d+)?)(h|ms|us|m|s)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== value) throw new Error(`not a duration: ${value}`);
  return parts.reduce((total, [, amount, unit]) => total + Number(amount) * units[unit!]!, 0);
}

/** The value compose renders when the variable is unset: the default of `${NAME:-default}`, or the literal. */
const renderedDefault = (value: string) => /^\$\{[A-Z0-9_]+:-(.*)\}$/.exec(value)?.[1] ?? value;

/** An image reference pinned to a full version on a Debian base: name:X.Y.Z-<debian codename>[-variant]. */
const PINNED_DEBIAN_IMAGE = /^[a-z0-9._/-]+:\d+\.\d+\.\d+-(trixie|bookworm)(-slim)?$/;

describe('docker-compose.yml and docker-compose.scale.yml: the Compose Specification', () => {
  // The schema names the https spelling of the draft-07 meta-schema, which ajv
  // registers under its http id; the meta-schema is the same.
  const schema = JSON.parse(readText('test/fixtures/schemas/compose-spec.json')) as { $schema: string };
  const validate = new Ajv({ strict: false, allErrors: true }).compile({
    ...schema,
    $schema: 'http://json-schema.org/draft-07/schema#',
  });

  test('When the schema is loaded, then it is the draft-07 Compose Specification', () => {
    expect(schema).toMatchObject({ $schema: 'https://json-schema.org/draft-07/schema', title: 'Compose Specification' });
  });

  test.each(['docker-compose.yml', 'docker-compose.scale.yml'])(
    'When %s is validated against the schema, then it has no errors',
    (file) => {
      const document = readCompose(file);

      const valid = validate(document);

      expect(validate.errors ?? []).toEqual([]);
      expect(valid).toBe(true);
    },
  );

  test('When a file has a misspelt key, then the schema check catches it', () => {
    const document = parse('services:\n  web:\n    imgae: headcount-web:local\n');

    const valid = validate(document);

    expect(valid).toBe(false);
    expect(validate.errors).toContainEqual(expect.objectContaining({ params: { additionalProperty: 'imgae' } }));
  });
});

describe('docker-compose.yml: a formation that scales', () => {
  test('When the web service is read, then it pins no container_name, hostname or host port, so --scale can start any number of replicas', () => {
    const web = service('web');

    // A container_name or a published port collides with the second replica;
    // a fixed hostname would give every replica the same REPLICA_ID.
    expect(web).not.toHaveProperty('container_name');
    expect(web).not.toHaveProperty('hostname');
    expect(web).not.toHaveProperty('ports');
    expect(environment('web')).not.toHaveProperty('REPLICA_ID');
    // 3000 for nginx; 9464, METRICS_PORT, for Prometheus (monitoring profile).
    expect(web.expose).toEqual(['3000', '9464']);
  });

  test('When the redis service is read, then it publishes no port and keeps its AOF on a named volume', () => {
    const redis = service('redis');

    expect(redis).not.toHaveProperty('ports');
    expect(redis).toMatchObject({ restart: 'unless-stopped' });
    expect(redis.volumes).toEqual(
      expect.arrayContaining(['./redis/redis.conf:/usr/local/etc/redis/redis.conf:ro', 'redis-data:/data']),
    );
    expect(compose.volumes).toHaveProperty('redis-data');
  });

  test('When the lb service is read, then it alone publishes a port: LB_PORT on the host (default 8080) to 8080 inside', () => {
    // The monitoring profile's Prometheus and Grafana publish on the host's
    // loopback only (test/unit/monitoring-compose.test.ts).
    const published = Object.entries(compose.services).filter(([, s]) => s.ports !== undefined && !s.profiles?.includes('monitoring'));

    expect(published.map(([name]) => name)).toEqual(['lb']);
    expect(service('lb').ports).toEqual(['${LB_PORT:-8080}:8080']);
    expect(environment('lb').LB_PORT).toBe('8080');
  });

  test('When the images that are pulled are read, then each is pinned to a full version on a Debian base, never latest or alpine', () => {
    // The formation's own; the k6 tool image (loadtest profile) is checked with its service.
    const pulled = Object.values(compose.services).filter((s) => s.build === undefined && s.profiles === undefined);

    expect(pulled.map((s) => s.image)).toEqual([expect.stringMatching(/^redis:/), expect.stringMatching(/^nginx:/)]);
    for (const { image } of pulled) {
      expect(image).toMatch(PINNED_DEBIAN_IMAGE);
      expect(image).not.toMatch(/latest|alpine/);
    }
    expect(service('redis').image).toMatch(/^redis:8\./);
  });

  test('When the lb image is read, then its nginx is 1.27.3 or later, which `server ... resolve` in an upstream needs', () => {
    const [major, minor, patch] = service('lb').image!.split(':')[1]!.split('-')[0]!.split('.').map(Number);

    expect(major! * 1e6 + minor! * 1e3 + patch!).toBeGreaterThanOrEqual(1_027_003);
  });

  test('When the lb environment is read, then LB_UPSTREAM_SERVERS resolves `web` at run time with exactly UPSTREAM_SERVER_PARAMS', () => {
    const lb = environment('lb');

    expect(lb.LB_UPSTREAM_SERVERS).toBe(`server web:3000 resolve ${UPSTREAM_SERVER_PARAMS}; server web:3000 resolve ${BACKUP_SERVER_PARAMS};`);
    expect(lb.LB_RESOLVER).toBe('resolver 127.0.0.11 valid=2s ipv6=off;');
  });

  test('When the template is mounted for the image entrypoint, then it renders the whole nginx.conf that the command loads, with only LB_ names substituted', () => {
    const lb = service('lb');
    const env = environment('lb');
    const mount = lb.volumes?.find((v) => v.startsWith('./lb/nginx.conf.template:'));
    const target = mount?.split(':')[1] ?? '';

    // The entrypoint writes <output dir>/<path below /etc/nginx/templates minus ".template">.
    const rendered = `${env.NGINX_ENVSUBST_OUTPUT_DIR}/${target.replace('/etc/nginx/templates/', '').replace(/\.template$/, '')}`;
    const config = lb.command?.[lb.command.indexOf('-c') + 1];

    expect(mount).toMatch(/:ro$/);
    expect(rendered).toBe(`${env.NGINX_ENVSUBST_OUTPUT_DIR}/nginx.conf`);
    expect(config).toBe(rendered);
    expect(env.NGINX_ENVSUBST_FILTER).toBe('^LB_');
  });

  test('When the lb service is read, then nginx runs as the image\'s unprivileged nginx user (101) from the start, writing only to a tmpfs that user owns', () => {
    const lb = service('lb');
    const env = environment('lb');
    /** The tmpfs mounted at `dir`, with its options. */
    const tmpfsAt = (dir: string | undefined) => {
      const entry = lb.tmpfs?.find((t) => t.split(':')[0] === dir);
      return entry === undefined ? undefined : Object.fromEntries((entry.split(':')[1] ?? '').split(',').map((o) => o.split('=')));
    };

    // No root master: the entrypoint and every nginx process run as 101:101.
    expect(lb.user).toBe('101:101');
    // The image's entrypoint runs its /docker-entrypoint.d steps (the
    // templates envsubst) only when the command starts with `nginx`; nginx
    // stays in the foreground as PID 1, and reports early errors on stderr,
    // not in the compiled-in log file an unprivileged user may not open.
    expect(lb.command).toEqual(['nginx', '-c', `${env.NGINX_ENVSUBST_OUTPUT_DIR}/nginx.conf`, '-e', 'stderr', '-g', 'daemon off;']);
    // The rendered config, the pid file and the temp folders: one tmpfs, owned
    // by that user, since the image's /etc/nginx and /var/cache/nginx are root's.
    expect(env.LB_RUNTIME_DIR).toBe(env.NGINX_ENVSUBST_OUTPUT_DIR);
    expect(tmpfsAt(env.LB_RUNTIME_DIR)).toMatchObject({ uid: '101', gid: '101', mode: '0700' });
    expect(lb).toMatchObject({ read_only: true, cap_drop: ['ALL'], security_opt: ['no-new-privileges:true'] });
    // Still granted by Docker, not raised by nginx (which it could not do unprivileged).
    expect(lb.ulimits).toEqual({ nofile: { soft: '${LB_NOFILE:-65536}', hard: '${LB_NOFILE:-65536}' } });
  });

  test('When the template names a placeholder, then the lb service sets it (envsubst would silently leave it in)', () => {
    // The same two forms envsubst and renderTemplate replace: ${LB_X} and $LB_X.
    const placeholders = new Set(
      [...readFileSync(TEMPLATE_PATH, 'utf8').matchAll(/\$\{(LB_[A-Z0-9_]*)\}|\$(LB_[A-Z0-9_]*)/g)].map((m) => m[1] ?? m[2]),
    );

    expect([...placeholders].sort()).toEqual(Object.keys(environment('lb')).filter((k) => k.startsWith('LB_')).sort());
  });

  test('When the timeouts are compared, then Docker waits longer than the replica drains and Node keeps idle sockets longer than nginx', () => {
    const web = environment('web');
    // The upstream block ends at the first line holding only `}`.
    const block = /upstream\s+web\s*\{([\s\S]*?)\n\s*\}\n/.exec(readFileSync(TEMPLATE_PATH, 'utf8'))?.[1] ?? '';
    // The value as Docker renders it: a literal, or the lb's LB_ placeholder.
    const rendered = block.replace(/\$\{(LB_[A-Z0-9_]*)\}/g, (match, name: string) => environment('lb')[name] ?? match);
    const upstream = /^\s*keepalive_timeout\s+(\d+)s;/m.exec(rendered);

    expect(durationMs(service('web').stop_grace_period!)).toBeGreaterThan(Number(renderedDefault(web.SHUTDOWN_GRACE_MS!)));
    expect(upstream).not.toBeNull();
    expect(Number(renderedDefault(web.KEEP_ALIVE_TIMEOUT_MS!))).toBeGreaterThan(Number(upstream![1]) * 1000);
  });

  test('When the services start, then each waits for what it needs to be healthy: web for redis, lb for web', () => {
    expect(service('web').depends_on).toEqual({ redis: { condition: 'service_healthy' } });
    expect(service('lb').depends_on).toEqual({ web: { condition: 'service_healthy' } });
    expect(service('redis').healthcheck?.test?.join(' ')).toMatch(/redis-cli .*--user healthcheck .*ping \| grep -q PONG/);
    expect(service('lb').healthcheck?.test?.join(' ')).toContain('http://127.0.0.1:8080/lb-healthz');
  });

  test('When the admin service is read, then it is only in the admin profile and runs the same image and environment as web, but its own Redis user', () => {
    const admin = service('admin');
    const web = service('web');
    const { REDIS_URL: adminUrl, REDIS_PASSWORD_FILE: adminFile, ...adminRest } = environment('admin');
    const { REDIS_URL: _webUrl, REDIS_PASSWORD_FILE: _webFile, ...webRest } = environment('web');

    expect(admin).toMatchObject({
      profiles: ['admin'],
      command: ['node', 'dist/admin/reset-count.js'],
      restart: 'no',
      image: web.image,
      build: web.build,
    });
    expect(adminRest).toEqual(webRest);
    expect(adminUrl).toBe('redis://headcount-admin@redis:6379');
    expect(adminFile).toBe('/run/secrets/redis-admin/password');
    expect(Object.entries(compose.services).filter(([, s]) => s.profiles !== undefined).map(([n, svc]) => [n, svc.profiles])).toEqual([
      ['admin', ['admin']],
      ['k6', ['loadtest']],
      ['prometheus', ['monitoring']],
      ['nginx-exporter', ['monitoring']],
      ['redis-exporter', ['monitoring']],
      ['grafana', ['monitoring']],
    ]);
  });

  test('When the scale override is read, then it sets the web replica count and nothing else', () => {
    expect(scaleOverride).toEqual({ services: { web: { deploy: { replicas: 4 } } } });
  });
});

describe('docker-compose.yml: least-privilege Redis users (issue 4)', () => {
  const startScript = readText('redis/docker-start.sh');
  const aclTemplate = readText('redis/users.acl.template');
  /** The volume (or host path) mounted at `target` in a service, with its mode. */
  const mountAt = (name: string, target: string) => {
    const [source, , mode] = service(name).volumes?.find((v) => v.split(':')[1] === target)?.split(':') ?? [];
    return source === undefined ? undefined : { source, mode: mode ?? 'rw' };
  };
  const mountsOf = (name: string) => (service(name).volumes ?? []).map((v) => v.split(':')[0]);
  /** A shell variable's literal value in the start script, e.g. WEB_DIR=/run/secrets/redis-web. */
  const scriptValue = (name: string) => new RegExp(`^${name}=(\\S+)$`, 'm').exec(startScript)?.[1];

  test('When redis starts, then it runs redis/docker-start.sh, mounted read-only with the ACL template beside it, which execs the image entrypoint', () => {
    const redis = service('redis');

    expect(redis.command).toEqual(['sh', '/usr/local/etc/headcount/docker-start.sh']);
    expect(mountAt('redis', '/usr/local/etc/headcount/docker-start.sh')).toEqual({ source: './redis/docker-start.sh', mode: 'ro' });
    expect(mountAt('redis', scriptValue('TEMPLATE')!)).toEqual({ source: './redis/users.acl.template', mode: 'ro' });
    // The image's entrypoint, so redis-server still drops to the redis user.
    expect(startScript).toMatch(/^exec docker-entrypoint\.sh redis-server \/usr\/local\/etc\/redis\/redis\.conf --aclfile "\$ACL_DIR\/users\.acl"$/m);
    // The rendered file (every password) is on a tmpfs, not a disk.
    expect(redis.tmpfs).toEqual([scriptValue('ACL_DIR')]);
  });

  test('When the ACL template names a placeholder, then the start script substitutes it, and redis renders the same COUNTER_KEY the replicas count on', () => {
    const placeholders = new Set([...aclTemplate.matchAll(/\$\{([A-Z_]+)\}/g)].map((m) => m[1]!));

    expect([...placeholders].sort()).toEqual(['COUNTER_KEY', 'REDIS_ADMIN_PASSWORD', 'REDIS_EXPORTER_PASSWORD', 'REDIS_PASSWORD', 'REDIS_WEB_PASSWORD']);
    for (const name of placeholders) expect(startScript).toContain(`s|\${${name}}|`);
    expect(environment('redis').COUNTER_KEY).toBe(environment('web').COUNTER_KEY);
  });

  test('When the passwords are read, then redis alone gets them from the environment, and only ever as ${NAME:-} from the shell or .env, never a literal', () => {
    const redis = environment('redis');

    for (const name of ['REDIS_PASSWORD', 'REDIS_WEB_PASSWORD', 'REDIS_ADMIN_PASSWORD']) expect(redis[name]).toBe(`\${${name}:-}`);
    for (const name of ['web', 'admin']) {
      const env = environment(name);
      expect(Object.keys(env).filter((k) => /PASSWORD/.test(k))).toEqual(['REDIS_PASSWORD_FILE']);
      // A user, no password: `redis://user@host`, the password comes from the file.
      expect(new URL(env.REDIS_URL!).password).toBe('');
    }
  });

  test('When the password volumes are read, then web mounts only its own and admin only its own, read-only, and each password file lies in it', () => {
    const webDir = scriptValue('WEB_DIR')!;
    const adminDir = scriptValue('ADMIN_DIR')!;

    expect(mountAt('redis', webDir)).toEqual({ source: 'redis-web-secret', mode: 'rw' });
    expect(mountAt('redis', adminDir)).toEqual({ source: 'redis-admin-secret', mode: 'rw' });
    expect(mountAt('web', webDir)).toEqual({ source: 'redis-web-secret', mode: 'ro' });
    expect(mountAt('admin', adminDir)).toEqual({ source: 'redis-admin-secret', mode: 'ro' });
    expect(mountsOf('web')).not.toContain('redis-admin-secret');
    expect(mountsOf('admin')).not.toContain('redis-web-secret');
    expect(environment('web').REDIS_PASSWORD_FILE).toBe(`${webDir}/password`);
    expect(environment('admin').REDIS_PASSWORD_FILE).toBe(`${adminDir}/password`);
    expect(compose.volumes).toMatchObject({ 'redis-web-secret': null, 'redis-admin-secret': null });
  });

  test('When the start script writes the password files, then web and admin (uid 1000) can read their own, and the operator password only root', () => {
    expect(scriptValue('APP_GID')).toBe('1000');
    expect(startScript).toContain('ensure "$WEB_DIR/password" 0440 "$APP_GID" REDIS_WEB_PASSWORD');
    expect(startScript).toContain('ensure "$ADMIN_DIR/password" 0440 "$APP_GID" REDIS_ADMIN_PASSWORD');
    expect(startScript).toContain('ensure "$ADMIN_DIR/operator-password" 0400 0 REDIS_PASSWORD');
  });
});

describe('docker-compose.yml: the k6 `loadtest` profile (issue 3)', () => {
  const runScript = readText('loadtest/k6/run.sh');

  test('When the k6 service is read, then it is only in the loadtest profile and runs the official image pinned to a version of 1.0 or later', () => {
    const k6 = service('k6');
    const [major] = (k6.image ?? '').replace(/^grafana\/k6:/, '').split('.').map(Number);

    expect(k6.profiles).toEqual(['loadtest']);
    expect(k6.image).toMatch(/^grafana\/k6:\d+\.\d+\.\d+$/);
    expect(major).toBeGreaterThanOrEqual(1);
    expect(k6).not.toHaveProperty('ports');
    expect(k6.volumes).toEqual(['./loadtest:/loadtest']);
  });

  test('When k6 sends its load, then it comes from 127.0.0.1 inside the lb, which the rate limit exempts, and needs no network of its own', () => {
    const k6 = service('k6');

    expect(k6.network_mode).toBe('service:lb');
    expect(k6.depends_on).toEqual({ lb: { condition: 'service_healthy' } });
    expect(environment('lb').LB_RATE_LIMIT_EXEMPT).toMatch(/(^|\s)127\.0\.0\.1 1;/);
    // No fixed subnet anywhere: two formations side by side cannot collide over one.
    expect(JSON.stringify(compose)).not.toMatch(/ipam|subnet/);
    expect(runScript).toContain('-e LB_URL=http://127.0.0.1:8080');
    expect(runScript).not.toContain('lb:8080 ');
  });

  test('When run.sh runs the profile, then it writes the reports as the caller and leaves a running formation as it is', () => {
    expect(runScript).toMatch(/--profile loadtest run --rm --no-deps --user "\$\(id -u\):\$\(id -g\)" k6/);
    expect(runScript).toContain('-e RESULTS_DIR=/loadtest/results');
  });

  test('When the rate limit defaults are read, then the limit is on in Docker unless LB_RATE_LIMIT_OFF is set', () => {
    expect(environment('lb')).toMatchObject({ LB_RATE_LIMIT: '${LB_RATE_LIMIT:-20r/s}', LB_RATE_LIMIT_OFF: '${LB_RATE_LIMIT_OFF:-}' });
  });
});

describe('docker-compose.yml: one configuration contract (issue 8, part 5)', () => {
  // The replica settings a user may set in .env or the shell (.env.example);
  // the rest of web's environment wires the formation and stays literal.
  const REPLICA_SETTINGS = ['COUNTER_KEY', 'REDIS_COMMAND_TIMEOUT_MS', 'IDEMPOTENCY_TTL_SECONDS', 'KEEP_ALIVE_TIMEOUT_MS', 'SHUTDOWN_GRACE_MS', 'LOG_LEVEL'];

  test('When the replica settings are read, then each is ${NAME:-default} from the shell or env file, defaulting to web/config.ts\'s own value', () => {
    const web = environment('web');
    const defaults = loadConfig({}) as unknown as Record<string, string | number>;

    for (const name of REPLICA_SETTINGS) {
      expect(web[name], name).toBe(`\${${name}:-${defaults[name]}}`);
    }
    // What wires the formation together cannot be moved by a local .env.
    expect(web).toMatchObject({ NODE_ENV: 'production', HOST: '0.0.0.0', PORT: '3000', REDIS_URL: 'redis://headcount-web@redis:6379' });
  });

  test('When COUNTER_KEY is read, then web, the admin task and redis (its ACL key patterns) all take the same ${COUNTER_KEY:-...}', () => {
    expect(environment('admin').COUNTER_KEY).toBe(environment('web').COUNTER_KEY);
    expect(environment('redis').COUNTER_KEY).toBe(environment('web').COUNTER_KEY);
    expect(environment('web').COUNTER_KEY).toBe('${COUNTER_KEY:-headcount:visits}');
  });

  describe('ENV_FILE -> docker compose --env-file (formation/docker-commands.ts)', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(path.join(tmpdir(), 'headcount-env-file-'));
      writeFileSync(path.join(dir, 'test.env'), 'COUNTER_KEY=from-the-file\n');
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    test('When ENV_FILE names a file, then every compose command gets --env-file with its absolute path, after the project name', () => {
      const file = path.join(dir, 'test.env');

      const argv = composeArgv({ LB_PORT: 9090 }, { ENV_FILE: file });

      expect(argv).toEqual(['compose', '-p', 'headcount-9090', '--env-file', file]);
      expect(envFileOf({ ENV_FILE: 'test.env' }, dir)).toBe(file);
    });

    test('When ENV_FILE is unset, or is the default .env and that does not exist, then no --env-file is passed (compose reads .env by itself)', () => {
      expect(composeArgv({ LB_PORT: 8080 }, {})).toEqual(['compose', '-p', 'headcount']);
      expect(envFileOf({ ENV_FILE: '' }, dir)).toBeUndefined();
      expect(envFileOf({ ENV_FILE: '.env' }, dir)).toBeUndefined();
    });

    test('When ENV_FILE names a file that does not exist, then the command stops and names it, instead of running on defaults', () => {
      expect(() => envFileOf({ ENV_FILE: 'missing.env' }, dir)).toThrow(`ENV_FILE=missing.env: no such file (${path.join(dir, 'missing.env')})`);
    });
  });
});

describe('docker-compose.yml: releases (issue 9, make deploy MODE=docker)', () => {
  test('When the web and admin images are read, then both are ${WEB_IMAGE:-headcount-web:local}, so a deploy names the release image and a plain up builds :local', () => {
    expect(service('web').image).toBe('${WEB_IMAGE:-headcount-web:local}');
    expect(service('admin').image).toBe(service('web').image);
  });

  test('When the web environment is read, then RELEASE_ID is ${RELEASE_ID:-dev}, which the deploy sets and reads back with docker inspect', () => {
    expect(environment('web').RELEASE_ID).toBe(`\${RELEASE_ID:-${loadConfig({}).RELEASE_ID}}`);
    expect(loadConfig({}).RELEASE_ID).toBe('dev');
  });

  test('When a release is deployed, then compose gets its image (default headcount-web:<tag>), its id and its config, which win over the env file', () => {
    const record = { id: 'r2-1a2b3c4', tag: '1a2b3c4', config: { COUNTER_KEY: 'prod:visits', LOG_LEVEL: 'warn' } };

    expect(releaseEnv(record)).toEqual({ COUNTER_KEY: 'prod:visits', LOG_LEVEL: 'warn', WEB_IMAGE: 'headcount-web:1a2b3c4', RELEASE_ID: 'r2-1a2b3c4' });
    expect(releaseEnv({ ...record, image: 'registry.example:5000/headcount-web:1a2b3c4' }).WEB_IMAGE).toBe('registry.example:5000/headcount-web:1a2b3c4');
  });
});

describe('make up in Docker mode: the lifecycle lines (formation/docker-up.ts)', () => {
  const event = (Action: string, attributes: Record<string, string>) => ({
    Action,
    Actor: { Attributes: { 'com.docker.compose.project': 'headcount', ...attributes } },
  });
  const web2 = { 'com.docker.compose.service': 'web', 'com.docker.compose.container-number': '2' };

  test('When containers start, turn healthy, exit or turn unhealthy, then each event is one line in the local formation\'s form', () => {
    expect(lifecycleLine(event('start', web2))).toBe('web-2   | started');
    expect(lifecycleLine(event('health_status: healthy', web2))).toBe('web-2   | ready');
    expect(lifecycleLine(event('die', { ...web2, exitCode: '137' }))).toBe('web-2   | exited (code 137)');
    expect(lifecycleLine(event('health_status: unhealthy', web2))).toMatch(/^web-2 {3}\| unhealthy: GET \/readyz fails/);
    expect(lifecycleLine(event('health_status: healthy', { 'com.docker.compose.service': 'redis', 'com.docker.compose.container-number': '1' }))).toBe(
      'redis   | healthy',
    );
  });

  test('When the healthcheck execs run, or a one-off admin task starts, then nothing is printed', () => {
    expect(lifecycleLine(event('exec_start: node -e fetch(...)', web2))).toBeUndefined();
    expect(lifecycleLine(event('exec_die', web2))).toBeUndefined();
    expect(lifecycleLine(event('start', { 'com.docker.compose.service': 'admin', 'com.docker.compose.oneoff': 'True' }))).toBeUndefined();
    expect(lifecycleLine({ Action: 'start' })).toBeUndefined();
  });
});

describe('make loadtest against a Docker formation (formation/docker-loadtest.ts)', () => {
  const formation = { project: 'headcount', lbId: 'abc123def456', image: 'headcount-web:local', replicas: ['0123456789ab', 'ba9876543210'], directUrl: 'http://172.18.0.3:3000' };

  test('When the load is run, then it runs in the lb\'s network namespace towards 127.0.0.1:8080, the one address the rate limit exempts', () => {
    const args = loadtestRunArgs(formation, ['--requests', '3000'], { REQUESTS: '5000', MODE: 'docker' }, false, '1000:1000');
    const passed = args.find((a) => a.startsWith(`${TARGET_VARIABLE}=`))?.slice(TARGET_VARIABLE.length + 1) ?? '{}';
    const target = JSON.parse(passed) as { lbUrl: string; replicas: string[] };

    expect(args).toEqual(expect.arrayContaining(['--network', 'container:abc123def456', '--rm', '--init']));
    expect(args[args.indexOf('--network') + 1]).toBe('container:abc123def456');
    expect(target).toMatchObject({ lbUrl: 'http://127.0.0.1:8080', replicas: formation.replicas, directUrl: formation.directUrl });
    expect(environment('lb').LB_RATE_LIMIT_EXEMPT).toBe('127.0.0.1 1;');
    expect(new URL(target.lbUrl).hostname).toBe('127.0.0.1');
    // The loadtest's own variables pass on; MODE does not matter in there.
    expect(args).toContain('REQUESTS=5000');
    expect(args).not.toContain('MODE=docker');
    expect(args.slice(-4)).toEqual(['headcount-web:local', 'dist/loadtest/cli.js', '--requests', '3000']);
  });

  test('When the reports are written, then they land in this checkout, mounted at the same path, as the caller\'s uid', () => {
    // No engine answers here: the caller's own uid and gid.
    const user = callerInContainer({ DOCKER_HOST: 'unix:///nonexistent/docker.sock' });

    const args = loadtestRunArgs(formation, [], {}, false, user);

    expect(user).toBe(`${process.getuid!()}:${process.getgid!()}`);
    expect(args[args.indexOf('--volume') + 1]).toBe(`${ROOT}:${ROOT}`);
    expect(args[args.indexOf('--workdir') + 1]).toBe(ROOT);
    expect(args[args.indexOf('--user') + 1]).toBe(user);
    expect(args).not.toContain('--tty');
    expect(loadtestRunArgs(formation, [], {}, true, user)).toEqual(expect.arrayContaining(['--interactive', '--tty']));
  });

  test('When MODE=docker and no compose formation publishes the port, then make loadtest says to start one instead of starting a local formation', async () => {
    const env = { MODE: 'docker', LB_PORT: '9999', DOCKER_HOST: 'unix:///nonexistent/docker.sock', PATH: process.env.PATH };

    await expect(loadtestInDocker([], env)).rejects.toThrow('MODE=docker, but no compose formation publishes port 9999: start one first (make start MODE=docker LB_PORT=9999)');
    await expect(loadtestInDocker([], { ...env, MODE: 'auto' })).resolves.toBeUndefined();
    await expect(loadtestInDocker([], { ...env, MODE: 'local' })).resolves.toBeUndefined();
  });

  test('When the target is another machine, then no Docker formation is looked for; on this machine its port is LB_URL\'s, else LB_PORT', () => {
    expect(targetPort({ LB_URL: 'http://example.com:8080' })).toBeUndefined();
    expect(targetPort({ LB_URL: 'http://localhost:9090', LB_PORT: '8080' })).toBe(9090);
    expect(targetPort({ LB_URL: 'http://127.0.0.1' })).toBe(80);
    expect(targetPort({ LB_PORT: '9191' })).toBe(9191);
    expect(targetPort({})).toBe(8080);
  });
});

interface Instruction {
  keyword: string;
  args: string;
}

/** Dockerfile instructions: comments dropped, continuation lines joined. */
function parseDockerfile(text: string): Instruction[] {
  const lines = text.split('\n').filter((line) => !/^\s*#/.test(line));
  return lines
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const [keyword = '', ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), args: rest.join(' ') };
    });
}

describe('web/Dockerfile', () => {
  const instructions = parseDockerfile(readText('web/Dockerfile'));
  const lastFrom = instructions.map((i) => i.keyword).lastIndexOf('FROM');
  const finalStage = instructions.slice(lastFrom);
  const finalOf = (keyword: string) => finalStage.filter((i) => i.keyword === keyword);

  /** The base images, with the global ARG defaults substituted. */
  function baseImages(): string[] {
    const args = new Map<string, string>();
    for (const i of instructions.slice(0, instructions.findIndex((x) => x.keyword === 'FROM'))) {
      const [name, value] = i.args.split('=');
      if (i.keyword === 'ARG' && name && value) args.set(name, value);
    }
    return instructions
      .filter((i) => i.keyword === 'FROM')
      .map((i) => i.args.split(/\s+/)[0]!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_m, a?: string, b?: string) => args.get((a ?? b)!) ?? ''));
  }

  test('When the stages are counted, then the build stage and the runtime stage are separate', () => {
    expect(instructions.filter((i) => i.keyword === 'FROM').length).toBeGreaterThanOrEqual(2);
    expect(finalOf('RUN').map((i) => i.args).join(' ')).toContain('npm ci --omit=dev');
    expect(finalOf('COPY').map((i) => i.args)).toContain('--from=build /app/dist ./dist');
  });

  test('When the base images are resolved, then each is node pinned to a full version on Debian slim', () => {
    const images = baseImages();

    expect(images.length).toBeGreaterThanOrEqual(2);
    for (const image of images) expect(image).toMatch(/^node:\d+\.\d+\.\d+-(trixie|bookworm)-slim$/);
  });

  test('When the final stage is read, then it runs in production mode as a non-root user', () => {
    const users = finalOf('USER').map((i) => i.args);

    expect(finalOf('ENV').map((i) => i.args)).toContain('NODE_ENV=production');
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)).not.toMatch(/^(root|0)(:|$)/);
  });

  test('When the container starts, then node itself is PID 1 (exec form, no npm), so SIGTERM reaches it', () => {
    const cmd = JSON.parse(finalOf('CMD').at(-1)?.args ?? 'null') as string[];

    expect(cmd).toEqual(['node', ...REPLICA_NODE_FLAGS, 'dist/web/server.js']);
    expect(finalOf('ENTRYPOINT')).toEqual([]);
    expect(finalOf('STOPSIGNAL').map((i) => i.args)).toEqual(['SIGTERM']);
    expect(finalOf('EXPOSE').map((i) => i.args)).toEqual(['3000']);
  });

  test('When a replica is started by package.json (npm start, platforms that run it), then node gets the same flags as in the image and the local formation', () => {
    const pkg = JSON.parse(readFileSync(fromRoot('package.json'), 'utf8')) as { scripts: Record<string, string> };

    expect(pkg.scripts.start).toBe(['node', ...REPLICA_NODE_FLAGS, 'dist/web/server.js'].join(' '));
  });

  test('When Docker probes the container, then the healthcheck asks /readyz with node, since slim images have no curl', () => {
    const [healthcheck] = finalOf('HEALTHCHECK');

    expect(healthcheck?.args).toMatch(/CMD \["node", "-e", ".*\/readyz/);
    expect(healthcheck?.args).not.toContain('curl');
  });

  test('When the build context is sent, then .dockerignore keeps local installs, build output, state and secrets out', () => {
    const ignored = readText('.dockerignore')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith('#'));

    expect(ignored).toEqual(expect.arrayContaining(['node_modules/', 'dist/', '.run/', '.env', '.git/', 'loadtest/results/', '*.log']));
  });
});
