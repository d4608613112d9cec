// `make bench`: scaling and overhead figures, measured side by side in one run
// on this machine, printed as ratios, with what limited each figure; and
// headcount against the naive Express formation (issue 11's target).
//   DURATION (s per figure, default 10), CONNECTIONS (default 100),
//   TURNS (rounds of the headcount and naive figures, in alternating order, default 6)
import { randomBytes } from 'node:crypto';
import { openSync } from 'node:fs';
import http, { type ClientRequest } from 'node:http';
import getPort from 'get-port';
import { mkdir, writeFile } from 'node:fs/promises';
import { Redis } from 'ioredis';
import path from 'node:path';
import { z } from 'zod';
import { REPLICA_NODE_FLAGS, type LocalFormation } from '../formation/local-formation.js';
import { fromRoot } from '../formation/paths.js';
import { loadConfig } from '../web/config.js';
import { integer, parseEnv } from '../web/env.js';
import { requestKey } from '../web/counter-store.js';
import { fire, latencyOf, requestsPerSecond, type CannonOptions } from './cannon.js';
import { formationCpuGroups, measureCpu } from './cpu.js';
import { Service } from '../formation/supervisor.js';
import { httpOk, waitFor } from '../formation/wait.js';
import { machine, median, RESULTS_DIR } from './report.js';
import { newTable } from './terminal.js';
import { withThrowawayFormation, type ThrowawayOptions } from './throwaway-formation.js';

const options = parseEnv(
  z.object({ DURATION: integer(1, 600).default(10), CONNECTIONS: integer(1, 10_000).default(100), TURNS: integer(2, 40).default(6) }),
  process.env,
);
const BARE = [process.execPath, fromRoot('dist/loadtest/bare-replica.js')];
const NAIVE = [process.execPath, fromRoot('dist/loadtest/naive-replica.js')];
const startedAt = performance.now();

interface Figure {
  name: string;
  requestsPerSecond: number;
  requests: number;
  latency: ReturnType<typeof latencyOf>;
  errors: number;
  non2xx: number;
  /** CPU seconds per group during the run, and as a share of one core. */
  cpu: Record<string, number>;
  cpuCores: Record<string, number>;
  cpuMsPerRequest: number;
  /** Milliseconds per visit each group's processes waited for a CPU while runnable (cpu.ts runQueueSeconds). */
  waitedMsPerVisit: Record<string, number>;
  limitedBy: string;
  note?: string;
  /** Wall-clock seconds the load ran (summed over rounds). */
  seconds: number;
  /**
   * Redis forks while it ran: AOF rewrites, which Redis starts by itself as
   * its AOF grows. Each copies the data in a child process whose writes share
   * the disk with the fsync every counted visit waits for.
   */
  redisForks: number;
  /** A figure measured in rounds: each round's own figure. */
  rounds?: Omit<Figure, 'rounds'>[];
  /** At half of peak: req/s of the 3 s probe at each connection count, and of each measurement made. */
  probes?: { connections: number; rps: number }[];
  tried?: { connections: number; rps: number }[];
  /** At half of peak: Redis's forks from the first probe to the end of the figure. */
  forksSinceProbing?: number;
  /** At half of peak: what Redis's latency monitor saw (withRedisStalls). */
  redisStalls?: RedisStalls;
}

const figures: Figure[] = [];
let recordBytes = Number.NaN;

type Variant = 'off' | 'on' | 'streams';
interface VariantCost {
  /** Replica CPU µs per visit and visits per second, over all its rounds; the worst round's p99. */
  cpuUsPerVisit: number;
  requestsPerSecond: number;
  p99: number;
}
interface ReplicaCosts {
  off: VariantCost;
  on: VariantCost;
  streams: VariantCost;
  rounds: number;
  /** Live streams held open on the `streams` replica while it is loaded. */
  openStreams: number;
}
let replicaCosts: ReplicaCosts | undefined;
const OPEN_STREAMS = 100;

/** Opens `n` live streams (GET /api/live) straight to a replica and keeps them until closed. */
async function openLiveStreams(url: string, n: number) {
  const requests = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ClientRequest>((resolve, reject) => {
          const request = http.get(`${url}/api/live`, { agent: false }, (response) => {
            if (response.statusCode !== 200) return reject(new Error(`live stream answered ${response.statusCode}`));
            // Read and drop: a stream the client reads, as a browser's is.
            response.resume();
            resolve(request);
          });
          request.on('error', reject);
        }),
    ),
  );
  return () => requests.forEach((request) => request.destroy());
}

/**
 * What metrics and open live streams cost a visit: three replicas of this
 * build on the formation's Redis, without metrics (METRICS_PORT=off: no
 * registry, no request hook, no timed store), with metrics, and with metrics
 * and OPEN_STREAMS live streams open to it, each loaded directly in turn,
 * A B C A B C ..., so drift on a shared machine falls on all alike. The figure
 * is each replica's own CPU per visit. Nothing scrapes them: this is the hot
 * path's cost; a scrape is a separate cost per scrape interval. The streams
 * replica's figure includes its live tick: a snapshot each second, written to
 * every stream (under load the count changes every tick).
 */
async function measureReplicaCosts(f: LocalFormation): Promise<ReplicaCosts> {
  const start = async (name: string, metricsPort: string) => {
    const port = await getPort({ host: '127.0.0.1' });
    const service = new Service(
      {
        name,
        command: process.execPath,
        args: [...REPLICA_NODE_FLAGS, fromRoot('dist/web/server.js')],
        env: { NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(port), METRICS_PORT: metricsPort, REPLICA_ID: name, REDIS_URL: f.webRedisUrl },
        // Every one logs every request, as a replica does, to where it costs
        // least: the logging is the same on all sides, and not what is measured.
        logFd: openSync('/dev/null', 'w'),
      },
      () => {},
    );
    service.start();
    await waitFor(`${name} ready`, () => httpOk(`http://127.0.0.1:${port}/readyz`), 20_000);
    return { service, url: `http://127.0.0.1:${port}` };
  };
  const variants: Record<Variant, { service: Service; url: string }> = {
    off: await start('bench-metrics-off', 'off'),
    on: await start('bench-metrics-on', '0'),
    streams: await start('bench-metrics-streams', '0'),
  };
  let closeStreams = () => {};
  try {
    closeStreams = await openLiveStreams(variants.streams.url, OPEN_STREAMS);
    const exactlyOnce = (url: string): CannonOptions => ({ ...visit(url, { ...json, 'x-request-id': '[<id>]' }), idReplacement: true, connections: options.CONNECTIONS, timeout: 10 });
    const load = (url: string, duration: number): CannonOptions => ({ ...exactlyOnce(url), duration });
    for (const [name, v] of Object.entries(variants)) await fire({ ...exactlyOnce(v.url), amount: 5_000 }, `bench: warm-up ${name}`);
    const names: Variant[] = ['off', 'on', 'streams'];
    const totals = Object.fromEntries(names.map((name) => [name, { cpu: 0, requests: 0, seconds: 0, p99: [] as number[] }])) as Record<
      Variant,
      { cpu: number; requests: number; seconds: number; p99: number[] }
    >;
    const rounds = 4;
    const roundSeconds = Math.max(1, Math.round(options.DURATION / 2));
    for (let round = 0; round < rounds; round++) {
      // Rotating which goes first, too.
      const order = names.map((_, i) => names[(i + round) % names.length]!);
      for (const name of order) {
        const v = variants[name];
        const { value: result, cpu } = await measureCpu({ replica: [v.service.pid!] }, () => fire(load(v.url, roundSeconds), `bench: ${name}, round ${round + 1} of ${rounds}`));
        totals[name].cpu += cpu.replica!;
        totals[name].requests += result.requests.total;
        totals[name].seconds += result.duration;
        totals[name].p99.push(latencyOf(result).p99);
      }
    }
    const summary = (t: (typeof totals)[Variant]): VariantCost => ({
      cpuUsPerVisit: (t.cpu * 1e6) / Math.max(t.requests, 1),
      requestsPerSecond: t.requests / Math.max(t.seconds, 0.001),
      p99: Math.max(...t.p99),
    });
    return { off: summary(totals.off), on: summary(totals.on), streams: summary(totals.streams), rounds, openStreams: OPEN_STREAMS };
  } finally {
    closeStreams();
    await Promise.all(Object.values(variants).map((v) => v.service.stop()));
  }
}

const withFormation = <T>(
  replicas: number,
  replicaCommand: readonly string[] | undefined,
  use: (f: LocalFormation) => Promise<T>,
  more: Partial<ThrowawayOptions> = {},
) => withThrowawayFormation({ purpose: 'bench', replicas, replicaCommand, ...more }, use);

/**
 * The naive Express formation (issue 11's baseline, loadtest/naive-replica.ts):
 * as many replicas, the same nginx less its access log, a Redis of its own
 * with the same redis.conf, or without persistence when `persistence` is
 * false. COUNTER_KEY=visitorCount gives the replica user of that Redis the
 * naive app's key (redis/users.acl.template); nothing else reads it.
 */
const withNaiveFormation = <T>(persistence: boolean, use: (f: LocalFormation) => Promise<T>) =>
  withFormation(4, NAIVE, use, { replicaEnv: { COUNTER_KEY: 'visitorCount' }, lbAccessLog: false, redisPersistence: persistence });

/**
 * Unmeasured load first: each replica's V8 compiles its hot code only after
 * thousands of calls, and a cold replica costs several times the CPU per
 * request. With 4 replicas each gets a quarter of the warm-up, so it is sized
 * per replica. Both answers, JSON then HTML, so each path is warm; every
 * formation gets the same warm-up (the naive one answers both with its text).
 */
async function warmUp(formation: LocalFormation, url: string) {
  for (const headers of [json, html]) {
    await fire({ url, connections: options.CONNECTIONS, amount: 5_000 * formation.replicas.length, headers }, `bench: warm-up (${headers.accept})`);
  }
}

/** Redis's persistence as it runs, read from Redis itself; throws unless it is what the figure is labelled with. */
async function persistenceOf(formation: LocalFormation, expectOn: boolean): Promise<string> {
  const redis = new Redis(formation.redisUrl);
  try {
    const get = async (name: string) => ((await redis.config('GET', name)) as string[])[1];
    const [appendonly, appendfsync, save] = [await get('appendonly'), await get('appendfsync'), await get('save')];
    const on = appendonly === 'yes' || save !== '';
    if (on !== expectOn) throw new Error(`Redis persistence is ${on ? 'on' : 'off'} (appendonly ${appendonly}, save "${save}"), expected ${expectOn ? 'on' : 'off'}`);
    return appendonly === 'yes' ? `AOF, appendfsync ${appendfsync}` : save === '' ? 'none' : `RDB, save "${save}"`;
  } finally {
    redis.disconnect();
  }
}

/**
 * That a formation answers as the figure says: headcount's HTML page for
 * text/html; the naive app's text with Express's defaults (ETag and
 * X-Powered-By) for anything. One visit each, before the figures.
 */
async function checkAnswer(url: string, kind: 'headcount' | 'naive') {
  const response = await fetch(url, { headers: html });
  const body = await response.text();
  const ok =
    kind === 'headcount'
      ? response.status === 200 && response.headers.get('content-type')?.startsWith('text/html')
      : response.status === 200 && /^Welcome! Visitor Count: \d+$/.test(body) && response.headers.get('x-powered-by') === 'Express' && response.headers.has('etag');
  if (!ok) throw new Error(`${url} does not answer as the ${kind} formation: ${response.status} ${response.headers.get('content-type')} ${body.slice(0, 80)}`);
}

/** One figure: autocannon for DURATION seconds, with every process's CPU time sampled. */
async function measure(name: string, formation: LocalFormation, cannon: CannonOptions): Promise<Figure> {
  const figure = await measureOnce(name, formation, cannon, options.DURATION);
  figures.push(figure);
  return figure;
}

async function measureOnce(name: string, formation: LocalFormation, cannon: CannonOptions, duration: number): Promise<Figure> {
  const forksBefore = await redisForks(formation);
  const { value: result, cpu, waited, wallSeconds } = await measureCpu(formationCpuGroups(formation), () =>
    fire({ connections: options.CONNECTIONS, duration, timeout: 10, ...cannon }, `bench: ${name}`),
  );
  const visits = Math.max(result.requests.total, 1);
  const cpuCores = Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, v / wallSeconds]));
  const total = Object.values(cpu).reduce((a, b) => a + b, 0);
  const figure: Figure = {
    name,
    requestsPerSecond: requestsPerSecond(result),
    requests: result.requests.total,
    latency: latencyOf(result),
    errors: result.errors,
    non2xx: result.non2xx,
    cpu,
    cpuCores,
    cpuMsPerRequest: (total * 1000) / visits,
    waitedMsPerVisit: Object.fromEntries(Object.entries(waited).map(([k, v]) => [k, (v * 1000) / visits])),
    limitedBy: limit(cpuCores),
    seconds: wallSeconds,
    redisForks: (await redisForks(formation)) - forksBefore,
  };
  return figure;
}

/** One counter from Redis's INFO stats; a Redis without it stops the bench rather than print NaN. */
async function infoStat(redis: Redis, field: string): Promise<number> {
  const value = Number(new RegExp(`^${field}:(\\d+)`, 'm').exec(await redis.info('stats'))?.[1]);
  if (!Number.isInteger(value)) throw new Error(`INFO stats has no ${field}`);
  return value;
}

/** Forks the formation's Redis has made since it started (INFO stats). */
async function redisForks(formation: LocalFormation): Promise<number> {
  const redis = new Redis(formation.redisUrl, { maxRetriesPerRequest: 1 });
  try {
    return await infoStat(redis, 'total_forks');
  } finally {
    redis.disconnect();
  }
}

interface Measurement {
  name: string;
  formation: LocalFormation;
  cannon: CannonOptions;
}

/**
 * Figures to compare, measured in TURNS rounds of half of DURATION each, in
 * order and then in reverse, and again (A B C, C B A, A B C, ...): each
 * figure's mean position in time is the same, so drift on a shared machine
 * (other work starting or stopping) falls on all of them alike, and more
 * turns resolve a smaller difference. Each figure sums its rounds' requests,
 * seconds and CPU; its latency is its worst round's.
 */
async function measureInTurns(measurements: readonly Measurement[]): Promise<Figure[]> {
  const duration = Math.max(1, Math.round(options.DURATION / 2));
  const parts = new Map<string, Figure[]>(measurements.map((m) => [m.name, []]));
  for (let turn = 0; turn < options.TURNS; turn++) {
    const order = turn % 2 ? [...measurements].reverse() : measurements;
    for (const m of order) parts.get(m.name)!.push(await measureOnce(`${m.name}, turn ${turn + 1} of ${options.TURNS}`, m.formation, m.cannon, duration));
  }
  return measurements.map((m) => {
    const figure = merge(m.name, parts.get(m.name)!);
    figures.push(figure);
    return figure;
  });
}

function merge(name: string, rounds: Figure[]): Figure {
  const sum = (of: (f: Figure) => number) => rounds.reduce((total, f) => total + of(f), 0);
  const seconds = sum((f) => f.seconds);
  const requests = sum((f) => f.requests);
  const cpu = Object.fromEntries(Object.keys(rounds[0]!.cpu).map((k) => [k, sum((f) => f.cpu[k] ?? 0)]));
  const cpuCores = Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, v / seconds]));
  const worst = rounds.reduce((a, b) => (b.latency.p99 > a.latency.p99 ? b : a));
  return {
    name,
    requestsPerSecond: requests / Math.max(seconds, 0.001),
    requests,
    latency: worst.latency,
    errors: sum((f) => f.errors),
    non2xx: sum((f) => f.non2xx),
    cpu,
    cpuCores,
    cpuMsPerRequest: (Object.values(cpu).reduce((a, b) => a + b, 0) * 1000) / Math.max(requests, 1),
    waitedMsPerVisit: Object.fromEntries(
      Object.keys(rounds[0]!.waitedMsPerVisit).map((k) => [k, sum((f) => (f.waitedMsPerVisit[k] ?? 0) * f.requests) / Math.max(requests, 1)]),
    ),
    limitedBy: limit(cpuCores),
    note: `${rounds.length} rounds`,
    seconds,
    redisForks: sum((f) => f.redisForks),
    rounds,
  };
}

/** What held a figure back: the machine's cores, or one single-threaded process at a full core. */
function limit(cores: Record<string, number>): string {
  const machineCores = machine().cpus;
  const used = Object.values(cores).reduce((a, b) => a + b, 0);
  const [top, topCores] = Object.entries(cores).sort((a, b) => b[1] - a[1])[0]!;
  if (cores['load generator']! > 0.9) return 'the load generator (one core, full)';
  if (cores.redis! > 0.9) return 'redis (one core, full)';
  if (used > 0.85 * machineCores) return `all ${machineCores} cores busy; most in ${top} (${topCores.toFixed(2)} cores)`;
  return `latency, not CPU (${used.toFixed(2)} of ${machineCores} cores busy)`;
}

/** Redis's latency monitor events make bench reads: its fsyncs, and its deletion of expired keys. */
const REDIS_STALLS = { fsync: 'aof-fsync-always', expiry: 'expire-cycle' } as const;
/**
 * Per event: the seconds in which Redis spent 1 ms or more on one at a time,
 * and the slowest; and how many expired keys it deleted (INFO stats
 * expired_keys), most in passes too short for the monitor.
 */
type RedisStalls = Record<keyof typeof REDIS_STALLS, { seconds: number; slowestMs: number }> & { watchedSeconds: number; expiredKeys: number };

/**
 * Redis's latency monitor while `work` runs
 * (https://redis.io/docs/latest/operate/oss_and_stack/management/optimization/latency-monitor/):
 * for each second it keeps the slowest `appendfsync always` fsync
 * (`aof-fsync-always`) and the slowest pass deleting expired keys
 * (`expire-cycle`) that took 1 ms or more. Redis answers nothing during
 * either, so every visit in flight waits. Idempotency records written at peak
 * expire a minute later (IDEMPOTENCY_TTL_SECONDS), which in make bench can
 * fall while half of peak is measured. The monitor is off again afterwards,
 * as redis.conf leaves it.
 */
async function withRedisStalls<T>(formation: LocalFormation, work: () => Promise<T>): Promise<{ value: T; stalls: RedisStalls }> {
  const redis = new Redis(formation.redisUrl, { maxRetriesPerRequest: 1 });
  try {
    const expiredKeys = () => infoStat(redis, 'expired_keys');
    await redis.config('SET', 'latency-monitor-threshold', '1');
    await redis.call('LATENCY', 'RESET');
    const expiredBefore = await expiredKeys();
    const started = performance.now();
    const value = await work();
    const watchedSeconds = Math.ceil((performance.now() - started) / 1000);
    const read = async (event: string) => {
      const history = (await redis.call('LATENCY', 'HISTORY', event)) as [number, number][];
      return { seconds: history.length, slowestMs: Math.max(0, ...history.map(([, ms]) => ms)) };
    };
    const stalls = { fsync: await read(REDIS_STALLS.fsync), expiry: await read(REDIS_STALLS.expiry), watchedSeconds, expiredKeys: (await expiredKeys()) - expiredBefore };
    await redis.config('SET', 'latency-monitor-threshold', '0');
    return { value, stalls };
  } finally {
    redis.disconnect();
  }
}

const HALF_PEAK = '4 replicas via nginx, at half of peak';

/**
 * Latency at half of peak throughput. autocannon's rate option sends each
 * connection's quota for the second as fast as it can and then waits, so its
 * latency is the peak's; instead the load stays closed-loop, at the number of
 * connections whose 3 s probe came closest to half of peak. A probe can be far
 * off (runs measured at 32 connections reached 70 % of peak where the probe
 * had said half), so a figure outside 35-65 % of peak is measured again one
 * step lower or higher, at most three times. The figure names its share of
 * peak, and the report keeps the probes.
 */
async function atHalfOfPeak(formation: LocalFormation, peakRps: number, name = HALF_PEAK) {
  const counts = [64, 32, 16, 12, 8, 6, 4, 3, 2];
  const forksBefore = await redisForks(formation);
  const probes: { connections: number; rps: number }[] = [];
  for (const connections of counts) {
    const result = await fire({ url: formation.lbUrl, connections, duration: 3, headers: json }, `bench: probing ${connections} connections`);
    probes.push({ connections, rps: requestsPerSecond(result) });
  }
  const distance = (p: { rps: number }) => Math.abs(p.rps - peakRps / 2);
  let index = counts.indexOf(probes.reduce((a, b) => (distance(b) < distance(a) ? b : a)).connections);
  const tried: { connections: number; rps: number }[] = [];
  let figure: Figure;
  let redisStalls: RedisStalls;
  for (;;) {
    const connections = counts[index]!;
    ({ value: figure, stalls: redisStalls } = await withRedisStalls(formation, () =>
      measureOnce(`${name} (${connections} connections)`, formation, { ...visit(formation.lbUrl), connections }, options.DURATION),
    ));
    tried.push({ connections, rps: figure.requestsPerSecond });
    const share = figure.requestsPerSecond / peakRps;
    if (tried.length > 3) break;
    if (share > 0.65 && index < counts.length - 1) index += 1;
    else if (share < 0.35 && index > 0) index -= 1;
    else break;
  }
  figure.name = name;
  figure.note = `${counts[index]} connections, ${Math.round((100 * figure.requestsPerSecond) / peakRps)} % of peak`;
  figures.push({ ...figure, probes, tried, forksSinceProbing: (await redisForks(formation)) - forksBefore, redisStalls });
}

/**
 * Redis memory per idempotency record, as the replicas write them (key
 * `<COUNTER_KEY>:req:<32 hex digits>`, a 7-digit number, a TTL): 100 000
 * written, used_memory compared.
 */
async function idempotencyRecordBytes(formation: LocalFormation, counterKey: string): Promise<number> {
  const redis = new Redis(formation.redisUrl);
  try {
    const used = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
    const before = await used();
    const n = 100_000;
    for (let i = 0; i < n; i += 1_000) {
      const batch = redis.pipeline();
      for (let j = 0; j < 1_000; j++) batch.set(requestKey(counterKey, randomBytes(16).toString('hex')), 1_000_000 + i + j, 'EX', 60);
      await batch.exec();
    }
    return ((await used()) - before) / n;
  } finally {
    redis.disconnect();
  }
}

const json = { accept: 'application/json' };
const html = { accept: 'text/html' };
const by = (name: string) => {
  const figure = figures.find((f) => f.name === name);
  if (!figure) throw new Error(`no figure named "${name}"`);
  return figure;
};
const rps = (name: string) => by(name).requestsPerSecond;
const visit = (url: string, headers: Record<string, string> = json): CannonOptions => ({ url, headers });

await withFormation(1, undefined, async (f) => {
  replicaCosts = await measureReplicaCosts(f);
});
/** Each setting's Redis persistence, as each formation's Redis reported it (key: the figures' prefix). */
const redisPersistence: Record<string, { headcount: string; naive: string }> = {};
const NO_PERSISTENCE = 'no persistence: ';
const NAIVE_HALF_PEAK = 'naive Express, 4 replicas via nginx, at half of peak';

/**
 * headcount's 4-replica formation and the naive Express one (issue 11), both
 * started and warmed alike, then headcount's JSON, the naive and headcount's
 * HTML figure measured in turns (measureInTurns). The naive formation idles
 * while headcount is measured and the other way round. `measureMore` adds this persistence setting's other
 * figures on headcount's formation afterwards.
 */
async function headcountAndNaive(persistence: boolean, prefix: string, measureMore: (f: LocalFormation) => Promise<void> = async () => {}) {
  await withFormation(
    4,
    undefined,
    (f) =>
      withNaiveFormation(persistence, async (naive) => {
        redisPersistence[prefix] = { headcount: await persistenceOf(f, persistence), naive: await persistenceOf(naive, persistence) };
        await checkAnswer(f.lbUrl, 'headcount');
        await checkAnswer(naive.lbUrl, 'naive');
        await warmUp(f, f.lbUrl);
        await warmUp(naive, naive.lbUrl);
        if (persistence) await measure('nginx alone: static 200 (the ceiling)', f, visit(`${f.lbUrl}/lb-healthz`, {}));
        await measureInTurns([
          { name: `${prefix}4 replicas via nginx`, formation: f, cannon: visit(f.lbUrl) },
          { name: `${prefix}naive Express, 4 replicas via nginx`, formation: naive, cannon: visit(naive.lbUrl, html) },
          { name: `${prefix}4 replicas via nginx, HTML`, formation: f, cannon: visit(f.lbUrl, html) },
        ]);
        // The naive formation's own latency at half of its peak: information
        // beside headcount's target (same machine, same Redis settings).
        if (persistence) await atHalfOfPeak(naive, rps(`${prefix}naive Express, 4 replicas via nginx`), NAIVE_HALF_PEAK);
        await measureMore(f);
      }),
    { redisPersistence: persistence },
  );
}

await headcountAndNaive(true, '', async (f) => {
  await measure('1 replica direct, exactly-once', f, { ...visit(f.replicas[0]!.url, { ...json, 'x-request-id': '[<id>]' }), idReplacement: true });
  await measure('1 replica direct, plain INCR', f, visit(f.replicas[0]!.url));
  await atHalfOfPeak(f, rps('4 replicas via nginx'));
  recordBytes = await idempotencyRecordBytes(f, loadConfig({}).COUNTER_KEY);
});
await headcountAndNaive(false, NO_PERSISTENCE);
await withFormation(2, undefined, async (f) => {
  await warmUp(f, f.lbUrl);
  await measure('2 replicas via nginx', f, visit(f.lbUrl));
});
await withFormation(1, undefined, async (f) => {
  await warmUp(f, f.lbUrl);
  await measure('1 replica via nginx', f, visit(f.lbUrl));
});
await withFormation(4, BARE, async (f) => {
  await warmUp(f, f.lbUrl);
  await measure('bare node:http, plain INCR: 4 replicas via nginx', f, visit(f.lbUrl));
  await measure('bare node:http, plain INCR: 1 replica direct', f, visit(f.replicas[0]!.url));
});

const ratio = (a: string, b: string) => rps(a) / rps(b);
const core = (f: Figure, k: string) => (f.cpuCores[k] ?? 0).toFixed(2);

const table = newTable(['figure', 'req/s', 'p50', 'p99', 'nginx', 'replicas', 'redis', 'loadgen', 'CPU-ms/req', 'AOF rewrites', 'limited by']);
for (const f of figures) {
  table.push([
    f.note ? `${f.name} (${f.note})` : f.name,
    Math.round(f.requestsPerSecond),
    f.latency.p50,
    f.latency.p99,
    core(f, 'nginx'),
    core(f, 'replicas'),
    core(f, 'redis'),
    core(f, 'load generator'),
    f.cpuMsPerRequest.toFixed(3),
    f.redisForks,
    f.limitedBy,
  ]);
}
const halfPeakP99 = by(HALF_PEAK).latency.p99;
const halfPeakForks = by(HALF_PEAK).forksSinceProbing!;
const ratios = [
  ['2 replicas / 1 replica (via nginx)', ratio('2 replicas via nginx', '1 replica via nginx')],
  ['4 replicas / 1 replica (via nginx)', ratio('4 replicas via nginx', '1 replica via nginx')],
  ['1 replica via nginx / 1 replica direct', ratio('1 replica via nginx', '1 replica direct, exactly-once')],
  ['exactly-once / plain INCR (1 replica direct)', ratio('1 replica direct, exactly-once', '1 replica direct, plain INCR')],
  ['4 replicas via nginx / nginx static 200 (ceiling)', ratio('4 replicas via nginx', 'nginx alone: static 200 (the ceiling)')],
  ['4 replicas / bare node:http formation (information; issue 11 retired its 0.60 target)', ratio('4 replicas via nginx', 'bare node:http, plain INCR: 4 replicas via nginx')],
  ['naive Express / bare node:http formation (4 replicas via nginx)', ratio('naive Express, 4 replicas via nginx', 'bare node:http, plain INCR: 4 replicas via nginx')],
  ['Express replica / bare node:http replica (1 direct)', ratio('1 replica direct, exactly-once', 'bare node:http, plain INCR: 1 replica direct')],
  ['metrics on / off: visits per second (1 replica direct)', replicaCosts!.on.requestsPerSecond / replicaCosts!.off.requestsPerSecond],
  [`${OPEN_STREAMS} live streams open / none: visits per second (1 replica direct, metrics on)`, replicaCosts!.streams.requestsPerSecond / replicaCosts!.on.requestsPerSecond],
] as const;
const costLine = (what: string, with_: VariantCost, without: VariantCost, withoutName: string) => {
  const us = with_.cpuUsPerVisit - without.cpuUsPerVisit;
  return (
    `${what}: replica CPU per visit ${with_.cpuUsPerVisit.toFixed(1)} µs, ${without.cpuUsPerVisit.toFixed(1)} µs ${withoutName}: ` +
    `${us.toFixed(1)} µs per visit (${((us / without.cpuUsPerVisit) * 100).toFixed(1)}%), ` +
    `${replicaCosts!.rounds} rotating rounds each; p99 ${with_.p99} ms, ${without.p99} ms ${withoutName}\n`
  );
};
const ratioTable = newTable(['ratio', 'value']);
for (const [label, value] of ratios) ratioTable.push([label, value.toFixed(2)]);

// Issue 11: headcount ÷ the naive Express formation, per persistence setting
// and answer. The naive app has one answer (text), so both of headcount's
// answers are divided by the same naive figure.
const NAIVE_TARGET = 0.85;
const comparisons = (['', NO_PERSISTENCE] as const).flatMap((prefix) =>
  (['HTML', 'JSON'] as const).map((answer) => {
    const headcount = by(`${prefix}4 replicas via nginx${answer === 'HTML' ? ', HTML' : ''}`);
    const naive = by(`${prefix}naive Express, 4 replicas via nginx`);
    return {
      persistence: redisPersistence[prefix]!.headcount,
      answer,
      headcountRequestsPerSecond: headcount.requestsPerSecond,
      naiveRequestsPerSecond: naive.requestsPerSecond,
      ratio: headcount.requestsPerSecond / naive.requestsPerSecond,
      /** headcount ÷ naive in each turn: their spread says how far one run resolves the ratio. */
      turnRatios: headcount.rounds!.map((r, i) => r.requestsPerSecond / naive.rounds![i]!.requestsPerSecond),
      headcountCpuMsPerVisit: headcount.cpuMsPerRequest,
      naiveCpuMsPerVisit: naive.cpuMsPerRequest,
      /** The target is set with every guarantee on, AOF included: the persistence-off rows are information. */
      target: prefix === '' ? NAIVE_TARGET : undefined,
    };
  }),
);
const naiveTable = newTable(['Redis persistence', 'answer', 'headcount req/s', 'naive req/s', 'headcount ÷ naive', 'CPU-ms/visit headcount', 'CPU-ms/visit naive']);
for (const c of comparisons) {
  naiveTable.push([c.persistence, c.answer, Math.round(c.headcountRequestsPerSecond), Math.round(c.naiveRequestsPerSecond), `${c.ratio.toFixed(2)}x`, c.headcountCpuMsPerVisit.toFixed(3), c.naiveCpuMsPerVisit.toFixed(3)]);
}
const targetRows = comparisons.filter((c) => c.target !== undefined);
const verdict = (met: boolean) => (met ? 'MET' : 'NOT MET');
const halfPeakTarget = { p99: halfPeakP99, limitMs: 10, met: halfPeakP99 <= 10 };
/**
 * Where a visit's time went in a half-of-peak figure: its mean latency beside
 * the milliseconds per visit processes spent runnable but waiting for a CPU
 * (by group, largest first), the CPU per visit, and Redis's stalls.
 */
function timeWent(label: string, f: Figure): string {
  const waited = Object.entries(f.waitedMsPerVisit).sort((a, b) => b[1] - a[1]);
  const cores = Object.values(f.cpuCores).reduce((a, b) => a + b, 0);
  const stalls = f.redisStalls!;
  const stall = (what: string, s: { seconds: number; slowestMs: number }) => `${what} of 1 ms or more in ${s.seconds} of ${stalls.watchedSeconds} s (slowest ${s.slowestMs} ms)`;
  return (
    `    ${label}: mean latency ${f.latency.mean.toFixed(1)} ms; ${waited.reduce((sum, [, ms]) => sum + ms, 0).toFixed(2)} ms waiting for a CPU ` +
    `(${waited.map(([group, ms]) => `${group} ${ms.toFixed(2)}`).join(', ')}), ${f.cpuMsPerRequest.toFixed(2)} ms on one; ${cores.toFixed(2)} of ${machine().cpus} cores busy\n` +
    `    ${' '.repeat(label.length)}  Redis: ${stall('fsyncs', stalls.fsync)}; ${stall('expiry passes', stalls.expiry)}; ${stalls.expiredKeys} expired keys deleted\n`
  );
}
// A figure with failed requests would flatter (or wrong) its formation: said next to the ratios.
const failed = figures.filter((f) => f.errors > 0 || f.non2xx > 0).map((f) => `warning: ${f.name}: ${f.errors} errors, ${f.non2xx} non-2xx answers\n`);

const m = machine();
const ttl = loadConfig({}).IDEMPOTENCY_TTL_SECONDS;
process.stdout.write(
  `make bench: ${options.DURATION} s per figure at ${options.CONNECTIONS} connections; ${m.cpus} CPUs (${m.cpuModel}), Node ${m.node}\n` +
    `CPU columns are cores in use (1.00 = one core busy the whole run); CPU-ms/req sums every process.\n` +
    `Through nginx the answer is JSON unless a figure says HTML; Redis keeps redis.conf's AOF unless it says no persistence.\n` +
    `${table.toString()}\n${ratioTable.toString()}\n` +
    `headcount against the naive Express formation (issue 11; loadtest/naive-replica.ts behind the same nginx without its access log,\n` +
    `same replica count, a Redis of its own with the same redis.conf; per persistence setting one pair of formations, measured in ${options.TURNS} turns: A B C, C B A, ...):\n` +
    `${naiveTable.toString()}\n` +
    `target: headcount 4-replica formation >= ${NAIVE_TARGET.toFixed(2)}x naive Express formation (same persistence: ${redisPersistence['']!.headcount}): ` +
    `${targetRows.map((c) => `${c.answer} ${c.ratio.toFixed(2)}x ${verdict(c.ratio >= NAIVE_TARGET)}`).join(', ')}\n` +
    targetRows
      .map((c) => {
        const turns = c.turnRatios;
        return `  ${c.answer}, turn by turn: ${turns.map((r) => r.toFixed(2)).join(' ')} (median ${median(turns).toFixed(2)}, range ${Math.min(...turns).toFixed(2)}-${Math.max(...turns).toFixed(2)})\n`;
      })
      .join('') +
    `target: p99 <= ${halfPeakTarget.limitMs} ms at half of peak: ${halfPeakP99} ms ${verdict(halfPeakTarget.met)} ` +
    `(Redis made ${halfPeakForks} AOF rewrite${halfPeakForks === 1 ? '' : 's'} from its first probe to its end; the naive formation at half of its peak: p99 ${by(NAIVE_HALF_PEAK).latency.p99} ms)\n` +
    `  where a visit's time went there, per visit (docs/load-testing.md, "What stops p99 ≤ 10 ms at half of peak"):\n` +
    timeWent('headcount', by(HALF_PEAK)) +
    timeWent('naive', by(NAIVE_HALF_PEAK)) +
    failed.join('') +
    costLine('metrics', replicaCosts!.on, replicaCosts!.off, 'without (METRICS_PORT=off)') +
    costLine(`${OPEN_STREAMS} live streams open`, replicaCosts!.streams, replicaCosts!.on, 'with none') +
    `idempotency record: ${recordBytes.toFixed(0)} B in Redis; at 10 000 visits/s kept ${ttl} s: ` +
    `${((recordBytes * 10_000 * ttl) / 1e6).toFixed(0)} MB\n`,
);
await mkdir(RESULTS_DIR, { recursive: true });
const file = path.join(RESULTS_DIR, `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
const runSeconds = (performance.now() - startedAt) / 1000;
await writeFile(
  file,
  `${JSON.stringify(
    {
      machine: m,
      options,
      runSeconds,
      figures,
      ratios: Object.fromEntries(ratios),
      naive: { redisPersistence, comparisons },
      targets: {
        naive: targetRows.map((c) => ({ answer: c.answer, persistence: c.persistence, ratio: c.ratio, target: c.target, met: c.ratio >= c.target! })),
        halfPeakP99: halfPeakTarget,
      },
      replicaCosts,
      idempotencyRecordBytes: recordBytes,
    },
    null,
    2,
  )}\n`,
);
process.stdout.write(`run time: ${(runSeconds / 60).toFixed(1)} min\nreport: ${file}\n`);
