import { spawnSync } from 'node:child_process';
import { z } from 'zod';
import { integer, parseEnv } from '../web/env.js';

const flag = z
  .enum(['0', '1', 'false', 'true'], { error: 'must be 1 or 0' })
  .default('0')
  .transform((value) => value === '1' || value === 'true');

const schema = z.object({
  MODE: z.enum(['auto', 'local', 'docker']).default('auto'),
  REPLICAS: integer(1, 64).default(4),
  LB_PORT: integer(1, 65535).default(8080),
  // `make up VERBOSE=1`: every process's every line in the terminal, not only lifecycle and traffic.
  VERBOSE: flag,
  // Each process's log file is rotated past this size (one previous file kept).
  LOG_MAX_BYTES: integer(65_536, 1_073_741_824).default(10 * 1024 * 1024),
});

export type FormationOptions = Readonly<z.infer<typeof schema>>;

/** The formation's own knobs (make up/start/stop/logs): REPLICAS, LB_PORT, MODE, VERBOSE, LOG_MAX_BYTES. */
export function loadFormationOptions(env: Readonly<Record<string, string | undefined>>): FormationOptions {
  return parseEnv(schema, env);
}

/** True when a Docker engine answers (not merely when the docker client is installed). */
export function dockerEngineAnswers(): boolean {
  const result = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { stdio: 'ignore', timeout: 5_000 });
  return result.status === 0;
}

export function resolveMode(mode: FormationOptions['MODE']): 'local' | 'docker' {
  if (mode !== 'auto') return mode;
  return dockerEngineAnswers() ? 'docker' : 'local';
}
