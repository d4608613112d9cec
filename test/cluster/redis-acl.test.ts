import { Redis, ReplyError } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestFormation, type TestFormation } from '../support/formation.js';

// Least privilege: what each Redis user of the formation may and may not do.
describe('Redis users (redis/users.acl.template)', () => {
  let formation: TestFormation;
  let counterKey: string;
  const clients: Redis[] = [];
  const connect = (url: string) => {
    const client = new Redis(url, { enableReadyCheck: false, maxRetriesPerRequest: 0 });
    clients.push(client);
    return client;
  };
  const refusal = (promise: Promise<unknown>) =>
    promise.then(
      () => 'allowed',
      (error: unknown) => (error instanceof ReplyError && /NOPERM/.test((error as Error).message) ? 'NOPERM' : String(error)),
    );

  beforeAll(async () => {
    counterKey = `test:acl:${Date.now()}`;
    formation = await startTestFormation({ replicas: 2, replicaEnv: { COUNTER_KEY: counterKey } });
  });
  afterAll(async () => {
    clients.forEach((c) => c.disconnect());
    await formation?.destroy();
  });

  test('When the replicas count visits, then they do it as the web user, and it works', async () => {
    const response = await fetch(`${formation.lbUrl}/api/visits`, { method: 'POST' });

    expect(response.status).toBe(200);
    expect(formation.webRedisUrl).toMatch(/^redis:\/\/headcount-web:/);
  });

  test('When the web user tries anything beyond counting, then Redis refuses it', async () => {
    const web = connect(formation.webRedisUrl);

    const attempts = {
      flushall: await refusal(web.flushall()),
      config: await refusal(web.config('GET', 'maxmemory')),
      keys: await refusal(web.keys('*')),
      writeOtherKey: await refusal(web.set('someone:else', '1')),
      deleteCount: await refusal(web.del(counterKey)),
      scriptOnOtherKey: await refusal(web.eval("return redis.call('SET', KEYS[1], 1)", 1, 'someone:else')),
      deleteBreakdown: await refusal(web.del(`${counterKey}:replicas`)),
      otherHashCommand: await refusal(web.hset(`${counterKey}:replicas`, 'r', '1')),
      otherSortedSetCommand: await refusal(web.zrange(`${counterKey}:live`, 0, -1)),
      breakdownOfOtherKey: await refusal(web.hincrby('someone:else', 'r', 1)),
      readCount: await refusal(web.get(counterKey)),
      addToBreakdown: await refusal(web.hincrby(`${counterKey}:replicas`, 'acl-test', 0)),
      readBreakdown: await refusal(web.hgetall(`${counterKey}:replicas`)),
      heartbeat: await refusal(web.zadd(`${counterKey}:live`, Date.now(), 'acl-test')),
      readPresence: await refusal(web.zrangebyscore(`${counterKey}:live`, 0, '+inf')),
      trimPresence: await refusal(web.zremrangebyscore(`${counterKey}:live`, '-inf', 0)),
      leave: await refusal(web.zrem(`${counterKey}:live`, 'acl-test')),
    };

    expect(attempts).toEqual({
      flushall: 'NOPERM',
      config: 'NOPERM',
      keys: 'NOPERM',
      writeOtherKey: 'NOPERM',
      deleteCount: 'NOPERM',
      scriptOnOtherKey: 'NOPERM',
      deleteBreakdown: 'NOPERM',
      otherHashCommand: 'NOPERM',
      otherSortedSetCommand: 'NOPERM',
      breakdownOfOtherKey: 'NOPERM',
      readCount: 'allowed',
      addToBreakdown: 'allowed',
      readBreakdown: 'allowed',
      heartbeat: 'allowed',
      readPresence: 'allowed',
      trimPresence: 'allowed',
      leave: 'allowed',
    });
  });

  test('When the admin user resets the count and clears the breakdown in one transaction, then it may; anything else (deleting the count itself) it may not', async () => {
    const admin = connect(formation.adminRedisUrl);

    const attempts = {
      reset: await refusal(admin.set(counterKey, '0', 'GET')),
      resetWithBreakdown: await refusal(admin.multi().set(counterKey, '0', 'GET').del(`${counterKey}:replicas`).exec()),
      deleteCount: await refusal(admin.del(counterKey)),
      deletePresence: await refusal(admin.del(`${counterKey}:live`)),
      writeBreakdown: await refusal(admin.hincrby(`${counterKey}:replicas`, 'r', 1)),
      flushall: await refusal(admin.flushall()),
      writeOtherKey: await refusal(admin.set('someone:else', '1')),
      script: await refusal(admin.eval('return 1', 0)),
      config: await refusal(admin.config('GET', 'maxmemory')),
    };

    expect(attempts).toEqual({
      reset: 'allowed',
      resetWithBreakdown: 'allowed',
      deleteCount: 'NOPERM',
      deletePresence: 'NOPERM',
      writeBreakdown: 'NOPERM',
      flushall: 'NOPERM',
      writeOtherKey: 'NOPERM',
      script: 'NOPERM',
      config: 'NOPERM',
    });
  });

  test('When a client connects without a password, then it can only PING', async () => {
    const anonymous = connect(formation.redisUrl.replace(/\/\/[^@]+@/, '//'));

    const get = await anonymous.get(counterKey).then(
      () => 'allowed',
      (error: Error) => error.message.split(' ')[0],
    );

    expect(get).toMatch(/NOAUTH|NOPERM/);
  });
});
