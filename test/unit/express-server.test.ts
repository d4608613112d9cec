import { Agent, IncomingMessage, request, ServerResponse, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterEach, describe, expect, test } from 'vitest';
import { createExpressServer } from '../../web/express-server.js';

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

const listen = async (app: express.Express) => {
  const server = createExpressServer(app);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
};

/** One GET on `agent`'s connection: status, headers, body and the client's local port (the connection). */
const get = (server: Server, path: string, agent: Agent, headers: Record<string, string> = {}) =>
  new Promise<{ status: number; headers: Record<string, unknown>; body: string; localPort: number }>((resolve, reject) => {
    const { port } = server.address() as AddressInfo;
    const req = request({ host: '127.0.0.1', port, path, agent, headers }, (res) => {
      const localPort = res.socket.localPort!;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body, localPort }));
    });
    req.on('error', reject);
    req.end();
  });

describe('the Express server (web/express-server.ts)', () => {
  test('When a request arrives, then Node builds the request and response with the app’s own prototypes, before Express sees them', async () => {
    const app = express();
    app.get('/', (_req, res) => void res.send('ok'));
    const server = await listen(app);
    const seen: { request: unknown; response: unknown; isMessage: boolean; isResponse: boolean }[] = [];
    // Runs before Express's handler: what Node constructed, not what Express made of it.
    server.prependListener('request', (req: IncomingMessage, res: ServerResponse) =>
      seen.push({ request: Object.getPrototypeOf(req), response: Object.getPrototypeOf(res), isMessage: req instanceof IncomingMessage, isResponse: res instanceof ServerResponse }),
    );
    const agent = new Agent({ keepAlive: true });

    await get(server, '/', agent);
    agent.destroy();

    expect(seen).toEqual([{ request: app.request, response: app.response, isMessage: true, isResponse: true }]);
  });

  test('When routes use Express’s request and response API over one kept-alive connection, then every answer is what Express gives', async () => {
    const app = express();
    app.get('/echo', (req, res) => void res.status(201).set('X-Seen', req.get('x-probe') ?? 'none').json({ q: req.query.q, ip: req.ip, path: req.path }));
    const server = await listen(app);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });

    const first = await get(server, '/echo?q=1', agent, { 'x-probe': 'a' });
    const second = await get(server, '/echo?q=2', agent);
    const missing = await get(server, '/nowhere', agent);
    agent.destroy();

    expect(first).toMatchObject({ status: 201, headers: { 'x-seen': 'a', 'x-powered-by': 'Express' } });
    expect(JSON.parse(first.body)).toEqual({ q: '1', ip: '127.0.0.1', path: '/echo' });
    expect(second).toMatchObject({ status: 201, headers: { 'x-seen': 'none' } });
    expect(JSON.parse(second.body)).toMatchObject({ q: '2' });
    expect(missing.status).toBe(404);
    expect(new Set([first.localPort, second.localPort, missing.localPort]).size).toBe(1);
  });
});
