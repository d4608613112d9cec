import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import getPort from 'get-port';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, test } from 'vitest';
import { processStartTime, readLiveState, stateDirFor, writeState } from '../../formation/state.js';
import { httpOk, waitFor } from '../../formation/wait.js';

const run = promisify(execFile);
// The tests' own env file (empty unless a test writes one): never the user's .env.
const scratch = await mkdtemp(path.join(tmpdir(), 'headcount-make-targets-'));
const emptyEnvFile = path.join(scratch, 'empty.env');
await writeFile(emptyEnvFile, '');
const make = (target: string, vars: Record<string, string | number> = {}) =>
  run('make', ['--no-print-directory', target, ...Object.entries(vars).map(([k, v]) => `${k}=${v}`)], {
    env: { ...process.env, MODE: 'local', ENV_FILE: emptyEnvFile },
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
  await rm(scratch, { recursive: true, force: true });
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

    expect(stdout.trim()).toBe(`reset headcount:visits: ${before} -> 0; per-replica breakdown cleared (remainder 0)`);
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

  test('When the state file names a live process that is not the supervisor, or a recycled pid, then make stop signals nothing', async () => {
    const port = await getPort({ host: '127.0.0.1' });
    startedPorts.push(port);
    // A bystander whose command line even looks like a supervisor's, started after the "formation" was.
    const bystander = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)', 'dist/formation/cli.js', 'up'], { stdio: 'ignore' });
    const stranger = spawn('sleep', ['60'], { stdio: 'ignore' });
    await waitFor('bystanders started', async () => processStartTime(bystander.pid!) !== undefined && processStartTime(stranger.pid!) !== undefined, 5_000);
    const state = { lbPort: port, lbUrl: '', redisUrl: '', adminRedisUrl: '', replicas: [], processes: {}, logDir: '', startedAt: '', rollingRestarts: 0 };

    try {
      await writeState({ ...state, pid: bystander.pid!, pidStartedAt: String(Number(processStartTime(bystander.pid!)) - 1) });
      const recycled = await make('stop', { LB_PORT: port });
      await writeState({ ...state, pid: stranger.pid!, pidStartedAt: processStartTime(stranger.pid!) });
      const other = await make('stop', { LB_PORT: port });

      expect(recycled.stderr).toContain(`no local formation runs on port ${port}`);
      expect(other.stderr).toContain(`no local formation runs on port ${port}`);
      expect([bystander.exitCode, bystander.signalCode, stranger.exitCode, stranger.signalCode]).toEqual([null, null, null, null]);
    } finally {
      bystander.kill();
      stranger.kill();
    }
  });

  test('When an env file sets COUNTER_KEY and REDIS_COMMAND_TIMEOUT_MS, then the replicas and make reset-count use them', async () => {
    const port = await getPort({ host: '127.0.0.1' });
    startedPorts.push(port);
    const counterKey = `test:env-file:${randomUUID()}`;
    const envFile = path.join(scratch, 'settings.env');
    await writeFile(envFile, `COUNTER_KEY=${counterKey}\nREDIS_COMMAND_TIMEOUT_MS=777\n`);

    await make('start', { LB_PORT: port, REPLICAS: 2, ENV_FILE: envFile });
    await fetch(`http://127.0.0.1:${port}/api/visits`, { method: 'POST' });
    const state = readLiveState(port)!;
    const environ = readFileSync(`/proc/${state.replicas[0]!.pid}/environ`, 'utf8').split('\0');
    const redis = new Redis(state.redisUrl);
    const stored = await redis.get(counterKey).finally(() => redis.disconnect());
    const { stdout } = await make('reset-count', { LB_PORT: port, ENV_FILE: envFile });

    expect(environ).toEqual(expect.arrayContaining([`COUNTER_KEY=${counterKey}`, 'REDIS_COMMAND_TIMEOUT_MS=777']));
    expect(stored).toBe('1');
    expect(stdout.trim()).toBe(`reset ${counterKey}: 1 -> 0; per-replica breakdown cleared (remainder 0)`);
    await make('stop', { LB_PORT: port });
  });

  test('When make clean-data runs while a formation runs, then it refuses and deletes nothing', async () => {
    const port = startedPorts[1]!;
    const marker = path.join(stateDirFor(port), 'marker');
    await mkdir(stateDirFor(port), { recursive: true });
    await writeFile(marker, 'kept');

    const refused = await make('clean-data').then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );

    expect(refused?.code).toBe(2);
    expect(refused?.stderr).toContain(`a local formation runs on port ${port}: stop it first`);
    expect(existsSync(marker)).toBe(true);
  });

  test('When make up VERBOSE=1 runs and make stop comes from a second terminal, then request lines show live and make up ends with 0', async () => {
    const port = await getPort({ host: '127.0.0.1' });
    startedPorts.push(port);
    const up = spawn('make', ['--no-print-directory', 'up', `LB_PORT=${port}`, 'REPLICAS=2', 'VERBOSE=1'], {
      env: { ...process.env, MODE: 'local', ENV_FILE: emptyEnvFile },
      detached: true,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const lines: string[] = [];
    createInterface({ input: up.stdout! }).on('line', (line) => lines.push(line));
    const exited = once(up, 'exit');

    try {
      await waitFor('the ready line', async () => lines.some((line) => line.startsWith('headcount is ready: ')), 60_000, 100);
      const visit = await fetch(`http://127.0.0.1:${port}/api/visits`, { method: 'POST' });
      const replica = visit.headers.get('x-replica')!;
      const shown = (prefix: string, field: string) => lines.some((line) => line.startsWith(prefix) && line.includes(`${field}:"/api/visits"`));
      await waitFor('the request lines', async () => shown(`${replica.padEnd(7)} | {`, '"url"') && shown('nginx   | {', '"uri"'), 10_000, 100);
      const { stderr } = await make('stop', { LB_PORT: port });
      const [code] = await exited;

      expect(stderr).toContain(`stopped the formation on port ${port}`);
      expect(code).toBe(0);
      expect(lines.at(-1)).toBe('stopped');
    } finally {
      if (up.exitCode === null && up.signalCode === null) process.kill(-up.pid!, 'SIGINT');
    }
  });
});
