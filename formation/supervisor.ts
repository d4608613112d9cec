import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, openSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

export interface ServiceSpec {
  name: string;
  command: string;
  args: readonly string[];
  env?: Readonly<Record<string, string | undefined>>;
  cwd?: string;
  /** Restart with backoff when it exits on its own, as Docker's `restart: unless-stopped` does. */
  restart?: boolean;
  /** nginx stops gracefully on SIGQUIT; everything else here on SIGTERM. */
  stopSignal?: NodeJS.Signals;
  /** After this, SIGKILL. */
  stopTimeoutMs?: number;
  /**
   * Give the process a real pipe (a FIFO in this folder) as stdout. Node's own
   * child pipes are sockets, and nginx cannot open /dev/stdout on a socket.
   */
  stdoutFifoDir?: string;
  /**
   * Write stdout and stderr straight to this open file instead of forwarding
   * lines through the supervisor (benchmarks: the supervisor is the load generator).
   */
  logFd?: number;
  /**
   * Open an IPC channel to the child and hand its messages here (a replica
   * sends its request counters and Redis events: web/supervisor-channel.ts).
   */
  onMessage?: (message: unknown) => void;
  /** Say `started (pid N)` on each start (the foreground formation's lifecycle lines). */
  announce?: boolean;
}

export type LineSink = (service: string, line: string) => void;

const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 5_000;
/** A run this long counts as healthy: the next crash starts the backoff again. */
const STABLE_AFTER_MS = 10_000;

/**
 * One supervised process: started, its output forwarded line by line, and
 * restarted with exponential backoff if it exits unasked. It is the small part
 * of Docker's restart policy that the local formation needs.
 */
export class Service {
  child: ChildProcess | undefined;
  /** Exits nobody asked for (crashes, kills). */
  crashes = 0;
  /** How the last process ended, and when (Date.now()). */
  lastExit: { code: number | null; signal: NodeJS.Signals | null; at: number } | undefined;
  private stopping = false;
  private failures = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    readonly spec: ServiceSpec,
    private readonly sink: LineSink,
  ) {}

  get pid(): number | undefined {
    return this.child?.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined;
  }

  start(): void {
    this.stopping = false;
    const { name, command, args, env, cwd } = this.spec;
    const startedAt = Date.now();
    // Its own process group: Ctrl-C reaches only the supervisor, which then stops
    // the formation in order (nginx first, Redis last) instead of all at once.
    const { logFd } = this.spec;
    const stdout = this.spec.stdoutFifoDir && logFd === undefined ? openFifo(this.spec.stdoutFifoDir, name) : undefined;
    const { onMessage } = this.spec;
    const child = spawn(command, args, {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', logFd ?? stdout?.writeFd ?? 'pipe', logFd ?? 'pipe', ...(onMessage ? (['ipc'] as const) : [])],
      detached: true,
    });
    if (stdout) closeSync(stdout.writeFd);
    this.child = child;
    if (onMessage) child.on('message', onMessage);
    if (this.spec.announce && child.pid !== undefined) this.sink(name, `started (pid ${child.pid})`);
    if (logFd === undefined) {
      for (const stream of [stdout?.reader ?? child.stdout, child.stderr]) {
        createInterface({ input: stream! }).on('line', (line) => this.sink(name, line));
      }
    }
    this.exited = new Promise((resolve) => {
      child.once('error', (error) => {
        this.sink(name, `failed to start ${command}: ${error.message}`);
      });
      child.once('close', (code, signal) => {
        this.lastExit = { code, signal, at: Date.now() };
        resolve();
        if (!this.stopping) this.crashes += 1;
        if (this.stopping || !this.spec.restart) {
          this.sink(name, this.stopping ? 'stopped' : `exited (code ${code}, signal ${signal})`);
          return;
        }
        if (Date.now() - startedAt > STABLE_AFTER_MS) this.failures = 0;
        const delay = Math.min(BACKOFF_FIRST_MS * 2 ** this.failures, BACKOFF_MAX_MS);
        this.failures += 1;
        this.sink(name, `exited (code ${code}, signal ${signal}); restarting in ${delay} ms`);
        this.restartTimer = setTimeout(() => this.start(), delay);
      });
    });
  }

  /** Sends a signal to the running process (for tests and reloads). */
  signal(signal: NodeJS.Signals): boolean {
    return this.pid !== undefined && process.kill(this.pid, signal);
  }

  /** Stops it and waits; SIGKILL if it outlives its stop timeout. Resolves with how it ended. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    if (this.pid === undefined) return;
    const { stopSignal = 'SIGTERM', stopTimeoutMs = 15_000 } = this.spec;
    this.signal(stopSignal);
    const killer = setTimeout(() => {
      this.sink(this.spec.name, `still running ${stopTimeoutMs} ms after ${stopSignal}; sending SIGKILL`);
      this.killGroup();
    }, stopTimeoutMs);
    await this.exited;
    clearTimeout(killer);
  }

  /** Waits until the current process has exited (on its own or stopped). */
  waitForExit(): Promise<void> {
    return this.exited;
  }

  /**
   * Last-resort cleanup when the parent is exiting and cannot wait: the whole
   * process group, since nginx's workers outlive a killed master and would
   * keep the port.
   */
  killNow(): void {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    this.killGroup();
  }

  private killGroup(): void {
    if (this.pid === undefined) return;
    try {
      process.kill(-this.pid, 'SIGKILL');
    } catch {
      this.signal('SIGKILL');
    }
  }
}

function openFifo(dir: string, name: string): { reader: Readable; writeFd: number } {
  const fifo = path.join(dir, `${name}.stdout`);
  rmSync(fifo, { force: true });
  execFileSync('mkfifo', ['-m', '600', fifo]);
  // Open the reading end first (non-blocking), so opening the writing end does not wait.
  const readFd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const writeFd = openSync(fifo, constants.O_WRONLY);
  rmSync(fifo);
  return { reader: new Socket({ fd: readFd, readable: true, writable: false }), writeFd };
}
