import { describe, expect, test } from 'vitest';
import { checkAccuracy, INVARIANTS, type VisitResult } from '../../loadtest/invariants.js';

const run = (numbers: number[], replicas = ['a', 'b']): VisitResult[] =>
  numbers.map((count, i) => ({ status: 200, count, replica: replicas[i % replicas.length] }));

describe('checkAccuracy', () => {
  test('When every request got its own number from the range, then the run is accurate', () => {
    const report = checkAccuracy({ countBefore: 10, countAfter: 14, sent: 4, results: run([11, 13, 12, 14]), replicas: ['a', 'b'] });

    expect(report).toMatchObject({ ok: true, violations: [], figures: { delta: 4, ok: 4, perReplica: { a: 2, b: 2 } } });
    expect(report.checks.map((c) => [c.name, c.status])).toEqual(INVARIANTS.map((name) => [name, 'PASS']));
    expect(report.verdict).toMatchObject({ status: 'PASS', exitCode: 0, notChecked: 0 });
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

  test('When neither the replica list nor an expected count is given, then replica-share is NOT CHECKED with the reason, and the verdict is not a pass', () => {
    const report = checkAccuracy({ countBefore: 0, countAfter: 4, sent: 4, results: run([1, 2, 3, 4]) });

    expect(report.checks.find((c) => c.name === 'replica-share')).toMatchObject({ status: 'NOT CHECKED', detail: 'no replica list and no expected replica count given' });
    expect(report.verdict).toMatchObject({ status: 'NOT CHECKED', exitCode: 3, passed: 5, failed: 0, notChecked: 1 });
    expect(report.verdict.line).toMatch(/^NOT CHECKED: 5 of 6 invariants passed, 0 failed, 1 not checked \(replica-share\)/);
  });

  test('When the replica list is unknown and every expected replica answered evenly, then replica-share passes and says it judged the X-Replica values seen', () => {
    const results = run([1, 2, 3, 4, 5, 6, 7, 8], ['web-1', 'web-2', 'web-3', 'web-4']);

    const report = checkAccuracy({ countBefore: 0, countAfter: 8, sent: 8, results, expectedReplicas: { count: 4, source: 'REPLICAS=4' } });

    expect(report.checks.find((c) => c.name === 'replica-share')).toMatchObject({
      status: 'PASS',
      detail: expect.stringContaining('replica list unknown: the 4 X-Replica values seen, against 4 expected (REPLICAS=4)'),
    });
    expect(report.verdict.status).toBe('PASS');
  });

  test('When the replica list is unknown and one of 4 expected replicas never answered, then replica-share FAILS instead of judging a 3-way split', () => {
    // An even 3-way split: without the expected count it would look healthy.
    const results = run([1, 2, 3, 4, 5, 6], ['web-1', 'web-2', 'web-3']);

    const report = checkAccuracy({ countBefore: 0, countAfter: 6, sent: 6, results, expectedReplicas: { count: 4, source: 'REPLICAS=4' } });

    expect(report.violations).toEqual([
      { invariant: 'replica-share', detail: expect.stringContaining('expected 4 replicas (REPLICAS=4); only 3 answered (web-1 2, web-2 2, web-3 2)') },
    ]);
    expect(report.verdict).toMatchObject({ status: 'FAIL', exitCode: 1 });
  });

  test('When the replica list is unknown and more replicas answered than expected, then replica-share FAILS and says to set REPLICAS', () => {
    const results = run([1, 2, 3, 4, 5, 6], ['web-1', 'web-2', 'web-3', 'web-4', 'web-5', 'web-6']);

    const report = checkAccuracy({ countBefore: 0, countAfter: 6, sent: 6, results, expectedReplicas: { count: 4, source: 'REPLICAS=4' } });

    expect(report.violations).toEqual([{ invariant: 'replica-share', detail: expect.stringContaining("6 answered (web-1 1, web-2 1, web-3 1, web-4 1, web-5 1, web-6 1): set REPLICAS") }]);
  });

  test('When no response carried X-Replica and the list is unknown, then replica-share is NOT CHECKED: replicas cannot be told apart', () => {
    const results = [1, 2, 3, 4].map((count) => ({ status: 200, count }));

    const report = checkAccuracy({ countBefore: 0, countAfter: 4, sent: 4, results, expectedReplicas: { count: 4, source: 'REPLICAS=4' } });

    expect(report.checks.find((c) => c.name === 'replica-share')).toMatchObject({ status: 'NOT CHECKED', detail: expect.stringContaining('no 2xx response carried X-Replica') });
    expect(report.verdict.status).toBe('NOT CHECKED');
  });

  test('When no request was sent, then nothing passes vacuously: the count and number invariants are NOT CHECKED', () => {
    const report = checkAccuracy({ countBefore: 5, countAfter: 5, sent: 0, results: [], replicas: ['a'] });

    expect(Object.fromEntries(report.checks.map((c) => [c.name, c.status]))).toEqual({
      'no-errors': 'PASS',
      'all-2xx': 'NOT CHECKED',
      'count-delta': 'NOT CHECKED',
      'unique-numbers': 'NOT CHECKED',
      'contiguous-range': 'NOT CHECKED',
      'replica-share': 'NOT CHECKED',
    });
    expect(report.verdict.status).toBe('NOT CHECKED');
  });
});
