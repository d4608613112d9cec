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

/** Samples each group's CPU time over `work`: CPU seconds per group. */
export async function measureCpu<T>(groups: Groups, work: () => Promise<T>): Promise<{ value: T; cpu: Record<string, number>; wallSeconds: number }> {
  const read = () => Object.fromEntries(Object.entries(groups).map(([name, pids]) => [name, pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0)]));
  const self = process.cpuUsage();
  const before = read();
  const started = performance.now();
  const value = await work();
  const wallSeconds = (performance.now() - started) / 1000;
  const after = read();
  const used = process.cpuUsage(self);
  const cpu = Object.fromEntries(Object.keys(groups).map((name) => [name, after[name]! - before[name]!]));
  cpu['load generator'] = (used.user + used.system) / 1e6;
  return { value, cpu, wallSeconds };
}
