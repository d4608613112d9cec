import { spawnSync } from 'node:child_process';
import { z } from 'zod';

const schema = z.object({
  MODE: z.enum(['auto', 'local', 'docker']).default('auto'),
  REPLICAS: z.coerce
    .number({ error: 'must be an integer from 1 to 64' })
    .int({ error: 'must be an integer from 1 to 64' })
    .min(1, { error: 'must be an integer from 1 to 64' })
    .max(64, { error: 'must be an integer from 1 to 64' })
    .default(4),
  LB_PORT: z.coerce
    .number({ error: 'must be an integer from 1 to 65535' })
    .int({ error: 'must be an integer from 1 to 65535' })
    .min(1, { error: 'must be an integer from 1 to 65535' })
    .max(65535, { error: 'must be an integer from 1 to 65535' })
    .default(8080),
});

export type FormationOptions = Readonly<z.infer<typeof schema>>;

/** The formation's own knobs (make up/start/stop): REPLICAS, LB_PORT, MODE. */
export function loadFormationOptions(env: Readonly<Record<string, string | undefined>>): FormationOptions {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const result = schema.safeParse(present);
  if (!result.success) {
    throw new Error(
      `invalid configuration: ${result.error.issues
        .map((i) => (i.code === 'invalid_value' ? `${i.path.join('.')} must be one of ${i.values.join(', ')}` : `${i.path.join('.')} ${i.message}`))
        .join('; ')}`,
    );
  }
  return Object.freeze(result.data);
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
