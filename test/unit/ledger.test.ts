import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, test } from 'vitest';
import { appendRelease, configDigest, findRelease, ledgerFile, previousRelease, readLedger, type ReleaseDraft } from '../../formation/ledger.js';
import { releaseConfigFrom } from '../../formation/release-commands.js';

const run = promisify(execFile);
const dirs: string[] = [];
const scratch = () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'headcount-ledger-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

const draft = (tag: string, config: Record<string, string> = {}): ReleaseDraft => ({
  commit: `${tag}${'0'.repeat(33)}`,
  tag,
  envFile: '',
  config,
  secretNames: [],
  countingContract: { version: 1, crossesFrom: [] },
});

describe('the release ledger (formation/ledger.ts)', () => {
  test('When releases are appended, then each gets the next sequence number and an id r<seq>-<tag>, and earlier lines stay byte for byte', async () => {
    const dir = scratch();

    await appendRelease(dir, draft('aaaaaaa'));
    const before = readFileSync(ledgerFile(dir), 'utf8');
    await appendRelease(dir, draft('bbbbbbb', { LOG_LEVEL: 'warn' }));
    const after = readFileSync(ledgerFile(dir), 'utf8');

    expect(after.startsWith(before)).toBe(true);
    expect(readLedger(dir).map((r) => [r.seq, r.id])).toEqual([
      [1, 'r1-aaaaaaa'],
      [2, 'r2-bbbbbbb'],
    ]);
    expect(findRelease(dir)?.id).toBe('r2-bbbbbbb');
    expect(findRelease(dir, 'r1-aaaaaaa')?.tag).toBe('aaaaaaa');
  });

  test('When several processes release at once, then every record is whole and every sequence number is used once', async () => {
    const dir = scratch();
    const script = `import { appendRelease } from './formation/ledger.ts';
      for (let i = 0; i < 5; i++) await appendRelease(process.argv[1], { commit: 'c', tag: 't' + process.argv[2], envFile: '', config: {}, secretNames: [], countingContract: { version: 1, crossesFrom: [] } });`;

    await Promise.all([1, 2, 3, 4].map((n) => run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, dir, String(n)])));

    const seqs = readLedger(dir).map((r) => r.seq);
    expect(readFileSync(ledgerFile(dir), 'utf8').trim().split('\n')).toHaveLength(20);
    expect([...seqs].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_v, i) => i + 1));
  });

  test('When the last line was cut short by a crash, then reading skips it and the next release still appends', async () => {
    const dir = scratch();
    await appendRelease(dir, draft('aaaaaaa'));
    writeFileSync(ledgerFile(dir), '{"id":"r2-torn', { flag: 'a' });

    expect(readLedger(dir).map((r) => r.id)).toEqual(['r1-aaaaaaa']);
  });

  test('When a rollback asks for the release before the running one, then it gets the one released just before, or nothing before the first', async () => {
    const dir = scratch();
    for (const tag of ['aaaaaaa', 'bbbbbbb', 'ccccccc']) await appendRelease(dir, draft(tag));
    const records = readLedger(dir);

    expect(previousRelease(records, 'r3-ccccccc')?.id).toBe('r2-bbbbbbb');
    expect(previousRelease(records, 'r2-bbbbbbb')?.id).toBe('r1-aaaaaaa');
    expect(previousRelease(records, 'r1-aaaaaaa')).toBeUndefined();
    expect(previousRelease(records, 'dev')).toBeUndefined();
  });

  test('When two configs hold the same values in another order, then their digests are equal; any change of value or secret name changes it', () => {
    const a = configDigest({ LOG_LEVEL: 'warn', COUNTER_KEY: 'k' }, ['REDIS_URL', 'REDIS_PASSWORD']);

    expect(configDigest({ COUNTER_KEY: 'k', LOG_LEVEL: 'warn' }, ['REDIS_PASSWORD', 'REDIS_URL'])).toBe(a);
    expect(configDigest({ COUNTER_KEY: 'k', LOG_LEVEL: 'info' }, ['REDIS_PASSWORD', 'REDIS_URL'])).not.toBe(a);
    expect(configDigest({ COUNTER_KEY: 'k', LOG_LEVEL: 'warn' }, ['REDIS_URL'])).not.toBe(a);
    expect(a).toMatch(/^sha256:[0-9a-f]{64}$/);
  });
});

describe('a release records its config (formation/release-commands.ts)', () => {
  test('When the environment sets replica config and secrets, then the record keeps the config values and only the secret names', () => {
    const env = { COUNTER_KEY: 'site:visits', LOG_LEVEL: 'warn', REDIS_URL: 'redis://u:hunter2@cache:6379', REDIS_WEB_PASSWORD: 'hunter3', PATH: '/bin' };

    const release = releaseConfigFrom(env);

    expect(release).toEqual({ config: { COUNTER_KEY: 'site:visits', LOG_LEVEL: 'warn' }, secretNames: ['REDIS_URL', 'REDIS_WEB_PASSWORD'] });
    expect(JSON.stringify(release)).not.toMatch(/hunter/);
  });

  test('When a config value is invalid, then the release is refused naming the variable', () => {
    expect(() => releaseConfigFrom({ IDEMPOTENCY_TTL_SECONDS: '5' })).toThrow(/IDEMPOTENCY_TTL_SECONDS must be/);
  });
});
