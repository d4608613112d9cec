import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { createForeground } from '../../formation/foreground.js';
import { followLogs, rotateLogs } from '../../formation/log-files.js';
import { waitFor } from '../../formation/wait.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'headcount-logs-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('rotateLogs', () => {
  test('When a log passes the limit, then its lines move to .1 and it starts again empty; a small one is left alone', () => {
    writeFileSync(path.join(dir, 'web-1.log'), 'x'.repeat(2_000) + '\n');
    writeFileSync(path.join(dir, 'nginx.log'), 'small\n');

    const rotated = rotateLogs(dir, 1_000);

    expect(rotated).toEqual(['web-1.log']);
    expect(statSync(path.join(dir, 'web-1.log')).size).toBe(0);
    expect(readFileSync(path.join(dir, 'web-1.log.1'), 'utf8')).toHaveLength(2_001);
    expect(readFileSync(path.join(dir, 'nginx.log'), 'utf8')).toBe('small\n');
    expect(existsSync(path.join(dir, 'nginx.log.1'))).toBe(false);
  });
});

describe('followLogs (make logs)', () => {
  test('When files grow, appear and are rotated, then every complete line is shown once, prefixed by its process', async () => {
    writeFileSync(path.join(dir, 'web-1.log'), 'old 1\nold 2\nold 3\n');
    const lines: string[] = [];
    const stop = new AbortController();

    const following = followLogs(dir, (line) => lines.push(line), { lines: 2, signal: stop.signal, pollMs: 20 });
    await waitFor('the last 2 old lines', async () => lines.length === 2, 2_000, 10);
    appendFileSync(path.join(dir, 'web-1.log'), 'new 1\nhalf');
    writeFileSync(path.join(dir, 'nginx.log'), 'nginx 1\n');
    await waitFor('new lines', async () => lines.length === 4, 2_000, 10);
    appendFileSync(path.join(dir, 'web-1.log'), ' a line\n');
    await waitFor('the completed line', async () => lines.length === 5, 2_000, 10);
    rotateLogs(dir, 1);
    appendFileSync(path.join(dir, 'web-1.log'), 'after rotation\n');
    await waitFor('the line after rotation', async () => lines.length === 6, 2_000, 10);
    stop.abort();
    await following;

    expect(lines).toEqual([
      'web-1   | old 2',
      'web-1   | old 3',
      'nginx   | nginx 1',
      'web-1   | new 1',
      'web-1   | half a line',
      'web-1   | after rotation',
    ]);
  });
});

describe('the foreground of make up', () => {
  test('When replicas report their counters, then one traffic line sums each interval, a restarted replica counting from 0', async () => {
    const lines: string[] = [];
    const foreground = createForeground({ write: (line) => lines.push(line), logDir: dir, verbose: false, maxLogBytes: 1_000_000, summaryEveryMs: 100 });
    foreground.start(['web-1', 'web-2']);
    try {
      foreground.onReplicaMessage('web-1', { type: 'stats', requests: 100, non2xx: 0 });
      foreground.onReplicaMessage('web-2', { type: 'stats', requests: 50, non2xx: 3 });
      await waitFor('a traffic line', async () => lines.length === 1, 2_000, 10);
      foreground.onReplicaMessage('web-2', { type: 'stats', requests: 20, non2xx: 0 });
      await waitFor('a second traffic line', async () => lines.length === 2, 2_000, 10);
      await new Promise((resolve) => setTimeout(resolve, 300));
      foreground.onReplicaMessage('web-1', { type: 'redis', available: false, reason: 'connect ECONNREFUSED' });
      foreground.onReplicaMessage('web-1', { type: 'redis', available: true });
    } finally {
      foreground.stop();
    }

    expect(lines[0]).toMatch(/^traffic \| [\d,]+ req\/s {2}web-1 [\d,.]+ {2}web-2 [\d,.]+ {2}non-2xx 3$/);
    expect(lines[1]).toMatch(/^traffic \| [\d,.]+ req\/s {2}web-1 0 {2}web-2 [\d,.]+ {2}non-2xx 0$/);
    // No traffic, no line; then the Redis events.
    expect(lines.slice(2)).toEqual(['web-1   | redis unavailable: connect ECONNREFUSED', 'web-1   | redis available again']);
  });
});
