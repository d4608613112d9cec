import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { fromRoot } from '../../../formation/paths.js';
import { DEBIAN_MIRROR } from './engine.js';
import { run } from './run.js';

/**
 * Stand-ins for the official base images the project pins, for an engine that
 * cannot pull them: Debian sid (`debootstrap --variant=minbase`, imported with
 * `docker import`) plus the package, built by the recipes beside this file and
 * tagged exactly as pinned, so web/Dockerfile and docker-compose.yml run
 * unchanged. Each is saved under the cache folder, keyed by a hash of its
 * recipe and the pinned tag, and loaded from there on later runs.
 */

const RECIPES = fileURLToPath(new URL('../standins/', import.meta.url));
export const SUITE = 'sid';
// npm as the official node image ships it, from the npm registry (node.Dockerfile).
const NPM_VERSION = '11.19.1';
const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

export interface StandIn {
  /** The pinned reference it is tagged as, e.g. node:26.12.0-trixie-slim. */
  image: string;
  recipe: 'node' | 'nginx' | 'redis';
  /** What is really inside: the Debian package's version. */
  inside: string;
  /** Where it came from this run, and how long that took. */
  source: 'cache' | 'built';
  seconds: number;
}

/** The images the project pins: web/Dockerfile's NODE_IMAGE default, and the lb's and redis's images. */
export function pinnedImages(): Record<StandIn['recipe'], string> {
  const dockerfile = readFileSync(fromRoot('web/Dockerfile'), 'utf8');
  const node = /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)?.[1];
  const compose = parse(readFileSync(fromRoot('docker-compose.yml'), 'utf8'), { merge: true }) as {
    services: Record<string, { image?: string }>;
  };
  const nginx = compose.services.lb?.image;
  const redis = compose.services.redis?.image;
  if (!node || !nginx || !redis) throw new Error('cannot read the pinned images from web/Dockerfile and docker-compose.yml');
  return { node, nginx, redis };
}

export const hash = (...parts: (string | Buffer)[]) => {
  const h = createHash('sha256');
  for (const part of parts) h.update(part).update('\0');
  return h.digest('hex').slice(0, 16);
};

// Files only: monitoring/ holds the monitoring profile's recipes (monitoring-standins.ts),
// which stay out of these images' hash so adding one rebuilds none of these.
const recipeFiles = () => readdirSync(RECIPES, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name).sort();

export async function provideStandIns(env: NodeJS.ProcessEnv, cacheDir: string, log: (line: string) => void): Promise<StandIn[]> {
  const pinned = pinnedImages();
  mkdirSync(cacheDir, { recursive: true });
  const recipeHash = hash(SUITE, DEBIAN_MIRROR, NPM_VERSION, readFileSync(CA_BUNDLE), ...recipeFiles().map((f) => readFileSync(path.join(RECIPES, f))));
  const base = baseTag();
  const standIns: StandIn[] = [];
  let baseReady = false;

  for (const recipe of ['redis', 'nginx', 'node'] as const) {
    const image = pinned[recipe];
    const saved = path.join(cacheDir, `standin-${recipe}-${hash(recipeHash, image)}.tar`);
    const started = performance.now();
    const cached = existsSync(saved);
    if (cached) {
      await run('docker', ['load', '--quiet', '--input', saved], { env });
    } else {
      if (!baseReady) {
        await importBase(env, base, cacheDir, log);
        baseReady = true;
      }
      log(`building the stand-in for ${image} (Debian ${SUITE}) ...`);
      await buildStandIn(env, recipe, image, base);
      await run('docker', ['save', '--output', `${saved}.partial`, image], { env });
      renameSync(`${saved}.partial`, saved);
    }
    const seconds = (performance.now() - started) / 1000;
    standIns.push({ image, recipe, inside: await versionInside(env, recipe, image), source: cached ? 'cache' : 'built', seconds });
  }
  if (baseReady) await run('docker', ['rmi', base], { env, allowFailure: true });
  return standIns;
}

/** The base image's tag. It changes only with the suite and the steps in importBase (bump the last part with them). */
export const baseTag = () => `headcount-standin-base:${hash(SUITE, DEBIAN_MIRROR, 'minbase-1')}`;

/** Debian sid, minbase, as an image: from the cached root file system tarball, made by debootstrap when missing. */
export async function importBase(env: NodeJS.ProcessEnv, tag: string, cacheDir: string, log: (line: string) => void) {
  const tarball = path.join(cacheDir, `base-${tag.split(':')[1]}.tar`);
  if (!existsSync(tarball)) {
    log(`debootstrap --variant=minbase ${SUITE} (about a minute, once) ...`);
    const work = await mkdtemp('/tmp/headcount-rootfs-');
    try {
      const rootfs = path.join(work, 'rootfs');
      await run('debootstrap', ['--variant=minbase', SUITE, rootfs, DEBIAN_MIRROR], { timeoutMs: 600_000 });
      // What Debian's own container images do: no package caches, services
      // never started by package scripts, and resolv.conf left to Docker.
      await run('sh', ['-c', 'rm -rf var/cache/apt/archives/*.deb var/lib/apt/lists/* etc/resolv.conf'], { cwd: rootfs });
      writeFileSync(path.join(rootfs, 'usr/sbin/policy-rc.d'), '#!/bin/sh\nexit 101\n', { mode: 0o755 });
      // sid's Release file on the mirror can be past its Valid-Until date.
      writeFileSync(path.join(rootfs, 'etc/apt/apt.conf.d/99-standin'), 'Acquire::Check-Valid-Until "false";\n');
      await run('tar', ['--numeric-owner', '-C', rootfs, '-cf', `${tarball}.partial`, '.']);
      renameSync(`${tarball}.partial`, tarball);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
  await run('docker', ['import', '--change', 'CMD ["bash"]', tarball, tag], { env });
}

/** One recipe, built in a context of its own with what it copies in: the machine's CA bundle and npm's tarball. */
async function buildStandIn(env: NodeJS.ProcessEnv, recipe: StandIn['recipe'], image: string, base: string) {
  const context = await mkdtemp('/tmp/headcount-standin-');
  try {
    for (const file of recipeFiles()) copyFileSync(path.join(RECIPES, file), path.join(context, file));
    copyFileSync(CA_BUNDLE, path.join(context, 'ca-certificates.crt'));
    if (recipe === 'node') {
      const packed = await run('npm', ['pack', `npm@${NPM_VERSION}`, '--silent'], { cwd: context, timeoutMs: 120_000 });
      renameSync(path.join(context, packed.stdout.trim().split('\n').at(-1)!), path.join(context, 'npm.tgz'));
    }
    // The private engine has no NAT: apt-get inside the build uses the host's network.
    await run(
      'docker',
      ['build', '--quiet', '--network', 'host', '--build-arg', `BASE=${base}`, '--file', `${recipe}.Dockerfile`, '--tag', image, '.'],
      { env, cwd: context, timeoutMs: 600_000 },
    );
  } finally {
    await rm(context, { recursive: true, force: true });
  }
}

async function versionInside(env: NodeJS.ProcessEnv, recipe: StandIn['recipe'], image: string): Promise<string> {
  const command = { node: 'node --version', nginx: 'nginx -v 2>&1', redis: 'redis-server --version' }[recipe];
  const result = await run('docker', ['run', '--rm', '--network', 'none', '--entrypoint', 'sh', image, '-c', command], { env });
  return result.stdout.trim().replace(/^nginx version: /, '').replace(/^Redis server v=(\S+).*$/, 'redis $1');
}
