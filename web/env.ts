import { z } from 'zod';

// Turning an environment into validated values, for every config of the
// house: the replica's (web/config.ts), the formation's and the load tests'.

/** An integer from min to max, coerced from the string the environment holds. */
export const integer = (min: number, max: number) =>
  z.coerce
    .number({ error: `must be an integer from ${min} to ${max}` })
    .int({ error: `must be an integer from ${min} to ${max}` })
    .min(min, { error: `must be an integer from ${min} to ${max}` })
    .max(max, { error: `must be an integer from ${min} to ${max}` });

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration: ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

export type Env = Readonly<Record<string, string | undefined>>;

/**
 * Validates an environment against a schema: a frozen result, or one
 * ConfigError naming every bad variable. `extraProblems` adds rules that span
 * variables. An empty variable counts as unset, as in a shell's `${VAR:-default}`.
 */
export function parseEnv<S extends z.ZodType<object>>(
  schemaOf: S,
  env: Env,
  extraProblems: (present: Env) => string[] = () => [],
): Readonly<z.infer<S>> {
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const result = schemaOf.safeParse(present);
  const problems = result.success
    ? []
    : result.error.issues.map((issue) => {
        const name = issue.path.join('.');
        return issue.code === 'invalid_value' ? `${name} must be one of ${issue.values.join(', ')}` : `${name} ${issue.message}`;
      });
  problems.push(...extraProblems(present));
  if (!result.success || problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(result.data);
}
