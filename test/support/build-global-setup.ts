import { existsSync } from 'node:fs';

/** Cluster tests run the built replicas (dist/), as production does: `make test` builds first. */
export default function setup() {
  if (!existsSync('dist/web/server.js')) throw new Error('dist/ is missing: run `make test` (or `npm run build`) first');
}
