import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startLocalFormation, type LocalFormation, type LocalFormationOptions } from '../../formation/local-formation.js';
import type { VisitResult } from '../../loadtest/invariants.js';

export interface TestFormation extends LocalFormation {
  /** Every line the formation's processes printed, prefixed with the service name. */
  lines: string[];
  count(): Promise<number>;
  /** Stops every process and removes the state folder. */
  destroy(): Promise<void>;
}

/** Replicas built on a deliberately unsafe counter (test/support/unsafe-replica.ts). */
export const unsafeReplica = [process.execPath, '--import', 'tsx', 'test/support/unsafe-replica.ts'];

/**
 * The local formation (the same code `make up` runs) on free ports, with its
 * own state folder and its own counter key, so no test shares data with another.
 */
export async function startTestFormation(
  options: Partial<Omit<LocalFormationOptions, 'stateDir' | 'sink'>> = {},
): Promise<TestFormation> {
  const stateDir = await mkdtemp(path.join(tmpdir(), 'headcount-formation-'));
  const lines: string[] = [];
  let formation: LocalFormation;
  try {
    formation = await startLocalFormation({
      replicas: 4,
      lbPort: 0,
      ...options,
      replicaEnv: { COUNTER_KEY: `test:${randomUUID()}`, LOG_LEVEL: 'warn', ...options.replicaEnv },
      stateDir,
      sink: (service, line) => lines.push(`${service} | ${line}`),
    });
  } catch (error) {
    await rm(stateDir, { recursive: true, force: true });
    throw new Error(`${(error as Error).message}\n${lines.slice(-20).join('\n')}`);
  }
  return {
    ...formation,
    lines,
    async count() {
      const response = await fetch(`${formation.lbUrl}/api/count`);
      return ((await response.json()) as { count: number }).count;
    },
    async destroy() {
      await formation.stop();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

/** Sends `n` requests at once and records each status, visitor number and replica. */
export async function visitAll(url: string, n: number, init: RequestInit = {}): Promise<VisitResult[]> {
  const one = async (): Promise<VisitResult> => {
    const response = await fetch(url, { headers: { accept: 'application/json' }, ...init });
    const body = (await response.json().catch(() => ({}))) as { count?: number };
    return { status: response.status, count: body.count, replica: response.headers.get('x-replica') ?? undefined };
  };
  return Promise.all(Array.from({ length: n }, one));
}
