import escapeHtml from 'escape-html';
import { assetUrl } from './assets.js';

const numbers = new Intl.NumberFormat('en-US');
/**
 * 1234567 -> "1,234,567": what Intl.NumberFormat('en-US') writes, and the
 * page's script with it (web/assets/live.js), without Intl's cost on every
 * visit for the numbers a count can be (whole, not negative).
 */
export function formatCount(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) return numbers.format(n);
  const digits = String(n);
  let shown = digits.slice(0, digits.length % 3 || 3);
  for (let i = shown.length; i < digits.length; i += 3) shown += `,${digits.slice(i, i + 3)}`;
  return shown;
}

const ordinal = (n: number) => {
  const tens = n % 100;
  if (tens >= 11 && tens <= 13) return `${formatCount(n)}th`;
  return `${formatCount(n)}${({ 1: 'st', 2: 'nd', 3: 'rd' } as Record<number, string>)[n % 10] ?? 'th'}`;
};

/** The page's greeting: the line a release's typo fix changes (docs/releases.md). */
export const WELCOME = 'Welcome to headcount';

/** One rendering of the page, and its length in UTF-8 bytes (its Content-Length). */
export interface RenderedPage {
  html: string;
  bytes: number;
}

/**
 * The welcome page of one replica: who you are in the count, which replica
 * counted you and which release it runs, and the place of the live panel.
 * The script (web/assets/live.js, which browsers cache) builds the panel and
 * fills it from GET /api/live: the panel works only with the script, and its
 * markup is then not in every visit's answer (docs/load-testing.md measures
 * what that saves). Everything but the count is built once per replica, not
 * per request, and so is the byte length of those parts: what a visit adds is
 * ASCII (digits, commas, an ordinal suffix), one byte a character. Returns the
 * renderer for a visitor number.
 */
export function createPage(replica: string, release = 'dev'): (count: number) => RenderedPage {
  const head = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<link rel="icon" href="${assetUrl('favicon.svg')}" type="image/svg+xml">
<link rel="stylesheet" href="${assetUrl('page.css')}">
<script type="module" src="${assetUrl('live.js')}"></script>
<title>headcount: visitor `;
  const greeting = `</title>
</head>
<body>
<main>
  <h1>${WELCOME}</h1>
  <p class="label">You are visitor number</p>
  <p class="count" id="count" data-testid="count">`;
  const tail = `.</p>
  <button type="button" id="count-me" data-testid="count-me">Count me again</button>
  <p class="label" id="count-status" role="status" aria-live="polite"></p>
  <section class="live" id="live" aria-labelledby="live-title" data-testid="live" hidden></section>
  <footer>Reload or press the button to be counted again. <a href="/api/count">Current count as JSON</a>.
    Release <code data-testid="release">${escapeHtml(release)}</code></footer>
</main>
</body>
</html>
`;
  const replicaCode = `<code data-testid="replica">${escapeHtml(replica)}</code>`;
  const middle = `</p>
  <p class="sentence" id="sentence">You are the `;
  const end = ` visit, counted exactly once by replica ${replicaCode}${tail}`;
  const fixedBytes = Buffer.byteLength(head + greeting + middle + end);
  return (count) => {
    const shown = formatCount(count);
    const nth = ordinal(count);
    return { html: `${head}${shown}${greeting}${shown}${middle}${nth}${end}`, bytes: fixedBytes + 2 * shown.length + nth.length };
  };
}
