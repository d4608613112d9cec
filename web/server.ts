// The web replica's entry point: `node dist/web/server.js`.
import { loadConfig } from './config.js';
import { loadEnvFile } from './env-file.js';
import { startReplica } from './replica.js';
import { failStartup } from './startup-error.js';

try {
  // The env file (ENV_FILE, or .env) is for local development only; in
  // production the platform (or the formation) sets the environment, and a
  // stray file must not change it. Real variables win.
  if (process.env.NODE_ENV !== 'production') loadEnvFile(process.env);
  await startReplica(loadConfig(process.env));
} catch (error) {
  failStartup(error);
}
