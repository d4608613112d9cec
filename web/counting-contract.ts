/**
 * The counting contract: what every replica agrees on about the data in Redis.
 * During a rolling deploy two releases count side by side, and nginx may retry
 * one visit on a replica of the other release (the retry policy covers every
 * method: lb/nginx.conf.template), so adjacent releases must give a visit the
 * same number whichever of them counts it.
 *
 * Version 1: `COUNTER_KEY` holds the count as a Redis integer (INCR), and
 * `COUNTER_KEY:req:<request id>` holds the number a visit got, for
 * IDEMPOTENCY_TTL_SECONDS (web/counter-store.ts, the COUNT_ONCE script).
 *
 * Version 2 (this one) keeps all of version 1 and adds, in the same atomic
 * script, `HINCRBY COUNTER_KEY:replicas <REPLICA_ID> 1` for each newly counted
 * visit (never for a repeat of a request id): the per-replica breakdown the
 * live page shows. `reset` sets the count and DELetes the breakdown in one
 * transaction. Invariant: count = sum(HVALS COUNTER_KEY:replicas) + remainder,
 * remainder >= 0. Replicas also keep a heartbeat in the sorted set
 * `COUNTER_KEY:live` (web/live-hub.ts), which counting never reads.
 * Crosses from 1: a version 1 replica gives every visit the same number a
 * version 2 replica would (same count key, same request-id records); it just
 * does not write the breakdown, so its visits land in the remainder.
 *
 * What bumps the version: a change to those keys' names, types or meaning, or
 * to what the script does with them (e.g. a hash instead of an integer, ids kept
 * elsewhere). Adding keys that older releases neither read nor write does not.
 * A bump lists in `crossesFrom` the version it can run beside during a deploy
 * (it reads and writes both layouts the same way); without it, `make deploy`
 * refuses to cross (formation/release-commands.ts).
 */
export interface CountingContract {
  version: number;
  crossesFrom: readonly number[];
}

export const COUNTING_CONTRACT: CountingContract = Object.freeze({ version: 2, crossesFrom: Object.freeze([1]) });

export type CrossVerdict = { ok: true } | { ok: false; reason: string };

/**
 * Whether a rolling deploy may go from a formation running `from` to `to`:
 * the same version; one up that names `from` in its crossesFrom; or one down
 * (a rollback) when `from` names `to` in its own crossesFrom. Never two apart.
 */
export function canCross(from: CountingContract, to: CountingContract): CrossVerdict {
  if (to.version === from.version) return { ok: true };
  if (to.version === from.version + 1 && to.crossesFrom.includes(from.version)) return { ok: true };
  if (to.version === from.version - 1 && from.crossesFrom.includes(to.version)) return { ok: true };
  const how =
    Math.abs(to.version - from.version) > 1
      ? 'a deploy crosses one version at a time'
      : to.version > from.version
      ? `version ${to.version} does not declare it crosses from version ${from.version}`
      : `version ${from.version} does not declare it crosses back to version ${to.version}`;
  return { ok: false, reason: `counting contract ${from.version} -> ${to.version} cannot be crossed by a rolling deploy: ${how}` };
}
