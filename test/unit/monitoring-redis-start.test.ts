import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { fromRoot } from '../../formation/paths.js';

// redis/docker-start.sh's part for the Redis exporter, run for real with sh:
// a copy whose fixed paths point into a scratch folder, `chown` a no-op (the
// container runs it as root; this test needs no root), and the final exec
// replaced by printing the rendered ACL file. The Docker tier runs the real
// one (test/docker/monitoring.test.ts: the exporter logs in with the map).

let dir: string;
const at = (...parts: string[]) => path.join(dir, ...parts);

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'headcount-redis-start-'));
  for (const sub of ['bin', 'web', 'admin', 'exporter', 'acl', 'secrets']) mkdirSync(at(sub));
  copyFileSync(fromRoot('redis/users.acl.template'), at('users.acl.template'));
  writeFileSync(at('bin', 'chown'), '#!/bin/sh\nexit 0\n');
  chmodSync(at('bin', 'chown'), 0o755);
  const script = readFileSync(fromRoot('redis/docker-start.sh'), 'utf8')
    .replace(/^TEMPLATE=.*$/m, `TEMPLATE=${at('users.acl.template')}`)
    .replace(/^ACL_DIR=.*$/m, `ACL_DIR=${at('acl')}`)
    .replace(/^WEB_DIR=.*$/m, `WEB_DIR=${at('web')}`)
    .replace(/^ADMIN_DIR=.*$/m, `ADMIN_DIR=${at('admin')}`)
    .replace(/^EXPORTER_DIR=.*$/m, `EXPORTER_DIR=${at('exporter')}`)
    .replace(/^exec docker-entrypoint\.sh .*$/m, 'cat "$ACL_DIR/users.acl"');
  writeFileSync(at('start.sh'), script);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function start(env: Record<string, string>) {
  const result = spawnSync('sh', [at('start.sh')], {
    encoding: 'utf8',
    env: { PATH: `${at('bin')}:${process.env.PATH}`, COUNTER_KEY: 'headcount:visits', ...env },
  });
  const exporterLine = result.stdout.split('\n').find((line) => line.startsWith('user headcount-exporter ')) ?? '';
  return { ...result, exporterPassword: /\s>(\S+)/.exec(exporterLine)?.[1] };
}

describe('redis/docker-start.sh: the Redis exporter\'s password (compose)', () => {
  test('When REDIS_EXPORTER_PASSWORD is set, then the ACL file and the map the exporter reads both hold it, the map under both keys redis_exporter versions look up', () => {
    const result = start({ REDIS_EXPORTER_PASSWORD: 'exporter-pw-1' });

    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.exporterPassword).toBe('exporter-pw-1');
    expect(JSON.parse(readFileSync(at('exporter', 'password-map.json'), 'utf8'))).toEqual({
      'redis://redis:6379': 'exporter-pw-1',
      'redis://headcount-exporter@redis:6379': 'exporter-pw-1',
    });
    expect(readFileSync(at('exporter', 'password'), 'utf8')).toBe('exporter-pw-1');
  });

  test('When no password is set, then one is generated on the first start and kept on the next', () => {
    const first = start({});
    const second = start({});

    expect(first.status).toBe(0);
    expect(first.exporterPassword).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(second.exporterPassword).toBe(first.exporterPassword);
    expect(second.stdout).not.toContain('${');
  });

  test('When the password holds a character that would break the ACL line, then the start stops without showing it', () => {
    const bad = start({ REDIS_EXPORTER_PASSWORD: 'two words' });

    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain('REDIS_EXPORTER_PASSWORD may only hold');
    expect(bad.stderr).not.toContain('two words');
  });
});

describe('redis/docker-start.sh: the Redis exporter\'s password (Swarm secrets)', () => {
  const swarmEnv = () => {
    for (const name of ['operator', 'web', 'admin']) writeFileSync(at('secrets', name), `${name}-secret`);
    return {
      REDIS_PASSWORD_FILE: at('secrets', 'operator'),
      REDIS_WEB_PASSWORD_FILE: at('secrets', 'web'),
      REDIS_ADMIN_PASSWORD_FILE: at('secrets', 'admin'),
    };
  };

  test('When the map secret is given, then the exporter\'s ACL line takes the password out of it, and nothing is written for the exporter', () => {
    writeFileSync(at('secrets', 'map'), '{"redis://redis:6379":"from-map","redis://headcount-exporter@redis:6379":"from-map"}');

    const result = start({ ...swarmEnv(), REDIS_EXPORTER_PASSWORD_MAP_FILE: at('secrets', 'map') });

    expect(result.stderr).toBe('');
    expect(result.exporterPassword).toBe('from-map');
    expect(existsSync(at('exporter', 'password-map.json'))).toBe(false);
  });

  test('When no map secret is given, then the exporter\'s user gets a random password nobody knows', () => {
    const result = start(swarmEnv());

    expect(result.status).toBe(0);
    expect(result.exporterPassword).toMatch(/^[A-Za-z0-9]{32}$/);
  });

  test('When the map secret is not the map, then the start stops and says what it must hold, without the value', () => {
    writeFileSync(at('secrets', 'map'), 'plain-password');

    const result = start({ ...swarmEnv(), REDIS_EXPORTER_PASSWORD_MAP_FILE: at('secrets', 'map') });

    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('REDIS_EXPORTER_PASSWORD_MAP_FILE must start with {"redis://redis:6379":"<password>"');
    expect(result.stderr).not.toContain('plain-password');
  });
});
