import type { SupervisorMessage } from '../web/supervisor-channel.js';
import { followLogs, rotateLogs } from './log-files.js';
import type { LineSink } from './supervisor.js';

export interface ForegroundOptions {
  write: (line: string) => void;
  /** The per-process log files (formation/log-files.ts). */
  logDir: string;
  /** Every process's every line live too, as `make logs` shows them. */
  verbose: boolean;
  maxLogBytes: number;
  summaryEveryMs?: number;
}

export interface Foreground {
  /** Lifecycle lines: started, ready, exited and restarting, stopped. */
  sink: LineSink;
  onReplicaMessage(replica: string, message: unknown): void;
  /** Starts the traffic summary and log rotation once the formation is up. */
  start(replicas: readonly string[]): void;
  stop(): void;
}

/** Requests per second: whole numbers, one decimal below 10 so a lone visit still shows. */
const rate = (requests: number, seconds: number) => {
  const perSecond = requests / seconds;
  return perSecond >= 10 || perSecond === 0 ? Math.round(perSecond).toLocaleString('en-US') : perSecond.toFixed(1);
};

const line = (name: string, text: string) => `${name.padEnd(7)} | ${text}`;

/**
 * What `make up` shows in its terminal: each process's lifecycle, Redis
 * outages as the replicas see them, and while traffic flows one summary line
 * every few seconds, built from the counters the replicas send over IPC (the
 * supervisor reads none of their log lines). The full output is in the log
 * files, rotated here by size.
 */
export function createForeground(options: ForegroundOptions): Foreground {
  const { write, logDir, verbose, maxLogBytes, summaryEveryMs = 5_000 } = options;
  const latest = new Map<string, { requests: number; non2xx: number }>();
  const reported = new Map<string, { requests: number; non2xx: number }>();
  const timers: NodeJS.Timeout[] = [];
  const abort = new AbortController();
  let replicaIds: readonly string[] = [];
  let last = performance.now();

  const summarize = () => {
    const now = performance.now();
    const seconds = (now - last) / 1_000;
    last = now;
    let total = 0;
    let non2xx = 0;
    const perReplica = replicaIds.map((id) => {
      const current = latest.get(id) ?? { requests: 0, non2xx: 0 };
      const before = reported.get(id) ?? { requests: 0, non2xx: 0 };
      // A restarted replica counts from 0 again.
      const restarted = current.requests < before.requests;
      const served = restarted ? current.requests : current.requests - before.requests;
      total += served;
      non2xx += restarted ? current.non2xx : current.non2xx - before.non2xx;
      reported.set(id, current);
      return `${id} ${rate(served, seconds)}`;
    });
    if (total === 0) return;
    write(line('traffic', `${rate(total, seconds)} req/s  ${perReplica.join('  ')}  non-2xx ${non2xx}`));
  };

  // From the first line of the start, without what earlier runs left in the files.
  if (verbose) void followLogs(logDir, write, { lines: 0, signal: abort.signal });

  return {
    sink: (name, text) => write(line(name, text)),
    onReplicaMessage(replica, message) {
      const m = message as SupervisorMessage;
      if (m?.type === 'stats') latest.set(replica, { requests: m.requests, non2xx: m.non2xx });
      else if (m?.type === 'redis') write(line(replica, m.available ? 'redis available again' : `redis unavailable: ${m.reason ?? 'unknown'}`));
    },
    start(replicas) {
      replicaIds = replicas;
      last = performance.now();
      timers.push(setInterval(summarize, summaryEveryMs));
      timers.push(
        setInterval(() => {
          for (const file of rotateLogs(logDir, maxLogBytes)) write(line('logs', `${file} passed ${maxLogBytes} bytes: rotated to ${file}.1`));
        }, 5_000),
      );
    },
    stop() {
      timers.splice(0).forEach(clearInterval);
      abort.abort();
    },
  };
}
