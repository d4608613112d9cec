import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { startLocalFormation, type LocalFormation, type LocalFormationOptions } from '../formation/local-formation.js';
import { fromRoot } from '../formation/paths.js';

export interface ThrowawayFormation extends LocalFormation {
  /** Its own folder: rendered config, Redis data, and the log file unless a sink was given. */
  stateDir: string;
  /** Stops every process, then deletes the folder (or keeps it, for a failed run's logs). */
  destroy(options?: { keepFiles?: boolean }): Promise<void>;
}

export interface ThrowawayOptions extends Partial<Omit<LocalFormationOptions, 'stateDir'>> {
  /** Names the folder: `<parent>/<purpose>-XXXXXX`. */
  purpose: string;
  /** Where the folder goes (default .run/ in the checkout). */
  parent?: string;
}

/**
 * A local formation on free ports (the same code `make up` runs) in a folder
 * of its own, for one load test, bench figure, chaos scenario or test file,
 * and removed afterwards. Every process's output goes to `formation.log` in
 * that folder unless the caller passes a `sink`. A formation that fails to
 * start is stopped, its folder removed, and its last log lines put in the error.
 */
export async function startThrowawayFormation(options: ThrowawayOptions): Promise<ThrowawayFormation> {
  const { purpose, parent = fromRoot('.run'), ...formationOptions } = options;
  await mkdir(parent, { recursive: true });
  const stateDir = await mkdtemp(path.join(parent, `${purpose}-`));
  const logFile = formationOptions.sink ? formationOptions.logFile : (formationOptions.logFile ?? path.join(stateDir, 'formation.log'));
  let formation: LocalFormation;
  try {
    // The supervisor's own lines (a process exited, restarting) go to the same
    // file, not into the middle of the caller's table on stdout.
    const sink = formationOptions.sink ?? ((service: string, line: string) => appendFileSync(logFile!, `${service.padEnd(7)} | ${line}\n`));
    formation = await startLocalFormation({ replicas: 4, lbPort: 0, ...formationOptions, logFile, stateDir, sink });
  } catch (error) {
    const tail = logFile && existsSync(logFile) ? readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-20).join('\n') : '';
    await rm(stateDir, { recursive: true, force: true });
    throw new Error(tail ? `${(error as Error).message}\nlast lines of ${logFile}:\n${tail}` : (error as Error).message, { cause: error });
  }
  return {
    ...formation,
    stateDir,
    async destroy({ keepFiles = false } = {}) {
      await formation.stop();
      if (!keepFiles) await rm(stateDir, { recursive: true, force: true });
    },
  };
}

/** Runs `use` on a throwaway formation and always destroys it. */
export async function withThrowawayFormation<T>(options: ThrowawayOptions, use: (formation: ThrowawayFormation) => Promise<T>): Promise<T> {
  const formation = await startThrowawayFormation(options);
  try {
    return await use(formation);
  } finally {
    await formation.destroy();
  }
}
