// k6 throughput scenario: a constant arrival rate, judged by latency thresholds.
//   k6 run -e LB_URL=http://127.0.0.1:8080 -e RATE=2000 -e DURATION=30s loadtest/k6/throughput.ts
import { check } from 'k6';
import http from 'k6/http';
import type { Options } from 'k6/options';
import { LB_URL, summaryFiles } from './common.ts';

export const options: Options = {
  scenarios: {
    throughput: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE || 2000),
      timeUnit: '1s',
      duration: __ENV.DURATION || '30s',
      preAllocatedVUs: 100,
      maxVUs: Number(__ENV.MAX_VUS || 1000),
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.001'],
    http_req_duration: ['p(95)<25', 'p(99)<50'],
    // A rate the formation cannot keep up with shows as dropped iterations.
    dropped_iterations: ['count==0'],
    checks: ['rate==1'],
  },
};

export default function visit(): void {
  const response = http.get(`${LB_URL}/`, { headers: { Accept: 'application/json' }, tags: { name: 'visit' } });
  check(response, { 'status is 200': (r) => r.status === 200 });
}

export function handleSummary(data: Parameters<typeof summaryFiles>[1]) {
  return summaryFiles('throughput', data);
}
