import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import type { LocalFormationOptions } from '../../formation/local-formation.js';
import type { VisitResult } from '../../loadtest/invariants.js';
import { startThrowawayFormation, type ThrowawayFormation } from '../../loadtest/throwaway-formation.js';

export interface TestFormation extends ThrowawayFormation {
  /** Every line the formation's processes printed, prefixed with the service name. */
  lines: string[];
  count(): Promise<number>;
}

/** Replicas built on a deliberately unsafe counter (test/support/unsafe-replica.ts). */
export const unsafeReplica = [process.execPath, '--import', 'tsx', 'test/support/unsafe-replica.ts'];

/**
 * The local formation (the same code `make up` runs) on free ports, through
 * the one throwaway-formation helper: its own state folder under the system's
 * temp dir and its own counter key, so no test shares data with another.
 * Its output is kept in `lines` for the tests to read.
 */
export async function startTestFormation(options: Partial<Omit<LocalFormationOptions, 'stateDir' | 'sink'>> = {}): Promise<TestFormation> {
  const lines: string[] = [];
  let formation: ThrowawayFormation;
  try {
    formation = await startThrowawayFormation({
      purpose: 'headcount-formation',
      parent: tmpdir(),
      ...options,
      replicaEnv: { COUNTER_KEY: `test:${randomUUID()}`, LOG_LEVEL: 'warn', ...options.replicaEnv },
      sink: (service, line) => lines.push(`${service} | ${line}`),
    });
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${lines.slice(-20).join('\n')}`);
  }
  return {
    ...formation,
    lines,
    async count() {
      const response = await fetch(`${formation.lbUrl}/api/count`);
      return ((await response.json()) as { count: number }).count;
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
