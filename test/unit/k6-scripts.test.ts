import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { fromRoot } from '../../formation/paths.js';

// k6 cannot be installed on this machine; the scripts are checked here instead.
const dir = fromRoot('loadtest', 'k6');
const scripts = readdirSync(dir).filter((file) => file.endsWith('.ts'));
const source = (file: string) => readFileSync(path.join(dir, file), 'utf8');

describe('the k6 scripts', () => {
  test('When they are type-checked against @types/k6, then tsc finds no error', () => {
    const result = spawnSync(process.execPath, [fromRoot('node_modules/typescript/bin/tsc'), '-p', path.join(dir, 'tsconfig.json')], {
      encoding: 'utf8',
    });

    expect(result.stdout + result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  test.each(scripts)('When %s imports, then it imports only k6 modules and local files, nothing from the network', (file) => {
    const specifiers = [...source(file).matchAll(/^\s*import\s[^'"]*['"]([^'"]+)['"]/gm)].map((m) => m[1]!);

    expect(specifiers.filter((s) => !(s === 'k6' || s.startsWith('k6/') || s.startsWith('./')))).toEqual([]);
  });

  test('When the accuracy scenario is read, then it is shared-iterations gated on no failures, all checks and the exact count', () => {
    const text = source('accuracy.ts');

    expect(text).toMatch(/executor: 'shared-iterations'/);
    expect(text).toMatch(/http_req_failed: \['rate==0'\]/);
    expect(text).toMatch(/checks: \['rate==1'\]/);
    expect(text).toMatch(/export function teardown/);
    expect(text).toMatch(/exec\.test\.fail/);
    expect(text).toMatch(/export function handleSummary/);
  });

  test('When the throughput scenario is read, then it is a constant arrival rate with p95 and p99 thresholds', () => {
    const text = source('throughput.ts');

    expect(text).toMatch(/executor: 'constant-arrival-rate'/);
    expect(text).toMatch(/http_req_duration: \['p\(95\)<\d+', 'p\(99\)<\d+'\]/);
    expect(text).toMatch(/export function handleSummary/);
  });
});
