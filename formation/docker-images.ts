import { spawnSync } from 'node:child_process';
import { composeArgv } from './docker-commands.js';
import type { FormationOptions } from './options.js';
import { ROOT } from './paths.js';

// What `make up MODE=docker` says when `docker compose up` failed because an
// image could not be pulled (Grafana's in the monitoring profile, where no
// registry answers): compose's own error is one line among its pull progress,
// and no container was created whose logs could say more.

/** A service as `docker compose config --format json` gives it (the fields read here). */
export interface ConfiguredService {
  image?: string;
  build?: unknown;
}

/**
 * The images compose had to pull that are not on the engine: of the services
 * it would start (its profiles applied), those without `build` (a failed
 * build says why itself) whose image `present` does not find.
 */
export function unpulledImages(services: Readonly<Record<string, ConfiguredService>>, present: (image: string) => boolean): { service: string; image: string }[] {
  return Object.entries(services)
    .filter(([, s]) => s.image !== undefined && s.build === undefined && !present(s.image))
    .map(([service, s]) => ({ service, image: s.image! }))
    .sort((a, b) => a.service.localeCompare(b.service));
}

/** What to say of images compose could not pull: which, and the two ways out. */
export function unpulledImagesNote(missing: readonly { service: string; image: string }[]): string {
  const pulls = missing.map((m) => `docker pull ${m.image}`).join(', ');
  const services = missing.map((m) => m.service).join(', ');
  const them = missing.length === 1 ? 'it' : 'them';
  return (
    `not on this engine, and compose could not pull ${them} (its error is above): ${missing.map((m) => `${m.image} (${m.service})`).join(', ')}. ` +
    `Pull ${them} where a registry answers (${pulls}; docker save and docker load carry images to this engine), ` +
    `or leave ${services} out with a compose override in COMPOSE_FILE (docs/monitoring.md).`
  );
}

function configuredServices(options: FormationOptions, env: NodeJS.ProcessEnv): Record<string, ConfiguredService> {
  const config = spawnSync('docker', [...composeArgv(options, env), 'config', '--format', 'json'], { cwd: ROOT, env, encoding: 'utf8' });
  try {
    return config.status === 0 ? ((JSON.parse(config.stdout) as { services?: Record<string, ConfiguredService> }).services ?? {}) : {};
  } catch {
    return {};
  }
}

const imagePresent = (image: string, env: NodeJS.ProcessEnv) =>
  spawnSync('docker', ['image', 'inspect', '--format', '{{.Id}}', image], { env, stdio: 'ignore' }).status === 0;

/** The images of the formation's services (its profiles applied) that compose could not pull. */
export const unpulledImagesOf = (options: FormationOptions, env: NodeJS.ProcessEnv) =>
  unpulledImages(configuredServices(options, env), (image) => imagePresent(image, env));
