import { setTimeout as sleep } from 'node:timers/promises';
import type { VisitResult } from '../../../loadtest/invariants.js';
import type { LbClient } from './load.js';

export interface PacedLoad {
  /** Resolves with every result once all `total` visits have answered. */
  done: Promise<VisitResult[]>;
  /** Visits answered so far. */
  answered(): number;
  /** When the last visit answered (performance.now()), once done. */
  endedAt(): number | undefined;
}

/**
 * A fixed count of visits (so the count delta can be checked exactly), paced
 * at `perSecond` so that it lasts `total / perSecond` seconds: long enough to
 * span a deploy, instead of finishing in its first seconds. `concurrency`
 * loops share the visits; visit i leaves no earlier than start + i/perSecond.
 */
export function startPacedLoad(client: LbClient, total: number, perSecond: number, concurrency = 32): PacedLoad {
  const results: VisitResult[] = [];
  const started = performance.now();
  let next = 0;
  let ended: number | undefined;
  const loop = async () => {
    for (let i = next++; i < total; i = next++) {
      const due = started + (i * 1000) / perSecond;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      results.push(await client.visit());
    }
  };
  const done = Promise.all(Array.from({ length: concurrency }, loop)).then(() => {
    ended = performance.now();
    return results;
  });
  return { done, answered: () => results.length, endedAt: () => ended };
}
