import { readdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import type { LocalFormation } from '../formation/local-formation.js';

const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** CPU seconds (user + system) a process has used so far; 0 once it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    // Fields after the command (which may hold spaces) start at ")".
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/**
 * Seconds a process's threads have spent waiting for a CPU while runnable
 * (the run queue), from /proc/<pid>/task/<tid>/schedstat's second field; 0
 * once it is gone. On a busy machine this is the part of a request's latency
 * that no code of its own spends.
 */
export function runQueueSeconds(pid: number): number {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  let nanoseconds = 0;
  for (const tid of tasks) {
    try {
      nanoseconds += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[1]);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return nanoseconds / 1e9;
}

/** A process and its children (nginx's workers under its master). */
export function withChildren(pid: number): number[] {
  const children = readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);
  return [pid, ...children];
}

export type Groups = Record<string, number[]>;

/** A local formation's processes by group: nginx with its workers, the replicas, Redis. */
export function formationCpuGroups(formation: LocalFormation): Groups {
  return {
    nginx: withChildren(formation.nginx.pid!),
    replicas: formation.replicas.map((r) => r.service.pid!),
    redis: [formation.redis!.pid!],
  };
}

/**
 * Samples each group's CPU time over `work`: CPU seconds per group, and the
 * seconds its processes waited for a CPU while runnable (runQueueSeconds).
 * The load generator is this process.
 */
export async function measureCpu<T>(
  groups: Groups,
  work: () => Promise<T>,
): Promise<{ value: T; cpu: Record<string, number>; waited: Record<string, number>; wallSeconds: number }> {
  const sum = (pids: number[], of: (pid: number) => number) => pids.reduce((total, pid) => total + of(pid), 0);
  const read = (of: (pid: number) => number) => Object.fromEntries(Object.entries(groups).map(([name, pids]) => [name, sum(pids, of)]));
  const self = process.cpuUsage();
  const before = read(cpuSeconds);
  const readWaited = (): Record<string, number> => ({ ...read(runQueueSeconds), 'load generator': runQueueSeconds(process.pid) });
  const waitedBefore = readWaited();
  const started = performance.now();
  const value = await work();
  const wallSeconds = (performance.now() - started) / 1000;
  const after = read(cpuSeconds);
  const waitedAfter = readWaited();
  const used = process.cpuUsage(self);
  const cpu = Object.fromEntries(Object.keys(groups).map((name) => [name, after[name]! - before[name]!]));
  cpu['load generator'] = (used.user + used.system) / 1e6;
  const waited = Object.fromEntries(Object.keys(waitedAfter).map((name) => [name, waitedAfter[name]! - waitedBefore[name]!]));
  return { value, cpu, waited, wallSeconds };
}
