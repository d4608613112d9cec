import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { waitFor } from '../../formation/wait.js';
import { fromRoot } from '../../formation/paths.js';
import type { LiveSnapshot } from '../../web/live-hub.js';
import { readSnapshot } from '../support/live-snapshot.js';
import { startTestFormation, visitAll, type TestFormation } from '../support/formation.js';

// Debian's chromium, never a browser a tool downloads; flags keep it off the network.
const launchChromium = () =>
  chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });

/** Where the screenshot goes with the test output (kept after the run; .run/ is ignored by git). */
const OUTPUT_DIR = fromRoot('.run', 'test-output');

const digits = (text: string | null) => Number((text ?? '').replace(/,/g, ''));

/** The live panel's rows as the visitor sees them. */
const panelRows = (page: Page) =>
  page.$$eval('[data-testid="live-replicas"] li', (items) =>
    items.map((li) => ({ id: (li as HTMLElement).dataset.replica!, live: (li as HTMLElement).dataset.live === 'true', n: li.querySelector('.n')!.textContent! })),
  );
const panelTotal = async (page: Page) => digits(await page.getByTestId('live-total').textContent());

describe('the live page in Chromium, through nginx and 4 replicas', () => {
  let formation: TestFormation;
  let browser: Browser;
  let page: Page;
  const consoleErrors: string[] = [];
  const counterKey = `test:live:${randomUUID()}`;

  beforeAll(async () => {
    formation = await startTestFormation({ replicas: 4, replicaEnv: { COUNTER_KEY: counterKey } });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 420, height: 900 } });
    page.on('console', (message) => void (message.type() === 'error' && consoleErrors.push(message.text())));
    page.on('pageerror', (error) => void consoleErrors.push(error.message));
  });
  afterAll(async () => {
    await browser?.close();
    await formation?.destroy();
  });

  test('When a visitor opens the page and reloads it, then each load counts exactly one visit (its script, style, icon and stream count nothing), and no console error appears', async () => {
    const before = await formation.count();

    await page.goto(formation.lbUrl);
    await waitFor('the live panel', async () => (await panelTotal(page)) > 0, 10_000, 100);
    const first = digits(await page.getByTestId('count').textContent());
    await page.reload();
    await waitFor('the live panel after the reload', async () => (await panelTotal(page)) > 0, 10_000, 100);
    const second = digits(await page.getByTestId('count').textContent());
    // Two more ticks with the stream open: still nothing counted.
    await page.waitForTimeout(2_500);

    expect([first, second]).toEqual([before + 1, before + 2]);
    expect(await formation.count()).toBe(before + 2);
    expect(await panelTotal(page)).toBe(before + 2);
    expect(consoleErrors).toEqual([]);
  });

  test('When several visits arrive one after another, then X-Replica shows the rotation over all 4 replicas', async () => {
    const replicas: string[] = [];
    for (let i = 0; i < 8; i++) {
      const response = await fetch(formation.lbUrl, { headers: { accept: 'text/html' } });
      replicas.push(response.headers.get('x-replica')!);
    }

    expect(new Set(replicas)).toEqual(new Set(['web-1', 'web-2', 'web-3', 'web-4']));
  });

  test('When another client makes visits, then the panel lists all 4 replicas live and its total rises without a reload', async () => {
    await waitFor('4 live replicas in the panel', async () => (await panelRows(page)).filter((r) => r.live && r.id.startsWith('web-')).length === 4, 10_000, 100);
    const before = await formation.count();

    const visits = await visitAll(`${formation.lbUrl}/api/visits`, 12, { method: 'POST' });
    await waitFor('the panel total to rise by 12', async () => (await panelTotal(page)) === before + 12, 5_000, 100);
    const rows = await panelRows(page);

    expect(visits.every((v) => v.status === 200)).toBe(true);
    expect(rows.filter((r) => r.live).map((r) => r.id)).toEqual(expect.arrayContaining(['web-1', 'web-2', 'web-3', 'web-4']));
    // Shares plus the remainder row are the total the panel shows.
    expect(rows.reduce((sum, r) => sum + digits(r.n), 0)).toBe(before + 12);
    expect(consoleErrors).toEqual([]);
  });

  test('When the visitor presses "count me", then exactly one visit is counted and the page shows the new number without a reload', async () => {
    const before = await formation.count();
    const navigations: string[] = [];
    page.on('framenavigated', (frame) => navigations.push(frame.url()));

    await page.getByTestId('count-me').click();
    await waitFor('the new number', async () => digits(await page.getByTestId('count').textContent()) === before + 1, 5_000, 50);
    await waitFor('the panel to follow', async () => (await panelTotal(page)) === before + 1, 5_000, 100);
    // Let the rate chart draw a few seconds of traffic for the screenshot.
    await visitAll(`${formation.lbUrl}/api/visits`, 30, { method: 'POST' });
    await page.waitForTimeout(2_500);
    mkdirSync(OUTPUT_DIR, { recursive: true });
    const screenshot = path.join(OUTPUT_DIR, 'live-page.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    // The same in dark mode, and on a small phone: nothing wider than the screen.
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.screenshot({ path: path.join(OUTPUT_DIR, 'live-page-dark.png'), fullPage: true });
    const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize({ width: 360, height: 740 });
    const phoneWidth = await page.evaluate(() => document.documentElement.scrollWidth);
    await page.setViewportSize({ width: 420, height: 900 });
    console.log(`screenshots: ${screenshot}, live-page-dark.png beside it`);

    expect(await formation.count()).toBe(before + 1 + 30);
    expect(navigations).toEqual([]);
    expect(background).toBe('rgb(22, 22, 24)');
    expect(phoneWidth).toBeLessThanOrEqual(360);
    expect(await page.title()).toBe(`headcount: visitor ${(before + 1).toLocaleString('en-US')}`);
    expect(consoleErrors).toEqual([]);
  });

  test('When a replica is killed (SIGKILL, not restarted) under the open page, then the panel marks it gone within seconds and keeps updating', async () => {
    const victim = formation.replicas[3]!;
    const pid = victim.service.pid!;
    expect(pid).toBeGreaterThan(0);

    const killedAt = performance.now();
    // The supervisor's own kill (SIGKILL to the PID's group) also keeps it from restarting the replica.
    victim.service.killNow();
    await waitFor('web-4 gone from the panel', async () => (await panelRows(page)).every((r) => r.id !== 'web-4' || !r.live), 15_000, 100);
    const goneAfterMs = performance.now() - killedAt;
    const before = await formation.count();
    await visitAll(`${formation.lbUrl}/api/visits`, 6, { method: 'POST' });
    await waitFor('the panel to keep updating', async () => (await panelTotal(page)) === before + 6, 10_000, 100);
    const rows = await panelRows(page);

    console.log(`web-4 marked gone ${(goneAfterMs / 1000).toFixed(1)} s after SIGKILL`);
    expect(() => process.kill(pid, 0)).toThrow();
    expect(goneAfterMs).toBeLessThan(8_000);
    expect(rows.filter((r) => r.live).map((r) => r.id).sort()).toEqual(['web-1', 'web-2', 'web-3']);
    expect(rows.find((r) => r.id === 'web-4')).toMatchObject({ live: false });
  });

  test('When the replica holding the page\'s stream gets SIGTERM, then it drains within its grace at once (it never waits on the stream) and the page reconnects to another', async () => {
    const via = /via (web-\d)/.exec((await page.getByTestId('live-status').textContent()) ?? '')?.[1];
    const holder = formation.replicas.find((r) => r.id === via);
    expect(holder, `the stream's replica (${via})`).toBeDefined();
    const pid = holder!.service.pid!;
    const lines = formation.lines.length;

    const started = performance.now();
    process.kill(pid, 'SIGTERM');
    await waitFor(`${via} (pid ${pid}) to exit`, async () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    }, 10_000, 20);
    const drainedMs = performance.now() - started;
    await waitFor('the stream from another replica', async () => !(await page.getByTestId('live-status').textContent())?.includes(`via ${via}`), 15_000, 100);
    const before = await formation.count();
    await visitAll(`${formation.lbUrl}/api/visits`, 3, { method: 'POST' });
    await waitFor('the panel to keep updating', async () => (await panelTotal(page)) === before + 3, 10_000, 100);

    console.log(`${via} with an open stream drained and exited ${drainedMs.toFixed(0)} ms after SIGTERM (grace 10000 ms)`);
    expect(drainedMs).toBeLessThan(3_000);
    expect(formation.lines.slice(lines).join('\n')).not.toMatch(/grace period over/);
  });
});

const execFileAsync = promisify(execFile);

describe('the per-replica breakdown through the load balancer', () => {
  let formation: TestFormation;
  const counterKey = `test:breakdown:${randomUUID()}`;
  beforeAll(async () => {
    formation = await startTestFormation({ replicas: 4, replicaEnv: { COUNTER_KEY: counterKey } });
  });
  afterAll(() => formation?.destroy());

  /** The admin task, as `make reset-count VALUE=n` runs it locally: its own Redis user. */
  const resetCount = (value: number) =>
    execFileAsync(process.execPath, ['dist/admin/reset-count.js', String(value)], {
      env: { PATH: process.env.PATH, NODE_ENV: 'production', REDIS_URL: formation.adminRedisUrl, COUNTER_KEY: counterKey },
    });
  const sum = (s: LiveSnapshot) => s.replicas.reduce((total, r) => total + r.count, 0);

  test('When 800 visits arrive at once, and then the count is reset to 0 and to 500 with more visits after each, then the shares plus the remainder are always the total', async () => {
    const load = await visitAll(`${formation.lbUrl}/api/visits`, 800, { method: 'POST' });
    const underLoad = await readSnapshot(formation.lbUrl);

    const toZero = await resetCount(0);
    const afterZero = await readSnapshot(formation.lbUrl);
    await visitAll(`${formation.lbUrl}/api/visits`, 40, { method: 'POST' });
    const zeroPlus40 = await readSnapshot(formation.lbUrl);

    const toN = await resetCount(500);
    const afterN = await readSnapshot(formation.lbUrl);
    await visitAll(`${formation.lbUrl}/api/visits`, 40, { method: 'POST' });
    const nPlus40 = await readSnapshot(formation.lbUrl);

    expect(load.every((v) => v.status === 200)).toBe(true);
    expect(underLoad).toMatchObject({ total: 800, remainder: 0 });
    expect(sum(underLoad)).toBe(800);
    expect(underLoad.replicas.filter((r) => r.count > 0).map((r) => r.id).sort()).toEqual(['web-1', 'web-2', 'web-3', 'web-4']);
    expect(toZero.stdout.trim()).toBe(`reset ${counterKey}: 800 -> 0; per-replica breakdown cleared (remainder 0)`);
    expect(afterZero).toMatchObject({ total: 0, remainder: 0 });
    expect(sum(afterZero)).toBe(0);
    expect(zeroPlus40).toMatchObject({ total: 40, remainder: 0 });
    expect(sum(zeroPlus40)).toBe(40);
    expect(toN.stdout.trim()).toBe(`reset ${counterKey}: 40 -> 500; per-replica breakdown cleared (remainder 500)`);
    expect(afterN).toMatchObject({ total: 500, remainder: 500 });
    expect(nPlus40).toMatchObject({ total: 540, remainder: 500 });
    expect(sum(nPlus40)).toBe(40);
  });
});
