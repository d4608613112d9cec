import { closeSync, copyFileSync, openSync, readdirSync, readSync, statSync, truncateSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Every process of the local formation writes its whole output to a file of
 * its own, `<dir>/<name>.log`, straight from its own file descriptor: the
 * supervisor never reads the lines, so a load test costs it nothing.
 */
export const openLogFile = (dir: string, name: string) => openSync(path.join(dir, `${name}.log`), 'a', 0o600);

const prefix = (name: string) => `${name.padEnd(7)} | `;

/**
 * Keeps each log below `maxBytes`: a larger one is copied to `<name>.log.1`
 * (replacing the last) and truncated in place, as logrotate's copytruncate
 * does. The writers opened their files with O_APPEND, so they go on at the new
 * end; lines written between the copy and the truncation are lost, which is
 * copytruncate's known trade-off for writers that cannot reopen their file.
 */
export function rotateLogs(dir: string, maxBytes: number): string[] {
  const rotated: string[] = [];
  for (const file of logFiles(dir)) {
    const full = path.join(dir, file);
    try {
      if (statSync(full).size <= maxBytes) continue;
      copyFileSync(full, `${full}.1`);
      truncateSync(full, 0);
      rotated.push(file);
    } catch {
      // removed meanwhile: nothing to rotate
    }
  }
  return rotated;
}

const logFiles = (dir: string) => {
  try {
    return readdirSync(dir).filter((file) => file.endsWith('.log')).sort();
  } catch {
    return [];
  }
};

export interface FollowOptions {
  /** Print only what is written from now on (true), or each file's last `lines` first. */
  lines?: number;
  signal?: AbortSignal;
  pollMs?: number;
}

/**
 * `make logs`: follows every log file in `dir`, new files included, and
 * writes each complete line prefixed by its process, as `docker compose logs
 * -f` does. A file that shrank was rotated: it is read again from its start.
 */
export async function followLogs(dir: string, write: (line: string) => void, options: FollowOptions = {}): Promise<void> {
  const { lines = 10, signal, pollMs = 200 } = options;
  const offsets = new Map<string, { offset: number; partial: string }>();
  const buffer = Buffer.alloc(64 * 1024);
  let first = true;
  while (!signal?.aborted) {
    for (const file of logFiles(dir)) {
      const name = file.slice(0, -'.log'.length);
      const full = path.join(dir, file);
      let size: number;
      try {
        size = statSync(full).size;
      } catch {
        continue;
      }
      let state = offsets.get(file);
      if (!state) {
        state = { offset: first ? startOfLastLines(full, size, lines) : 0, partial: '' };
        offsets.set(file, state);
      }
      if (size < state.offset) state = { offset: 0, partial: '' };
      offsets.set(file, state);
      if (size === state.offset) continue;
      const fd = openSync(full, 'r');
      try {
        for (let read; state.offset < size && (read = readSync(fd, buffer, 0, buffer.length, state.offset)) > 0; ) {
          state.offset += read;
          const text = state.partial + buffer.toString('utf8', 0, read);
          const parts = text.split('\n');
          state.partial = parts.pop() ?? '';
          for (const line of parts) write(prefix(name) + line);
        }
      } finally {
        closeSync(fd);
      }
    }
    first = false;
    await sleep(pollMs, undefined, { signal }).catch(() => {});
  }
}

/** Where the last `lines` lines of a file begin (reads at most its last 256 KiB). */
function startOfLastLines(file: string, size: number, lines: number): number {
  if (lines <= 0 || size === 0) return size;
  const length = Math.min(size, 256 * 1024);
  const buffer = Buffer.alloc(length);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buffer, 0, length, size - length);
  } finally {
    closeSync(fd);
  }
  let seen = 0;
  for (let i = length - 2; i >= 0; i--) {
    if (buffer[i] === 0x0a && ++seen === lines) return size - length + i + 1;
  }
  return size - length;
}
