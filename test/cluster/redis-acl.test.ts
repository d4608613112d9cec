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
      readCount: await refusal(web.get(counterKey)),
    };

    expect(attempts).toEqual({
      flushall: 'NOPERM',
      config: 'NOPERM',
      keys: 'NOPERM',
      writeOtherKey: 'NOPERM',
      deleteCount: 'NOPERM',
      scriptOnOtherKey: 'NOPERM',
      readCount: 'allowed',
    });
  });

  test('When the admin user resets the count, then it may; anything else it may not', async () => {
    const admin = connect(formation.adminRedisUrl);

    const attempts = {
      reset: await refusal(admin.set(counterKey, '0', 'GET')),
      flushall: await refusal(admin.flushall()),
      writeOtherKey: await refusal(admin.set('someone:else', '1')),
      script: await refusal(admin.eval('return 1', 0)),
      config: await refusal(admin.config('GET', 'maxmemory')),
    };

    expect(attempts).toEqual({ reset: 'allowed', flushall: 'NOPERM', writeOtherKey: 'NOPERM', script: 'NOPERM', config: 'NOPERM' });
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
