import { afterEach, describe, expect, test } from 'vitest';
import { checkAccuracy, describeViolations } from '../../loadtest/invariants.js';
import { startTestFormation, unsafeReplica, type TestFormation } from '../support/formation.js';

// A replica that dies (SIGKILL) after its increment reached Redis but before it
// answered is the worst case for exactly-once: nginx sees a broken connection
// and retries the same request, with the same $request_id, on another replica.
describe('exactly once when nginx retries on another replica', () => {
  let formation: TestFormation | undefined;
  afterEach(() => formation?.destroy());

  const postSequentially = async (url: string, n: number) => {
    const results = [];
    for (let i = 0; i < n; i++) {
      const response = await fetch(url, { method: 'POST' });
      const body = (await response.json().catch(() => ({}))) as { count?: number };
      results.push({ status: response.status, count: body.count, replica: response.headers.get('x-replica') ?? undefined });
    }
    return results;
  };

  test('When a replica dies after counting and before answering, then the retry gets the same number and nothing is counted twice', async () => {
    formation = await startTestFormation({
      replicas: 4,
      replicaCommand: unsafeReplica,
      replicaEnv: { UNSAFE_COUNTER: 'crash-after-count', FAULTY_REPLICA: 'web-1' },
    });
    const before = await formation.count();

    const results = await postSequentially(`${formation.lbUrl}/api/visits`, 12);
    const report = checkAccuracy({ countBefore: before, countAfter: await formation.count(), sent: 12, results });

    expect(formation.replicas[0]!.service.crashes).toBeGreaterThan(0); // web-1 really died mid-request
    expect(report.violations, describeViolations(report.violations)).toEqual([]);
    expect(results.map((r) => r.replica)).not.toContain('web-1');
  });

  test('When a replica counts and then stalls, then nginx times out, retries elsewhere, and the retry gets the same number', async () => {
    formation = await startTestFormation({
      replicas: 4,
      replicaCommand: unsafeReplica,
      replicaEnv: { UNSAFE_COUNTER: 'stall-after-count', FAULTY_REPLICA: 'web-1' },
    });
    const before = await formation.count();

    // Round robin sends at least one of these to web-1, which then holds it
    // until nginx's proxy_read_timeout (5 s).
    const started = performance.now();
    const results = await postSequentially(`${formation.lbUrl}/api/visits`, 6);
    const seconds = (performance.now() - started) / 1000;
    const report = checkAccuracy({ countBefore: before, countAfter: await formation.count(), sent: 6, results });

    expect(seconds).toBeGreaterThan(4); // a request really waited for the read timeout
    expect(report.violations, describeViolations(report.violations)).toEqual([]);
    expect(results.map((r) => r.replica)).not.toContain('web-1');
  });

  test('When both of nginx\'s tries land on replicas that refuse connections, then nginx makes one more pass and the visit is answered, counted once', async () => {
    formation = await startTestFormation({ replicas: 3 });
    // web-1 and web-2 stop listening; nginx still lists them (max_fails has not
    // counted them out yet), so round robin's first visit tries both, in order.
    await formation.replicas[0]!.service.stop();
    await formation.replicas[1]!.service.stop();
    const before = await formation.count();

    const results = await postSequentially(`${formation.lbUrl}/api/visits`, 6);
    const report = checkAccuracy({ countBefore: before, countAfter: await formation.count(), sent: 6, results });

    // Without `error_page 502 = @next_pass` the first visit is nginx's 502.
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(report.violations, describeViolations(report.violations)).toEqual([]);
    expect(new Set(results.map((r) => r.replica))).toEqual(new Set(['web-3']));
    expect(formation.lines.join('\n')).toMatch(/connect\(\) failed \(111: Connection refused\)/);
  });

  test('When the same happens without the idempotency key, then the check catches the double count', async () => {
    formation = await startTestFormation({
      replicas: 4,
      replicaCommand: unsafeReplica,
      replicaEnv: { UNSAFE_COUNTER: 'no-idempotency', FAULTY_REPLICA: 'web-1' },
    });
    const before = await formation.count();

    const results = await postSequentially(`${formation.lbUrl}/api/visits`, 12);
    const report = checkAccuracy({ countBefore: before, countAfter: await formation.count(), sent: 12, results });

    expect(formation.replicas[0]!.service.crashes).toBeGreaterThan(0);
    expect(report.violations.map((v) => v.invariant)).toContain('count-delta');
    expect(report.figures.delta).toBeGreaterThan(12);
  });
});
