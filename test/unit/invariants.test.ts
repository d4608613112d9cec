import { describe, expect, test } from 'vitest';
import { checkAccuracy, type VisitResult } from '../../loadtest/invariants.js';

const run = (numbers: number[], replicas = ['a', 'b']): VisitResult[] =>
  numbers.map((count, i) => ({ status: 200, count, replica: replicas[i % replicas.length] }));

describe('checkAccuracy', () => {
  test('When every request got its own number from the range, then the run is accurate', () => {
    const report = checkAccuracy({ countBefore: 10, countAfter: 14, sent: 4, results: run([11, 13, 12, 14]), replicas: ['a', 'b'] });

    expect(report).toMatchObject({ ok: true, violations: [], figures: { delta: 4, ok: 4, perReplica: { a: 2, b: 2 } } });
  });

  test('When two requests got the same number (a lost update), then count-delta and unique-numbers break', () => {
    const report = checkAccuracy({ countBefore: 0, countAfter: 3, sent: 4, results: run([1, 2, 2, 3]) });

    expect(report.violations.map((v) => v.invariant)).toEqual(['count-delta', 'unique-numbers']);
    expect(report.figures.duplicateNumbers).toBe(1);
  });

  test('When the count grew more than the requests sent (a double count), then count-delta breaks', () => {
    const report = checkAccuracy({ countBefore: 0, countAfter: 5, sent: 4, results: run([1, 2, 4, 5]) });

    expect(report.violations.map((v) => v.invariant)).toEqual(['count-delta', 'contiguous-range']);
    expect(report.violations[0]!.detail).toContain('grew by 5');
  });

  test('When some responses failed, then no-errors and all-2xx break', () => {
    const results = [...run([1, 2]), { status: 502 }];

    const report = checkAccuracy({ countBefore: 0, countAfter: 2, sent: 3, results, errors: 1, timeouts: 0 });

    expect(report.violations.map((v) => v.invariant)).toEqual(['no-errors', 'all-2xx', 'count-delta']);
  });

  test('When numbers come from outside the range (another writer), then contiguous-range breaks', () => {
    const report = checkAccuracy({ countBefore: 0, countAfter: 2, sent: 2, results: run([1, 7]) });

    expect(report.violations.map((v) => v.invariant)).toEqual(['contiguous-range']);
  });

  test('When one replica served far more than its share, then replica-share breaks and names it', () => {
    const results = run([1, 2, 3, 4, 5, 6, 7, 8], ['a', 'a', 'a', 'b']);

    const report = checkAccuracy({ countBefore: 0, countAfter: 8, sent: 8, results, replicas: ['a', 'b'] });

    expect(report.violations).toEqual([{ invariant: 'replica-share', detail: expect.stringContaining('a served 6, b served 2') }]);
  });

  test('When an expected replica served nothing, then replica-share breaks', () => {
    const report = checkAccuracy({ countBefore: 0, countAfter: 2, sent: 2, results: run([1, 2], ['a']), replicas: ['a', 'b'] });

    expect(report.violations.map((v) => v.invariant)).toEqual(['replica-share']);
  });
});
