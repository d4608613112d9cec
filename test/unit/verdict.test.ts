import { describe, expect, test } from 'vitest';
import { colourOn, newTable, statusText } from '../../loadtest/terminal.js';
import { fail, judge, notChecked, parseAccepted, pass } from '../../loadtest/verdict.js';

describe('judge: a verdict counts only what was checked', () => {
  test('When every check passed, then the verdict is PASS, exit 0, and the line says 0 not checked', () => {
    const verdict = judge([pass('a', ''), pass('b', '')], { noun: 'invariants' });

    expect(verdict).toEqual({ status: 'PASS', exitCode: 0, passed: 2, failed: 0, notChecked: 0, line: 'PASS: 2 of 2 invariants passed, 0 failed, 0 not checked' });
  });

  test('When a required check could not run, then the verdict is NOT CHECKED with exit 3 and says how to accept it', () => {
    const verdict = judge([pass('a', ''), notChecked('replica-share', 'replica list unknown')]);

    expect(verdict).toMatchObject({ status: 'NOT CHECKED', exitCode: 3, notChecked: 1 });
    expect(verdict.line).toBe(
      'NOT CHECKED: 1 of 2 checks passed, 0 failed, 1 not checked (replica-share); exit 3: a required check could not run (accept it with ACCEPT_NOT_CHECKED=replica-share)',
    );
  });

  test('When a check failed and another could not run, then FAIL wins (exit 1) and the line still counts the unchecked one', () => {
    const verdict = judge([fail('count-delta', 'grew by 5'), notChecked('replica-share', 'unknown')]);

    expect(verdict).toMatchObject({ status: 'FAIL', exitCode: 1, failed: 1, notChecked: 1 });
    expect(verdict.line).toBe('FAIL: 0 of 2 checks passed, 1 failed (count-delta), 1 not checked (replica-share)');
  });

  test('When the user accepted the unchecked check by name, then the run passes (exit 0) but the line names what was accepted', () => {
    const verdict = judge([pass('a', ''), notChecked('replica-share', 'unknown')], { accepted: parseAccepted('replica-share, other') });

    expect(verdict).toMatchObject({ status: 'PASS', exitCode: 0, notChecked: 1 });
    expect(verdict.line).toBe('PASS: 1 of 2 checks passed, 0 failed, 1 not checked (replica-share, accepted by ACCEPT_NOT_CHECKED)');
  });

  test('When a check that does not gate the run (a figure) could not run, then the run passes but the line says it was not checked', () => {
    const verdict = judge([pass('a', ''), notChecked('direct comparison', 'no replica URL', false)]);

    expect(verdict).toMatchObject({ status: 'PASS', exitCode: 0 });
    expect(verdict.line).toBe('PASS: 1 of 2 checks passed, 0 failed, 1 not checked (direct comparison, not required)');
  });

  test('When ACCEPT_NOT_CHECKED=all, then every required unchecked check is accepted', () => {
    expect(judge([notChecked('x', ''), notChecked('y', '')], { accepted: parseAccepted('all') })).toMatchObject({ status: 'PASS', exitCode: 0, notChecked: 2 });
  });
});

describe('terminal output: colour only on a terminal, headers never red', () => {
  test('When stdout is not a terminal, or NO_COLOR is set, then colour is off; on a terminal without NO_COLOR it is on', () => {
    expect(colourOn({ isTTY: false }, {})).toBe(false);
    expect(colourOn({}, {})).toBe(false);
    expect(colourOn({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(colourOn({ isTTY: true }, { NO_COLOR: '' })).toBe(true);
    expect(colourOn({ isTTY: true }, {})).toBe(true);
  });

  test('When colour is off, then a table and a status hold no escape codes at all', () => {
    const table = newTable(['check', 'result'], { colour: false });
    table.push(['count-delta', statusText('FAIL', false)]);

    expect(table.toString()).not.toContain('\u001b[');
    expect(table.toString()).toContain('│ count-delta │ FAIL   │');
  });

  test('When colour is on, then the header is bold, not red, and FAIL is red', () => {
    const table = newTable(['check'], { colour: true });

    expect(table.options.style.head).toEqual(['bold']);
    expect(statusText('FAIL', true)).toBe('\u001b[31mFAIL\u001b[0m');
    expect(statusText('NOT CHECKED', true)).toBe('\u001b[33mNOT CHECKED\u001b[0m');
  });
});
