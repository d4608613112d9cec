import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fromRoot } from './paths.js';

/** Each local formation keeps its files under .run/lb-<port>, so several can run side by side. */
export const stateDirFor = (lbPort: number) => fromRoot('.run', `lb-${lbPort}`);
const stateFile = (lbPort: number) => path.join(stateDirFor(lbPort), 'formation.json');
/** The detached supervisor's own output (`make start`). */
export const logFileFor = (lbPort: number) => path.join(stateDirFor(lbPort), 'formation.log');
/** Every process's full output, one file each (`make logs` follows them). */
export const logDirFor = (lbPort: number) => path.join(stateDirFor(lbPort), 'logs');

/** A rolling restart's steps so far: what `make restart` shows while it waits. */
export interface RestartProgress {
  of: number;
  steps: { replica: string; phase: 'draining' | 'stopped' | 'started' | 'back in rotation' }[];
}

/** A deploy's steps so far (`make deploy` in local mode shows them while it waits). */
export interface DeployProgress {
  release: string;
  of: number;
  steps: { replica: string; phase: string }[];
  /** Why it stopped short: the replicas not yet replaced run what they ran. */
  failed?: string;
}

export interface FormationState {
  /** The supervisor process: the one to signal to stop or restart the formation. */
  pid: number;
  /** When that process started (clock ticks after boot): a recycled pid has another. */
  pidStartedAt: string | undefined;
  lbPort: number;
  lbUrl: string;
  redisUrl: string;
  /** What `make reset-count` uses: the admin user's URL. */
  adminRedisUrl: string;
  /** `release`: the RELEASE_ID each replica runs (`dev`: this checkout's build). */
  replicas: { id: string; port: number; metricsPort?: number; pid: number | undefined; release?: string }[];
  /** Prometheus, when started with MONITORING=1. */
  prometheusUrl?: string;
  /** Every process the supervisor started, by name, as first started (restarts change them). */
  processes: Record<string, number | undefined>;
  logDir: string;
  startedAt: string;
  /** Completed rolling restarts (`make restart`), so a caller can wait for the next. */
  rollingRestarts: number;
  restart?: RestartProgress;
  /** Finished deploys (`make deploy`, `make rollback`), so a caller can wait for the next. */
  deploys?: number;
  deploy?: DeployProgress;
}

/**
 * The release the last formation on `lbPort` ran (`make start RELEASE=id`, or
 * the last deploy that reached every replica): it outlives the formation, so a
 * plain `make start` afterwards can say it runs the checkout instead.
 */
const releaseFile = (lbPort: number) => path.join(stateDirFor(lbPort), 'release');

export function lastRelease(lbPort: number): string | undefined {
  try {
    return readFileSync(releaseFile(lbPort), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Records what the formation on `lbPort` runs now: a release id, or undefined for the checkout's build. */
export function rememberRelease(lbPort: number, release: string | undefined): void {
  if (release === undefined) rmSync(releaseFile(lbPort), { force: true });
  else writeFileSync(releaseFile(lbPort), `${release}\n`);
}

let writes = 0;

export async function writeState(state: FormationState): Promise<void> {
  await mkdir(stateDirFor(state.lbPort), { recursive: true });
  const file = stateFile(state.lbPort);
  // Written whole, then renamed into place: a reader never sees half a file.
  // It holds Redis passwords: readable by its owner only.
  const temporary = `${file}.${process.pid}.${++writes}.tmp`;
  await writeFile(temporary, JSON.stringify(state, null, 2), { mode: 0o600 });
  await rename(temporary, file);
}

export async function removeState(lbPort: number): Promise<void> {
  await rm(stateFile(lbPort), { force: true });
}

/** The state of the formation on `lbPort`, if its supervisor is still alive. */
export function readLiveState(lbPort: number): FormationState | undefined {
  let state: FormationState;
  try {
    state = JSON.parse(readFileSync(stateFile(lbPort), 'utf8')) as FormationState;
  } catch {
    return undefined;
  }
  return isOurSupervisor(state.pid, state.pidStartedAt) ? state : undefined;
}

/**
 * A process's start time, field 22 of /proc/<pid>/stat (after the command
 * name, which may itself hold spaces and parentheses), or undefined without /proc.
 */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/**
 * Alive, and really the supervisor that wrote the state: `make up` (`cli.js up`)
 * or the one `make start` detaches (`cli.js run`). A recycled pid must never be
 * signalled, so the process's start time must match too.
 */
export function isOurSupervisor(pid: number, startedAt: string | undefined): boolean {
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    try {
      process.kill(pid, 0);
      return true; // no /proc (macOS): trust a live pid
    } catch {
      return false;
    }
  }
  const args = cmdline.split('\0');
  const cli = args.findIndex((arg) => arg.endsWith('formation/cli.js'));
  const supervising = cli >= 0 && ['up', 'run'].includes(args[cli + 1] ?? '');
  return supervising && (startedAt === undefined || processStartTime(pid) === startedAt);
}
