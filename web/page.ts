import escapeHtml from 'escape-html';

const ordinal = (n: number) => {
  const tens = n % 100;
  if (tens >= 11 && tens <= 13) return `${n}th`;
  return `${n}${({ 1: 'st', 2: 'nd', 3: 'rd' } as Record<number, string>)[n % 10] ?? 'th'}`;
};

/** The page's greeting: the line a release's typo fix changes (docs/releases.md). */
export const WELCOME = 'Welcome to headcount';

// Everything but the count is the same on every visit: built once, when the
// module loads (the head and style) and when the replica builds its app (the
// replica's escaped name), not on every request.
const HEAD = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>headcount: visitor `;
const STYLE_AND_GREETING = `</title>
<style>
  body { font: 18px/1.5 system-ui, sans-serif; margin: 0; min-height: 100vh; display: grid; place-items: center;
         background: #f4f1ea; color: #1d1d1f; }
  main { text-align: center; padding: 2rem; }
  h1 { font-size: 1.6rem; font-weight: 600; margin: 0 0 1rem; }
  .count { font-size: 4.5rem; font-weight: 700; letter-spacing: -0.02em; margin: 0; font-variant-numeric: tabular-nums; }
  .replica code { background: #1d1d1f; color: #f4f1ea; padding: 0.1rem 0.5rem; border-radius: 4px; }
  footer { margin-top: 2rem; font-size: 0.85rem; color: #6e6e73; }
</style>
</head>
<body>
<main>
  <h1>${WELCOME}</h1>
  <p>You are visitor number</p>
  <p class="count" data-testid="count">`;

/**
 * The welcome page of one replica: who you are in the count, and which
 * replica counted you, and which release it runs. Returns the renderer for a
 * visitor number.
 */
export function createPage(replica: string, release = 'dev'): (count: number) => string {
  const tail = `</p>
  <p class="replica">Served by replica <code data-testid="replica">${escapeHtml(replica)}</code></p>
  <footer>Reload to be counted again. <a href="/api/count">Current count as JSON</a>.
    Release <code data-testid="release">${escapeHtml(release)}</code></footer>
</main>
</body>
</html>
`;
  return (count) =>
    `${HEAD}${count}${STYLE_AND_GREETING}${count}</p>
  <p>the ${ordinal(count)} visit counted, exactly once, across every replica.${tail}`;
}
