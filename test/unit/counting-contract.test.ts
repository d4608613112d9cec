import { describe, expect, test } from 'vitest';
import { canCross, COUNTING_CONTRACT } from '../../web/counting-contract.js';

const v = (version: number, crossesFrom: number[] = []) => ({ version, crossesFrom });

describe('the counting contract (web/counting-contract.ts)', () => {
  test('When the code is read today, then it is version 2 (the per-replica breakdown) and crosses from version 1', () => {
    expect(COUNTING_CONTRACT).toEqual({ version: 2, crossesFrom: [1] });
    expect(Object.isFrozen(COUNTING_CONTRACT)).toBe(true);
  });

  test('When both releases share a version, then the deploy may cross', () => {
    expect(canCross(v(1), v(1))).toEqual({ ok: true });
  });

  test('When the new release is one version up and declares it crosses from the old, then the deploy may cross', () => {
    expect(canCross(v(1), v(2, [1]))).toEqual({ ok: true });
  });

  test('When a rollback goes one version down from a release that crosses from it, then it may cross', () => {
    expect(canCross(v(2, [1]), v(1))).toEqual({ ok: true });
  });

  test.each([
    ['one up without crossesFrom', v(1), v(2), 'version 2 does not declare it crosses from version 1'],
    ['one down from a release that does not cross back', v(2), v(1), 'version 2 does not declare it crosses back to version 1'],
    ['two up, even if declared', v(1), v(3, [1]), 'one version at a time'],
    ['far up (version 99)', v(1), v(99), 'one version at a time'],
  ])('When the move is %s, then it is refused with a reason naming both versions', (_name, from, to, why) => {
    const verdict = canCross(from, to);

    expect(verdict.ok).toBe(false);
    expect(verdict.ok === false && verdict.reason).toContain(`counting contract ${from.version} -> ${to.version}`);
    expect(verdict.ok === false && verdict.reason).toContain(why);
  });
});
