const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const ordinal = (n: number) => {
  const tens = n % 100;
  if (tens >= 11 && tens <= 13) return `${n}th`;
  return `${n}${({ 1: 'st', 2: 'nd', 3: 'rd' } as Record<number, string>)[n % 10] ?? 'th'}`;
};

/** The welcome page: who you are in the count, and which replica counted you. */
export function renderPage({ count, replica }: { count: number; replica: string }): string {
  const who = escapeHtml(replica);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>headcount: visitor ${count}</title>
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
  <h1>Welcome to headcount</h1>
  <p>You are visitor number</p>
  <p class="count" data-testid="count">${count}</p>
  <p>the ${ordinal(count)} visit counted, exactly once, across every replica.</p>
  <p class="replica">Served by replica <code data-testid="replica">${who}</code></p>
  <footer>Reload to be counted again. <a href="/api/count">Current count as JSON</a></footer>
</main>
</body>
</html>
`;
}
