// k6 accuracy scenario: a fixed number of visits (shared-iterations), then the
// count must have grown by exactly that number.
//   k6 run -e LB_URL=http://127.0.0.1:8080 -e ITERATIONS=2000 loadtest/k6/accuracy.ts
// k6's virtual users share no state, so this checks the subset k6 can: no
// failed request, every check passed, count delta == iterations. autocannon
// (make loadtest) also checks that the numbers are unique and contiguous and
// that every replica served its share. See loadtest/README.md.
import { check } from 'k6';
import exec from 'k6/execution';
import http from 'k6/http';
import type { Options } from 'k6/options';
import { LB_URL, readCount, summaryFiles } from './common.ts';

const ITERATIONS = Number(__ENV.ITERATIONS || 2000);

export const options: Options = {
  scenarios: {
    accuracy: { executor: 'shared-iterations', vus: Number(__ENV.VUS || 50), iterations: ITERATIONS, maxDuration: '5m' },
  },
  // Thresholds set the exit code: the run is a gate, not a report.
  thresholds: {
    http_req_failed: ['rate==0'],
    checks: ['rate==1'],
  },
};

export function setup(): { before: number } {
  return { before: readCount() };
}

export default function visit(): void {
  const response = http.get(`${LB_URL}/`, { headers: { Accept: 'application/json' }, tags: { name: 'visit' } });
  check(response, {
    'status is 200': (r) => r.status === 200,
    'body carries a visitor number': (r) => Number.isInteger((r.json() as { count?: number }).count),
    'x-replica names the replica': (r) => (r.headers['X-Replica'] ?? '').length > 0,
  });
}

export function teardown({ before }: { before: number }): void {
  const delta = readCount() - before;
  const exact = check(delta, { 'count grew by exactly the number of iterations': (d) => d === ITERATIONS });
  if (!exact) exec.test.fail(`count grew by ${delta}, want ${ITERATIONS}`);
}

export function handleSummary(data: Parameters<typeof summaryFiles>[1]) {
  return summaryFiles('accuracy', data);
}
