import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import getPort from 'get-port';
import { httpOk, waitFor } from '../../formation/wait.js';

export interface ReplicaProcess {
  child: ChildProcess;
  url: string;
  port: number;
  stdout: string[];
  stderr: string[];
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  waitReady(): Promise<void>;
  /** Ends it if still running (SIGKILL) and waits. */
  kill(): Promise<void>;
}

/** Starts the real entry point, `node dist/web/server.js`, as production runs it (with `nodeFlags` before it, if any). */
export async function spawnReplica(env: Record<string, string>, nodeFlags: readonly string[] = []): Promise<ReplicaProcess> {
  const port = env.PORT ? Number(env.PORT) : await getPort({ host: '127.0.0.1' });
  const child = spawn(process.execPath, [...nodeFlags, 'dist/web/server.js'], {
    // METRICS_PORT 0: replicas of parallel tests must not meet on the default 9464.
    env: { PATH: process.env.PATH, NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(port), REPLICA_ID: 'web-t', METRICS_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => stdout.push(line));
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));
  const exited = once(child, 'exit').then(([code, signal]) => (code ?? signal) as number | string);
  const url = `http://127.0.0.1:${port}`;
  return {
    child,
    url,
    port,
    stdout,
    stderr,
    exited,
    waitReady: () => waitFor(`replica on ${port}`, () => httpOk(`${url}/readyz`), 10_000),
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
