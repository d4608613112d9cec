import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { waitFor } from '../../formation/wait.js';
import { startTestFormation, visitAll, type TestFormation } from '../support/formation.js';
import { spawnReplica, type ReplicaProcess } from '../support/replica-process.js';

type LogLine = { level?: number; msg?: string; code?: string; cause?: string };
const parse = (line: string): LogLine => {
  try {
    return JSON.parse(line) as LogLine;
  } catch {
    return {};
  }
};

// What an operator sees when Redis refuses the replicas (not an outage: a
// retry cannot fix it), on the real formation and its real Redis users.
describe('Redis refuses the web user', () => {
  let formation: TestFormation;
  let operator: Redis;
  const replicaLog = (id: string) => formation.lines.filter((l) => l.startsWith(`${id} | `)).map((l) => parse(l.slice(id.length + 3)));
  const post = async () => {
    const response = await fetch(`${formation.lbUrl}/api/visits`, { method: 'POST' });
    return { status: response.status, replica: response.headers.get('x-replica'), body: (await response.json()) as { count?: number } };
  };

  beforeAll(async () => {
    formation = await startTestFormation({ replicas: 2 });
    operator = new Redis(formation.redisUrl, { maxRetriesPerRequest: 1 });
  });
  afterAll(async () => {
    operator?.disconnect();
    await formation?.destroy();
  });

  test('When the operator revokes evalsha, then visits are 5xx, each replica logs NOPERM once, /readyz says why; when restored, counting resumes without a restart', async () => {
    await operator.acl('SETUSER', 'headcount-web', '-evalsha');
    const during = [];
    for (let i = 0; i < 20; i++) during.push(await post());
    const readyz = await Promise.all(formation.replicas.map(async (r) => (await fetch(`${r.url}/readyz`)).json()));
    await waitFor('NOPERM in both replicas\' logs', async () => formation.replicas.every((r) => replicaLog(r.id).some((l) => l.code === 'NOPERM')), 2_000);

    await operator.acl('SETUSER', 'headcount-web', '+evalsha');
    const after = [];
    // Until both replicas have counted again (round robin: a few visits).
    while (after.length < 10 && new Set(after.filter((a) => a.status === 200).map((a) => a.replica)).size < 2) after.push(await post());
    const readyzAfter = await Promise.all(formation.replicas.map(async (r) => (await fetch(`${r.url}/readyz`)).status));

    expect(during.map((d) => d.status)).toEqual(Array(20).fill(500));
    expect(readyz).toEqual(
      formation.replicas.map(() => ({ status: 'redis refuses', code: 'NOPERM', cause: "NOPERM this user has no permissions to run the 'evalsha' command" })),
    );
    for (const r of formation.replicas) {
      // Logged at error level, once per kind per interval: not once per visit.
      expect(replicaLog(r.id).filter((l) => l.code === 'NOPERM')).toEqual([
        expect.objectContaining({ level: 50, cause: "NOPERM this user has no permissions to run the 'evalsha' command" }),
      ]);
    }
    expect(after.every((a) => a.status === 200)).toBe(true);
    expect(new Set(after.map((a) => a.replica))).toEqual(new Set(['web-1', 'web-2']));
    expect(readyzAfter).toEqual([200, 200]);
    expect(formation.replicas.map((r) => r.service.crashes)).toEqual([0, 0]);
  });

  test('When a replica starts with a wrong password, then its first log lines name WRONGPASS, visits to it are 500 and /readyz says why', async () => {
    const url = new URL(formation.webRedisUrl);
    url.password = 'not-the-password';
    let replica: ReplicaProcess | undefined;
    try {
      replica = await spawnReplica({ REDIS_URL: url.href, LOG_LEVEL: 'info' });
      await waitFor('the replica listening', async () => replica!.stdout.some((l) => parse(l).msg === 'listening'), 10_000);

      const visit = await fetch(`${replica.url}/api/visits`, { method: 'POST' });
      const readyz = await fetch(`${replica.url}/readyz`);
      const first = replica.stdout.slice(0, 3).map(parse);

      expect(first[0]).toMatchObject({ level: 50, code: 'WRONGPASS', cause: 'WRONGPASS invalid username-password pair or user is disabled.' });
      expect(visit.status).toBe(500);
      expect(readyz.status).toBe(503);
      expect(await readyz.json()).toMatchObject({ status: 'redis refuses', code: expect.stringMatching(/^(WRONGPASS|NOAUTH)$/) });
      expect(replica.stdout.join('\n')).not.toContain('not-the-password');
    } finally {
      await replica?.kill();
    }
  });
});


// The other way for one replica alone to lose Redis: a wrong password on one
// container, say after a restart with a bad secret. nginx retries its 500 on
// another replica, and counts it out after two.
describe('one replica restarted with a wrong password among good ones', () => {
  let formation: TestFormation | undefined;
  let ownUrls: string | undefined;
  afterAll(async () => {
    await formation?.destroy();
    if (ownUrls) await rm(ownUrls, { recursive: true, force: true });
  });

  test('When one replica of 4 comes back with a wrong password, then every visitor gets a 200 from the others, the count is exact, and its /readyz says WRONGPASS', async () => {
    ownUrls = await mkdtemp(path.join(tmpdir(), 'headcount-own-redis-'));
    formation = await startTestFormation({
      replicas: 4,
      replicaCommand: [process.execPath, 'test/support/own-redis-replica.mjs'],
      replicaEnv: { OWN_REDIS_URL_DIR: ownUrls },
    });
    const bad = formation.replicas[1]!;
    const wrong = new URL(formation.webRedisUrl);
    wrong.password = 'not-the-password';
    await writeFile(path.join(ownUrls, bad.id), wrong.href);
    const exits = bad.service.crashes;
    bad.service.signal('SIGKILL'); // the supervisor starts it again, now with the wrong password
    await waitFor(`${bad.id} restarted and refused`, async () => {
      const response = await fetch(`${bad.url}/readyz`);
      return ((await response.json()) as { code?: string }).code === 'WRONGPASS';
    }, 15_000);
    const before = await formation.count();

    const results = await visitAll(`${formation.lbUrl}/api/visits`, 200, { method: 'POST' });
    const after = await formation.count();
    const readyz = await (await fetch(`${bad.url}/readyz`)).json();

    expect(bad.service.crashes).toBeGreaterThan(exits);
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    expect(results.map((r) => r.replica)).not.toContain(bad.id);
    expect(after - before).toBe(200);
    expect(new Set(results.map((r) => r.count)).size).toBe(200);
    expect(readyz).toMatchObject({ status: 'redis refuses', code: 'WRONGPASS' });
  });
});
