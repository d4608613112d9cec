import { spawn } from 'node:child_process';
import { existsSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createForeground } from './foreground.js';
import { startLocalFormation, type LocalFormation, type ReplicaRelease } from './local-formation.js';
import { missingArtifact, runLocalDeploy, takeDeployRequest } from './local-deploy.js';
import { readLedger } from './ledger.js';
import { releasesDirOf } from './release-commands.js';
import { followLogs } from './log-files.js';
import type { FormationOptions } from './options.js';
import { fromRoot } from './paths.js';
import { defaultPrometheusPort } from './monitoring.js';
import { ensurePrerequisites, FORMATION_PROGRAMS, MONITORING_PROGRAMS } from './prerequisites.js';
import { waitFor } from './wait.js';
import {
  isOurSupervisor,
  lastRelease,
  logDirFor,
  logFileFor,
  processStartTime,
  readLiveState,
  rememberRelease,
  removeState,
  stateDirFor,
  writeState,
  type FormationState,
  type RestartProgress,
} from './state.js';

const CLI = fileURLToPath(import.meta.url).replace(/local-commands\.js$/, 'cli.js');

const say = (line: string) => process.stderr.write(`${line}\n`);
const print = (line: string) => process.stdout.write(`${line}\n`);

/** `make stop`, or `make stop LB_PORT=9090` for a formation on another port. */
const makeCommand = (target: string, lbPort: number) => `make ${target}${lbPort === 8080 ? '' : ` LB_PORT=${lbPort}`}`;

function snapshot(formation: LocalFormation, logDir: string): FormationState {
  return {
    pid: process.pid,
    pidStartedAt: processStartTime(process.pid),
    lbPort: formation.lbPort,
    lbUrl: formation.lbUrl,
    redisUrl: formation.redisUrl,
    adminRedisUrl: formation.adminRedisUrl,
    replicas: formation.replicas.map((r) => ({ id: r.id, port: r.port, metricsPort: r.metricsPort, pid: r.service.pid, release: r.release })),
    ...(formation.prometheusUrl ? { prometheusUrl: formation.prometheusUrl } : {}),
    processes: Object.fromEntries(
      [formation.redis, ...formation.replicas.map((r) => r.service), formation.nginx, ...formation.monitoring].flatMap((service) =>
        service ? [[service.spec.name, service.pid]] : [],
      ),
    ),
    logDir,
    startedAt: new Date().toISOString(),
    rollingRestarts: 0,
    deploys: 0,
  };
}

/** Why `port` cannot be bound on `host` right now, or undefined when it can. */
async function bindError(port: number, host: string): Promise<NodeJS.ErrnoException | undefined> {
  const probe = createServer();
  return new Promise((resolve) => {
    probe.once('error', resolve);
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve(undefined)));
  });
}

/** Prometheus's port with MONITORING=1: PROMETHEUS_PORT, or one derived from LB_PORT. */
const prometheusPortOf = (options: FormationOptions) => options.PROMETHEUS_PORT ?? defaultPrometheusPort(options.LB_PORT);

/** True (after saying why) when the load balancer's port (or Prometheus's) is taken: by a formation of ours, or by another program. */
async function portTaken(options: FormationOptions): Promise<boolean> {
  if (readLiveState(options.LB_PORT)) {
    say(`a local formation already runs on port ${options.LB_PORT}; stop it with: ${makeCommand('stop', options.LB_PORT)}`);
    return true;
  }
  // nginx listens on every address (lb/nginx.conf.template): try the same bind
  // now, rather than let nginx fail and be restarted until the start times out.
  const error = await bindError(options.LB_PORT, '0.0.0.0');
  if (error) {
    const why = error.code === 'EADDRINUSE' ? 'already in use by another program' : `not available (${error.code})`;
    say(`port ${options.LB_PORT} is ${why}; see who holds it with: ss -ltnp 'sport = :${options.LB_PORT}', or choose another: make up LB_PORT=<port>`);
    return true;
  }
  if (!options.MONITORING) return false;
  const prometheusPort = prometheusPortOf(options);
  const prometheusError = await bindError(prometheusPort, '127.0.0.1');
  if (!prometheusError) return false;
  const why = prometheusError.code === 'EADDRINUSE' ? 'already in use' : `not available (${prometheusError.code})`;
  say(`Prometheus's port ${prometheusPort} is ${why}; see who holds it with: ss -ltnp 'sport = :${prometheusPort}', or choose another: make up MONITORING=1 PROMETHEUS_PORT=<port>`);
  return true;
}

/** What the formation needs installed: MONITORING=1 adds Prometheus and the exporters. */
const programsFor = (options: FormationOptions) => [...FORMATION_PROGRAMS, ...(options.MONITORING ? MONITORING_PROGRAMS : [])];

/** ` Prometheus: http://127.0.0.1:9090.` when the formation runs one. */
const prometheusNote = (url: string | undefined) => (url ? ` Prometheus: ${url}.` : '');

/**
 * The run stage of a release (`make up RELEASE=id`, `make start RELEASE=id`):
 * its artifact folder and config from the ledger; no RELEASE runs the checkout.
 */
function releaseToRun(options: FormationOptions): { release?: ReplicaRelease; refused?: string } {
  if (options.RELEASE === undefined) return {};
  const record = readLedger(releasesDirOf(options)).find((r) => r.id === options.RELEASE);
  if (!record) return { refused: `no release ${options.RELEASE} in the ledger (${releasesDirOf(options)}); make releases lists them` };
  const missing = missingArtifact(record);
  if (missing) return { refused: missing };
  return { release: { id: record.id, folder: record.folder!, config: record.config } };
}

/**
 * One line when a plain start follows a formation that ran a release: the
 * developer gets the checkout's code, and is told how to get the release back.
 */
function releaseNotice(options: FormationOptions, target: 'up' | 'start'): string | undefined {
  const last = options.RELEASE === undefined ? lastRelease(options.LB_PORT) : undefined;
  if (last === undefined) return undefined;
  return `the last formation on port ${options.LB_PORT} ran release ${last}; this one runs this checkout's build (dev). To run ${last} again: ${makeCommand('stop', options.LB_PORT)}; ${makeCommand(`${target} RELEASE=${last}`, options.LB_PORT)}`;
}

/** `(4 replicas)`, or `(4 replicas, release r3-1a2b3c4)` when a release runs. */
const replicasNote = (count: number, release: string | undefined) => `(${count} replicas${release === undefined || release === 'dev' ? '' : `, release ${release}`})`;

/**
 * The supervisor: `make up` runs it in the foreground, `make start` detached
 * (`cli.js run`, its output in formation.log). It starts the formation, says
 * when it is ready, and runs until SIGINT (Ctrl-C) or SIGTERM (`make stop`),
 * then stops everything it started. SIGUSR2 asks for a rolling restart
 * (`make restart`), or a deploy when a release waits in the state folder
 * (`make deploy`, formation/local-deploy.ts); the progress goes into the state file.
 */
export async function runLocal(options: FormationOptions, detached = false): Promise<number> {
  if (await portTaken(options)) return 1;
  if (!ensurePrerequisites(say, programsFor(options))) return 1;
  const { release, refused } = releaseToRun(options);
  if (refused) {
    say(refused);
    return 1;
  }
  const notice = detached ? undefined : releaseNotice(options, 'up');
  // A Ctrl-C during the start must still stop what has started so far.
  const stopRequested = new Promise<string>((resolve) => {
    // SIGHUP: the terminal that ran `make up` closed.
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(s, () => resolve(s));
  });
  let signalled: string | undefined;
  void stopRequested.then((s) => (signalled = s));

  const logDir = logDirFor(options.LB_PORT);
  const foreground = createForeground({ write: print, logDir, verbose: options.VERBOSE, maxLogBytes: options.LOG_MAX_BYTES });
  let formation: LocalFormation;
  try {
    formation = await startLocalFormation({
      replicas: options.REPLICAS,
      lbPort: options.LB_PORT,
      stateDir: stateDirFor(options.LB_PORT),
      redisUrl: process.env.REDIS_URL || undefined,
      logDir,
      sink: foreground.sink,
      onReplicaMessage: foreground.onReplicaMessage,
      release,
      monitoring: options.MONITORING ? { prometheusPort: prometheusPortOf(options) } : undefined,
    });
  } catch (error) {
    foreground.stop();
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n(every process's output: ${logDir}/)`);
  }
  const state = snapshot(formation, logDir);
  // One write at a time, each of the state as it is then.
  let saving = writeState(state);
  const save = () => (saving = saving.then(() => writeState(state)));
  await saving;
  rememberRelease(options.LB_PORT, release?.id);
  foreground.start(formation.replicas.map((r) => r.id));

  let stopping = false;
  let restarting = Promise.resolve();
  process.on('SIGUSR2', () => {
    restarting = restarting.then(async () => {
      const release = takeDeployRequest(options.LB_PORT);
      if (release) return runLocalDeploy(formation, release, state, save, foreground.sink, () => stopping);
      print(`restart | one replica at a time`);
      const of = formation.replicas.length;
      state.restart = { of, steps: [] } satisfies RestartProgress;
      for (const [i, replica] of formation.replicas.entries()) {
        if (stopping) return;
        await formation.restartReplica(i, (phase) => {
          if (phase === 'draining' || phase === 'back in rotation') foreground.sink(replica.id, phase);
          state.restart!.steps.push({ replica: replica.id, phase });
          state.replicas[i]!.pid = formation.replicas[i]!.service.pid;
          void save();
        });
      }
      state.rollingRestarts += 1;
      await save();
      print(`restart | done: every replica restarted, the load balancer kept serving`);
    }).catch((error: unknown) => void print(`restart | failed: ${error instanceof Error ? error.message : String(error)}`));
  });

  if (signalled === undefined) {
    const url = `http://localhost:${formation.lbPort}`;
    const stop = detached ? `${makeCommand('stop', options.LB_PORT)} stops it` : 'Ctrl-C stops it';
    print(`headcount is ready: ${url} ${replicasNote(options.REPLICAS, release?.id)}.${prometheusNote(formation.prometheusUrl)} ${stop}; ${makeCommand('logs', options.LB_PORT)} shows every line.`);
    if (notice) print(notice);
  }
  const signal = await stopRequested;
  stopping = true;
  foreground.stop();
  // After the terminal's own "^C", on a line of its own.
  print(`${process.stdout.isTTY ? '\n' : ''}${signal}: stopping the formation`);
  await restarting.catch(() => {});
  await formation.stop();
  await removeState(options.LB_PORT);
  print('stopped');
  return 0;
}

/** `make start`: the same formation, detached; returns once it serves traffic. */
export async function startLocal(options: FormationOptions): Promise<number> {
  if (await portTaken(options)) return 1;
  if (!ensurePrerequisites(say, programsFor(options))) return 1;
  // Checked here too, so a wrong RELEASE is one line on the terminal, not a failed start in the log.
  const { refused } = releaseToRun(options);
  if (refused) {
    say(refused);
    return 1;
  }
  // Read before the supervisor starts: it records what it runs, over this.
  const notice = releaseNotice(options, 'start');
  await mkdir(stateDirFor(options.LB_PORT), { recursive: true });
  const logFile = logFileFor(options.LB_PORT);
  const log = openSync(logFile, 'a');
  const child = spawn(process.execPath, [CLI, 'run'], { detached: true, stdio: ['ignore', log, log], env: process.env });
  let exited = false;
  child.once('exit', () => (exited = true));
  child.unref();
  try {
    // Done when its state is written (it is ready), or failed when it exits first.
    await waitFor(`the formation on port ${options.LB_PORT}`, async () => exited || readLiveState(options.LB_PORT) !== undefined, 60_000, 100);
  } catch {
    // timed out: reported below
  }
  if (exited || !readLiveState(options.LB_PORT)) {
    say(`the formation did not start; the end of ${logFile}:\n${tail(logFile, 15)}`);
    if (!exited) process.kill(child.pid!, 'SIGTERM');
    return 1;
  }
  const state = readLiveState(options.LB_PORT)!;
  print(
    `headcount is ready: http://localhost:${state.lbPort} ${replicasNote(state.replicas.length, state.replicas[0]?.release)}.${prometheusNote(state.prometheusUrl)} ` +
      `${makeCommand('stop', options.LB_PORT)} stops it; ${makeCommand('logs', options.LB_PORT)} shows every line.`,
  );
  if (notice) print(notice);
  return 0;
}

/** `make stop`: stops the local formation on LB_PORT, whichever of `make up` or `make start` started it, and nothing else. */
export async function stopLocal(options: FormationOptions): Promise<number> {
  const state = readLiveState(options.LB_PORT);
  if (!state) {
    say(`no local formation runs on port ${options.LB_PORT}`);
    await removeState(options.LB_PORT);
    return 0;
  }
  process.kill(state.pid, 'SIGTERM');
  try {
    await waitFor(`the formation (pid ${state.pid}) to stop`, async () => !isOurSupervisor(state.pid, state.pidStartedAt), 45_000, 100);
  } catch (error) {
    say((error as Error).message);
    return 1;
  }
  say(`stopped the formation on port ${options.LB_PORT}`);
  return 0;
}

/** `make restart`: asks the supervisor for a rolling restart, shows each replica's progress, and waits until it is done. */
export async function restartLocal(options: FormationOptions): Promise<number> {
  const state = readLiveState(options.LB_PORT);
  if (!state) {
    say(`no local formation runs on port ${options.LB_PORT}`);
    return 1;
  }
  process.kill(state.pid, 'SIGUSR2');
  print(`restarting ${state.replicas.length} replicas one at a time; each must be back in rotation before the next`);
  const deadline = Date.now() + 60_000 * state.replicas.length;
  let shown = 0;
  let now: FormationState | undefined = state;
  try {
    await waitFor(
      'the rolling restart',
      async () => {
        now = readLiveState(options.LB_PORT);
        const steps = now?.restart?.steps ?? [];
        for (const { replica, phase } of steps.slice(shown)) print(`${replica}: ${phase}`);
        shown = Math.max(shown, steps.length);
        return !now || now.rollingRestarts > state.rollingRestarts;
      },
      60_000 * state.replicas.length,
      100,
    );
  } catch {
    now = undefined;
  }
  if (!now) {
    say(`the rolling restart did not finish; see ${makeCommand('logs', options.LB_PORT)}`);
    return 1;
  }
  print('every replica restarted; the load balancer kept serving throughout');
  return 0;
}

/** `make logs`: follows every process's log of the formation on LB_PORT, prefixed by process, until Ctrl-C or the formation stops. */
export async function logsLocal(options: FormationOptions): Promise<number> {
  const dir = logDirFor(options.LB_PORT);
  if (!existsSync(dir)) {
    say(`no logs for a local formation on port ${options.LB_PORT} (${dir} does not exist)`);
    return 1;
  }
  const state = readLiveState(options.LB_PORT);
  const follow = new AbortController();
  process.once('SIGINT', () => follow.abort());
  if (state) {
    // Ends with the formation, as `docker compose logs -f` does.
    const watcher = setInterval(() => readLiveState(options.LB_PORT) || follow.abort(), 1_000);
    await followLogs(dir, print, { lines: 10, signal: follow.signal });
    clearInterval(watcher);
  } else {
    say(`no local formation runs on port ${options.LB_PORT}; its last lines:`);
    follow.abort();
    await followLogs(dir, print, { lines: 10, signal: AbortSignal.timeout(300) });
  }
  return 0;
}

/** `make clean-data`: deletes the local formations' data (counts, Redis passwords, logs), never while one runs. */
export async function cleanData(): Promise<number> {
  const run = fromRoot('.run');
  const entries = existsSync(run) ? readdirSync(run) : [];
  const live = entries.map((entry) => /^lb-(\d+)$/.exec(entry)?.[1]).filter((port) => port !== undefined && readLiveState(Number(port)));
  if (live.length > 0) {
    say(`a local formation runs on port ${live.join(', ')}: stop it first (${live.map((p) => makeCommand('stop', Number(p))).join('; ')})`);
    return 1;
  }
  if (entries.length === 0) {
    print('no local data to delete');
    return 0;
  }
  print(`deleting ${run}: the local formations' Redis data (the counts), Redis users and passwords, and logs:`);
  for (const entry of entries) print(`  .run/${entry}`);
  await rm(run, { recursive: true, force: true });
  return 0;
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
