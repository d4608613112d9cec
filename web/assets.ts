import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Express } from 'express';

// The page's own files (web/assets/), served by every replica: no CDN, no
// external font. `npm run build` copies them next to the compiled code
// (dist/web/assets/), so the Docker image and the release artifact, which
// both take dist/, carry them.
const DIR = new URL('./assets/', import.meta.url);

const TYPES: Record<string, string> = {
  'live.js': 'text/javascript; charset=utf-8',
  'page.css': 'text/css; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
};

export interface Asset {
  body: Buffer;
  type: string;
  etag: string;
  /** The URL the page links: the content's hash in the query, so a release's change is fetched anew. */
  url: string;
}

let loaded: Map<string, Asset> | undefined;

/** Every asset, read once per process. */
export function loadAssets(): Map<string, Asset> {
  loaded ??= new Map(
    Object.entries(TYPES).map(([name, type]) => {
      const body = readFileSync(new URL(name, DIR));
      const hash = createHash('sha256').update(body).digest('base64url').slice(0, 12);
      return [name, { body, type, etag: `"${hash}"`, url: `/assets/${name}?v=${hash}` }];
    }),
  );
  return loaded;
}

/** The URL of one asset, as the page links it. */
export const assetUrl = (name: keyof typeof TYPES & string) => loadAssets().get(name)!.url;

/** `GET /assets/<name>`: cacheable, with an ETag; never counts a visit. */
export function registerAssets(app: Express) {
  const assets = loadAssets();
  app.get('/assets/:name', (req, res, next) => {
    const asset = assets.get(req.params.name);
    if (!asset) return next();
    // An hour, then revalidated by ETag (a 304). The page links each file with
    // its hash, so a new release's file is a new URL and never waits out this.
    res.set({ 'Content-Type': asset.type, 'Cache-Control': 'public, max-age=3600', ETag: asset.etag, 'X-Content-Type-Options': 'nosniff' });
    if (req.headers['if-none-match'] === asset.etag) return void res.status(304).end();
    res.status(200).end(asset.body);
  });
}
