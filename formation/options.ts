import { spawnSync } from 'node:child_process';
import { z } from 'zod';
import { integer, parseEnv } from '../web/env.js';

const flag = z
  .enum(['0', '1', 'false', 'true'], { error: 'must be 1 or 0' })
  .default('0')
  .transform((value) => value === '1' || value === 'true');

const schema = z.object({
  // `swarm` is only ever chosen by name: auto never deploys onto a cluster.
  MODE: z.enum(['auto', 'local', 'docker', 'swarm']).default('auto'),
  REPLICAS: integer(1, 64).default(4),
  LB_PORT: integer(1, 65535).default(8080),
  // `make up VERBOSE=1`: every process's every line in the terminal, not only lifecycle and traffic.
  VERBOSE: flag,
  // Each process's log file is rotated past this size (one previous file kept).
  LOG_MAX_BYTES: integer(65_536, 1_073_741_824).default(10 * 1024 * 1024),
  // Build, release, run (formation/artifact.ts, ledger.ts): where artifacts and the ledger live.
  RELEASES_DIR: z.string().min(1).default('.releases'),
  // `make release` pushes the image to this registry (host:port[/path]) and records that reference.
  REGISTRY: z
    .string()
    .regex(/^[A-Za-z0-9.-]+(:\d+)?(\/[a-z0-9._\/-]+)?$/, { error: 'must be host[:port][/path], e.g. ghcr.io/owner or 10.0.0.1:5000' })
    .optional(),
  // `make deploy RELEASE=r3-1a2b3c4`; unset: the newest release.
  // `make up MONITORING=1`: Prometheus and the nginx and Redis exporters beside
  // the formation (local: Debian's packages; docker: the `monitoring` profile).
  MONITORING: flag,
  // Where Prometheus listens (127.0.0.1 only). Unset: LB_PORT + 1010 (9090
  // beside the default 8080), so a second formation's has a port of its own.
  PROMETHEUS_PORT: integer(1, 65535).optional(),
  RELEASE: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/, { error: 'must be a release id such as r3-1a2b3c4' })
    .optional(),
});

export type FormationOptions = Readonly<z.infer<typeof schema>>;

/** The formation's own knobs (make up/start/stop/logs/release/deploy): REPLICAS, LB_PORT, MODE, VERBOSE, LOG_MAX_BYTES, RELEASES_DIR, REGISTRY, RELEASE, MONITORING, PROMETHEUS_PORT. */
export function loadFormationOptions(env: Readonly<Record<string, string | undefined>>): FormationOptions {
  return parseEnv(schema, env);
}

/** True when a Docker engine answers (not merely when the docker client is installed). */
export function dockerEngineAnswers(): boolean {
  const result = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { stdio: 'ignore', timeout: 5_000 });
  return result.status === 0;
}

export type Mode = 'local' | 'docker' | 'swarm';

export function resolveMode(mode: FormationOptions['MODE']): Mode {
  if (mode !== 'auto') return mode;
  return dockerEngineAnswers() ? 'docker' : 'local';
}
