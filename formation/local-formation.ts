import { closeSync, openSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import getPort from 'get-port';
import { setTimeout as sleep } from 'node:timers/promises';
import { renderLocalNginxConfig, UPSTREAM_SERVER_PARAMS } from './nginx-config.js';
import { credentialsFrom, redisUrlFor, writeAclFile } from './redis-acl.js';
import { openLogFile } from './log-files.js';
import { startMonitoring, webTargetsFileOf, writeWebTargets } from './monitoring.js';
import { fromRoot, ROOT } from './paths.js';
import { requireExecutable } from './prerequisites.js';
import { Service, type LineSink } from './supervisor.js';
import { waitFor, httpOk, redisAnswers } from './wait.js';

const REPLICA_ENTRY = fromRoot('dist/web/server.js');
/**
 * How node runs a replica, wherever it runs: here, in web/Dockerfile's CMD and
 * in package.json's `start` (test/unit/docker-files.test.ts keeps the three
 * the same). --single-threaded-gc: V8 collects on the replica's own thread
 * instead of handing work to helper threads, which on a host where replicas,
 * nginx and Redis share few cores cost more in hand-offs (futex calls, about
 * one per five visits) than they saved: two make bench-compare runs measured
 * 5-6 % more visits per second and 5-6 % less CPU per visit
 * (docs/load-testing.md, "Tuning for issue 11").
 */
export const REPLICA_NODE_FLAGS: readonly string[] = ['--single-threaded-gc'];

/**
 * nginx counts the connections a stopping replica refuses as failures and
 * leaves it out for fail_timeout. Restarting the next replica before the last
 * is back in the rotation could leave none: a rolling restart waits this long
 * after each replica is ready again.
 */
const READMIT_MS = Number(/fail_timeout=(\d+)s/.exec(UPSTREAM_SERVER_PARAMS)?.[1] ?? 10) * 1_000 + 500;
export const REDIS_CONF = fromRoot('redis/redis.conf');

export interface LocalFormationOptions {
  replicas: number;
  /** 0 picks a free port. */
  lbPort: number;
  /** Where this formation keeps its rendered config, Redis data and scratch files. */
  stateDir: string;
  /** Attach to this Redis (twelve-factor IV) instead of starting one. */
  redisUrl?: string;
  /** Extra environment for every replica (COUNTER_KEY, timeouts, ...). */
  replicaEnv?: Readonly<Record<string, string>>;
  /** What runs as a replica. Tests swap in replicas built on unsafe counters. */
  replicaCommand?: readonly string[];
  /** Flags for node when it runs the replica (this checkout's or a release's; not a replicaCommand); default REPLICA_NODE_FLAGS. `make bench-compare` compares them. */
  nodeFlags?: readonly string[];
  sink?: LineSink;
  /** Send every process's output straight to this file instead of through `sink`. */
  logFile?: string;
  /**
   * Send each process's output to a file of its own in this folder
   * (`<name>.log`, formation/log-files.ts); `sink` then hears only lifecycle
   * events: started, ready, exited and restarted, stopped.
   */
  logDir?: string;
  /** Messages from the replicas' IPC channel (request counters, Redis events: web/supervisor-channel.ts). */
  onReplicaMessage?: (replica: string, message: unknown) => void;
  /** LB_* settings for nginx (formation/nginx-config.ts), over this process's environment. */
  lbEnv?: Readonly<Record<string, string>>;
  /** Run this release's artifact folder on every replica from the start (`make start RELEASE=id`), not this checkout's build. */
  release?: ReplicaRelease;
  /** MONITORING=1: Prometheus on this port, and the nginx and Redis exporters (formation/monitoring.ts). */
  monitoring?: { prometheusPort: number };
  /** false: nginx without its access log. Only `make bench`'s naive Express baseline (issue 11). Default true. */
  lbAccessLog?: boolean;
  /**
   * false: the formation's own Redis keeps nothing on disk (REDIS_WITHOUT_PERSISTENCE).
   * Only `make bench`, to measure what persistence costs. Default true: redis.conf's AOF.
   */
  redisPersistence?: boolean;
  /**
   * Another commit's formation files, in place of this checkout's: nginx's
   * template and Redis's config. Only `make bench-compare`, so that a change to
   * either is measured before and after like a change to the replica.
   */
  configFiles?: { nginxTemplate: string; redisConf: string };
}

/** redis.conf's persistence, turned off: no AOF, no RDB snapshots. */
export const REDIS_WITHOUT_PERSISTENCE = ['--appendonly', 'no', '--save', ''] as const;

export interface ReplicaProcess {
  id: string;
  port: number;
  url: string;
  /** Its METRICS_PORT: GET /metrics, for Prometheus. */
  metricsPort: number;
  service: Service;
  /** The release it runs: RELEASE_ID, `dev` for this checkout's build. */
  release: string;
}

/** What a deployed replica runs: a release's artifact folder and config (formation/ledger.ts). */
export interface ReplicaRelease {
  id: string;
  folder: string;
  config: Readonly<Record<string, string>>;
}

export interface LocalFormation {
  lbUrl: string;
  lbPort: number;
  /** The operator's URL (full access): for tests and status, never for the app. */
  redisUrl: string;
  /** The admin one-off tasks' URL (make reset-count). */
  adminRedisUrl: string;
  /** The replicas' URL. */
  webRedisUrl: string;
  /** Where every process's output goes, when the formation was started with `logFile`. */
  logFile: string | undefined;
  redis: Service | undefined;
  nginx: Service;
  replicas: ReplicaProcess[];
  /** nginx's stub_status, on its internal-only listener (LB_STATUS_LISTEN). */
  stubStatusUrl: string;
  /** The headcount-web job's target list, kept current (formation/monitoring.ts). */
  webTargetsFile: string;
  /** Prometheus, when started with `monitoring`. */
  prometheusUrl: string | undefined;
  /** Prometheus and the exporters, when started with `monitoring`. */
  monitoring: Service[];
  /** Re-reads the rendered config with no dropped requests (SIGHUP to the master). */
  reloadNginx(): Promise<void>;
  /**
   * Stops one replica gracefully, starts it again, waits until it is ready and
   * then until nginx takes it back (see READMIT_MS): `make restart` calls it
   * for one replica after another.
   */
  restartReplica(index: number, onPhase?: (phase: RestartPhase) => void): Promise<void>;
  /**
   * Start-first replacement (a deploy): starts the release's replica on a port
   * of its own, waits until it is ready there, then drains and stops the old
   * one, whose port (the one nginx knows) the new one takes over.
   */
  replaceReplica(index: number, release: ReplicaRelease, onPhase?: (phase: string) => void): Promise<void>;
  /** Stops everything this formation started: nginx first, then replicas, then Redis. */
  stop(): Promise<void>;
}

export type RestartPhase = 'draining' | 'stopped' | 'started' | 'back in rotation';

const defaultSink: LineSink = (service, line) => process.stdout.write(`${service.padEnd(7)}| ${line}\n`);

/**
 * The same formation docker-compose.yml describes, as local processes: one
 * redis-server, N replicas and nginx in front, all on 127.0.0.1. Resolves once
 * every replica is ready and the load balancer answers through to Redis.
 */
export async function startLocalFormation(options: LocalFormationOptions): Promise<LocalFormation> {
  const { replicas: count, stateDir, sink = defaultSink, logDir } = options;
  // What the checkout's own replicas report (a formation started with RELEASE_ID set passes it on).
  const initialRelease = options.replicaEnv?.RELEASE_ID ?? process.env.RELEASE_ID ?? 'dev';
  const logFd = options.logFile === undefined ? undefined : openSync(options.logFile, 'a');
  if (logDir !== undefined) await mkdir(logDir, { recursive: true, mode: 0o700 });
  const openFds: number[] = logFd === undefined ? [] : [logFd];
  /** Where a process's output goes: its own file, the shared file, or (undefined) through `sink`. */
  const outputOf = (name: string) => {
    if (logDir === undefined) return logFd;
    const fd = openLogFile(logDir, name);
    openFds.push(fd);
    return fd;
  };
  const closeFds = () => openFds.splice(0).forEach((fd) => closeSync(fd));
  const announce = logDir !== undefined;
  // Redis and the replicas take free ports, never the load balancer's: it is
  // still free until nginx binds it last, and a replica on it would answer in
  // nginx's place (and keep nginx from starting).
  const internalPort = { host: '127.0.0.1', exclude: options.lbPort ? [options.lbPort] : [] };
  const nginxBin = requireExecutable('nginx');
  const started: Service[] = [];
  const stopAll = async () => {
    for (const service of [...started].reverse()) await service.stop();
  };
  const onExit = () => started.forEach((service) => service.killNow());
  process.once('exit', onExit);

  try {
    let redis: Service | undefined;
    // An attached Redis (REDIS_URL) brings its own users; the URL serves all.
    let redisUrl = options.redisUrl;
    let webRedisUrl = options.redisUrl;
    let adminRedisUrl = options.redisUrl;
    let exporterPassword: string | undefined;
    if (redisUrl === undefined) {
      const port = await getPort(internalPort);
      const dataDir = path.join(stateDir, 'redis');
      await mkdir(dataDir, { recursive: true });
      // Least privilege, as in Docker: the replicas and the admin task each
      // get a Redis user that can do only their part (redis/users.acl.template).
      const credentials = credentialsFrom(process.env);
      const counterKey = options.replicaEnv?.COUNTER_KEY ?? process.env.COUNTER_KEY ?? 'headcount:visits';
      const aclFile = path.resolve(stateDir, 'users.acl');
      await writeAclFile(aclFile, counterKey, credentials);
      // Same redis.conf as the Docker formation; only where it listens and
      // keeps its files differ.
      redis = new Service(
        {
          name: 'redis',
          command: requireExecutable('redis-server'),
          args: [
            options.configFiles?.redisConf ?? REDIS_CONF,
            ...['--port', String(port), '--bind', '127.0.0.1', '--dir', dataDir, '--aclfile', aclFile],
            ...(options.redisPersistence === false ? REDIS_WITHOUT_PERSISTENCE : []),
          ],
          restart: true,
          logFd: outputOf('redis'),
          announce,
        },
        sink,
      );
      redis.start();
      started.push(redis);
      redisUrl = redisUrlFor(port, 'default', credentials.operator);
      webRedisUrl = redisUrlFor(port, 'headcount-web', credentials.web);
      adminRedisUrl = redisUrlFor(port, 'headcount-admin', credentials.admin);
      exporterPassword = credentials.exporter;
      await waitFor(`redis on port ${port}`, () => redisAnswers(redisUrl!), 10_000);
      if (announce) sink('redis', `ready on port ${port}`);
    }

    const replicaPorts = await Promise.all(Array.from({ length: count }, () => getPort(internalPort)));
    const metricsPorts = await Promise.all(Array.from({ length: count }, () => getPort({ ...internalPort, exclude: [...internalPort.exclude, ...replicaPorts] })));
    // What Prometheus scrapes (.run/lb-<port>/prometheus/targets/web.json):
    // each replica from the moment it is ready until it leaves, by metrics
    // port, so a deploy's new replica and the old one it replaces (the same
    // name) are both listed while both run.
    const webTargetsFile = webTargetsFileOf(stateDir);
    const scraped = new Map<number, string>();
    let targetsWritten = Promise.resolve();
    const publishTargets = () =>
      (targetsWritten = targetsWritten.then(() =>
        writeWebTargets(webTargetsFile, [...scraped].map(([metricsPort, replica]) => ({ replica, metricsPort })).sort((a, b) => a.replica.localeCompare(b.replica))),
      ));
    const scrape = (replica: ReplicaProcess, on: boolean) => {
      if (on) scraped.set(replica.metricsPort, replica.id);
      else scraped.delete(replica.metricsPort);
      return publishTargets();
    };
    await publishTargets();
    /** One replica process: this checkout's build, or a release's artifact folder (a deploy). */
    const makeReplica = (id: string, port: number, metricsPort: number, release = options.release, takeoverPort?: number): ReplicaProcess => {
      const flags = options.nodeFlags ?? REPLICA_NODE_FLAGS;
      const [command, ...args] = release
        ? [process.execPath, ...flags, path.join(release.folder, 'dist/web/server.js')]
        : (options.replicaCommand ?? [process.execPath, ...flags, REPLICA_ENTRY]);
      const service = new Service(
        {
          name: id,
          command: command!,
          args,
          // A release runs from its folder alone: nothing of the checkout is on its path.
          cwd: release?.folder ?? ROOT,
          restart: true,
          logFd: outputOf(id),
          announce,
          onMessage: options.onReplicaMessage && ((message) => options.onReplicaMessage!(id, message)),
          env: {
            ...options.replicaEnv,
            ...release?.config,
            NODE_ENV: 'production',
            HOST: '127.0.0.1',
            PORT: String(port),
            METRICS_PORT: String(metricsPort),
            REPLICA_ID: id,
            REDIS_URL: webRedisUrl,
            ...(release ? { RELEASE_ID: release.id } : {}),
            ...(takeoverPort ? { TAKEOVER_PORT: String(takeoverPort) } : {}),
          },
        },
        sink,
      );
      return { id, port, url: `http://127.0.0.1:${port}`, metricsPort, service, release: release?.id ?? initialRelease };
    };
    const replicas = replicaPorts.map((port, i) => makeReplica(`web-${i + 1}`, port, metricsPorts[i]!));
    const waitReady = async (replica: ReplicaProcess) => {
      await waitFor(`${replica.id} ready on port ${replica.port}`, () => httpOk(`${replica.url}/readyz`), 20_000);
      await scrape(replica, true);
      if (announce) sink(replica.id, `ready on port ${replica.port}`);
    };
    for (const replica of replicas) {
      replica.service.start();
      started.push(replica.service);
    }
    await Promise.all(replicas.map(waitReady));

    const lbPort = options.lbPort || (await getPort({ host: '127.0.0.1' }));
    const statusPort = await getPort({ host: '127.0.0.1', exclude: [lbPort, ...replicaPorts, ...metricsPorts] });
    const stubStatusUrl = `http://127.0.0.1:${statusPort}/stub_status`;
    const runtimeDir = path.resolve(stateDir, 'nginx');
    await mkdir(runtimeDir, { recursive: true });
    const confPath = path.join(runtimeDir, 'nginx.conf');
    await writeFile(
      confPath,
      await renderLocalNginxConfig({
        lbPort,
        replicaPorts,
        runtimeDir,
        statusPort,
        env: { ...process.env, ...options.lbEnv },
        accessLog: options.lbAccessLog,
        templatePath: options.configFiles?.nginxTemplate,
      }),
    );
    const nginxArgs = ['-p', runtimeDir, '-c', confPath, '-e', 'stderr'];
    await checkNginxConfig(nginxBin, nginxArgs);
    const nginx = new Service(
      {
        name: 'nginx',
        command: nginxBin,
        args: [...nginxArgs, '-g', 'daemon off;'],
        restart: true,
        stopSignal: 'SIGQUIT',
        stdoutFifoDir: runtimeDir,
        logFd: outputOf('nginx'),
        announce,
      },
      sink,
    );
    nginx.start();
    started.push(nginx);
    const lbUrl = `http://127.0.0.1:${lbPort}`;
    // Through nginx to a replica that reaches Redis: /readyz, which is no visit and no traffic.
    // /lb-healthz first: only nginx answers it, so nothing else on the port passes for the load balancer.
    await waitFor(`load balancer on port ${lbPort}`, async () => (await httpOk(`${lbUrl}/lb-healthz`)) && httpOk(`${lbUrl}/readyz`), 10_000);
    if (announce) sink('nginx', `ready on port ${lbPort}`);

    const monitoring: Service[] = [];
    let prometheusUrl: string | undefined;
    if (options.monitoring) {
      const taken = [lbPort, statusPort, options.monitoring.prometheusPort, ...replicaPorts, ...metricsPorts];
      const nginxExporterPort = await getPort({ host: '127.0.0.1', exclude: taken });
      const redisExporterPort = await getPort({ host: '127.0.0.1', exclude: [...taken, nginxExporterPort] });
      // Our own Redis: the exporter's least-privilege user. An attached one
      // (REDIS_URL): whoever its URL names, as for the replicas.
      const attached = options.redisUrl === undefined ? undefined : new URL(options.redisUrl);
      const redisTarget = new URL(redisUrl!);
      prometheusUrl = await startMonitoring({
        stateDir,
        prometheusPort: options.monitoring.prometheusPort,
        stubStatusUrl,
        redis: {
          address: `redis://${redisTarget.host}`,
          user: attached ? decodeURIComponent(attached.username) || undefined : 'headcount-exporter',
          password: attached ? decodeURIComponent(attached.password) || undefined : exporterPassword,
        },
        nginxExporterPort,
        redisExporterPort,
        sink,
        outputOf,
        announce,
        onStarted: (service) => {
          monitoring.push(service);
          started.push(service);
        },
      });
    }

    return {
      lbUrl,
      lbPort,
      redisUrl,
      adminRedisUrl: adminRedisUrl!,
      webRedisUrl: webRedisUrl!,
      logFile: options.logFile,
      redis,
      nginx,
      replicas,
      stubStatusUrl,
      webTargetsFile,
      prometheusUrl,
      monitoring,
      async reloadNginx() {
        await checkNginxConfig(nginxBin, nginxArgs);
        nginx.signal('SIGHUP');
      },
      async restartReplica(index, onPhase = () => {}) {
        const replica = replicas[index];
        if (!replica) throw new Error(`no replica ${index}`);
        onPhase('draining');
        await scrape(replica, false);
        await replica.service.stop();
        onPhase('stopped');
        replica.service.start();
        await waitReady(replica);
        onPhase('started');
        await sleep(READMIT_MS);
        onPhase('back in rotation');
      },
      async replaceReplica(index, release, onPhase = () => {}) {
        const old = replicas[index];
        if (!old) throw new Error(`no replica ${index}`);
        // nginx's upstream never changes (a reload closes idle client
        // keep-alive connections, and a client sending on one as it closes
        // sees an error): the new replica starts on a port of its own, and
        // takes over the old one's port (TAKEOVER_PORT) once the old one lets go.
        const inUse = replicas.flatMap((r) => [r.port, r.metricsPort]);
        const own = await getPort({ ...internalPort, exclude: [...internalPort.exclude, ...inUse] });
        const ownMetrics = await getPort({ ...internalPort, exclude: [...internalPort.exclude, ...inUse, own] });
        const fresh = makeReplica(old.id, own, ownMetrics, release, old.port);
        fresh.service.start();
        // Before nginx in the stop order, as every replica is: nginx stops first.
        started.splice(started.indexOf(nginx), 0, fresh.service);
        onPhase(`started ${release.id} on port ${own}`);
        const releaseAt = async (port: number) => ((await (await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1_000) })).json()) as { release?: string }).release;
        try {
          await waitReady(fresh);
          const running = await releaseAt(own);
          if (running !== release.id) throw new Error(`the new ${old.id} on port ${own} says it runs ${running}, not ${release.id}`);
        } catch (error) {
          await scrape(fresh, false);
          await fresh.service.stop();
          started.splice(started.indexOf(fresh.service), 1);
          throw error;
        }
        onPhase('ready');
        // The old one drains (readiness 503, listener closed, in-flight visits
        // finish); the new one binds the port within milliseconds, and what
        // nginx sent there meanwhile was refused and retried elsewhere.
        await scrape(old, false);
        const stopped = old.service.stop();
        try {
          await waitFor(`${release.id} on port ${old.port}`, async () => (await releaseAt(old.port)) === release.id, old.service.spec.stopTimeoutMs ?? 15_000, 20);
        } catch (error) {
          // The new one never took the port (a release built before
          // TAKEOVER_PORT, or another program took it): the old one comes back.
          await stopped;
          await scrape(fresh, false);
          await fresh.service.stop();
          started.splice(started.indexOf(fresh.service), 1);
          old.service.start();
          await waitReady(old);
          throw error;
        }
        replicas[index] = { ...fresh, port: old.port, url: old.url };
        // The replica closed its own port on taking this one (web/replica.ts).
        // Its next start (`make restart`, or after a crash) binds nginx's port
        // directly, as every replica does: its own one is nobody's any more.
        fresh.service.spec.env = { ...fresh.service.spec.env, PORT: String(old.port), TAKEOVER_PORT: undefined };
        onPhase(`took over port ${old.port}; closed port ${own}`);
        await stopped;
        started.splice(started.indexOf(old.service), 1);
        onPhase('old one stopped');
        // nginx may have counted the port out for the refused milliseconds: the
        // next replica waits until it is surely back, as a restart does.
        await sleep(READMIT_MS);
        onPhase('in rotation');
      },
      async stop() {
        await stopAll();
        scraped.clear();
        await publishTargets();
        process.off('exit', onExit);
        closeFds();
      },
    };
  } catch (error) {
    await stopAll();
    process.off('exit', onExit);
    closeFds();
    throw error;
  }
}

/** `nginx -t` on the rendered file (stdout to /dev/null, which nginx can open). */
export async function checkNginxConfig(nginxBin: string, args: readonly string[]) {
  const child = spawn(nginxBin, ['-t', '-q', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) throw new Error(`nginx rejected the rendered config:\n${stderr.trim()}`);
}
