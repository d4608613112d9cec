import { describe, expect, test } from 'vitest';
import { createPage, formatCount } from '../../web/page.js';

describe('the welcome page (web/page.ts)', () => {
  test('When a replica name holds HTML characters, then the page shows them escaped, never as markup', () => {
    const { html } = createPage(`<b>"web"&'1'</b>`)(7);

    expect(html).toContain('<code data-testid="replica">&lt;b&gt;&quot;web&quot;&amp;&#39;1&#39;&lt;/b&gt;</code>');
    expect(html).not.toContain('<b>');
  });

  test('When two visitors get the same replica page, then each sees its own number and ordinal', () => {
    const render = (n: number) => createPage('web-1')(n).html;

    expect(render(1)).toMatch(/<title>headcount: visitor 1<\/title>[\s\S]*data-testid="count">1<\/p>[\s\S]*the 1st visit/);
    expect(render(112)).toMatch(/<title>headcount: visitor 112<\/title>[\s\S]*data-testid="count">112<\/p>[\s\S]*the 112th visit/);
  });

  test('When the number is large, then it has thousands separators, in the title, the number and the sentence', () => {
    const { html } = createPage('web-1')(1_234_567);

    expect(html).toMatch(/<title>headcount: visitor 1,234,567<\/title>[\s\S]*data-testid="count">1,234,567<\/p>[\s\S]*the 1,234,567th visit/);
  });

  test('When the page is built, then it says in one sentence what happened, and links its own icon, style and script, nothing from elsewhere', () => {
    const { html } = createPage('web-1')(3);
    const urls = [...html.matchAll(/(?:href|src)="([^"]+)"/g)].map((m) => m[1]);

    expect(html).toContain('You are the 3rd visit, counted exactly once by replica <code data-testid="replica">web-1</code>.</p>');
    expect(html).toMatch(/<link rel="icon" href="\/assets\/favicon\.svg\?v=[\w-]{12}" type="image\/svg\+xml">/);
    expect(urls.sort()).toEqual([expect.stringMatching(/^\/api\/count$/), expect.stringMatching(/^\/assets\/favicon\.svg\?v=/), expect.stringMatching(/^\/assets\/live\.js\?v=/), expect.stringMatching(/^\/assets\/page\.css\?v=/)]);
    expect(html).not.toMatch(/https?:\/\//);
  });

  test('When the page is built, then the live panel is an empty, hidden place for the script to build, not markup sent with every visit', () => {
    const { html } = createPage('web-1')(3);

    expect(html).toContain('<section class="live" id="live" aria-labelledby="live-title" data-testid="live" hidden></section>');
    expect(html).not.toContain('live-replicas');
    expect(Buffer.byteLength(html)).toBeLessThan(1_300);
  });

  test('When a page is rendered for any count, then its byte length is the UTF-8 length of its HTML (the Content-Length it is sent with)', () => {
    // The fixed parts are measured with Buffer.byteLength, so non-ASCII text in
    // them would be counted right too; names and release are what config allows.
    const render = createPage('web-1.a_B', 'r42-0b1c2d3');
    for (const n of [0, 1, 11, 12, 13, 21, 999, 1_000, 1_234_567, 9_007_199_254_740_991]) {
      const page = render(n);
      expect(page.bytes).toBe(Buffer.byteLength(page.html));
    }
  });

  test('When a count is formatted, then it reads exactly as Intl.NumberFormat en-US writes it (the page script\'s format)', () => {
    const intl = new Intl.NumberFormat('en-US');
    const samples = [0, 1, 12, 123, 1_000, 12_345, 123_456, 1_234_567, 10_000_000, 999_999_999, Number.MAX_SAFE_INTEGER];
    for (let i = 0; i < 1_000; i++) samples.push(Math.floor(Math.random() * 10 ** (1 + (i % 15))));
    // Outside what a count can be, it is Intl itself.
    samples.push(-1_234, 1.5, 2 ** 60);

    expect(samples.map(formatCount)).toEqual(samples.map((n) => intl.format(n)));
  });
});
