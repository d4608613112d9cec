import { spawn } from 'node:child_process';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { ROOT } from '../../../formation/paths.js';
import { waitFor } from '../../../formation/wait.js';
import type { ComposeFormation } from './compose-formation.js';

/**
 * `make <target> MODE=docker LB_PORT=<port> ...` in the foreground, as a user
 * types it in a terminal: in its own process group (a terminal's Ctrl-C
 * reaches the whole group), its output read line by line as it comes.
 */
export interface ForegroundMake {
  /** Every line of its standard output so far. */
  readonly lines: string[];
  /** The last 4000 characters of its standard error. */
  stderrTail(): string;
  /** The process group's leader has not exited. */
  running(): boolean;
  /** Its exit code (null when a signal ended it). */
  readonly exit: Promise<number | null>;
  /** Waits for a line matching `pattern`, or for make to exit; throws with the output's tail if neither happens in time. */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<void>;
  /** SIGINT to the whole process group, as a terminal's Ctrl-C. */
  interrupt(): void;
  /** SIGKILL to the whole group if it still runs (a failed test's cleanup). */
  kill(): void;
  /** The output's tail, for failure messages. */
  tail(): string;
}

export function startForegroundMake(formation: ComposeFormation, target: string, vars: Record<string, string> = {}): ForegroundMake {
  const args = ['--no-print-directory', target, 'MODE=docker', `LB_PORT=${formation.port}`, ...Object.entries(vars).map(([k, v]) => `${k}=${v}`)];
  const child = spawn('make', args, { cwd: ROOT, env: formation.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let stderr = '';
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  createInterface({ input: child.stdout! }).on('line', (line) => lines.push(line));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
  const running = () => child.exitCode === null && child.signalCode === null;
  const tail = () => `stdout:\n${lines.slice(-20).join('\n')}\nstderr:\n${stderr}`;
  return {
    lines,
    exit,
    running,
    tail,
    stderrTail: () => stderr,
    async waitForLine(pattern, timeoutMs) {
      await waitFor(`a line matching ${pattern}, or make ${target} to exit`, async () => !running() || lines.some((l) => pattern.test(l)), timeoutMs, 100).catch(
        (error: Error) => {
          throw new Error(`${error.message}\n${tail()}`);
        },
      );
    },
    interrupt: () => process.kill(-child.pid!, 'SIGINT'),
    kill: () => {
      if (running()) process.kill(-child.pid!, 'SIGKILL');
    },
  };
}

/** Whether anything listens on the port on 127.0.0.1. */
export const portFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
