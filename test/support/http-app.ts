import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { createApp, type AppDeps } from '../../web/app.js';
import type { CounterStore } from '../../web/counter-store.js';
import { createLifecycle } from '../../web/lifecycle.js';

/** The real Express app on an ephemeral port, with a given store and a silent logger. */
export async function serveApp(store: CounterStore, replicaId = 'web-test', extra: Partial<Pick<AppDeps, 'release' | 'logger' | 'live'>> = {}) {
  const lifecycle = createLifecycle();
  const app = createApp({ store, replicaId, logger: pino({ level: 'silent' }), lifecycle, ...extra });
  const server: Server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    lifecycle,
    close: () => new Promise<void>((resolve) => server.close(() => resolve()).closeAllConnections()),
  };
}
