import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runLoadtest, type LoadtestOutcome } from '../../loadtest/loadtest.js';
import { loadLoadtestOptions } from '../../loadtest/options.js';
import { startTestFormation, unsafeReplica, type TestFormation } from '../support/formation.js';

// `make loadtest`'s own code path (runLoadtest), on a short run.
const shortRun = loadLoadtestOptions(['--requests', '3000', '--connections', '50', '--duration', '1', '--concurrencies', '20'], {});

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
      expect(await page.textContent('body')).toContain('PASS: every invariant holds');
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
    expect(invariants).toEqual(expect.arrayContaining(['count-delta', 'unique-numbers']));
    expect(outcome.report.accuracy.report.figures.duplicateNumbers).toBeGreaterThan(2000);
  });
});
