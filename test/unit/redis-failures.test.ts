import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ReplyError } from 'ioredis';
import { pino } from 'pino';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { createApp } from '../../web/app.js';
import { StoreRefusedError, StoreUnavailableError, type CounterStore } from '../../web/counter-store.js';
import { createLifecycle } from '../../web/lifecycle.js';
import { classifyRedisError } from '../../web/redis-errors.js';
import { createThrottledLog } from '../../web/throttled-log.js';

const reply = (message: string) => new ReplyError(message);

describe('Redis errors, sorted (web/redis-errors.ts)', () => {
  test.each([
    ['LOADING Redis is loading the dataset in memory', 'unavailable', 'LOADING', false],
    ['BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.', 'unavailable', 'BUSY', false],
    ['MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to \'no\'.', 'unavailable', 'MASTERDOWN', false],
    ["READONLY You can't write against a read only replica.", 'unavailable', 'READONLY', false],
    ['TRYAGAIN Multiple keys request during rehashing of slot', 'unavailable', 'TRYAGAIN', false],
    ["OOM command not allowed when used memory > 'maxmemory'.", 'unavailable', 'OOM', true],
    ["NOPERM this user has no permissions to run the 'evalsha' command", 'refused', 'NOPERM', true],
    ['WRONGPASS invalid username-password pair or user is disabled.', 'refused', 'WRONGPASS', true],
    ['NOAUTH Authentication required.', 'refused', 'NOAUTH', true],
    ['WRONGTYPE Operation against a key holding the wrong kind of value', 'refused', 'WRONGTYPE', true],
    ["ERR unknown command 'FOOBAR', with args beginning with: ", 'refused', 'ERR', true],
    ['ERR Error running script (call to f_1234): @user_script:2: boom', 'refused', 'ERR', true],
  ] as const)('When Redis replies "%s", then it is %s (%s), alarming: %s', (message, kind, code, alarming) => {
    expect(classifyRedisError(reply(message))).toEqual({ kind, code, alarming });
  });

  test.each([
    ["Stream isn't writeable and enableOfflineQueue options is false", 'CONNECTION'],
    ['Connection is closed.', 'CONNECTION'],
    ['Command timed out', 'TIMEOUT'],
  ])('When ioredis gets no reply ("%s"), then it is unavailable (%s)', (message, code) => {
    expect(classifyRedisError(new Error(message))).toEqual({ kind: 'unavailable', code, alarming: false });
  });

  test('When an error does not come from Redis (a bug), then it is not sorted as a Redis failure', () => {
    expect(classifyRedisError(new TypeError("Cannot read properties of undefined (reading 'x')"))).toBeUndefined();
  });
});

describe('how a replica answers and logs a Redis failure', () => {
  const closers: (() => void)[] = [];
  afterEach(() => closers.splice(0).forEach((close) => close()));

  /** The app on a port, with a store whose every call fails with `error`, logging into `lines`. */
  const serveFailing = async (error: Error) => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const fail = async (): Promise<never> => {
      throw error;
    };
    const store: CounterStore = { countVisit: fail, read: fail, reset: fail, ping: fail };
    const server = createServer(createApp({ store, replicaId: 'web-t', logger, lifecycle: createLifecycle() }));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => server.close().closeAllConnections());
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const visits = async (n: number) => {
      const answers = [];
      for (let i = 0; i < n; i++) {
        const response = await fetch(`${url}/api/visits`, { method: 'POST' });
        answers.push({ status: response.status, retryAfter: response.headers.get('retry-after'), body: await response.json() });
      }
      return answers;
    };
    const failures = () => lines.filter((l) => l.msg !== 'request');
    return { url, visits, failures };
  };

  test('When Redis refuses the replica (NOPERM) on 20 visits, then each is a 500 that says nothing internal, and one error line names the code and cause', async () => {
    const app = await serveFailing(new StoreRefusedError(reply("NOPERM this user has no permissions to run the 'evalsha' command"), 'NOPERM'));

    const answers = await app.visits(20);

    expect(new Set(answers.map((a) => JSON.stringify(a)))).toEqual(new Set([JSON.stringify({ status: 500, retryAfter: null, body: { error: 'internal error' } })]));
    expect(app.failures()).toEqual([
      expect.objectContaining({ level: 50, code: 'NOPERM', cause: "NOPERM this user has no permissions to run the 'evalsha' command" }),
    ]);
  });

  test('When Redis is out of memory on 20 visits, then each is a fast 503 with Retry-After, and one error line says OOM', async () => {
    const app = await serveFailing(new StoreUnavailableError(reply("OOM command not allowed when used memory > 'maxmemory'."), 'OOM'));

    const answers = await app.visits(20);

    expect(answers.every((a) => a.status === 503 && a.retryAfter === '1')).toBe(true);
    expect(app.failures()).toEqual([expect.objectContaining({ level: 50, code: 'OOM', cause: expect.stringContaining('maxmemory') })]);
  });

  test('When Redis does not answer in time on 20 visits, then each is a 503 with Retry-After, and one warning says TIMEOUT', async () => {
    const app = await serveFailing(new StoreUnavailableError(new Error('Command timed out'), 'TIMEOUT'));

    const answers = await app.visits(20);

    expect(answers.every((a) => a.status === 503 && a.retryAfter === '1')).toBe(true);
    expect(app.failures()).toEqual([expect.objectContaining({ level: 40, code: 'TIMEOUT' })]);
  });

  test('When Redis refuses the replica, then /readyz fails with the code and Redis\'s words', async () => {
    const app = await serveFailing(new StoreRefusedError(reply('WRONGPASS invalid username-password pair or user is disabled.'), 'WRONGPASS'));

    const response = await fetch(`${app.url}/readyz`);

    expect(response.status).toBe(503);
    expect(await response.json()).toEqual({
      status: 'redis refuses',
      code: 'WRONGPASS',
      cause: 'WRONGPASS invalid username-password pair or user is disabled.',
    });
  });
});

describe('failure logging (web/throttled-log.ts)', () => {
  afterEach(() => void vi.useRealTimers());

  test('When one kind of failure repeats, then it is logged once per interval with how many were left out, and another kind is logged at once', () => {
    vi.useFakeTimers({ now: 0 });
    const lines: Record<string, unknown>[] = [];
    const log = createThrottledLog(pino({}, { write: (line: string) => void lines.push(JSON.parse(line)) }), 10_000);

    for (let i = 0; i < 50; i++) log('error', 'NOPERM', { code: 'NOPERM' }, 'refused');
    log('warn', 'TIMEOUT', { code: 'TIMEOUT' }, 'unavailable');
    vi.setSystemTime(10_001);
    log('error', 'NOPERM', { code: 'NOPERM' }, 'refused');

    expect(lines.map(({ code, alsoSince }) => ({ code, alsoSince }))).toEqual([
      { code: 'NOPERM', alsoSince: undefined },
      { code: 'TIMEOUT', alsoSince: undefined },
      { code: 'NOPERM', alsoSince: 49 },
    ]);
  });
});
