import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { promisify } from 'node:util';
import getPort from 'get-port';
import { afterAll, describe, expect, test } from 'vitest';
import { readLiveState, stateDirFor } from '../../formation/state.js';
import { httpOk, waitFor } from '../../formation/wait.js';

const run = promisify(execFile);
const make = (target: string, vars: Record<string, string | number> = {}) =>
  run('make', ['--no-print-directory', target, ...Object.entries(vars).map(([k, v]) => `${k}=${v}`)], {
    env: { ...process.env, MODE: 'local' },
    timeout: 90_000,
  });
const count = async (lbPort: number) =>
  ((await (await fetch(`http://127.0.0.1:${lbPort}/api/count`)).json()) as { count: number }).count;

// `make start` detaches a supervisor; whatever happens, stop what this file started.
const startedPorts: number[] = [];
afterAll(async () => {
  for (const port of startedPorts) {
    await make('stop', { LB_PORT: port }).catch(() => {});
    await rm(stateDirFor(port), { recursive: true, force: true });
  }
});

describe('make start / stop / reset-count / restart in local mode', () => {
  test('When two formations start on different ports, then each serves, and stopping one leaves the other running', async () => {
    const [a, b] = [await getPort({ host: '127.0.0.1' }), await getPort({ host: '127.0.0.1' })];
    startedPorts.push(a, b);

    await make('start', { LB_PORT: a, REPLICAS: 2 });
    await make('start', { LB_PORT: b, REPLICAS: 3 });
    const servedA = await httpOk(`http://127.0.0.1:${a}/api/count`);
    const stateB = readLiveState(b);
    await make('stop', { LB_PORT: a });

    expect(servedA).toBe(true);
    expect(stateB?.replicas).toHaveLength(3);
    expect(readLiveState(a)).toBeUndefined();
    await expect(httpOk(`http://127.0.0.1:${a}/api/count`)).rejects.toThrow();
    expect(await httpOk(`http://127.0.0.1:${b}/api/count`)).toBe(true);
  });

  test('When make reset-count runs, then it prints the old and new value and the count is 0', async () => {
    const port = startedPorts[1]!;
    await Promise.all([1, 2, 3].map(() => fetch(`http://127.0.0.1:${port}/api/visits`, { method: 'POST' })));
    const before = await count(port);

    const { stdout } = await make('reset-count', { LB_PORT: port });

    expect(stdout.trim()).toBe(`reset headcount:visits: ${before} -> 0`);
    expect(before).toBeGreaterThanOrEqual(3);
    expect(await count(port)).toBe(0);
  });

  test('When a replica is killed (kill -9), then the supervisor restarts it and it serves again', async () => {
    const port = startedPorts[1]!;
    const victim = readLiveState(port)!.replicas[0]!;

    process.kill(victim.pid!, 'SIGKILL');
    await waitFor('replica back', () => httpOk(`http://127.0.0.1:${victim.port}/readyz`), 10_000);

    expect(await httpOk(`http://127.0.0.1:${victim.port}/readyz`)).toBe(true);
  });

  test('When make restart runs, then every replica is replaced one at a time and the count is unchanged', async () => {
    const port = startedPorts[1]!;
    const before = await count(port);

    await make('restart', { LB_PORT: port });
    const after = readLiveState(port)!;

    expect(after.rollingRestarts).toBe(1);
    expect(await count(port)).toBe(before);
  });

  test('When make stop runs for a port with no formation, then it says so and touches nothing', async () => {
    const port = await getPort({ host: '127.0.0.1' });

    const { stderr } = await make('stop', { LB_PORT: port });

    expect(stderr).toContain(`no local formation runs on port ${port}`);
    expect(await httpOk(`http://127.0.0.1:${startedPorts[1]}/api/count`)).toBe(true);
  });
});
