// The web replica's entry point: `node dist/web/server.js`.
import { existsSync } from 'node:fs';
import { config as loadDotenv } from 'dotenv';
import { loadConfig } from './config.js';
import { startReplica } from './replica.js';
import { failStartup } from './startup-error.js';

// `.env` is for local development only; in production the platform sets the
// environment, and a stray file must not change it. Real variables win.
if (process.env.NODE_ENV !== 'production' && existsSync('.env')) loadDotenv({ path: '.env', quiet: true });

try {
  await startReplica(loadConfig(process.env));
} catch (error) {
  failStartup(error);
}
