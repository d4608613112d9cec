import type { Express } from 'express';
import { methodNotAllowed } from './error-handler.js';
import type { Lifecycle } from './lifecycle.js';
import type { LiveHub } from './live-hub.js';

// Server-Sent Events: what the stream's response says to nginx and the browser.
const STREAM_HEADERS = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  // Each stream is live: never cached, by nginx or anything after it.
  'Cache-Control': 'no-store',
  // nginx passes each event on as it comes, even where proxy_buffering is on
  // (https://nginx.org/en/docs/http/ngx_http_proxy_module.html#proxy_buffering).
  'X-Accel-Buffering': 'no',
};

/** `GET /api/live`: the replica's live stream (web/live-hub.ts). Never counts a visit. */
export function registerLiveRoute(app: Express, hub: LiveHub, lifecycle: Lifecycle) {
  // HEAD gets the headers and no stream (Express would otherwise run GET's handler).
  app.head('/api/live', (_req, res) => void res.status(200).set(STREAM_HEADERS).end());
  app.get('/api/live', (req, res) => {
    // A draining replica takes no new stream: the page reconnects elsewhere.
    if (lifecycle.draining) return void res.status(503).set('Retry-After', '1').json({ error: 'draining' });
    res.writeHead(200, STREAM_HEADERS);
    // Small writes, each wanted now: no Nagle delay.
    req.socket.setNoDelay(true);
    hub.attach(res);
  });
  app.all('/api/live', methodNotAllowed('GET, HEAD'));
}
