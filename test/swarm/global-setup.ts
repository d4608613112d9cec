import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { provideStandIns } from '../docker/support/standins.js';
import { CACHE_DIR } from './support/monitoring.js';
import type { SwarmTier } from './support/tier.js';
import { startTopology, type Topology } from './support/topology.js';

/**
 * The Swarm tier's setup: a two-node swarm of private engines in network
 * namespaces with a registry (support/topology.ts), and the stand-ins for the
 * official images pushed to that registry (the nodes' docker.io mirror); the
 * node stand-in stays on the build engine, where `make release` builds the web
 * images (two-nodes.test.ts). Whatever happens, the teardown removes all of
 * it (and a watchdog does, if this process dies without its teardown).
 */

const log = (line: string) => process.stdout.write(`[swarm tier] ${line}\n`);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export default async function setup(project: TestProject) {
  const started = performance.now();
  const scratch = await mkdtemp(path.join(tmpdir(), 'headcount-swarm-tier-'));
  const figuresFile = path.join(scratch, 'figures.jsonl');
  writeFileSync(figuresFile, '');
  mkdirSync(CACHE_DIR, { recursive: true });
  const figures: [string, string][] = [];
  let topology: Topology | undefined;
  try {
    topology = await startTopology(log);
    const { node1, build, registry } = topology;
    const version = (await node1.docker(['version', '--format', '{{.Server.Version}} (CLI {{.Client.Version}})'])).stdout.trim();
    figures.push(['engines', `2 swarm nodes + 1 build engine, dockerd ${version}`]);
    figures.push(['swarm up (namespaces, engines, registry, init, join)', seconds(performance.now() - started)]);

    const buildEnv = { ...process.env, ...build.env };
    for (const s of await provideStandIns(buildEnv, CACHE_DIR, log)) {
      figures.push([`stand-in ${s.image}`, `Debian sid ${s.inside} (${s.source}, ${s.seconds.toFixed(1)} s)`]);
      if (s.recipe === 'node') continue;
      // docker.io/library/<name> as the nodes' mirror serves it.
      const mirrored = `${registry}/library/${s.image}`;
      await build.docker(['tag', s.image, mirrored]);
      const push = await build.docker(['push', '--quiet', mirrored], { timeoutMs: 300_000 });
      figures.push([`push ${s.image} to the registry`, seconds(push.ms)]);
    }

    const hardNofile = Number(readFileSync('/proc/self/limits', 'utf8').match(/Max open files\s+\d+\s+(\d+)/)?.[1] ?? 65_536);
    const tier: SwarmTier = {
      id: topology.id,
      clientAddress: topology.clientAddress,
      registry,
      managerEnv: {
        ...node1.env,
        // The Host the tests' clients send: node 1's address.
        LB_SERVER_NAME: `localhost 127.0.0.1 lb ${topology.clientAddress}`,
        // Every test client arrives from one address: one rate-limit bucket. Off, as in the Docker tier.
        LB_RATE_LIMIT_OFF: '#',
        // The engines' own hard limit on open files is what a container can be granted.
        LB_NOFILE: String(Math.min(65_536, hardNofile)),
      },
      figuresFile,
    };
    figures.push(['setup', seconds(performance.now() - started)]);
    project.provide('swarmTier', tier);
  } catch (error) {
    await topology?.stop();
    await rm(scratch, { recursive: true, force: true });
    throw error;
  }

  return async () => {
    try {
      for (const line of readFileSync(figuresFile, 'utf8').split('\n').filter(Boolean)) {
        const { name, value } = JSON.parse(line) as { name: string; value: string };
        figures.push([name, value]);
      }
    } finally {
      const stopping = performance.now();
      await topology?.stop();
      await rm(scratch, { recursive: true, force: true });
      figures.push(['teardown', seconds(performance.now() - stopping)], ['whole tier', seconds(performance.now() - started)]);
      const width = Math.max(...figures.map(([name]) => name.length));
      log(`figures:\n${figures.map(([name, value]) => `  ${name.padEnd(width)}  ${value}`).join('\n')}`);
    }
  };
}
