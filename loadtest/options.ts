import { parseArgs } from 'node:util';
import { z } from 'zod';
import { integer, parseEnv } from '../web/env.js';

const schema = z.object({
  LB_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  REQUESTS: integer(1, 10_000_000).default(20_000),
  CONNECTIONS: integer(1, 10_000).default(100),
  DURATION: integer(0, 3_600).default(10),
  REPLICAS: integer(1, 64).default(4),
  LB_PORT: integer(1, 65535).default(8080),
  CONCURRENCIES: z
    .string()
    .regex(/^\d+(,\d+)*$/, { error: 'must be a comma-separated list of connection counts' })
    .default('10,50,100,200')
    .transform((list) => list.split(',').map(Number)),
  // Checks that may be NOT CHECKED without failing the run (comma-separated names, or `all`): see verdict.ts.
  ACCEPT_NOT_CHECKED: z
    .string()
    .regex(/^[a-z0-9 ,-]*$/, { error: 'must be check names separated by commas (e.g. replica-share), or all' })
    .default(''),
});

export type LoadtestOptions = Readonly<z.infer<typeof schema>>;

/**
 * Options from the environment (LB_URL, REQUESTS, CONNECTIONS, DURATION,
 * REPLICAS, CONCURRENCIES, ACCEPT_NOT_CHECKED), each overridable by a flag of the same name in
 * lower case: `--requests 3000 --duration 0`. DURATION=0 skips the throughput run.
 */
export function loadLoadtestOptions(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): LoadtestOptions {
  const names = ['lb-url', 'requests', 'connections', 'duration', 'replicas', 'concurrencies', 'accept-not-checked'] as const;
  const { values } = parseArgs({
    args: [...argv],
    options: Object.fromEntries(names.map((name) => [name, { type: 'string' }])) as Record<(typeof names)[number], { type: 'string' }>,
    strict: true,
  });
  const fromFlags = Object.fromEntries(Object.entries(values).map(([name, value]) => [name.toUpperCase().replaceAll('-', '_'), value]));
  return parseEnv(schema, { ...env, ...fromFlags });
}
