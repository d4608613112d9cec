import { ROOT } from '../../../formation/paths.js';
import { run } from '../../docker/support/run.js';
import type { Engine } from './topology.js';

/** The artifact tag of a checkout: its short sha, `-dirty` when the tree has changes (issue 9's rule). */
export async function artifactTag(cwd: string): Promise<string> {
  const sha = (await run('git', ['rev-parse', '--short=7', 'HEAD'], { cwd })).stdout.trim();
  const dirty = (await run('git', ['status', '--porcelain'], { cwd })).stdout.trim() !== '';
  return dirty ? `${sha}-dirty` : sha;
}

/**
 * The web image of checkout `cwd`, built on the build engine from
 * web/Dockerfile and pushed to the run's registry; returns the pushed
 * reference. The build uses the host's network: the private engine has no
 * NAT, and `npm ci` in the Dockerfile needs the npm registry.
 */
export async function buildAndPush(build: Engine, registry: string, cwd = ROOT): Promise<{ image: string; buildMs: number; pushMs: number }> {
  const image = `${registry}/headcount-web:${await artifactTag(cwd)}`;
  const built = await build.docker(['build', '--quiet', '--network', 'host', '--file', 'web/Dockerfile', '--tag', image, '.'], {
    cwd,
    timeoutMs: 900_000,
  });
  const pushed = await build.docker(['push', '--quiet', image], { timeoutMs: 300_000 });
  return { image, buildMs: built.ms, pushMs: pushed.ms };
}
