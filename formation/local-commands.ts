import { spawn } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { startLocalFormation, type LocalFormation } from './local-formation.js';
import type { FormationOptions } from './options.js';
import { ensurePrerequisites } from './prerequisites.js';
import { isOurSupervisor, logFileFor, readLiveState, removeState, stateDirFor, writeState } from './state.js';

const CLI = fileURLToPath(import.meta.url).replace(/local-commands\.js$/, 'cli.js');

const say = (line: string) => process.stderr.write(`${line}\n`);

function snapshot(formation: LocalFormation, rollingRestarts = 0) {
  return {
    rollingRestarts,
    pid: process.pid,
    lbPort: formation.lbPort,
    lbUrl: formation.lbUrl,
    redisUrl: formation.redisUrl,
    adminRedisUrl: formation.adminRedisUrl,
    replicas: formation.replicas.map((r) => ({ id: r.id, port: r.port, pid: r.service.pid })),
    startedAt: new Date().toISOString(),
  };
}

/**
 * `make up` in local mode: runs the formation in the foreground until Ctrl-C
 * (or SIGTERM from `make stop`), then stops everything it started.
 * SIGUSR2 restarts the replicas one at a time (`make restart`).
 */
export async function runLocal(options: FormationOptions): Promise<number> {
  if (readLiveState(options.LB_PORT)) {
    say(`a local formation already runs on port ${options.LB_PORT}; stop it with: make stop LB_PORT=${options.LB_PORT}`);
    return 1;
  }
  if (!ensurePrerequisites(say)) return 1;
  const formation = await startLocalFormation({
    replicas: options.REPLICAS,
    lbPort: options.LB_PORT,
    stateDir: stateDirFor(options.LB_PORT),
    redisUrl: process.env.REDIS_URL || undefined,
  });
  await writeState(snapshot(formation));
  say(`headcount is up: ${formation.lbUrl} (${options.REPLICAS} replicas)`);

  let restarting = Promise.resolve();
  let rollingRestarts = 0;
  process.on('SIGUSR2', () => {
    restarting = restarting.then(async () => {
      say('rolling restart: one replica at a time');
      for (let i = 0; i < formation.replicas.length; i++) await formation.restartReplica(i);
      rollingRestarts += 1;
      await writeState(snapshot(formation, rollingRestarts));
      say('rolling restart done');
    });
  });
  const signal = await new Promise<string>((resolve) => {
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => resolve(s));
  });
  say(`${signal}: stopping the formation`);
  await restarting.catch(() => {});
  await formation.stop();
  await removeState(options.LB_PORT);
  say('stopped');
  return 0;
}

/** `make start`: the same formation, detached; returns once it serves traffic. */
export async function startLocal(options: FormationOptions): Promise<number> {
  if (readLiveState(options.LB_PORT)) {
    say(`a local formation already runs on port ${options.LB_PORT}; stop it with: make stop LB_PORT=${options.LB_PORT}`);
    return 1;
  }
  if (!ensurePrerequisites(say)) return 1;
  await mkdir(stateDirFor(options.LB_PORT), { recursive: true });
  const logFile = logFileFor(options.LB_PORT);
  const log = openSync(logFile, 'a');
  const child = spawn(process.execPath, [CLI, 'run'], { detached: true, stdio: ['ignore', log, log], env: process.env });
  let exited = false;
  child.once('exit', () => (exited = true));
  child.unref();
  const deadline = Date.now() + 60_000;
  while (!readLiveState(options.LB_PORT)) {
    if (exited || Date.now() > deadline) {
      say(`the formation did not start; the end of ${logFile}:\n${tail(logFile, 15)}`);
      if (!exited) process.kill(child.pid!, 'SIGTERM');
      return 1;
    }
    await sleep(100);
  }
  const state = readLiveState(options.LB_PORT)!;
  say(`headcount is running at ${state.lbUrl} (${state.replicas.length} replicas)`);
  say(`logs: ${logFile}\nstop: make stop LB_PORT=${options.LB_PORT}`);
  return 0;
}

/** `make stop`: stops the formation `make start` started on LB_PORT, and nothing else. */
export async function stopLocal(options: FormationOptions): Promise<number> {
  const state = readLiveState(options.LB_PORT);
  if (!state) {
    say(`no local formation runs on port ${options.LB_PORT}`);
    await removeState(options.LB_PORT);
    return 0;
  }
  process.kill(state.pid, 'SIGTERM');
  const deadline = Date.now() + 45_000;
  while (isOurSupervisor(state.pid)) {
    if (Date.now() > deadline) {
      say(`the formation (pid ${state.pid}) did not stop within 45 s`);
      return 1;
    }
    await sleep(100);
  }
  say(`stopped the formation on port ${options.LB_PORT}`);
  return 0;
}

/** `make restart`: asks the supervisor for a rolling restart and waits until it is done. */
export async function restartLocal(options: FormationOptions): Promise<number> {
  const state = readLiveState(options.LB_PORT);
  if (!state) {
    say(`no local formation runs on port ${options.LB_PORT}`);
    return 1;
  }
  process.kill(state.pid, 'SIGUSR2');
  say(`restarting ${state.replicas.length} replicas one at a time ...`);
  const deadline = Date.now() + 120_000;
  for (;;) {
    await sleep(200);
    const now = readLiveState(options.LB_PORT);
    if (now && now.rollingRestarts > state.rollingRestarts) break;
    if (!now || Date.now() > deadline) {
      say(`the rolling restart did not finish; see ${logFileFor(options.LB_PORT)}`);
      return 1;
    }
  }
  say('every replica restarted; the load balancer kept serving throughout');
  return 0;
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
