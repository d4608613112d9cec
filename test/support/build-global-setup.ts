import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

// What `make build` compiles (the Makefile's SOURCES): a change to any of them after the last build
// would have the tests run yesterday's replicas.
const SOURCE_DIRS = ['web', 'admin', 'formation', 'loadtest'];
const CONFIGS = ['tsconfig.json', 'tsconfig.build.json'];
const STAMP = 'dist/.built';

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return full === path.join('loadtest', 'k6') ? [] : sources(full);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [full] : [];
  });
}

/** The sources changed since dist/ was last built, newest first; throws when dist/ was never built. */
export function staleSources(): string[] {
  let built: number;
  try {
    built = statSync(STAMP).mtimeMs;
  } catch {
    throw new Error('dist/ is missing: run `make test` (or `make build`) first');
  }
  // The page's assets are copied into dist/ by the build too.
  const assets = readdirSync(path.join('web', 'assets')).map((name) => path.join('web', 'assets', name));
  return [...SOURCE_DIRS.flatMap(sources), ...assets, ...CONFIGS]
    .map((file) => ({ file, changed: statSync(file).mtimeMs }))
    .filter(({ changed }) => changed > built)
    .sort((a, b) => b.changed - a.changed)
    .map(({ file }) => file);
}

/** Cluster tests run the built replicas (dist/), as production does: `make test` builds first. */
export default function setup() {
  const stale = staleSources();
  if (stale.length > 0) {
    throw new Error(`dist/ is older than ${stale.slice(0, 3).join(', ')}${stale.length > 3 ? ` and ${stale.length - 3} more` : ''}: run \`make build\` first`);
  }
}
