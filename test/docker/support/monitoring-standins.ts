import { copyFileSync, existsSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { fromRoot } from '../../../formation/paths.js';
import { DEBIAN_MIRROR } from './engine.js';
import { run } from './run.js';
import { baseTag, hash, importBase, SUITE } from './standins.js';

/**
 * Stand-ins for the monitoring profile's images, for the private engine (no
 * registry): Prometheus and the two exporters from Debian's packages, built by
 * the recipes in test/docker/standins/monitoring/ on the same Debian sid base
 * as the others (standins.ts), tagged as docker-compose.yml pins them, and
 * cached the same way. Grafana has no Debian package and cannot be stood in:
 * the Docker tier leaves it out (test/docker/monitoring.test.ts says so).
 * Only the test that runs the profile asks for these, so the rest of the tier
 * never pays for them.
 */

const RECIPES = fileURLToPath(new URL('../standins/monitoring/', import.meta.url));
export const MONITORING_STANDINS = ['prometheus', 'nginx-exporter', 'redis-exporter'] as const;
export type MonitoringStandIn = (typeof MONITORING_STANDINS)[number];

/** The images docker-compose.yml pins for the monitoring services that can be stood in. */
export function pinnedMonitoringImages(): Record<MonitoringStandIn, string> {
  const compose = parse(readFileSync(fromRoot('docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, { image?: string }> };
  const images = Object.fromEntries(MONITORING_STANDINS.map((name) => [name, compose.services[name]?.image]));
  for (const [name, image] of Object.entries(images)) if (!image) throw new Error(`docker-compose.yml has no image for ${name}`);
  return images as Record<MonitoringStandIn, string>;
}

/** Loads each stand-in from the cache, or builds and caches it; returns what is inside each (the Debian package's version). */
export async function provideMonitoringStandIns(env: NodeJS.ProcessEnv, cacheDir: string, log: (line: string) => void): Promise<Record<string, string>> {
  const pinned = pinnedMonitoringImages();
  const base = baseTag();
  let baseReady = false;
  const inside: Record<string, string> = {};
  try {
    for (const name of MONITORING_STANDINS) {
      const recipe = readFileSync(path.join(RECIPES, `${name}.Dockerfile`));
      const saved = path.join(cacheDir, `standin-${name}-${hash(SUITE, DEBIAN_MIRROR, recipe, pinned[name])}.tar`);
      if (existsSync(saved)) {
        await run('docker', ['load', '--quiet', '--input', saved], { env });
      } else {
        if (!baseReady) {
          await importBase(env, base, cacheDir, log);
          baseReady = true;
        }
        log(`building the stand-in for ${pinned[name]} (Debian ${SUITE}) ...`);
        const context = await mkdtemp('/tmp/headcount-standin-');
        try {
          for (const file of readdirSync(RECIPES)) copyFileSync(path.join(RECIPES, file), path.join(context, file));
          await run(
            'docker',
            ['build', '--quiet', '--network', 'host', '--build-arg', `BASE=${base}`, '--file', `${name}.Dockerfile`, '--tag', pinned[name], '.'],
            { env, cwd: context, timeoutMs: 600_000 },
          );
        } finally {
          await rm(context, { recursive: true, force: true });
        }
        await run('docker', ['save', '--output', `${saved}.partial`, pinned[name]], { env });
        renameSync(`${saved}.partial`, saved);
      }
      const version = await run('docker', ['run', '--rm', '--network', 'none', '--entrypoint', 'dpkg-query', pinned[name], '-W', '-f', '${Package} ${Version}', packageOf(name)], { env });
      inside[pinned[name]] = version.stdout.trim();
    }
  } finally {
    if (baseReady) await run('docker', ['rmi', base], { env, allowFailure: true });
  }
  return inside;
}

const packageOf = (name: MonitoringStandIn) => ({ prometheus: 'prometheus', 'nginx-exporter': 'prometheus-nginx-exporter', 'redis-exporter': 'prometheus-redis-exporter' })[name];
