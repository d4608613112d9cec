import { describe, expect, test } from 'vitest';
import { createPage } from '../../web/page.js';

describe('the welcome page (web/page.ts)', () => {
  test('When a replica name holds HTML characters, then the page shows them escaped, never as markup', () => {
    const html = createPage(`<b>"web"&'1'</b>`)(7);

    expect(html).toContain('<code data-testid="replica">&lt;b&gt;&quot;web&quot;&amp;&#39;1&#39;&lt;/b&gt;</code>');
    expect(html).not.toContain('<b>');
  });

  test('When two visitors get the same replica page, then each sees its own number and ordinal', () => {
    const render = createPage('web-1');

    expect(render(1)).toMatch(/<title>headcount: visitor 1<\/title>[\s\S]*data-testid="count">1<\/p>[\s\S]*the 1st visit/);
    expect(render(112)).toMatch(/<title>headcount: visitor 112<\/title>[\s\S]*data-testid="count">112<\/p>[\s\S]*the 112th visit/);
  });
});
