import { appendFileSync } from 'node:fs';
import { inject } from 'vitest';
import { engineOf, type Engine } from './topology.js';

/** What the Swarm tier's global setup hands the tests (test/swarm/global-setup.ts). */
export interface SwarmTier {
  /** The run's id: names its namespaces, engines and cgroups (support/topology.ts). */
  id: string;
  /** node 1's address on the test's own link: the load balancer's, for the clients. */
  clientAddress: string;
  /** host:port of the run's registry, as the nodes reach it. */
  registry: string;
  /** The environment of a user's shell pointed at the manager (node 1): DOCKER_HOST, DOCKER_CONFIG, the formation's knobs. */
  managerEnv: Record<string, string>;
  /** Figures the tests record, printed by the global teardown. */
  figuresFile: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    swarmTier: SwarmTier;
  }
}

export const swarmTier = (): SwarmTier => inject('swarmTier');

export const engines = (): { node1: Engine; node2: Engine; build: Engine } => {
  const { id } = swarmTier();
  return { node1: engineOf(id, 'node1'), node2: engineOf(id, 'node2'), build: engineOf(id, 'build') };
};

/** Records a figure for the tier's closing table. */
export function recordFigure(name: string, value: string): void {
  appendFileSync(swarmTier().figuresFile, `${JSON.stringify({ name, value })}\n`);
}
