import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fromRoot } from './paths.js';

export const TEMPLATE_PATH = fromRoot('lb/nginx.conf.template');

/**
 * Passive health for every upstream server: two failed attempts within 5 s
 * take a replica out of the rotation for 5 s. docker-compose.yml writes the same
 * parameters into LB_UPSTREAM_SERVERS, and a test holds the two together.
 */
export const UPSTREAM_SERVER_PARAMS = 'max_fails=2 fail_timeout=5s';

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

export interface LocalLbOptions {
  lbPort: number;
  replicaPorts: readonly number[];
  runtimeDir: string;
  host?: string;
}

/** The values the local formation substitutes: one `server` line per replica, no resolver. */
export function localLbValues({ lbPort, replicaPorts, runtimeDir, host = '127.0.0.1' }: LocalLbOptions) {
  return {
    LB_PORT: String(lbPort),
    LB_WORKER_RLIMIT_NOFILE: String(Math.min(65_536, hardFileLimit())),
    LB_RUNTIME_DIR: runtimeDir,
    LB_RESOLVER: '# (no resolver: local replicas are addressed by port)',
    LB_UPSTREAM_SERVERS: replicaPorts
      .map((port) => `server ${host}:${port} ${UPSTREAM_SERVER_PARAMS};`)
      .join('\n        '),
  };
}

export async function renderLocalNginxConfig(options: LocalLbOptions): Promise<string> {
  return renderTemplate(await readFile(TEMPLATE_PATH, 'utf8'), localLbValues(options));
}

/** This process's hard limit on open files (Node has no getrlimit; the shell does). */
function hardFileLimit(): number {
  const out = spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim();
  return out === 'unlimited' ? Number.POSITIVE_INFINITY : Number(out) || 1_024;
}
