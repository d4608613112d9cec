import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { z } from 'zod';
import { integer, parseEnv } from '../web/env.js';
import { fromRoot } from './paths.js';

export const TEMPLATE_PATH = fromRoot('lb/nginx.conf.template');

/**
 * Passive health for every upstream server: two failed attempts within 5 s
 * take a replica out of the rotation for 5 s. docker-compose.yml writes the same
 * parameters into LB_UPSTREAM_SERVERS, and a test holds the two together.
 */
export const UPSTREAM_SERVER_PARAMS = 'max_fails=2 fail_timeout=5s';

/**
 * The same replicas again, used only when every one above is counted out (a
 * full Redis outage, as nginx retries 503s): never counted out themselves, so
 * nginx never answers "no live upstreams" while a replica listens, and
 * counting resumes as soon as Redis does. See lb/nginx.conf.template.
 */
export const BACKUP_SERVER_PARAMS = 'backup max_fails=0';

/** Only these names are substituted, in Docker too (NGINX_ENVSUBST_FILTER=^LB_). */
const PLACEHOLDER = /\$\{(LB_[A-Z0-9_]*)\}|\$(LB_[A-Z0-9_]*)/g;

/**
 * envsubst as the official nginx image runs it: `${NAME}` and `$NAME` are
 * replaced for the names given, and every other `$` is left for nginx.
 * A placeholder with no value is an error here (envsubst would leave it, and
 * nginx would fail later with a less helpful message).
 */
export function renderTemplate(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(PLACEHOLDER, (_match, braced: string | undefined, bare: string | undefined) => {
    const name = (braced ?? bare)!;
    const value = values[name];
    if (value === undefined) throw new Error(`nginx template needs ${name}`);
    return value;
  });
}

/** `<address>` or `<address>/<prefix length>`, IPv4 or IPv6: what nginx's `geo` accepts. */
const isAddressOrCidr = (item: string) => {
  const [address = '', bits, ...rest] = item.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128));
};

/**
 * The local formation's load-balancer knobs, from the environment it runs in
 * (make up, the tests). Docker sets the template's values directly in
 * docker-compose.yml instead.
 */
const lbSchema = z.object({
  // Requests per client address: `20r/s`, `600r/m`, or `0` for no limit.
  LB_RATE_LIMIT: z
    .string()
    .regex(/^(0|[1-9]\d*r\/[sm])$/, { error: 'must be a rate such as 20r/s or 600r/m, or 0 for no limit' })
    .default('20r/s'),
  // Requests a client may send at once above the rate before it gets 429s.
  LB_RATE_BURST: integer(0, 100_000).default(40),
  // Addresses and CIDRs never limited, separated by spaces or commas. Locally
  // every client is 127.0.0.1, the load tests included.
  LB_RATE_LIMIT_EXEMPT: z
    .string()
    .refine((value) => addressList(value).every(isAddressOrCidr), {
      error: 'must list IP addresses or CIDRs (e.g. "127.0.0.1 10.0.0.0/8"), separated by spaces or commas',
    })
    .default('127.0.0.1'),
  // Host names nginx serves (without port); any other Host gets 421.
  LB_SERVER_NAME: z
    .string()
    .regex(/^[A-Za-z0-9.\-:[\]*_ ]+$/, { error: 'must be host names separated by spaces' })
    .default('localhost 127.0.0.1'),
  // How long a client may take to send its request line and headers.
  LB_CLIENT_HEADER_TIMEOUT: z
    .string()
    .regex(/^[1-9]\d*(ms|s|m)$/, { error: 'must be an nginx time such as 10s or 500ms' })
    .default('10s'),
  // Keep it below the replicas' KEEP_ALIVE_TIMEOUT_MS (65 s).
  LB_UPSTREAM_KEEPALIVE_TIMEOUT: z
    .string()
    .regex(/^[1-9]\d*(ms|s|m)$/, { error: 'must be an nginx time such as 60s' })
    .default('60s'),
});

const addressList = (value: string) => value.split(/[\s,]+/).filter(Boolean);

export interface LocalLbOptions {
  lbPort: number;
  replicaPorts: readonly number[];
  runtimeDir: string;
  /** nginx's stub_status listener (LB_STATUS_LISTEN): a free port on 127.0.0.1, for the nginx exporter. */
  statusPort: number;
  host?: string;
  /** Where LB_RATE_LIMIT, LB_RATE_BURST, ... come from. Default: this process's environment. */
  env?: Readonly<Record<string, string | undefined>>;
  /**
   * false: no access log (withoutAccessLog). Only for `make bench`'s naive
   * Express baseline (issue 11), which logs nothing; every formation people
   * run keeps the default, true.
   */
  accessLog?: boolean;
  /** The template to render. Default lb/nginx.conf.template; `make bench-compare` passes another commit's. */
  templatePath?: string;
}

/** The values the local formation substitutes: one `server` line per replica, no resolver. */
export function localLbValues({ lbPort, replicaPorts, runtimeDir, statusPort, host = '127.0.0.1', env = process.env }: LocalLbOptions) {
  const lb = parseEnv(lbSchema, {
    LB_RATE_LIMIT: env.LB_RATE_LIMIT,
    LB_RATE_BURST: env.LB_RATE_BURST,
    LB_RATE_LIMIT_EXEMPT: env.LB_RATE_LIMIT_EXEMPT,
    LB_SERVER_NAME: env.LB_SERVER_NAME,
    LB_CLIENT_HEADER_TIMEOUT: env.LB_CLIENT_HEADER_TIMEOUT,
    LB_UPSTREAM_KEEPALIVE_TIMEOUT: env.LB_UPSTREAM_KEEPALIVE_TIMEOUT,
  });
  return {
    LB_PORT: String(lbPort),
    LB_WORKER_RLIMIT_NOFILE: String(Math.min(65_536, hardFileLimit())),
    LB_RUNTIME_DIR: runtimeDir,
    LB_RESOLVER: '# (no resolver: local replicas are addressed by port)',
    LB_UPSTREAM_SERVERS: [
      ...replicaPorts.map((port) => `server ${host}:${port} ${UPSTREAM_SERVER_PARAMS};`),
      ...replicaPorts.map((port) => `server ${host}:${port} ${BACKUP_SERVER_PARAMS};`),
    ].join('\n        '),
    LB_SERVER_NAME: lb.LB_SERVER_NAME,
    LB_CLIENT_HEADER_TIMEOUT: lb.LB_CLIENT_HEADER_TIMEOUT,
    LB_UPSTREAM_KEEPALIVE_TIMEOUT: lb.LB_UPSTREAM_KEEPALIVE_TIMEOUT,
    // nginx has no rate=0: `0` comments out the zone and limit_req lines.
    LB_RATE_LIMIT_OFF: lb.LB_RATE_LIMIT === '0' ? '#' : '',
    LB_RATE_LIMIT: lb.LB_RATE_LIMIT,
    LB_RATE_BURST: String(lb.LB_RATE_BURST),
    LB_RATE_LIMIT_EXEMPT: exemptGeoLines(addressList(lb.LB_RATE_LIMIT_EXEMPT)),
    // Loopback only: never reachable from another machine.
    LB_STATUS_LISTEN: `127.0.0.1:${statusPort}`,
  };
}

/** The `geo` lines that map each exempt address to 1 (an empty limit key). */
export function exemptGeoLines(addresses: readonly string[]): string {
  return addresses.length === 0 ? '# (no exempt address)' : addresses.map((a) => `${a} 1;`).join('\n        ');
}

/** The template's access log: one JSON line per request to stdout, at the http level. */
const ACCESS_LOG = /^([ \t]*)access_log \/dev\/stdout headcount_json\b[^;\n]*;$/gm;

/**
 * The rendered config with that access log off (`access_log off;` in its
 * place; the locations that already had it off keep it). Throws unless the
 * config has exactly one such line, so a changed template can never leave
 * the log silently on.
 */
export function withoutAccessLog(config: string): string {
  const found = config.match(ACCESS_LOG)?.length ?? 0;
  if (found !== 1) throw new Error(`expected one "access_log /dev/stdout headcount_json" line in the nginx config, found ${found}`);
  return config.replace(ACCESS_LOG, '$1access_log off;');
}

export async function renderLocalNginxConfig(options: LocalLbOptions): Promise<string> {
  const config = renderTemplate(await readFile(options.templatePath ?? TEMPLATE_PATH, 'utf8'), localLbValues(options));
  return options.accessLog === false ? withoutAccessLog(config) : config;
}

/** This process's hard limit on open files (Node has no getrlimit; the shell does). */
function hardFileLimit(): number {
  const out = spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim();
  return out === 'unlimited' ? Number.POSITIVE_INFINITY : Number(out) || 1_024;
}
