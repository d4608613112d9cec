import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestFormation, type TestFormation } from '../support/formation.js';

// Debian's chromium, never a browser a tool downloads. The flags keep it off
// the network: this machine has none beyond the package registries.
// Playwright gives it a fresh, throw-away profile.
const launchChromium = () =>
  chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });

describe('the welcome page in a browser, through the load balancer', () => {
  let formation: TestFormation;
  let browser: Browser;
  beforeAll(async () => {
    formation = await startTestFormation({ replicas: 4 });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await formation?.destroy();
  });

  test('When a visitor opens the page and reloads it, then each load counts exactly one visit and names the replica', async () => {
    const page = await browser.newPage();
    const before = await formation.count();

    await page.goto(formation.lbUrl);
    const first = Number(await page.getByTestId('count').textContent());
    const firstReplica = await page.getByTestId('replica').textContent();
    await page.reload();
    const second = Number(await page.getByTestId('count').textContent());
    const secondReplica = await page.getByTestId('replica').textContent();
    if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT });

    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Welcome to headcount');
    expect([first, second]).toEqual([before + 1, before + 2]);
    expect(firstReplica).toMatch(/^web-[1-4]$/);
    expect(secondReplica).toMatch(/^web-[1-4]$/);
    expect(secondReplica).not.toBe(firstReplica); // round robin
    // The browser also asked for /favicon.ico; that did not count.
    expect(await formation.count()).toBe(before + 2);
  });
});
