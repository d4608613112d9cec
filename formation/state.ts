import { readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fromRoot } from './paths.js';

/** Each local formation keeps its files under .run/lb-<port>, so several can run side by side. */
export const stateDirFor = (lbPort: number) => fromRoot('.run', `lb-${lbPort}`);
const stateFile = (lbPort: number) => path.join(stateDirFor(lbPort), 'formation.json');
export const logFileFor = (lbPort: number) => path.join(stateDirFor(lbPort), 'formation.log');

export interface FormationState {
  /** The supervisor process: the one to signal to stop or restart the formation. */
  pid: number;
  lbPort: number;
  lbUrl: string;
  redisUrl: string;
  /** What `make reset-count` uses: the admin user's URL. */
  adminRedisUrl: string;
  replicas: { id: string; port: number; pid: number | undefined }[];
  startedAt: string;
  /** Completed rolling restarts (`make restart`), so a caller can wait for the next. */
  rollingRestarts: number;
}

export async function writeState(state: FormationState): Promise<void> {
  await mkdir(stateDirFor(state.lbPort), { recursive: true });
  const file = stateFile(state.lbPort);
  // It holds Redis passwords: readable by its owner only.
  await writeFile(`${file}.tmp`, JSON.stringify(state, null, 2), { mode: 0o600 });
  await rename(`${file}.tmp`, file);
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
  return isOurSupervisor(state.pid) ? state : undefined;
}

/** Alive, and really our supervisor (a recycled pid must never be signalled). */
export function isOurSupervisor(pid: number): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('formation/cli.js') && cmdline.includes('\0run');
  } catch {
    try {
      process.kill(pid, 0);
      return true; // no /proc (macOS): trust a live pid
    } catch {
      return false;
    }
  }
}
