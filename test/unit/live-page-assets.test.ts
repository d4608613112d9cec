import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { serveApp } from '../support/http-app.js';
import { createMemoryStore } from '../support/memory-store.js';

const css = readFileSync('web/assets/page.css', 'utf8');

/** The custom properties of one CSS block: `--name: #rrggbb;`. */
const colours = (block: string) => Object.fromEntries([...block.matchAll(/--([a-z-]+):\s*(#[0-9a-f]{6})/gi)].map((m) => [m[1]!, m[2]!]));
const light = colours(css.split('@media (prefers-color-scheme: dark)')[0]!);
const dark = { ...light, ...colours(css.split('@media (prefers-color-scheme: dark)')[1]!) };

// WCAG 2.x relative luminance and contrast ratio: https://www.w3.org/TR/WCAG22/#dfn-contrast-ratio
const luminance = (hex: string) => {
  const [r, g, b] = [1, 3, 5].map((i) => {
    const c = parseInt(hex.slice(i, i + 2), 16) / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
};
export const contrast = (a: string, b: string) => {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi! + 0.05) / (lo! + 0.05);
};

describe('the page\'s colours (web/assets/page.css), light and dark', () => {
  test('When the footer grey of the first page is measured, then it is under AA by a hair, which is why it changed', () => {
    expect(contrast('#6e6e73', '#f4f1ea')).toBeLessThan(4.5);
  });

  test.each([
    ['light', light],
    ['dark', dark],
  ])('When every text colour is measured on every background it sits on (%s), then each is at least 4.5:1 (WCAG AA), and the bars 3:1', (_scheme, c) => {
    const text = {
      'fg on bg': contrast(c.fg!, c.bg!),
      'fg on card': contrast(c.fg!, c.card!),
      'muted on bg': contrast(c.muted!, c.bg!),
      'muted on card': contrast(c.muted!, c.card!),
      'gone on card': contrast(c.gone!, c.card!),
      'button text on accent': contrast(c['accent-fg']!, c.accent!),
      'code (bg on fg)': contrast(c.bg!, c.fg!),
    };
    const graphics = { 'bar on card': contrast(c.accent!, c.card!), 'muted bar on card': contrast(c.muted!, c.card!) };

    for (const [pair, ratio] of Object.entries(text)) expect({ pair, ok: ratio >= 4.5 }).toEqual({ pair, ok: true });
    for (const [pair, ratio] of Object.entries(graphics)) expect({ pair, ok: ratio >= 3 }).toEqual({ pair, ok: true });
  });

  test('When the assets are read, then none loads anything from elsewhere (no CDN, no web font)', () => {
    const all = ['page.css', 'live.js', 'favicon.svg'].map((name) => readFileSync(`web/assets/${name}`, 'utf8')).join('\n');

    expect(all).not.toMatch(/@import|@font-face|url\(\s*['"]?https?:|(?:src|href)=["']https?:|fetch\(['"]https?:/);
    expect(all).not.toMatch(/EventSource\(['"]https?:/);
  });
});

describe('GET /assets/<name>', () => {
  test('When the page\'s script, style and icon are fetched, then each comes with its type, cache headers and an ETag, a repeat is a 304, and nothing is counted', async () => {
    const memory = createMemoryStore();
    const app = await serveApp(memory.store);
    try {
      const answers = await Promise.all(
        ['live.js', 'page.css', 'favicon.svg'].map(async (name) => {
          const response = await fetch(`${app.url}/assets/${name}?v=anything`);
          const again = await fetch(`${app.url}/assets/${name}`, { headers: { 'if-none-match': response.headers.get('etag')! } });
          return { name, status: response.status, type: response.headers.get('content-type'), cache: response.headers.get('cache-control'), etag: response.headers.get('etag'), again: again.status, body: (await response.text()).length > 0 };
        }),
      );
      const missing = await fetch(`${app.url}/assets/nope.js`);

      expect(answers).toEqual([
        { name: 'live.js', status: 200, type: 'text/javascript; charset=utf-8', cache: 'public, max-age=3600', etag: expect.stringMatching(/^"[\w-]{12}"$/), again: 304, body: true },
        { name: 'page.css', status: 200, type: 'text/css; charset=utf-8', cache: 'public, max-age=3600', etag: expect.stringMatching(/^"[\w-]{12}"$/), again: 304, body: true },
        { name: 'favicon.svg', status: 200, type: 'image/svg+xml', cache: 'public, max-age=3600', etag: expect.stringMatching(/^"[\w-]{12}"$/), again: 304, body: true },
      ]);
      expect(missing.status).toBe(404);
      expect(memory.count).toBe(0);
    } finally {
      await app.close();
    }
  });

  test('When GET /api/live is asked of an app without a live hub, then it is a 404: the route exists only where the replica wires one', async () => {
    const app = await serveApp(createMemoryStore().store);
    try {
      expect((await fetch(`${app.url}/api/live`)).status).toBe(404);
    } finally {
      await app.close();
    }
  });
});

describe('the assets on their way to dist/, the image and the artifact', () => {
  test('When the build runs, then it copies web/assets into dist/web/assets; the image takes all of dist/ and the build context keeps web/assets', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: { build: string } };
    const dockerfile = readFileSync('web/Dockerfile', 'utf8');
    const ignored = readFileSync('.dockerignore', 'utf8').split('\n').filter((line) => line.trim() && !line.startsWith('#'));

    expect(pkg.scripts.build).toMatch(/cp -R web\/assets dist\/web\/assets/);
    expect(dockerfile).toMatch(/^RUN npm run build$/m);
    expect(dockerfile).toMatch(/^COPY --from=build \/app\/dist \.\/dist$/m);
    expect(ignored.filter((pattern) => /^(web|web\/assets|\*\.(js|css|svg))\/?$/.test(pattern))).toEqual([]);
  });
});
