import { spawn, spawnSync, type SpawnOptions } from 'node:child_process';
import { createInterface } from 'node:readline';
import { composeArgv, composeEnv, monitoringUrlsNote, parseComposePs, projectName, scaleArgs, upBuild, type ComposePsEntry } from './docker-commands.js';
import { unpulledImagesNote, unpulledImagesOf } from './docker-images.js';
import type { FormationOptions } from './options.js';
import { ROOT } from './paths.js';

/**
 * `make up` in Docker mode: the formation in the foreground, as the local
 * `make up` runs it. `docker compose up --detach --wait` starts it and returns
 * once every container is healthy (web: GET /readyz; lb: /lb-healthz); then
 * the ready line, the same as local mode's, is printed last; then only
 * lifecycle events (started, ready, exited, unhealthy), never the request
 * lines, which `make logs` follows. Ctrl-C (SIGINT to the whole process group,
 * as a terminal sends it) runs `docker compose stop`: every container stops
 * within its grace period, and the port is free again.
 *
 * Not `docker compose up` attached: it would print every request line of
 * every replica (hundreds of thousands under `make loadtest`), and it has no
 * line that says the formation is ready.
 */
export async function upDocker(options: FormationOptions, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const compose = composeArgv(options, env);
  const build = upBuild(options, env);
  const spawnOptions = { cwd: ROOT, env: { ...composeEnv(options, env), ...build.env } };
  const say = (line: string) => process.stdout.write(`${line}\n`);

  let stopRequested = false;
  let wake = () => {};
  const stopWanted = new Promise<void>((resolve) => (wake = resolve));
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopRequested) {
      say('still stopping: each container gets its grace period (web: 15 s)');
      return;
    }
    stopRequested = true;
    say(`${signal === 'SIGINT' ? '' : `${signal}: `}stopping the formation (docker compose stop) ...`);
    wake();
  };
  // Installed before anything starts, so a Ctrl-C during the start also stops what started.
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const signal of signals) process.on(signal, onSignal);

  let events: ReturnType<typeof spawn> | undefined;
  try {
    const upArgs = [...compose, 'up', ...build.args, '--detach', '--wait', ...scaleArgs(options)];
    process.stderr.write(`+ docker ${upArgs.join(' ')}\n`);
    const up = await exitOf('docker', upArgs, { ...spawnOptions, stdio: 'inherit' });
    if (!stopRequested && up !== 0) {
      // An image that could not be pulled (Grafana's, where no registry
      // answers) leaves compose's one-line error among its pull progress, and
      // no container to ask: name the image, and the ways out.
      const missing = unpulledImagesOf(options, spawnOptions.env);
      // Stopped, not removed: their output stays for `docker compose logs`.
      say(
        missing.length > 0
          ? `docker compose up failed (exit ${up}): ${unpulledImagesNote(missing)}`
          : `docker compose up failed (exit ${up}); stopping what it started. What the containers said: docker compose -p ${projectName(options)} logs`,
      );
    }
    if (!stopRequested && up === 0) {
      events = followLifecycle(options, spawnOptions.env, say, () => {
        if (stopRequested) return;
        say('docker events ended (is the engine still running?)');
        onSignal('SIGTERM');
      });
      // What runs now, as compose reports it: the replicas, and the monitoring
      // UIs at the addresses they were published on.
      const running = runningServices(options, spawnOptions.env);
      const replicas = running.filter((entry) => entry.Service === 'web').length;
      say(
        `headcount is ready: http://localhost:${options.LB_PORT} (${replicas} replicas).${monitoringUrlsNote(options, running)} ` +
          `Ctrl-C stops it; make logs${options.LB_PORT === 8080 ? '' : ` LB_PORT=${options.LB_PORT}`} shows every line.`,
      );
      await stopWanted;
    }
    // Its own process group: a second Ctrl-C must not cut the stop short and
    // leave containers running.
    const stopped = await exitOf('docker', [...compose, 'stop'], { ...spawnOptions, stdio: ['ignore', 'inherit', 'inherit'], detached: true });
    if (stopped !== 0) {
      say(`docker compose stop failed (exit ${stopped}): see \`docker compose -p ${projectName(options)} ps\``);
      return 1;
    }
    say(`headcount stopped: no container of compose project ${projectName(options)} runs; the count stays in its volume (make stop MODE=docker removes the containers)`);
    return up === 0 ? 0 : up;
  } finally {
    events?.kill();
    for (const signal of signals) process.off(signal, onSignal);
  }
}

function exitOf(command: string, args: readonly string[], options: SpawnOptions): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(command, args, options);
    child.on('error', (error) => {
      process.stderr.write(`${command}: ${error.message}\n`);
      resolve(127);
    });
    child.on('close', (code, signal) => resolve(code ?? (signal === 'SIGINT' ? 130 : 128)));
  });
}

/** The project's running containers, one entry each, with what they publish (`docker compose ps --format json`). */
function runningServices(options: FormationOptions, env: NodeJS.ProcessEnv): ComposePsEntry[] {
  const ps = spawnSync('docker', [...composeArgv(options, env), 'ps', '--format', 'json', '--status', 'running'], { cwd: ROOT, env, encoding: 'utf8' });
  try {
    return parseComposePs(ps.stdout);
  } catch {
    process.stderr.write(`docker compose ps --format json: unreadable answer\n${ps.stdout.slice(0, 300)}\n`);
    return [];
  }
}

interface DockerEvent {
  Action?: string;
  Actor?: { Attributes?: Record<string, string> };
}

/**
 * What happened to a container of the formation, as one line in local mode's
 * form (`web-2   | exited (code 1)`), or undefined for what is not worth a
 * line (healthcheck execs, create, kill, ...).
 */
export function lifecycleLine(event: DockerEvent): string | undefined {
  const attributes = event.Actor?.Attributes ?? {};
  const service = attributes['com.docker.compose.service'];
  const number = attributes['com.docker.compose.container-number'];
  if (!service || attributes['com.docker.compose.oneoff'] === 'True') return undefined;
  const name = service === 'web' && number ? `web-${number}` : service;
  const action = event.Action ?? '';
  const health = /^health_status: ?(\w+)/.exec(action)?.[1];
  let text: string | undefined;
  if (action === 'start') text = 'started';
  else if (action === 'die') text = `exited (code ${attributes.exitCode ?? '?'})`;
  else if (action === 'oom') text = 'out of memory';
  else if (health === 'healthy') text = service === 'web' ? 'ready' : 'healthy';
  else if (health === 'unhealthy') {
    text = service === 'web' ? 'unhealthy: GET /readyz fails (Redis unreachable, or draining)' : 'unhealthy: its healthcheck fails';
  }
  return text === undefined ? undefined : `${name.padEnd(8)}| ${text}`;
}

/** `docker events` for the project's containers, printed as lifecycle lines; `onEnd` if the stream ends. */
function followLifecycle(options: FormationOptions, env: NodeJS.ProcessEnv, say: (line: string) => void, onEnd: () => void) {
  const filters = ['start', 'die', 'oom', 'health_status'].flatMap((e) => ['--filter', `event=${e}`]);
  const child = spawn(
    'docker',
    ['events', '--filter', 'type=container', '--filter', `label=com.docker.compose.project=${projectName(options)}`, ...filters, '--format', '{{json .}}'],
    // Its own process group, so Ctrl-C does not end it before this process
    // has seen the signal; if this process dies, its next write fails (EPIPE)
    // and it ends.
    { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'inherit'], detached: true },
  );
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      const text = lifecycleLine(JSON.parse(line) as DockerEvent);
      if (text) say(text);
    } catch {
      // not JSON: not an event
    }
  });
  child.on('close', onEnd);
  child.on('error', onEnd);
  return child;
}
