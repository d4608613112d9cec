import express, { type Request, type Response } from 'express';
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { StoreRefusedError, StoreUnavailableError, type CounterStore } from './counter-store.js';
import type { Metrics } from './metrics.js';
import { createErrorHandler, methodNotAllowed, notFound } from './error-handler.js';
import { closeConnectionsWhenDraining, type Lifecycle } from './lifecycle.js';
import { registerAssets } from './assets.js';
import type { LiveHub } from './live-hub.js';
import { registerLiveRoute } from './live-route.js';
import { createPage } from './page.js';
import { createRequestLog } from './request-log.js';
import type { RequestStats } from './supervisor-channel.js';

export interface AppDeps {
  store: CounterStore;
  replicaId: string;
  /** The release this replica runs (RELEASE_ID); `dev` when never released. */
  release?: string;
  logger: Logger;
  lifecycle: Lifecycle;
  /** Counted per request for the local supervisor's traffic line (web/supervisor-channel.ts). */
  stats?: RequestStats;
  /** The replica's live hub: serves GET /api/live when given (web/live-hub.ts). */
  live?: LiveHub;
  /** Requests by route and status, and their duration (web/metrics.ts); none when METRICS_PORT=off. */
  metrics?: Metrics;
}

// Nginx's $request_id is 32 hex digits; direct callers may send a UUID.
const REQUEST_ID = /^[A-Za-z0-9_-]{8,128}$/;

class BadRequest extends Error {
  readonly status = 400;
}

function requestIdOf(req: Request): string | undefined {
  // Never an array, whatever the types say: Node joins a repeated header
  // (all but Set-Cookie) into one value, "a, b", which the pattern rejects.
  // Only then ask for the header lines as sent, so the hot path never builds
  // headersDistinct.
  const id = req.headers['x-request-id'] as string | undefined;
  if (id === undefined || REQUEST_ID.test(id)) return id;
  if ((req.headersDistinct['x-request-id']?.length ?? 0) > 1) throw new BadRequest('X-Request-Id must be given once');
  throw new BadRequest('X-Request-Id must be 8-128 letters, digits, "_" or "-"');
}

/**
 * The answer's format for the Accept headers nearly every visit sends, without
 * running content negotiation: exactly `application/json` (API clients, load
 * tests), and `text/html` or a list starting `text/html,` (every browser), in
 * which HTML is listed first at q=1, so negotiation could only pick HTML.
 * Undefined: negotiate (req.accepts). test/unit/counting-rules.test.ts holds
 * this to Express's negotiation.
 */
export function quickFormat(accept: string | undefined): 'html' | 'json' | undefined {
  if (accept === 'application/json') return 'json';
  if (accept === 'text/html' || accept?.startsWith('text/html,')) return 'html';
  return undefined;
}

/**
 * Writes a counting response straight to Node's response: the hot path skips
 * res.json/res.send, whose ETag, freshness and charset work a never-cacheable
 * answer does not need (measured: a fifth of the replica's CPU per visit).
 */
function reply(res: ServerResponse, contentType: string, body: string, bytes = Buffer.byteLength(body)) {
  res.writeHead(200, {
    'Content-Type': contentType,
    'Content-Length': bytes,
    'Cache-Control': 'no-store',
    Vary: 'Accept',
  });
  res.end(body);
}

/** Builds the Express app. It never listens: web/server.ts does (and tests may). */
export function createApp({ store, replicaId, release = 'dev', logger, lifecycle, stats, live, metrics }: AppDeps) {
  const app = express();
  app.disable('x-powered-by');
  // Every counting response is unique: an ETag would only cost a hash.
  app.set('etag', false);
  // No route reads a query string: don't parse one on every request.
  app.set('query parser', false);

  app.use(createRequestLog(logger, replicaId, stats, release, metrics));
  app.use(closeConnectionsWhenDraining(lifecycle));

  const replicaJson = JSON.stringify(replicaId);
  const renderPage = createPage(replicaId, release);
  const countAndReply = async (req: Request, res: Response, format: 'html' | 'json') => {
    const { number: count } = await store.countVisit(requestIdOf(req));
    if (format === 'json') reply(res, 'application/json; charset=utf-8', `{"count":${count},"replica":${replicaJson}}`);
    else {
      const page = renderPage(count);
      reply(res, 'text/html; charset=utf-8', page.html, page.bytes);
    }
  };

  // HEAD gets GET's headers and counts nothing. Registered before GET, because
  // Express otherwise runs the GET handler for HEAD.
  app.head('/', (req, res) => {
    const format = req.accepts(['html', 'json']);
    if (!format) return void res.status(406).end();
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Vary', 'Accept');
    res.type(format).end();
  });
  app.get('/', async (req, res) => {
    const format = quickFormat(req.headers.accept) ?? (req.accepts(['html', 'json']) as 'html' | 'json' | false);
    // reply() sets Vary on the counting answer; the refusal needs it too.
    if (!format) return void res.status(406).set('Vary', 'Accept').json({ error: 'acceptable types: text/html, application/json' });
    await countAndReply(req, res, format);
  });
  app.all('/', methodNotAllowed('GET, HEAD'));

  app.post('/api/visits', (req, res) => countAndReply(req, res, 'json'));
  app.all('/api/visits', methodNotAllowed('POST'));

  app.get('/api/count', async (_req, res) => {
    const count = await store.read();
    res.setHeader('Cache-Control', 'no-store');
    res.json({ count });
  });
  app.all('/api/count', methodNotAllowed('GET, HEAD'));

  if (live) registerLiveRoute(app, live, lifecycle);

  // Liveness: the process is up and its event loop turns. Says nothing of Redis,
  // so an outage never gets healthy replicas restarted.
  // It names the release too: a deploy's progress is readable replica by replica.
  app.get('/healthz', (_req, res) => void res.json({ status: 'ok', release }));
  app.all('/healthz', methodNotAllowed('GET, HEAD'));

  // Readiness: able to count right now.
  app.get('/readyz', async (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    if (lifecycle.draining) return void res.status(503).json({ status: 'draining' });
    try {
      await store.ping();
      res.json({ status: 'ready' });
    } catch (error) {
      // Says why, in Redis's words: an operator reads this first.
      if (error instanceof StoreRefusedError) res.status(503).json({ status: 'redis refuses', code: error.code, cause: error.reason });
      else if (error instanceof StoreUnavailableError) res.status(503).set('Retry-After', '1').json({ status: 'redis unavailable', code: error.code });
      else throw error;
    }
  });
  app.all('/readyz', methodNotAllowed('GET, HEAD'));

  // The page's script, style and icon: never counted.
  registerAssets(app);

  // Browsers ask for it on every first visit; it must not count as one.
  // The page names its own icon (/assets/favicon.svg); the 204 stays for old clients.
  app.get('/favicon.ico', (_req, res) => void res.status(204).set('Cache-Control', 'public, max-age=86400').end());

  app.use(notFound);
  app.use(createErrorHandler(logger));
  return app;
}
