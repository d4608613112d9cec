// What the live panel costs: Redis commands per second and replica CPU with
// no stream open, then with STREAMS open through nginx, on a throwaway local
// formation of REPLICAS replicas. The figures in docs/live-page.md come from:
//   npm run build && node --import tsx loadtest/live-cost.ts
// (REPLICAS=4 STREAMS=100 SECONDS=10 by default). Linux only (/proc).
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { startThrowawayFormation } from './throwaway-formation.js';

const REPLICAS = Number(process.env.REPLICAS ?? 4);
const STREAMS = Number(process.env.STREAMS ?? 100);
const SECONDS = Number(process.env.SECONDS ?? 10);

/** CPU time (user + system, ms) a process used so far. */
const cpuMs = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
};

const formation = await startThrowawayFormation({ purpose: 'headcount-live-cost', parent: tmpdir(), replicas: REPLICAS, replicaEnv: { LOG_LEVEL: 'warn' } });
const redis = new Redis(formation.redisUrl);
const requests: http.ClientRequest[] = [];
try {
  const pids = formation.replicas.map((r) => r.service.pid!);
  const measure = async (label: string) => {
    await redis.config('RESETSTAT');
    const cpuBefore = pids.map(cpuMs);
    await sleep(SECONDS * 1000);
    const cpu = pids.map(cpuMs).reduce((sum, after, i) => sum + after - cpuBefore[i]!, 0);
    const stats = await redis.info('commandstats');
    const calls = Object.fromEntries([...stats.matchAll(/cmdstat_(\w+):calls=(\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
    const perSecond = (name: string) => ((calls[name] ?? 0) / SECONDS).toFixed(1);
    return { label, 'script calls/s (EVALSHA)': perSecond('evalsha'), 'ZADD/s (heartbeat; inside the script once streams are open)': perSecond('zadd'), 'replica CPU ms/s (all)': (cpu / SECONDS).toFixed(1) };
  };

  const idle = await measure('no stream open');
  let opened = 0;
  await Promise.all(
    Array.from(
      { length: STREAMS },
      () =>
        new Promise<void>((resolve, reject) => {
          const request = http.get({ host: '127.0.0.1', port: formation.lbPort, path: '/api/live', agent: false }, (response) => {
            if (response.statusCode === 200) opened += 1;
            response.resume();
            resolve();
          });
          request.on('error', reject);
          requests.push(request);
        }),
    ),
  );
  await sleep(2_000);
  const busy = await measure(`${opened} streams open`);
  console.log(`live-cost: ${REPLICAS} replicas, ${SECONDS} s per row, Redis commandstats count the commands a script runs too`);
  console.table([idle, busy]);
} finally {
  requests.forEach((r) => r.destroy());
  redis.disconnect();
  await formation.destroy();
}
