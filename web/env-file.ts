import { existsSync } from 'node:fs';
import { config as loadDotenv } from 'dotenv';

/**
 * The one env file every command reads: ENV_FILE, or `.env` in the working
 * directory when it exists. Variables already in the environment win over the
 * file (and make's command-line variables are in the environment), so
 * `make up REPLICAS=6` beats REPLICAS=2 in the file. A named ENV_FILE that does
 * not exist is an error, not a silent default.
 */
export function loadEnvFile(env: NodeJS.ProcessEnv): string | undefined {
  const named = env.ENV_FILE || undefined;
  const file = named ?? '.env';
  if (!existsSync(file)) {
    if (named) throw new Error(`ENV_FILE ${named} does not exist`);
    return undefined;
  }
  loadDotenv({ path: file, processEnv: env as Record<string, string>, quiet: true });
  return file;
}
