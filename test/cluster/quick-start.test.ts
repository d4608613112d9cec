import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import getPort from 'get-port';
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { readLiveState, stateDirFor, type FormationState } from '../../formation/state.js';

const execFileAsync = promisify(execFile);

/**
 * The README's quick start, literally: `make up` in the foreground in a
 * process group of its own, as a terminal runs it; the other commands from a
 * "second terminal"; then Ctrl-C, which a terminal sends to the whole group.
 * Its own port, its own (empty) env file: never the user's 8080 or .env.
 */
describe('the README quick start, local mode', () => {
  let lbPort: number;
  let env: NodeJS.ProcessEnv;
  let up: ChildProcess;
  const output: string[] = [];
  let scratch: string;
  let readyLine: string;

  const make = (target: string, vars: Record<string, string | number> = {}) =>
    execFileAsync('make', ['--no-print-directory', target, ...Object.entries(vars).map(([k, v]) => `${k}=${v}`)], {
      env,
      timeout: 180_000,
      maxBuffer: 16 * 1024 * 1024,
    });
  const count = async () => ((await (await fetch(`http://127.0.0.1:${lbPort}/api/count`)).json()) as { count: number }).count;
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  beforeAll(async () => {
    lbPort = await getPort({ host: '127.0.0.1' });
    scratch = await mkdtemp(path.join(tmpdir(), 'headcount-quick-start-'));
    const envFile = path.join(scratch, 'env');
    await writeFile(envFile, '# this test sets nothing here\n');
    env = { ...process.env, MODE: 'local', LB_PORT: String(lbPort), ENV_FILE: envFile, NO_COLOR: '1' };
    up = spawn('make', ['--no-print-directory', 'up'], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [up.stdout!, up.stderr!]) createInterface({ input: stream }).on('line', (line) => output.push(line));
    readyLine = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ready line within 90 s:\n${output.join('\n')}`)), 90_000);
      up.once('exit', (code) => reject(new Error(`make up exited (${code}) before it was ready:\n${output.join('\n')}`)));
      createInterface({ input: up.stdout! }).on('line', (line) => {
        if (!line.startsWith('headcount is ready: ')) return;
        clearTimeout(timer);
        resolve(line);
      });
    });
  });

  // A failed step leaves what the formation said, and the end of every process's log, in the test output.
  let failed = false;
  afterEach(({ task }) => {
    if (task.result?.state !== 'fail' || failed) return;
    failed = true;
    const logs = path.join(stateDirFor(lbPort), 'logs');
    const tails = readdirSync(logs).map((file) => `--- ${file}\n${readFileSync(path.join(logs, file), 'utf8').trimEnd().split('\n').slice(-15).join('\n')}`);
    console.error(`make up said:\n${output.slice(-40).join('\n')}\n${tails.join('\n')}`);
  });

  afterAll(async () => {
    // Whatever failed above: Ctrl-C the group, then make sure.
    if (up && up.exitCode === null && up.signalCode === null) {
      process.kill(-up.pid!, 'SIGINT');
      await Promise.race([once(up, 'exit'), new Promise((r) => setTimeout(r, 30_000))]);
    }
    await make('stop').catch(() => {});
    await rm(stateDirFor(lbPort), { recursive: true, force: true });
    await rm(scratch, { recursive: true, force: true });
  });

  test('When make up is ready, then the ready line comes last, after every replica and nginx said ready', () => {
    const index = output.indexOf(readyLine);
    const readies = output.filter((line) => / \| ready on port \d+$/.test(line));

    expect(readyLine).toBe(`headcount is ready: http://localhost:${lbPort} (4 replicas). Ctrl-C stops it; make logs LB_PORT=${lbPort} shows every line.`);
    expect(readies.map((line) => line.split(' ')[0]).sort()).toEqual(['nginx', 'redis', 'web-1', 'web-2', 'web-3', 'web-4']);
    expect(output.slice(0, index).filter((line) => readies.includes(line))).toHaveLength(6);
  });

  test('When make status runs from a second terminal, then it describes the formation make up started', async () => {
    const { stdout } = await make('status');
    const status = JSON.parse(stdout) as FormationState;

    expect(status).toMatchObject({ lbPort, lbUrl: `http://127.0.0.1:${lbPort}` });
    expect(status.replicas.map((r) => r.id)).toEqual(['web-1', 'web-2', 'web-3', 'web-4']);
    expect(stdout).not.toMatch(/redis:\/\/[^:]+:[^*][^@]*@/);
  });

  test('When make reset-count runs, then it prints the old and new value and the count is 0', async () => {
    await fetch(`http://127.0.0.1:${lbPort}/api/visits`, { method: 'POST' });
    const before = await count();

    const { stdout } = await make('reset-count');

    expect(stdout.trim()).toBe(`reset headcount:visits: ${before} -> 0; per-replica breakdown cleared (remainder 0)`);
    expect(await count()).toBe(0);
  });

  test('When make loadtest runs against it, then every invariant is checked, the per-replica split of all 4 replicas included', async () => {
    const { stdout } = await make('loadtest', { REQUESTS: 4000, CONNECTIONS: 40, DURATION: 0 });
    const reportFile = /reports: (\S+\.json)/.exec(stdout)?.[1];
    const report = JSON.parse(await readFile(reportFile!, 'utf8'));

    expect(stdout).toMatch(/^verdict: PASS: /m);
    expect(report.target.replicas).toEqual(['web-1', 'web-2', 'web-3', 'web-4']);
    expect(report.accuracy.report).toMatchObject({ ok: true, figures: { sent: 4000, ok: 4000, delta: 4000 } });
    // Every accuracy invariant was checked, none skipped for want of the replica list.
    expect(report.accuracy.report.checks.map((c: { name: string; status: string }) => `${c.name} ${c.status}`)).toEqual(
      ['no-errors', 'all-2xx', 'count-delta', 'unique-numbers', 'contiguous-range', 'replica-share'].map((name) => `${name} PASS`),
    );
    expect(Object.keys(report.accuracy.report.figures.perReplica).sort()).toEqual(['web-1', 'web-2', 'web-3', 'web-4']);
    await rm(path.dirname(reportFile!), { recursive: true, force: true });
  });

  test('When make restart runs under load, then each replica reports its steps and no request fails', async () => {
    const before = await count();
    let restarting = true;
    const statuses: number[] = [];
    let errors = 0;
    // 4 clients visiting back to back until the restart ends (at most 20 000 visits).
    const load = Array.from({ length: 4 }, async () => {
      while (restarting && statuses.length + errors < 20_000) {
        try {
          const response = await fetch(`http://127.0.0.1:${lbPort}/api/visits`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
          await response.arrayBuffer();
          statuses.push(response.status);
        } catch {
          errors += 1;
        }
      }
    });

    const { stdout } = await make('restart').finally(() => (restarting = false));
    await Promise.all(load);

    for (const id of ['web-1', 'web-2', 'web-3', 'web-4']) {
      expect(stdout).toContain(`${id}: draining\n${id}: stopped\n${id}: started\n${id}: back in rotation`);
    }
    expect({ errors, non2xx: statuses.filter((s) => s !== 200).length }).toEqual({ errors: 0, non2xx: 0 });
    expect(statuses.length).toBeGreaterThan(100);
    expect(await count()).toBe(before + statuses.length);
  });

  test('When Ctrl-C reaches make up, then every process of the formation stops and the port is free', async () => {
    const state = readLiveState(lbPort)!;
    const pids = [state.pid, ...state.replicas.map((r) => r.pid!), ...Object.values(state.processes).map((pid) => pid!)];

    process.kill(-up.pid!, 'SIGINT');
    const [code, signal] = await once(up, 'exit');

    // Thousands of visits went through, yet the terminal showed summaries, never request lines.
    expect(output.filter((line) => line.includes('"msg":"request"') || line.includes('"uri":'))).toEqual([]);
    expect(output.filter((line) => /^traffic \| [\d.,]+ req\/s {2}web-1 [\d.,]+ {2}web-2 /.test(line)).length).toBeGreaterThan(0);
    expect(output.length).toBeLessThan(200);
    expect(pids.length).toBeGreaterThanOrEqual(7);
    expect(pids.filter(alive)).toEqual([]);
    expect(output).toContain('stopped');
    // make cleans up, then dies of the same signal, as a shell expects of Ctrl-C.
    expect({ code, signal }).toEqual({ code: null, signal: 'SIGINT' });
    await expect(fetch(`http://127.0.0.1:${lbPort}/`)).rejects.toThrow();
    expect(readLiveState(lbPort)).toBeUndefined();
  });
});
