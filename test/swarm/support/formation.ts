import { expect } from 'vitest';
import { readLedger, type ReleaseRecord } from '../../../formation/ledger.js';
import { ROOT } from '../../../formation/paths.js';
import type { ReleaseClone } from '../../docker/support/release-clone.js';
import { run } from '../../docker/support/run.js';
import { engines, swarmTier } from './tier.js';

/**
 * The front door as the Swarm tier's test files drive it: `make <target>
 * MODE=swarm` with the manager in DOCKER_HOST, as a user's shell would, and
 * releases made by `make release MODE=swarm REGISTRY=<the tier's registry>`
 * in a temporary clone (test/docker/support/release-clone.ts), appended to a
 * ledger of the test file's own (RELEASES_DIR) that its make targets read too.
 */

/** A user's shell pointed at the manager (node 1). */
export const managerEnv = () => ({ ...process.env, ...swarmTier().managerEnv });

/** `make <target> MODE=swarm` with the ledger `releasesDir`, in the repository unless `cwd`; never throws on a non-zero exit. */
export const makeSwarm = (
  releasesDir: string,
  target: string,
  vars: Record<string, string> = {},
  { cwd = ROOT, env = managerEnv() }: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
) =>
  run('make', ['--no-print-directory', target, 'MODE=swarm', `RELEASES_DIR=${releasesDir}`, ...Object.entries(vars).map(([k, v]) => `${k}=${v}`)], {
    env,
    cwd,
    timeoutMs: 900_000,
    allowFailure: true,
  });

/**
 * `make <target> MODE=swarm REGISTRY=<the tier's registry>` of `commit`,
 * checked out in the clone, as CI's release job runs it: the build engine in
 * DOCKER_HOST (the nodes only pull), and the build's npm ci on the host's
 * network, since the private engine has no NAT (formation/artifact.ts).
 * Returns how long it took.
 */
export async function makeInClone(clone: ReleaseClone, releasesDir: string, target: 'package' | 'release', commit: string): Promise<number> {
  await clone.checkout(commit);
  const started = performance.now();
  const result = await makeSwarm(releasesDir, target, { REGISTRY: swarmTier().registry }, {
    cwd: clone.dir,
    env: { ...process.env, ...engines().build.env, DOCKER_BUILD_NETWORK: 'host' },
  });
  expect(result.code, `make ${target} of ${commit.slice(0, 7)}:\n${result.stdout}\n${result.stderr}`).toBe(0);
  return performance.now() - started;
}

/** `make release` of `commit` in the clone; the record it appended (the ledger's newest), and how long it took. */
export async function releaseInClone(clone: ReleaseClone, releasesDir: string, commit: string): Promise<{ record: ReleaseRecord; ms: number }> {
  const ms = await makeInClone(clone, releasesDir, 'release', commit);
  const record = readLedger(releasesDir).at(-1)!;
  expect(record).toMatchObject({ commit, image: `${swarmTier().registry}/headcount-web:${commit.slice(0, 7)}` });
  return { record, ms };
}
