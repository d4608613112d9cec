import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { LoadRun } from '../../loadtest/chaos/load.js';
import { upstreamClosesCheck } from '../../loadtest/chaos/nginx-faults.js';
import { measured, verdictOf } from '../../loadtest/chaos/scenario.js';

describe('chaos: a figure read from the log is never a pass when the log cannot tell', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'chaos-checks-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test('When the formation wrote no log file, then "no upstream closed under nginx" is NOT CHECKED, not a pass with 0', () => {
    expect(upstreamClosesCheck(undefined).check).toMatchObject({ status: 'NOT CHECKED', detail: expect.stringContaining('no log file') });
    expect(upstreamClosesCheck(path.join(dir, 'missing.log')).check.status).toBe('NOT CHECKED');
  });

  test('When the log holds no nginx access line (nginx logged elsewhere), then it is NOT CHECKED', async () => {
    const file = path.join(dir, 'replicas-only.log');
    await writeFile(file, '{"level":30,"msg":"listening"}\n');

    expect(upstreamClosesCheck(file).check).toMatchObject({ status: 'NOT CHECKED', detail: expect.stringContaining('no nginx access line') });
  });

  test('When nginx logged requests and no premature close, then it passes; with closes, it fails and counts them', async () => {
    const clean = path.join(dir, 'clean.log');
    const dirty = path.join(dir, 'dirty.log');
    await writeFile(clean, '{"status":200,"upstream_addr":"127.0.0.1:4001"}\n');
    await writeFile(dirty, '{"status":200,"upstream_addr":"127.0.0.1:4001"}\n[error] upstream prematurely closed connection\n[error] recv() failed (104: Connection reset by peer)\n');

    expect(upstreamClosesCheck(clean)).toMatchObject({ closes: 0, check: { status: 'PASS' } });
    expect(upstreamClosesCheck(dirty)).toMatchObject({ closes: 2, check: { status: 'FAIL', detail: 'nginx met 2 upstream connections closed under it' } });
  });
});

describe('chaos: a fault that did not happen under load is not a pass', () => {
  const run = (missedMilestones: number): LoadRun => ({
    results: [1, 2, 3].map((count) => ({ status: 200, count, replica: 'web-1', ms: 1, receivedAt: 0, at: 0 })),
    sent: 3,
    errors: 0,
    timeouts: 0,
    durationSeconds: 1,
    missedMilestones,
  });

  test('When the load ended before the fault was cued, then "fault injected under load" is NOT CHECKED and so is the scenario', () => {
    const result = measured('s', 'p', run(1), 0, 3);

    expect(result.checks.find((c) => c.name === 'fault injected under load')).toMatchObject({ status: 'NOT CHECKED', detail: expect.stringContaining('the fault ran with no load') });
    expect(verdictOf(result)).toMatchObject({ status: 'NOT CHECKED', exitCode: 3 });
  });

  test('When the fault met its cue, then the same figures pass', () => {
    const result = measured('s', 'p', run(0), 0, 3);

    expect(verdictOf(result)).toMatchObject({ status: 'PASS', exitCode: 0 });
  });
});
