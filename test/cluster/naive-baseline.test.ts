import { Redis } from 'ioredis';
import { afterEach, describe, expect, test } from 'vitest';
import { fromRoot } from '../../formation/paths.js';
import { startTestFormation, type TestFormation } from '../support/formation.js';

// make bench's naive Express baseline (issue 11): loadtest/naive-replica.ts
// behind the local formation's nginx with its access log off, on a Redis with
// or without persistence (the lbAccessLog and redisPersistence options). The
// same formation without the options is the check that both switches are what
// changes: there nginx logs every request and Redis keeps redis.conf's AOF.

const NAIVE = [process.execPath, fromRoot('dist/loadtest/naive-replica.js')];
const naive = (options: { lbAccessLog?: boolean; redisPersistence?: boolean } = {}) =>
  startTestFormation({ replicas: 2, replicaCommand: NAIVE, replicaEnv: { COUNTER_KEY: 'visitorCount' }, ...options });

/** Redis's persistence settings as the running server reports them. */
async function persistence(url: string) {
  const redis = new Redis(url);
  try {
    const get = async (name: string) => ((await redis.config('GET', name)) as string[])[1];
    return { appendonly: await get('appendonly'), appendfsync: await get('appendfsync'), save: await get('save'), count: await redis.get('visitorCount') };
  } finally {
    redis.disconnect();
  }
}

/** Five visits one after another, each answer's status, body and Express's default headers. */
async function visitFive(url: string) {
  const answers = [];
  for (let i = 0; i < 5; i++) {
    const response = await fetch(url);
    answers.push({ status: response.status, body: await response.text(), poweredBy: response.headers.get('x-powered-by'), etag: response.headers.has('etag') });
  }
  return answers;
}

/** nginx's JSON access-log lines for GET / (nginx flushes its buffered log when it stops). */
const visitLogLines = (formation: TestFormation) => formation.lines.filter((line) => line.startsWith('nginx') && line.includes('"uri":"/"'));

describe('the naive Express baseline formation (make bench, issue 11)', () => {
  let formation: TestFormation | undefined;
  afterEach(async () => {
    await formation?.destroy();
    formation = undefined;
  });

  test('When it runs with the access log and persistence off, then each visit is the naive text with ETag and X-Powered-By, nginx logs none of them, and Redis keeps nothing on disk', async () => {
    formation = await naive({ lbAccessLog: false, redisPersistence: false });

    const answers = await visitFive(formation.lbUrl);
    const redis = await persistence(formation.redisUrl);
    await formation.stop();

    expect(answers).toEqual([1, 2, 3, 4, 5].map((n) => ({ status: 200, body: `Welcome! Visitor Count: ${n}`, poweredBy: 'Express', etag: true })));
    expect(redis).toEqual({ appendonly: 'no', appendfsync: 'always', save: '', count: '5' });
    expect(visitLogLines(formation)).toEqual([]);
  });

  test('When the same formation starts without the options, then nginx logs each visit as a JSON line and Redis keeps its AOF with appendfsync always', async () => {
    formation = await naive();

    await visitFive(formation.lbUrl);
    const redis = await persistence(formation.redisUrl);
    await formation.stop();

    expect(redis).toEqual({ appendonly: 'yes', appendfsync: 'always', save: '', count: '5' });
    expect(visitLogLines(formation)).toHaveLength(5);
  });
});
