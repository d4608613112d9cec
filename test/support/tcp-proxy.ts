import { once } from 'node:events';
import { createConnection, createServer, type Socket } from 'node:net';
import getPort from 'get-port';

export interface TcpProxy {
  port: number;
  /**
   * Cuts the path: `refuse` closes every connection and refuses new ones (a
   * link or host that is down); `stall` keeps connections open but moves no
   * byte either way until restored (packets lost in a black hole, which TCP
   * retransmits once the path is back: only timeouts tell meanwhile).
   */
  cut(how?: 'refuse' | 'stall'): Promise<void>;
  /** Forwards again, on the same port; a stalled path delivers what waited. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A TCP proxy on 127.0.0.1 in front of one target port: one process's own path
 * to a shared service, which a test can cut while everyone else still reaches it.
 */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const port = await getPort({ host: '127.0.0.1' });
  const sockets = new Set<Socket>();
  let stalled = false;
  const track = (socket: Socket) => {
    sockets.add(socket);
    if (stalled) socket.pause();
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  };
  const server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
    track(client);
    track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  const listen = async () => {
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
  };
  const stopListening = () => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
  await listen();
  return {
    port,
    async cut(how = 'refuse') {
      if (how === 'stall') {
        stalled = true;
        for (const socket of sockets) socket.pause();
        return;
      }
      const closed = stopListening();
      for (const socket of sockets) socket.destroy();
      await closed;
    },
    async restore() {
      stalled = false;
      for (const socket of sockets) socket.resume();
      if (!server.listening) await listen();
    },
    async close() {
      const closed = stopListening();
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
