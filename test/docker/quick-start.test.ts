import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { waitFor } from '../../formation/wait.js';
import { ROOT } from '../../formation/paths.js';
import { ComposeFormation } from './support/compose-formation.js';
import { portFree, startForegroundMake, type ForegroundMake } from './support/foreground-make.js';
import { dockerTier, recordFigure } from './support/tier.js';

// The README quick start with MODE=docker, literally: `make up` in the
// foreground, in its own process group as a terminal runs it; wait for the
// ready line; `make reset-count`; then Ctrl-C (SIGINT to the process group).
// Shipped defaults, rate limit on, except what the test's own env file sets
// (ENV_FILE, never the checkout's .env): a COUNTER_KEY and a Redis timeout
// of its own, which must reach the replicas, the admin task and Redis's ACL.

const COUNTER_KEY = 'quickstart:visits';
const READY = /^headcount is ready: http:\/\/localhost:(\d+) \((\d+) replicas\)\. Ctrl-C stops it; make logs LB_PORT=\1 shows every line\.$/;

let formation: ComposeFormation;
let envDir: string;
let envFile: string;
let up: ForegroundMake | undefined;
let lines: string[] = [];

beforeAll(async () => {
  envDir = mkdtempSync(path.join(tmpdir(), 'headcount-quick-start-'));
  envFile = path.join(envDir, 'quick-start.env');
  writeFileSync(envFile, `# the Docker tier's own env file\nCOUNTER_KEY=${COUNTER_KEY}\nREDIS_COMMAND_TIMEOUT_MS=1000\n`);
  formation = await ComposeFormation.create({
    // The shipped default: the rate limit on.
    LB_RATE_LIMIT_OFF: '',
    // `make up` builds (--build); the private engine has no NAT, so its build
    // steps use the host's network, as the tier's own build does.
    ...(dockerTier().engine === 'private' ? { COMPOSE_FILE: ['docker-compose.yml', 'test/docker/compose.build-host.yml'].join(path.delimiter) } : {}),
  });
});

afterAll(async () => {
  // A failed test can leave make up running: its whole group goes.
  up?.kill();
  await formation?.destroy();
  rmSync(envDir, { recursive: true, force: true });
});

describe('the README quick start with MODE=docker: make up, make reset-count, Ctrl-C', () => {
  test('When make up MODE=docker runs in the foreground, then it prints the ready line last, once 4 replicas are healthy and the lb answers', async () => {
    const started = performance.now();
    up = startForegroundMake(formation, 'up', { ENV_FILE: envFile });
    lines = up.lines;

    await up.waitForLine(READY, 280_000);
    const seconds = (performance.now() - started) / 1000;
    expect(up.running(), `make up exited early:\n${up.tail()}`).toBe(true);
    const readyIndex = lines.findIndex((line) => READY.test(line));
    // Everything the line promises holds, and nothing of the start comes after it.
    const web = await formation.containers('web');
    const count = await formation.client.get('/api/count');

    expect(READY.exec(lines[readyIndex]!)?.slice(1)).toEqual([String(formation.port), '4']);
    expect(lines.slice(readyIndex + 1)).toEqual([]);
    expect(web).toHaveLength(4);
    for (const replica of web) expect(replica).toMatchObject({ status: 'running', health: 'healthy' });
    expect(count.status).toBe(200);
    recordFigure('make up MODE=docker to the ready line (cached build)', `${seconds.toFixed(1)} s`);
  });

  test('When the replicas are inspected, then the env file\'s COUNTER_KEY and REDIS_COMMAND_TIMEOUT_MS reached them (ENV_FILE -> --env-file)', async () => {
    const ids = (await formation.containers('web')).map((c) => c.id);

    const envs = (await formation.docker(['inspect', '--format', '{{json .Config.Env}}', ...ids])).stdout.trim().split('\n').map((l) => JSON.parse(l) as string[]);

    expect(envs).toHaveLength(4);
    for (const env of envs) expect(env).toEqual(expect.arrayContaining([`COUNTER_KEY=${COUNTER_KEY}`, 'REDIS_COMMAND_TIMEOUT_MS=1000']));
  });

  test('When visits arrive and make reset-count MODE=docker runs, then the admin task resets the replicas\' own key to 0 and the next visit is number 1', async () => {
    const visits = await formation.client.visitAll(5);
    const before = await formation.client.count();

    const reset = await formation.make('reset-count', { ENV_FILE: envFile });
    const after = await formation.client.count();
    const [next] = await formation.client.visitAll(1);

    expect(visits.map((v) => v.status)).toEqual([200, 200, 200, 200, 200]);
    expect(before).toBe(5);
    expect(reset.stdout).toContain(`reset ${COUNTER_KEY}: 5 -> 0`);
    expect(after).toBe(0);
    expect(next).toMatchObject({ status: 200, count: 1 });
  });

  test('When visits pass while make up runs, then its terminal shows no request line (make logs has them)', async () => {
    const from = lines.length;

    await formation.client.visitAll(20);
    // nginx flushes its access log every second; the replicas log at once.
    await new Promise((resolve) => setTimeout(resolve, 1_500));

    expect(lines.slice(from).filter((line) => /"(msg|request_id)"/.test(line))).toEqual([]);
  });

  test('When a replica is restarted while make up runs, then its terminal shows one line as it exits, starts and is ready again', async () => {
    const [replica] = await formation.containers('web');
    const name = `web-${/-web-(\d+)$/.exec(replica!.name)![1]}`;
    const from = lines.length;

    await formation.docker(['restart', replica!.id], 60_000);
    await waitFor(`${name} to be reported ready again`, async () => lines.slice(from).some((l) => l.startsWith(`${name.padEnd(8)}| ready`)), 60_000, 200);

    expect(lines.slice(from).filter((l) => l.startsWith(name.padEnd(8)))).toEqual([
      `${name.padEnd(8)}| exited (code 0)`,
      `${name.padEnd(8)}| started`,
      `${name.padEnd(8)}| ready`,
    ]);
  });

  test('When make logs runs in Docker mode, then it follows every container\'s lines, request lines included, prefixed by container', async () => {
    const logs = spawn('node', ['dist/formation/cli.js', 'logs'], {
      cwd: ROOT,
      env: { ...formation.env, MODE: 'docker', ENV_FILE: envFile },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const seen: string[] = [];
    createInterface({ input: logs.stdout! }).on('line', (line) => seen.push(line));
    try {
      await formation.client.visitAll(3);
      await waitFor('web and lb request lines in make logs', async () =>
        seen.some((l) => /^web-\d+\s+\| \{.*"msg":"request"/.test(l)) && seen.some((l) => /^lb-1\s+\| \{.*"request_id"/.test(l)),
      30_000, 200);

      expect(seen.some((l) => /^redis-1\s+\| /.test(l))).toBe(true);
      expect(logs.exitCode).toBeNull();
    } finally {
      process.kill(-logs.pid!, 'SIGINT');
    }
  });

  test('When Ctrl-C reaches make up\'s process group, then every container stops, none of the project is left running, and the port is free', async () => {
    const started = performance.now();

    up!.interrupt();
    const code = await Promise.race([up!.exit, new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 90_000))]);
    const seconds = (performance.now() - started) / 1000;
    const running = (await formation.docker(['ps', '--quiet', '--filter', `label=com.docker.compose.project=${formation.project}`])).stdout.trim();
    const all = await Promise.all(['redis', 'web', 'lb'].map((s) => formation.containers(s)));

    expect(code).not.toBe('timeout');
    expect(lines.join('\n')).toContain(`headcount stopped: no container of compose project ${formation.project} runs`);
    expect(running).toBe('');
    for (const c of all.flat()) expect(c).toMatchObject({ status: 'exited', oomKilled: false });
    // Every replica drained and exited by itself: SIGTERM, exit 0, not killed after the grace period.
    for (const c of all[1]!) expect(c.exitCode).toBe(0);
    expect(await portFree(formation.port)).toBe(true);
    recordFigure('make up MODE=docker: Ctrl-C to every container stopped', `${seconds.toFixed(1)} s`);
  });
});
