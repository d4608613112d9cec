import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runLoadtest, type LoadtestOutcome } from '../../loadtest/loadtest.js';
import { loadLoadtestOptions } from '../../loadtest/options.js';
import { startTestFormation, unsafeReplica, type TestFormation } from '../support/formation.js';

// `make loadtest`'s own code path (runLoadtest), on a short run.
const shortRun = loadLoadtestOptions(['--requests', '3000', '--connections', '50', '--duration', '1', '--concurrencies', '20'], {});

/**
 * `make loadtest`'s entry point in a child process, stdout a pipe. Not
 * spawnSync: the test formation's output flows through this process, and a
 * blocked event loop would fill its pipes and stall nginx.
 */
async function runCli(env: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['dist/loadtest/cli.js'], { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [status] = (await once(child, 'close')) as [number | null];
  return { status, stdout, stderr };
}

const targetOf = (formation: TestFormation) => ({
  lbUrl: formation.lbUrl,
  replicas: formation.replicas.map((r) => r.id),
  directUrl: formation.replicas[0]!.url,
});

describe('make loadtest against the real formation', () => {
  let formation: TestFormation;
  let outcome: LoadtestOutcome;
  beforeAll(async () => {
    formation = await startTestFormation({ replicas: 4 });
    outcome = await runLoadtest(shortRun, targetOf(formation));
  });
  afterAll(async () => {
    await formation?.destroy();
    if (outcome) await rm(path.dirname(outcome.files.json), { recursive: true, force: true });
  });

  test('When 3000 requests go through 4 replicas, then every accuracy invariant holds', () => {
    expect(outcome.ok).toBe(true);
    expect(outcome.verdict).toMatchObject({ status: 'PASS', exitCode: 0, notChecked: 0 });
    expect(outcome.report.checks.map((c) => `${c.name}: ${c.status}`)).toEqual([
      'no-errors: PASS',
      'all-2xx: PASS',
      'count-delta: PASS',
      'unique-numbers: PASS',
      'contiguous-range: PASS',
      'replica-share: PASS',
      'direct comparison: PASS',
    ]);
    expect(outcome.report.accuracy.report.figures).toMatchObject({ sent: 3000, ok: 3000, delta: 3000, uniqueNumbers: 3000, errors: 0 });
    expect(Object.values(outcome.report.accuracy.report.figures.perReplica)).toHaveLength(4);
  });

  test('When the run ends, then its JSON report parses and holds the accuracy and throughput figures', async () => {
    const json = JSON.parse(await readFile(outcome.files.json, 'utf8'));

    expect(json).toMatchObject({ accuracy: { requests: 3000, report: { ok: true } }, target: { lbUrl: formation.lbUrl } });
    expect(json.throughput.map((r: { target: string }) => r.target)).toEqual(['load balancer', 'one replica direct']);
    expect(json.throughput[0].requestsPerSecond).toBeGreaterThan(0);
  });

  test('When the HTML report is opened in a browser, then its three charts draw with no errors and no network', async () => {
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
    });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      const requests: string[] = [];
      page.on('pageerror', (error) => errors.push(error.message));
      page.on('request', (request) => requests.push(request.url()));

      await page.goto(`file://${outcome.files.html}`);
      await page.waitForFunction(() => (window as unknown as { chartsReady?: boolean }).chartsReady === true);
      const drawn = await page.$$eval('canvas', (canvases) =>
        canvases.map((c) => (c as HTMLCanvasElement).toDataURL().length > 5_000),
      );

      expect(errors).toEqual([]);
      expect(drawn).toEqual([true, true, true]);
      expect(requests.filter((url) => !url.startsWith('file://'))).toEqual([]);
      expect(await page.textContent('body')).toContain('PASS: 7 of 7 checks passed, 0 failed, 0 not checked');
    } finally {
      await browser.close();
    }
  });
});

describe('make loadtest against replicas that count in their own memory', () => {
  let formation: TestFormation;
  let outcome: LoadtestOutcome;
  beforeAll(async () => {
    // Per-process memory: the stateful anti-pattern twelve-factor "processes" forbids.
    formation = await startTestFormation({ replicas: 4, replicaCommand: unsafeReplica, replicaEnv: { UNSAFE_COUNTER: 'per-process' } });
    outcome = await runLoadtest({ ...shortRun, DURATION: 0 }, targetOf(formation));
  });
  afterAll(async () => {
    await formation?.destroy();
    if (outcome) await rm(path.dirname(outcome.files.json), { recursive: true, force: true });
  });

  test('When each replica keeps its own count, then the accuracy run fails and names the broken invariants', () => {
    const invariants = outcome.report.accuracy.report.violations.map((v) => v.invariant);

    expect(outcome.ok).toBe(false);
    expect(outcome.verdict).toMatchObject({ status: 'FAIL', exitCode: 1 });
    expect(invariants).toEqual(expect.arrayContaining(['count-delta', 'unique-numbers']));
    expect(outcome.report.accuracy.report.figures.duplicateNumbers).toBeGreaterThan(2000);
  });
});

describe('make loadtest against a formation it cannot inspect (no state file lists its replicas)', () => {
  let formation: TestFormation;
  const outcomes: LoadtestOutcome[] = [];
  beforeAll(async () => {
    formation = await startTestFormation({ replicas: 4 });
  });
  afterAll(async () => {
    await formation?.destroy();
    for (const outcome of outcomes) await rm(path.dirname(outcome.files.json), { recursive: true, force: true });
  });

  test('When all 4 expected replicas answer, then replica-share is judged on the X-Replica values seen, and the verdict names the direct comparison it could not make', async () => {
    // No target given: LB_URL goes through resolveTarget, as `make loadtest LB_URL=...` does.
    const outcome = await runLoadtest({ ...shortRun, LB_URL: formation.lbUrl, REPLICAS: 4, DURATION: 1 });
    outcomes.push(outcome);

    expect(outcome.report.target).toMatchObject({ lbUrl: formation.lbUrl, expectedReplicas: { count: 4, source: 'REPLICAS=4' } });
    expect(outcome.report.target.replicas).toBeUndefined();
    expect(outcome.report.checks.find((c) => c.name === 'replica-share')).toMatchObject({
      status: 'PASS',
      detail: expect.stringContaining('replica list unknown: the 4 X-Replica values seen, against 4 expected (REPLICAS=4)'),
    });
    expect(outcome.report.checks.find((c) => c.name === 'direct comparison')).toMatchObject({ status: 'NOT CHECKED', required: false });
    expect(outcome.verdict.line).toBe('PASS: 6 of 7 checks passed, 0 failed, 1 not checked (direct comparison, not required)');
  });

  test('When 5 replicas are expected and only 4 answer, then replica-share FAILS (a replica that never answered), not a 4-way PASS', async () => {
    const outcome = await runLoadtest({ ...shortRun, LB_URL: formation.lbUrl, REPLICAS: 5, DURATION: 0 });
    outcomes.push(outcome);

    expect(outcome.report.accuracy.report.violations).toEqual([
      { invariant: 'replica-share', detail: expect.stringMatching(/^expected 5 replicas \(REPLICAS=5\); only 4 answered \(web-1 \d+, web-2 \d+, web-3 \d+, web-4 \d+\)/) },
    ]);
    expect(outcome.verdict).toMatchObject({ status: 'FAIL', exitCode: 1 });
    expect(outcome.ok).toBe(false);
  });
});

describe('make loadtest as a user runs it (node dist/loadtest/cli.js, stdout a pipe)', () => {
  let formation: TestFormation;
  const reportDirs: string[] = [];
  beforeAll(async () => {
    formation = await startTestFormation({ replicas: 4 });
  });
  afterAll(async () => {
    await formation?.destroy();
    for (const dir of reportDirs) await rm(dir, { recursive: true, force: true });
  });

  const cli = async (env: Record<string, string>) => {
    const run = await runCli({ LB_URL: formation.lbUrl, CONNECTIONS: '20', ...env });
    const dir = /reports: (.*)\/report\.json/.exec(run.stdout)?.[1];
    if (dir) reportDirs.push(dir);
    return run;
  };

  test('When it runs, then it first says how many visits it will add and where the reports go, prints no colour codes into the pipe, and exits 0', async () => {
    const run = await cli({ REQUESTS: '1000', DURATION: '1', CONCURRENCIES: '10' });

    expect(run.status, run.stderr).toBe(0);
    const [first, second, third] = run.stdout.split('\n');
    expect(first).toBe(`make loadtest: the formation at ${formation.lbUrl}; replica list unknown: the X-Replica values seen are checked against 4 expected (REPLICAS=4).`);
    expect(second).toMatch(/^It adds exactly 1,000 visits from the accuracy run \(REQUESTS\) to that count, then one more per request of the throughput run, which runs for a time, not a number of requests: 1 s at one concurrency \(10 connections\) against load balancer, 1 s in all \(DURATION=0 skips it\)\.$/);
    expect(third).toMatch(/^Reports will be written to .*loadtest\/results\/loadtest-[^/]+\/ \(report\.json, report\.html\)\.$/);
    expect(run.stdout).toMatch(/\nvisits added to the count: [\d,]+ \(accuracy run 1,000, throughput run [\d,]+\)\n/);
    expect(run.stdout).toContain('verdict: PASS: 6 of 7 checks passed, 0 failed, 1 not checked (direct comparison, not required)');
    expect(run.stdout).not.toContain('\u001b[');
  });

  test('When 6 replicas are expected and only 4 answer, then the verdict is FAIL and the exit code 1', async () => {
    const run = await cli({ REQUESTS: '500', DURATION: '0', REPLICAS: '6' });

    expect(run.status).toBe(1);
    expect(run.stdout).toMatch(/verdict: FAIL: 5 of 7 checks passed, 1 failed \(replica-share\), 1 not checked \(direct comparison, not required\)/);
  });
});

// Counts with a plain INCR but sends no X-Replica header, as a formation behind
// a proxy that strips it would look: the replicas cannot be told apart.
const ANONYMOUS_REPLICA = `
const http = require('node:http');
const { Redis } = require('ioredis');
const redis = new Redis(process.env.REDIS_URL);
const key = process.env.COUNTER_KEY;
http.createServer((req, res) => {
  const read = req.url === '/readyz' || req.url === '/api/count';
  (read ? redis.get(key).then((n) => ({ count: Number(n ?? 0) })) : redis.incr(key).then((count) => ({ count }))).then(
    (body) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify(body)); },
    () => { res.writeHead(503); res.end(); },
  );
}).listen(Number(process.env.PORT), '127.0.0.1');
process.once('SIGTERM', () => process.exit(0));
`;

describe('make loadtest when a required invariant cannot be checked (no response says which replica served it)', () => {
  let formation: TestFormation;
  const reportDirs: string[] = [];
  beforeAll(async () => {
    formation = await startTestFormation({ replicas: 2, replicaCommand: [process.execPath, '-e', ANONYMOUS_REPLICA] });
  });
  afterAll(async () => {
    await formation?.destroy();
    for (const dir of reportDirs) await rm(dir, { recursive: true, force: true });
  });

  const cli = async (env: Record<string, string>) => {
    const run = await runCli({ LB_URL: formation.lbUrl, REQUESTS: '300', CONNECTIONS: '10', DURATION: '0', REPLICAS: '2', ...env });
    const dir = /reports: (.*)\/report\.json/.exec(run.stdout)?.[1];
    if (dir) reportDirs.push(dir);
    return run;
  };

  test('When replica-share cannot be checked, then the verdict is NOT CHECKED with the reason and the exit code is 3, not 0', async () => {
    const run = await cli({});

    expect(run.status, run.stdout + run.stderr).toBe(3);
    expect(run.stdout).toMatch(/replica-share +│ NOT CHECKED │ no 2xx response carried X-Replica/);
    expect(run.stdout).toContain(
      'verdict: NOT CHECKED: 5 of 7 checks passed, 0 failed, 2 not checked (replica-share; direct comparison, not required); exit 3: a required check could not run (accept it with ACCEPT_NOT_CHECKED=replica-share)',
    );
  });

  test('When the user accepts that with ACCEPT_NOT_CHECKED=replica-share, then the exit code is 0 and the verdict still says it was not checked', async () => {
    const run = await cli({ ACCEPT_NOT_CHECKED: 'replica-share' });

    expect(run.status, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toContain('verdict: PASS: 5 of 7 checks passed, 0 failed, 2 not checked (replica-share, accepted by ACCEPT_NOT_CHECKED; direct comparison, not required)');
  });
});
