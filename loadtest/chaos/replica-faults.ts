// Faults of one replica, or of all of them in turn: the load balancer must
// hide each from the visitors, and the idempotency key must absorb the retries.
import { check, expectExact, measure, responsesIn, type Scenario } from './scenario.js';

const SHUTDOWN_GRACE_MS = 10_000;

export const replicaFaults: Scenario[] = [
  {
    name: 'kill -9 one replica mid-run',
    proves: 'nginx fails over, and the idempotency key absorbs its retry of a request the dead replica had counted',
    quick: true,
    async run(f) {
      let killed = false;
      const { run, result } = await measure(f, this.name, this.proves, { durationSeconds: 6 }, async (load) => {
        await load.responses(responsesIn(2));
        killed = f.replicas[1]!.service.signal('SIGKILL');
      });
      check(result, 'replica killed', killed ? true : undefined, killed ? 'web-2 got SIGKILL' : 'web-2 had no process to kill: the fault did not happen');
      expectExact(result, run);
      return result;
    },
  },
  {
    name: 'SIGTERM one replica mid-run',
    proves: 'a replica drains in-flight requests and exits 0 within its grace period, losing nothing',
    quick: true,
    async run(f) {
      const victim = f.replicas[1]!.service;
      let signalledAt = 0;
      let signalled = false;
      const { run, result } = await measure(f, this.name, this.proves, { durationSeconds: 6 }, async (load) => {
        await load.responses(responsesIn(2));
        signalledAt = Date.now();
        signalled = victim.signal('SIGTERM');
        if (signalled) await victim.waitForExit();
      });
      const exit = signalled ? victim.lastExit : undefined;
      const exitMs = exit ? exit.at - signalledAt : Number.NaN;
      result.figures.exitCode = String(exit?.code);
      result.figures.exitMs = exitMs;
      const unknown = 'web-2 had no process to signal: the fault did not happen';
      expectExact(result, run);
      check(result, 'replica exited 0', exit ? exit.code === 0 : undefined, exit ? `exited with ${exit.code ?? exit.signal}` : unknown);
      check(result, 'exit within grace period', exit ? exitMs <= SHUTDOWN_GRACE_MS : undefined, exit ? `${exitMs} ms (grace ${SHUTDOWN_GRACE_MS} ms)` : unknown);
      return result;
    },
  },
  {
    name: 'rolling restart of all replicas',
    proves: 'make restart replaces every replica, one at a time, with no failed request',
    quick: true,
    async run(f) {
      const pidsBefore = f.replicas.map((r) => r.service.pid);
      const { run, result } = await measure(f, this.name, this.proves, { durationSeconds: 26 }, async (load) => {
        await load.responses(responsesIn(1));
        for (let i = 0; i < f.replicas.length; i++) await f.restartReplica(i);
      });
      const replaced = f.replicas.filter((r, i) => r.service.pid !== undefined && r.service.pid !== pidsBefore[i]).length;
      check(result, 'every replica replaced', replaced === f.replicas.length, `${replaced} of ${f.replicas.length} replicas run a new process`);
      expectExact(result, run);
      return result;
    },
  },
];
