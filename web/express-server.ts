import { createServer, IncomingMessage, ServerResponse, type Server } from 'node:http';
import type { Express } from 'express';

/**
 * An HTTP server for an Express app whose requests and responses are born
 * with the app's prototypes (`app.request`, `app.response`), through Node's
 * IncomingMessage and ServerResponse server options.
 *
 * Express 5 gives every request and response the app's prototype with
 * Object.setPrototypeOf in app.handle. Changed that way, a request survives
 * V8's young-generation collections: each scavenge of a replica kept and
 * promoted 2.8-4.4 MB, every object a visit allocates, and took 8-10 ms,
 * for the naive Express replica of make bench just as for headcount's
 * (docs/load-testing.md, "Requests born with Express's prototypes"). Born
 * with the prototype already in place, V8 sees nothing to change, and a
 * scavenge promotes almost nothing. Express still runs every route and
 * middleware as before; only the object it receives is already its own.
 * (expressjs/express#5998 proposes the same inside Express.)
 */
export function createExpressServer(app: Express): Server {
  // Node constructs these with `new`; IncomingMessage and ServerResponse are
  // plain constructor functions, so they initialise `this` when applied to it.
  function Request(this: IncomingMessage, ...args: unknown[]) {
    Reflect.apply(IncomingMessage, this, args);
  }
  Request.prototype = app.request;
  function Response(this: ServerResponse, ...args: unknown[]) {
    Reflect.apply(ServerResponse, this, args);
  }
  Response.prototype = app.response;
  return createServer(
    {
      IncomingMessage: Request as unknown as typeof IncomingMessage,
      ServerResponse: Response as unknown as typeof ServerResponse,
    },
    app,
  );
}
