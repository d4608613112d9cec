import { appendFileSync } from 'node:fs';
import { inject } from 'vitest';

/** What the Docker tier's global setup hands the tests (test/docker/global-setup.ts). */
export interface DockerTier {
  engine: 'existing' | 'private';
  /** DOCKER_HOST, DOCKER_CONFIG: merged into the environment of every docker and make command. */
  env: Record<string, string>;
  /**
   * LB_NOFILE for docker-compose.yml when the engine cannot grant the default
   * 65536 open files (its own hard limit is lower); undefined: the default.
   */
  lbNofile?: string;
  /**
   * Client connections a load may hold open through the published port (more
   * requests than that are in flight at once, queued by the client). The
   * engine's port proxy (docker-proxy) holds 6 descriptors per connection
   * (two sockets, two splice pipes) within the engine's own file limit, and
   * stops for good when it runs out.
   */
  maxConnections: number;
  /** Figures the tests record, printed by the global teardown. */
  figuresFile: string;
  /** Where stand-in images are cached between runs (a test that needs more of them builds them there). */
  cacheDir: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    dockerTier: DockerTier;
  }
}

export const dockerTier = (): DockerTier => inject('dockerTier');

/** Records a figure (time to healthy, throughput, ...) for the tier's closing summary. */
export function recordFigure(name: string, value: string): void {
  appendFileSync(dockerTier().figuresFile, `${JSON.stringify({ name, value })}\n`);
}
