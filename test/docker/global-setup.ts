import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { fromRoot, ROOT } from '../../formation/paths.js';
import { openEngine, type Engine } from './support/engine.js';
import { run } from './support/run.js';
import { provideStandIns } from './support/standins.js';
import type { DockerTier } from './support/tier.js';

/**
 * The Docker tier's setup: an engine (the one that answers, or a private
 * dockerd), base images (the official ones, pulled by compose, or stand-ins
 * where nothing can be pulled), and the web image built once from
 * web/Dockerfile, so every test's `docker compose up` finds it. Whatever
 * happens, the teardown removes what this run created and stops the engine it
 * started.
 */

// Stand-in images and the Compose plugin, kept between runs (never in the repository).
const CACHE_DIR =
  process.env.HEADCOUNT_DOCKER_CACHE ??
  (process.getuid?.() === 0 ? '/var/cache/headcount-docker-tier' : path.join(process.env.HOME ?? tmpdir(), '.cache/headcount-docker-tier'));

const log = (line: string) => process.stdout.write(`[docker tier] ${line}\n`);

export default async function setup(project: TestProject) {
  const started = performance.now();
  const scratch = await mkdtemp(path.join(tmpdir(), 'headcount-docker-tier-'));
  const figuresFile = path.join(scratch, 'figures.jsonl');
  writeFileSync(figuresFile, '');
  mkdirSync(CACHE_DIR, { recursive: true });
  if (!existsSync(fromRoot('dist/web/server.js'))) throw new Error('dist/ is missing: run `make test-docker` (it builds first)');

  let engine: Engine | undefined;
  const figures: [string, string][] = [];
  try {
    engine = await openEngine(CACHE_DIR, log);
    const env = { ...process.env, ...engine.env };
    figures.push(['engine', `${engine.kind} dockerd ${engine.version}`]);

    if (engine.kind === 'private') {
      for (const s of await provideStandIns(env, CACHE_DIR, log)) {
        figures.push([`stand-in ${s.image}`, `Debian sid ${s.inside} (${s.source}, ${s.seconds.toFixed(1)} s)`]);
      }
    }

    // The web image, built once for every test: `docker compose build`, with
    // the host's network on the private engine (it has no NAT).
    const files = ['-f', 'docker-compose.yml', ...(engine.kind === 'private' ? ['-f', 'test/docker/compose.build-host.yml'] : [])];
    log('building headcount-web:local from web/Dockerfile ...');
    const build = await run('docker', ['compose', '-p', 'headcount-docker-tier-build', ...files, 'build', 'web'], {
      env,
      cwd: ROOT,
      timeoutMs: 600_000,
    });
    figures.push(['web image build', `${(build.ms / 1000).toFixed(1)} s`]);
    if (engine.kind === 'existing') {
      await run('docker', ['compose', '-p', 'headcount-docker-tier-build', '-f', 'docker-compose.yml', 'pull', 'redis', 'lb'], {
        env,
        cwd: ROOT,
        timeoutMs: 600_000,
      });
    }
    const pinned = ['headcount-web:local', ...(await composeImages(env))];
    for (const image of pinned) {
      const size = await run('docker', ['image', 'inspect', '--format', '{{.Size}}', image], { env });
      figures.push([`image ${image}`, `${(Number(size.stdout.trim()) / 1e6).toFixed(0)} MB`]);
    }

    const nofile = engine.nofileLimit;
    const tier: DockerTier = {
      engine: engine.kind,
      env: engine.env,
      lbNofile: nofile !== undefined && nofile < 65_536 ? String(nofile) : undefined,
      // 1000 connections carry the 5000 visits in flight. More fail on this
      // 2-core machine (README, Docker tier: nginx's 1 s connect timeout to the
      // replicas fires under the CPU load and it answers 502), and the port
      // proxy's 6 descriptors per connection must fit the engine's own limit.
      maxConnections: Math.min(1_000, nofile === undefined ? 1_000 : Math.floor((nofile * 0.8) / 6)),
      figuresFile,
      cacheDir: CACHE_DIR,
    };
    if (tier.lbNofile) figures.push(['LB_NOFILE', `${tier.lbNofile} (the engine's own hard limit; the default 65536 cannot be granted here)`]);
    figures.push(['client connections per load', String(tier.maxConnections)]);
    figures.push(['setup', `${((performance.now() - started) / 1000).toFixed(1)} s`]);
    project.provide('dockerTier', tier);
  } catch (error) {
    await engine?.close();
    await rm(scratch, { recursive: true, force: true });
    throw error;
  }

  return async () => {
    try {
      const recorded = readFileSync(figuresFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as { name: string; value: string });
      for (const { name, value } of recorded) figures.push([name, value]);
      // Images and volumes a failed test left: the private engine goes away
      // whole; on an existing engine the tests' own `down --volumes` did it.
    } finally {
      await engine?.close();
      await rm(scratch, { recursive: true, force: true });
      figures.push(['whole tier', `${((performance.now() - started) / 1000).toFixed(1)} s`]);
      const width = Math.max(...figures.map(([name]) => name.length));
      log(`figures:\n${figures.map(([name, value]) => `  ${name.padEnd(width)}  ${value}`).join('\n')}`);
    }
  };
}

/** The images docker-compose.yml runs besides the web image (redis, nginx). */
async function composeImages(env: NodeJS.ProcessEnv): Promise<string[]> {
  const result = await run('docker', ['compose', '-f', 'docker-compose.yml', 'config', '--images'], { env, cwd: ROOT });
  return [...new Set(result.stdout.split('\n').filter((image) => image && image !== 'headcount-web:local'))];
}
