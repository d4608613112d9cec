// Every fault scenario `make chaos` runs, in order; the quick ones also run in
// `make test` (test/cluster/chaos.test.ts). One file per kind of fault.
import { nginxFaults } from './nginx-faults.js';
import { redisFaults } from './redis-faults.js';
import { replicaFaults } from './replica-faults.js';
import type { Scenario } from './scenario.js';

export type { Scenario, ScenarioResult } from './scenario.js';

export const scenarios: Scenario[] = [...replicaFaults, ...nginxFaults, ...redisFaults];
