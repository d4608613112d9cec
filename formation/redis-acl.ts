import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { fromRoot } from './paths.js';

export const ACL_TEMPLATE = fromRoot('redis', 'users.acl.template');

export interface RedisCredentials {
  /** The operator (Redis's `default` user): full access, never given to the app. */
  operator: string;
  web: string;
  admin: string;
  /** The Redis exporter's (headcount-exporter). */
  exporter: string;
}

/** Passwords from the environment, or fresh random ones (URL-safe) for this run. */
export function credentialsFrom(env: Readonly<Record<string, string | undefined>>): RedisCredentials {
  const random = () => randomBytes(18).toString('base64url');
  return {
    operator: env.REDIS_PASSWORD || random(),
    web: env.REDIS_WEB_PASSWORD || random(),
    admin: env.REDIS_ADMIN_PASSWORD || random(),
    exporter: env.REDIS_EXPORTER_PASSWORD || random(),
  };
}

/** Renders redis/users.acl.template for one counter key into `file` (mode 600: it holds passwords). */
export async function writeAclFile(file: string, counterKey: string, credentials: RedisCredentials): Promise<void> {
  const values: Record<string, string> = {
    COUNTER_KEY: counterKey,
    REDIS_PASSWORD: credentials.operator,
    REDIS_WEB_PASSWORD: credentials.web,
    REDIS_ADMIN_PASSWORD: credentials.admin,
    REDIS_EXPORTER_PASSWORD: credentials.exporter,
  };
  for (const [name, value] of Object.entries(values)) {
    // Redis's ACL file reader splits on spaces and parses quotes and
    // backslashes itself: anything else could end a rule early and grant what
    // it should not. The same rule as redis/docker-start.sh.
    if (!/^[A-Za-z0-9._~+/=:{}-]+$/.test(value)) {
      throw new Error(`${name} may contain only letters, digits and . _ ~ + / = - (and : { } in a key)`);
    }
  }
  const template = await readFile(ACL_TEMPLATE, 'utf8');
  const rendered = template
    .split('\n')
    .filter((line) => !line.startsWith('#'))
    .join('\n')
    .replace(/\$\{([A-Z_]+)\}/g, (_m, name: string) => {
      const value = values[name];
      if (value === undefined) throw new Error(`users.acl.template needs ${name}`);
      return value;
    });
  await writeFile(file, rendered, { mode: 0o600 });
}

/** A redis:// URL for one user of a local Redis. */
export const redisUrlFor = (port: number, user: string, password: string) =>
  `redis://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}`;
