import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { z } from 'zod';
import { integer, parseEnv, type Env } from './env.js';

// Thrown by loadConfig; its home is web/env.ts.
export { ConfigError } from './env.js';

// Twelve-factor III: all config comes from the environment. This module only
// validates; loading `.env` is the entry points' job (see web/server.ts), so
// tests can pass literal objects.

const redisUrl = z.string().refine(
  (value) => {
    try {
      const { protocol, hostname: host } = new URL(value);
      return (protocol === 'redis:' || protocol === 'rediss:') && host.length > 0;
    } catch {
      return false;
    }
  },
  // The value may hold a password, so the message never repeats it.
  { error: 'must be a redis:// or rediss:// URL with a host' },
);

const schema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  HOST: z.string().min(1).default('0.0.0.0'),
  PORT: integer(0, 65535).default(3000),
  // A second port, bound as soon as it is free: the local formation's deploy
  // starts the new replica on PORT, and once it is ready stops the old one,
  // whose port (the slot nginx sends to) this replica then takes over.
  TAKEOVER_PORT: integer(1, 65535).optional(),
  REPLICA_ID: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/, { error: 'must be 1-64 letters, digits, ".", "_" or "-"' })
    .default(hostname().slice(0, 64)),
  // Which release this process runs (formation/ledger.ts gives the ids): sent
  // as X-Release on every response, in the page footer, /healthz and every log
  // line. `dev` is a build that was never released.
  RELEASE_ID: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/, { error: 'must be 1-64 letters, digits, ".", "_" or "-"' })
    .default('dev'),
  REDIS_URL: redisUrl.default('redis://127.0.0.1:6379'),
  // The Redis password as a file (Docker secrets, a mounted volume), so it
  // never sits in the environment; it replaces any password in REDIS_URL.
  REDIS_PASSWORD_FILE: z.string().min(1).optional(),
  COUNTER_KEY: z
    .string()
    .regex(/^[A-Za-z0-9:_.{}-]{1,100}$/, { error: 'must be 1-100 characters of A-Z a-z 0-9 : _ . { } -' })
    .default('headcount:visits'),
  // Each Redis command gives up after this long, so an outage or a hung Redis
  // becomes a fast 503 instead of a hang. Nginx's proxy_read_timeout is longer.
  REDIS_COMMAND_TIMEOUT_MS: integer(10, 10_000).default(250),
  // How long a request id is remembered. Must outlive Nginx's whole retry window:
  // proxy_next_upstream_timeout (10 s) plus one last attempt (connect 1 s +
  // send 5 s + read 5 s), about 21 s; see lb/nginx.conf.template.
  IDEMPOTENCY_TTL_SECONDS: integer(30, 86_400).default(60),
  // Above Nginx's upstream keepalive_timeout (60 s), so Nginx, not Node, closes
  // idle upstream connections.
  KEEP_ALIVE_TIMEOUT_MS: integer(1_000, 600_000).default(65_000),
  // How long SIGTERM waits for in-flight requests before forcing exit.
  SHUTDOWN_GRACE_MS: integer(100, 120_000).default(10_000),
  // How long SIGTERM keeps the listener open, serving as usual while /readyz
  // says 503, before the drain above begins. For load balancers that learn of a
  // stopping replica only through DNS (Swarm drops a stopping task from Docker's
  // DNS at once, and nginx keeps an answer for its resolver's `valid` time):
  // until they re-resolve, new connections must still find it listening.
  SHUTDOWN_DELAY_MS: integer(0, 60_000).default(0),
  // The metrics listener (web/metrics-server.ts): GET /metrics only, for
  // Prometheus, never proxied by nginx. 0 picks a free port (the ready line
  // names it); `off` runs the replica without metrics (a benchmark's baseline).
  METRICS_PORT: z
    .union([z.literal('off'), integer(0, 65535)], { error: 'must be an integer from 0 to 65535, or off' })
    .default(9464),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type Config = Readonly<z.infer<typeof schema>>;

/** Turns an environment into the replica's frozen config, or throws one ConfigError naming every bad variable. */
export function loadConfig(env: Env): Config {
  let password: string | undefined;
  const config = parseEnv(schema, env, (present) => {
    const problems: string[] = [];
    // Production must name its backing service: a default of localhost would
    // silently give each host its own counter.
    if (present.NODE_ENV === 'production' && present.REDIS_URL === undefined) {
      problems.push('REDIS_URL is required when NODE_ENV=production');
    }
    if (present.REDIS_PASSWORD_FILE !== undefined) {
      try {
        password = readFileSync(present.REDIS_PASSWORD_FILE, 'utf8').trim();
        if (password === '') problems.push('REDIS_PASSWORD_FILE is empty');
      } catch {
        problems.push('REDIS_PASSWORD_FILE cannot be read');
      }
    }
    return problems;
  });
  if (password === undefined) return config;
  const url = new URL(config.REDIS_URL);
  url.password = encodeURIComponent(password);
  return Object.freeze({ ...config, REDIS_URL: url.href });
}
