// A release's rolling deploy into a running local formation. The supervisor
// (`make up`, or `make start`'s detached one) owns the processes, so the
// command asks it, as `make restart` does: it writes the release to the
// formation's state folder and sends SIGUSR2; the supervisor replaces one
// replica at a time (LocalFormation.replaceReplica) and records each step in
// the state file, which the command follows and prints.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { readArtifactInfo } from './artifact.js';
import type { ReleaseRecord } from './ledger.js';
import type { LocalFormation } from './local-formation.js';
import type { FormationOptions } from './options.js';
import { readLiveState, rememberRelease, stateDirFor, type DeployProgress, type FormationState } from './state.js';
import { waitFor } from './wait.js';

const say = (line: string) => process.stderr.write(`${line}\n`);
const print = (line: string) => process.stdout.write(`${line}\n`);

const requestFile = (lbPort: number) => path.join(stateDirFor(lbPort), 'deploy-request.json');
/** Longest a replica may take to be replaced (start, ready, reloads, drain), before the command gives up waiting. */
const PER_REPLICA_MS = 60_000;

/** The release every replica of the local formation on LB_PORT runs; undefined when none runs, or they differ, or it is `dev`. */
export function runningReleaseLocal(options: FormationOptions): string | undefined {
  const releases = new Set(readLiveState(options.LB_PORT)?.replicas.map((r) => r.release ?? 'dev'));
  const [only] = releases;
  return releases.size === 1 && only !== 'dev' ? only : undefined;
}

/** Why `record` cannot run here (its artifact folder is not on this machine), or undefined when it can. */
export function missingArtifact(record: ReleaseRecord): string | undefined {
  if (record.folder && readArtifactInfo(record.folder)?.tag === record.tag) return undefined;
  return `release ${record.id} has no artifact folder here (${record.folder ?? 'none recorded'}); make package on commit ${record.commit.slice(0, 12)} builds it`;
}

/** `make deploy` / `make rollback` in local mode: asks the supervisor to deploy `record`, prints its steps, waits until done. */
export async function deployLocal(options: FormationOptions, record: ReleaseRecord): Promise<number> {
  const state = readLiveState(options.LB_PORT);
  if (!state) {
    say(`no local formation runs on port ${options.LB_PORT}; start one first: make start${options.LB_PORT === 8080 ? '' : ` LB_PORT=${options.LB_PORT}`}`);
    return 1;
  }
  const missing = missingArtifact(record);
  if (missing) {
    say(missing);
    return 1;
  }
  // The new replica takes over the old one's port (web/replica.ts): a build from before that cannot.
  if (!readFileSync(path.join(record.folder!, 'dist/web/config.js'), 'utf8').includes('TAKEOVER_PORT')) {
    say(`release ${record.id} cannot be deployed in local mode: its replica predates TAKEOVER_PORT (the port handover)`);
    return 1;
  }
  const before = state.deploys ?? 0;
  // Written whole then renamed: the supervisor never reads half a request.
  const file = requestFile(options.LB_PORT);
  writeFileSync(`${file}.tmp`, JSON.stringify(record));
  renameSync(`${file}.tmp`, file);
  process.kill(state.pid, 'SIGUSR2');
  print(`replacing ${state.replicas.length} replicas one at a time; each new one is ready before an old one leaves`);
  let shown = 0;
  let now: FormationState | undefined = state;
  try {
    await waitFor(
      `the deploy of ${record.id}`,
      async () => {
        now = readLiveState(options.LB_PORT);
        const progress = now?.deploy?.release === record.id ? now.deploy : undefined;
        for (const { replica, phase } of progress?.steps.slice(shown) ?? []) print(`${replica}: ${phase}`);
        shown = Math.max(shown, progress?.steps.length ?? 0);
        return !now || (now.deploys ?? 0) > before;
      },
      PER_REPLICA_MS * state.replicas.length,
      100,
    );
  } catch {
    now = undefined;
  }
  const failed = now?.deploy?.failed;
  if (!now || failed) {
    say(`the deploy of ${record.id} did not finish${failed ? `: ${failed}` : ''}; see make logs`);
    return 1;
  }
  print(`${record.id} runs on every replica; the load balancer kept serving throughout`);
  return 0;
}

/** The supervisor's side: a deploy request waiting in the state folder, taken so it runs once. */
export function takeDeployRequest(lbPort: number): ReleaseRecord | undefined {
  const file = requestFile(lbPort);
  if (!existsSync(file)) return undefined;
  const taken = `${file}.taken`;
  renameSync(file, taken);
  return JSON.parse(readFileSync(taken, 'utf8')) as ReleaseRecord;
}

/**
 * Runs in the supervisor: replaces every replica with one of `record`, one at
 * a time, recording each step in `state` (saved by `save`) and telling `sink`.
 */
export async function runLocalDeploy(
  formation: LocalFormation,
  record: ReleaseRecord,
  state: FormationState,
  save: () => Promise<void>,
  sink: (service: string, line: string) => void,
  stopping: () => boolean,
): Promise<void> {
  const progress: DeployProgress = { release: record.id, of: formation.replicas.length, steps: [] };
  state.deploy = progress;
  sink('deploy', `${record.id}: one replica at a time`);
  try {
    for (const [i, replica] of formation.replicas.entries()) {
      if (stopping()) throw new Error('the formation is stopping');
      if (replica.release === record.id) continue;
      await formation.replaceReplica(i, { id: record.id, folder: record.folder!, config: record.config }, (phase) => {
        sink(replica.id, phase);
        progress.steps.push({ replica: replica.id, phase });
        const now = formation.replicas[i]!;
        state.replicas[i] = { id: now.id, port: now.port, metricsPort: now.metricsPort, pid: now.service.pid, release: now.release };
        state.processes[now.id] = now.service.pid;
        void save();
      });
    }
    sink('deploy', `${record.id} runs on every replica`);
    // Remembered only when it reached every replica: a deploy cut short leaves a mixed formation.
    rememberRelease(formation.lbPort, record.id);
  } catch (error) {
    progress.failed = error instanceof Error ? error.message : String(error);
    sink('deploy', `failed: ${progress.failed}`);
  }
  state.deploys = (state.deploys ?? 0) + 1;
  await save();
}
