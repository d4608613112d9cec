import { randomUUID } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { runScenario } from '../../loadtest/chaos/run.js';
import { verdictOf } from '../../loadtest/chaos/scenario.js';
import { scenarios } from '../../loadtest/chaos/scenarios.js';
import { describeChecks } from '../../loadtest/verdict.js';

// The quick fault scenarios of `make chaos`, through the same code: each on a
// fresh formation (4 replicas, nginx, Redis) under a bounded load on 127.0.0.1.
describe('faults under load', () => {
  test.each(scenarios.filter((s) => s.quick).map((s) => [s.name, s] as const))(
    'When "%s" happens, then every request is accounted for and the count stays exact',
    async (_name, scenario) => {
      const result = await runScenario(scenario, `test:${randomUUID()}`);

      // Every check PASSED: a check that could not run (NOT CHECKED) fails this test too.
      expect(verdictOf(result).status, `${describeChecks(result.checks)}\n${JSON.stringify(result.figures)}`).toBe('PASS');
      expect(result.checks.length).toBeGreaterThan(3);
      expect(result.figures.sent).toBeGreaterThan(1_000);
      expect(result.figures.uniqueNumbers).toBe(true);
    },
    120_000,
  );
});
