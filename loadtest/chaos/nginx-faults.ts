// Faults at the load balancer: reloads under load, and the keep-alive race
// between nginx and Node over idle upstream connections.
import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Check } from '../verdict.js';
import { fail, notChecked, pass } from '../verdict.js';
import { underLoad, type LoadRun } from './load.js';
import { check, expectExact, measure, measured, responsesIn, settledCount, type Scenario } from './scenario.js';

/**
 * How often nginx found an upstream keep-alive connection closed under it,
 * from the formation's log. NOT CHECKED when there is no log, or when the log
 * holds no nginx access line (its output went elsewhere): 0 found there would
 * prove nothing.
 */
export function upstreamClosesCheck(logFile: string | undefined): { check: Check; closes: number } {
  const name = 'no upstream closed under nginx';
  if (!logFile || !existsSync(logFile)) {
    return { check: notChecked(name, "the formation's output went to no log file this run can read"), closes: Number.NaN };
  }
  const log = readFileSync(logFile, 'utf8');
  if (!log.includes('"upstream_addr"')) return { check: notChecked(name, `${logFile} holds no nginx access line: nginx's output is elsewhere`), closes: Number.NaN };
  const closes = (log.match(/upstream prematurely closed|reset by peer|Broken pipe/g) ?? []).length;
  return { check: closes === 0 ? pass(name, `0 in ${logFile}`) : fail(name, `nginx met ${closes} upstream connections closed under it`), closes };
}

export const nginxFaults: Scenario[] = [
  {
    name: 'nginx reload x5 under load',
    proves: 'reloads drop no request; only idle client keep-alive connections closed by old workers error',
    quick: true,
    async run(f) {
      const connections = 20;
      const { run, result } = await measure(f, this.name, this.proves, { durationSeconds: 8, connections }, async (load) => {
        // One reload per second's worth of responses: spaced by the load, not the clock.
        for (let i = 0; i < 5; i++) {
          await load.responses(responsesIn(1));
          await f.reloadNginx();
        }
      });
      expectExact(result, run, { errors: false });
      // An old worker closes each idle keep-alive connection once when it
      // retires; the client's next request on it fails before nginx reads it.
      check(result, 'at most one error per connection per reload', result.figures.errors <= connections * 5, `${result.figures.errors} transport errors (at most ${connections * 5})`);
      result.notes.push(`${result.figures.errors} transport errors: keep-alive connections closed by retiring workers (at most ${connections} per reload); none was counted`);
      return result;
    },
  },
  {
    name: 'keep-alive race',
    proves: 'nginx, not Node, closes idle upstream connections: bursts after idle gaps around both timeouts meet no closed connection',
    // About 30 s of bursts and gaps: make chaos only.
    quick: false,
    // The production order, scaled down from 60 s / 65 s so the gaps take seconds.
    formation: { replicaEnv: { KEEP_ALIVE_TIMEOUT_MS: '2000' }, lbEnv: { LB_UPSTREAM_KEEPALIVE_TIMEOUT: '1s' } },
    async run(f) {
      const before = await settledCount(f.lbUrl);
      const runs: LoadRun[] = [];
      // Gaps in 10 ms steps across nginx's 1 s and Node's 2 s, each followed by
      // a burst on 40 connections. With the order reversed (Node 1 s, nginx
      // 2 s) the same bursts met 1 to 9 connections closed under nginx here.
      // The idle gap is what is tested, so here a sleep is the point.
      const gaps = [970, 980, 990, 1_000, 1_010, 1_020, 1_030, 1_970, 1_980, 1_990, 2_000, 2_010, 2_020, 2_030];
      for (const gapMs of gaps) {
        await sleep(gapMs);
        runs.push(await underLoad({ url: f.lbUrl, durationSeconds: 0.25, rate: 800, connections: 40 }, async () => {}));
      }
      const run: LoadRun = {
        results: runs.flatMap((r) => r.results),
        sent: runs.reduce((n, r) => n + r.sent, 0),
        errors: runs.reduce((n, r) => n + r.errors, 0),
        timeouts: runs.reduce((n, r) => n + r.timeouts, 0),
        durationSeconds: runs.reduce((n, r) => n + r.durationSeconds, 0),
        missedMilestones: 0,
      };
      const result = measured(this.name, this.proves, run, before, await settledCount(f.lbUrl));
      const closes = upstreamClosesCheck(f.logFile);
      result.figures['upstream closed under nginx'] = closes.closes;
      expectExact(result, run);
      // nginx retries these on another replica, so the client never sees them:
      // only nginx's error log tells.
      result.checks.push(closes.check);
      return result;
    },
  },
];
