import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, test } from 'vitest';
import { measureCpu, runQueueSeconds } from '../../loadtest/cpu.js';

// make bench's "waiting for a CPU" figures (loadtest/cpu.ts), on real
// processes: three busy loops pinned to one CPU take turns, so each runs a
// third of the time and waits two thirds; a sleeping process waits for
// nothing. (Run time and wait differ two to one, so reading the wrong
// schedstat field fails.)
// Each loop ends itself after 30 s, should the test die before it kills them.
const busy = () => spawn('taskset', ['-c', '0', process.execPath, '-e', 'const end = Date.now() + 30_000; while (Date.now() < end);'], { stdio: 'ignore' });
const sleeping = () => spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });

describe('run-queue wait (make bench)', () => {
  const started: ChildProcess[] = [];
  afterEach(async () => {
    for (const child of started.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await once(child, 'exit');
      }
    }
  });

  test('three busy loops on one CPU each wait for it; a sleeping process does not', async () => {
    const [a, b, c, idle] = [busy(), busy(), busy(), sleeping()];
    started.push(a, b, c, idle);
    await sleep(300);
    const { waited, cpu, wallSeconds } = await measureCpu({ loops: [a.pid!, b.pid!, c.pid!], idle: [idle.pid!] }, () => sleep(1_000));
    // One CPU among three loops: together they run about wallSeconds and
    // wait about twice as long (other work on the machine only adds to it).
    expect(cpu.loops).toBeLessThan(1.2 * wallSeconds);
    expect(waited.loops).toBeGreaterThan(1.5 * wallSeconds);
    expect(waited.idle).toBeLessThan(0.05);
    expect(waited).toHaveProperty('load generator');
  });

  test('a process that has ended reads as 0', async () => {
    const child = sleeping();
    started.push(child);
    expect(runQueueSeconds(child.pid!)).toBeGreaterThanOrEqual(0);
    child.kill('SIGKILL');
    await once(child, 'exit');
    expect(runQueueSeconds(child.pid!)).toBe(0);
  });
});
