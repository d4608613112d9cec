import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
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

/**
 * A second real build: a clone of this checkout in a temporary folder, `edit`
 * applied and committed (with a git identity of its own, as CI has none), then
 * built and pushed like the first. The clone is removed afterwards.
 */
export async function buildCommit(
  build: Engine,
  registry: string,
  message: string,
  edit: (dir: string) => void,
): Promise<{ image: string; tag: string; commit: string; buildMs: number; pushMs: number }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'headcount-swarm-clone-'));
  try {
    await run('git', ['clone', '--quiet', '--no-hardlinks', ROOT, dir]);
    edit(dir);
    await run('git', ['-c', 'user.name=headcount swarm tier', '-c', 'user.email=swarm-tier@headcount.invalid', 'commit', '--quiet', '--all', '--message', message], {
      cwd: dir,
    });
    const pushed = await buildAndPush(build, registry, dir);
    const commit = (await run('git', ['rev-parse', 'HEAD'], { cwd: dir })).stdout.trim();
    return { ...pushed, tag: pushed.image.split(':').at(-1)!, commit };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Replaces `from` with `to` in `file` of checkout `dir`, or throws when `from` is not there. */
export function replaceIn(dir: string, file: string, from: string, to: string): void {
  const full = path.join(dir, file);
  const text = readFileSync(full, 'utf8');
  if (!text.includes(from)) throw new Error(`${file} has no "${from}"`);
  writeFileSync(full, text.replace(from, to));
}
