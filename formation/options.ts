import { spawnSync } from 'node:child_process';
import { z } from 'zod';
import { integer, parseEnv } from '../web/env.js';

const schema = z.object({
  MODE: z.enum(['auto', 'local', 'docker']).default('auto'),
  REPLICAS: integer(1, 64).default(4),
  LB_PORT: integer(1, 65535).default(8080),
});

export type FormationOptions = Readonly<z.infer<typeof schema>>;

/** The formation's own knobs (make up/start/stop): REPLICAS, LB_PORT, MODE. */
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
