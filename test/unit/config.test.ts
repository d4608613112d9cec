import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { ConfigError, loadConfig } from '../../web/config.js';

const problemsOf = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
  }
  throw new Error('expected a ConfigError');
};

describe('loadConfig', () => {
  test('When nothing is set, then it returns the local-development defaults, frozen', () => {
    const config = loadConfig({});

    expect(config).toMatchObject({
      NODE_ENV: 'development',
      PORT: 3000,
      REDIS_URL: 'redis://127.0.0.1:6379',
      COUNTER_KEY: 'headcount:visits',
      REDIS_COMMAND_TIMEOUT_MS: 250,
      IDEMPOTENCY_TTL_SECONDS: 60,
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  test('When values are given as strings, then they are coerced to their types', () => {
    const config = loadConfig({ PORT: '8081', REDIS_URL: 'rediss://user:pw@cache:6380/2', SHUTDOWN_GRACE_MS: '500' });

    expect(config).toMatchObject({ PORT: 8081, REDIS_URL: 'rediss://user:pw@cache:6380/2', SHUTDOWN_GRACE_MS: 500 });
  });

  test('When a variable is empty, then its default applies as if it were unset', () => {
    expect(loadConfig({ PORT: '' }).PORT).toBe(3000);
  });

  test.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '3.5'],
    ['REDIS_URL', 'http://cache:6379'],
    ['REDIS_URL', 'not a url'],
    ['NODE_ENV', 'staging'],
    ['LOG_LEVEL', 'loud'],
    ['REPLICA_ID', 'web 1 <script>'],
    ['COUNTER_KEY', 'has space'],
    ['REDIS_COMMAND_TIMEOUT_MS', '0'],
    ['IDEMPOTENCY_TTL_SECONDS', '5'],
    ['KEEP_ALIVE_TIMEOUT_MS', '-1'],
    ['SHUTDOWN_GRACE_MS', 'soon'],
  ])('When %s is %j, then the error names %s and says what it must be', (name, value) => {
    const error = problemsOf({ [name]: value });

    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toMatch(new RegExp(`^${name} must `));
    expect(error.message).not.toContain('\n');
  });

  test('When several variables are bad, then one single-line message names every one of them', () => {
    const error = problemsOf({ PORT: 'x', REDIS_URL: 'ftp://h', LOG_LEVEL: 'loud' });

    expect(error.problems.map((p) => p.split(' ')[0])).toEqual(['PORT', 'REDIS_URL', 'LOG_LEVEL']);
    expect(error.message).toMatch(/^invalid configuration: PORT .*; REDIS_URL .*; LOG_LEVEL .*$/);
  });

  test('When REDIS_URL is bad and holds a password, then the message never repeats the value', () => {
    const error = problemsOf({ REDIS_URL: 'http://admin:s3cret-pass@cache:6379' });

    expect(error.message).toContain('REDIS_URL');
    expect(error.message).not.toContain('s3cret-pass');
  });

  test('When NODE_ENV is production and REDIS_URL is missing, then it is required', () => {
    const error = problemsOf({ NODE_ENV: 'production' });

    expect(error.problems).toEqual(['REDIS_URL is required when NODE_ENV=production']);
  });

  test('When REDIS_PASSWORD_FILE names a file, then its content becomes the password in REDIS_URL', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'headcount-config-'));
    const file = path.join(dir, 'password');
    writeFileSync(file, 's3cret/+pw\n');
    try {
      const config = loadConfig({ REDIS_URL: 'redis://headcount-web@redis:6379', REDIS_PASSWORD_FILE: file });

      expect(new URL(config.REDIS_URL)).toMatchObject({ username: 'headcount-web', hostname: 'redis' });
      expect(decodeURIComponent(new URL(config.REDIS_URL).password)).toBe('s3cret/+pw');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('When REDIS_PASSWORD_FILE cannot be read, then the error names it and says nothing more', () => {
    const error = problemsOf({ REDIS_PASSWORD_FILE: '/nonexistent/secret' });

    expect(error.problems).toEqual(['REDIS_PASSWORD_FILE cannot be read']);
  });

  test('When NODE_ENV is production and REDIS_URL is set, then the config loads', () => {
    expect(loadConfig({ NODE_ENV: 'production', REDIS_URL: 'redis://redis:6379' }).REDIS_URL).toBe('redis://redis:6379');
  });
});
