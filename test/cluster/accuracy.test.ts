import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { checkAccuracy, describeViolations } from '../../loadtest/invariants.js';
import { startTestFormation, unsafeReplica, visitAll, type TestFormation } from '../support/formation.js';

const REPLICAS = ['web-1', 'web-2', 'web-3', 'web-4'];

describe('counting through nginx with 4 replicas', () => {
  let formation: TestFormation;
  beforeAll(async () => {
    formation = await startTestFormation({ replicas: 4 });
  });
  afterAll(() => formation?.destroy());

  test('When 2000 requests arrive at once through 4 replicas, then the count grows by exactly 2000 with unique, contiguous numbers from every replica', async () => {
    const before = await formation.count();

    const results = await visitAll(`${formation.lbUrl}/`, 2000);
    const report = checkAccuracy({ countBefore: before, countAfter: await formation.count(), sent: 2000, results, replicas: REPLICAS });

    expect(report.violations, describeViolations(report.violations)).toEqual([]);
    expect(report.figures).toMatchObject({ delta: 2000, ok: 2000, uniqueNumbers: 2000 });
    expect(Object.keys(report.figures.perReplica).sort()).toEqual(REPLICAS);
  });
});

describe('the accuracy check against a deliberately unsafe counter', () => {
  let formation: TestFormation;
  beforeAll(async () => {
    formation = await startTestFormation({ replicas: 4, replicaCommand: unsafeReplica, replicaEnv: { UNSAFE_COUNTER: 'read-then-write' } });
  });
  afterAll(() => formation?.destroy());

  test('When replicas read, then write the count (two round trips), then the same check catches the lost updates', async () => {
    const before = await formation.count();

    const results = await visitAll(`${formation.lbUrl}/`, 2000);
    const report = checkAccuracy({ countBefore: before, countAfter: await formation.count(), sent: 2000, results, replicas: REPLICAS });

    expect(report.ok).toBe(false);
    expect(report.violations.map((v) => v.invariant)).toEqual(expect.arrayContaining(['count-delta', 'unique-numbers']));
    expect(report.figures.delta).toBeLessThan(2000);
  });
});
