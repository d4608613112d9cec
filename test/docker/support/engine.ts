import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findExecutable } from '../../../formation/prerequisites.js';
import { run } from './run.js';

/** Where a Docker engine answers for the tier: the environment its docker commands need. */
export interface Engine {
  kind: 'existing' | 'private';
  /** DOCKER_HOST and DOCKER_CONFIG (private engine), to be merged into every docker command's environment. */
  env: Record<string, string>;
  /** The engine's own hard limit on open files, when it can be read (the private engine). */
  nofileLimit?: number;
  version: string;
  close(): Promise<void>;
}

/**
 * The engine the tier runs on. An engine that already answers (DOCKER_HOST, or
 * the default socket) is used as it is, with the official images; otherwise
 * the tier starts its own dockerd. HEADCOUNT_DOCKER_ENGINE=private forces the
 * private engine, =existing forbids it.
 */
export async function openEngine(cacheDir: string, log: (line: string) => void): Promise<Engine> {
  const choice = process.env.HEADCOUNT_DOCKER_ENGINE ?? 'auto';
  if (choice !== 'private') {
    const info = await run('docker', ['info', '--format', '{{.ServerVersion}}'], { allowFailure: true, timeoutMs: 10_000 }).catch(
      () => undefined,
    );
    if (info?.code === 0) {
      await requireCompose(process.env);
      return { kind: 'existing', env: {}, version: info.stdout.trim(), close: async () => {} };
    }
    if (choice === 'existing') throw new Error(`HEADCOUNT_DOCKER_ENGINE=existing, but no Docker engine answers:\n${info?.stderr ?? ''}`);
  }
  return startPrivateEngine(cacheDir, log);
}

async function requireCompose(env: NodeJS.ProcessEnv): Promise<string> {
  const version = await run('docker', ['compose', 'version', '--short'], { env, allowFailure: true });
  if (version.code !== 0) throw new Error(`docker compose (v2) is not installed for this engine:\n${version.stderr}`);
  return version.stdout.trim();
}

/**
 * Debian's dockerd, started for this run only: its own data root, exec root,
 * socket and pid file under one temporary folder, no iptables rules and no
 * default bridge (so nothing on the machine's network changes), overlay2 on
 * the folder's file system. Compose's own networks still work: they are
 * bridges the engine creates and removes itself.
 */
async function startPrivateEngine(cacheDir: string, log: (line: string) => void): Promise<Engine> {
  const dockerd = findExecutable('dockerd');
  if (!dockerd || !findExecutable('debootstrap')) {
    throw new Error('no Docker engine answers, and the private one needs Debian packages: apt-get install -y docker.io debootstrap');
  }
  if (process.getuid?.() !== 0) throw new Error('no Docker engine answers, and starting a private dockerd needs root');

  // Short: a unix socket path must fit in 108 bytes.
  const dir = await mkdtemp('/tmp/headcount-docker-');
  const socket = path.join(dir, 'docker.sock');
  const pidFile = path.join(dir, 'dockerd.pid');
  const logFile = path.join(dir, 'dockerd.log');
  const config = path.join(dir, 'config');
  const out = openSync(logFile, 'a');
  const child = spawn(
    dockerd,
    [
      '--data-root', path.join(dir, 'data'),
      '--exec-root', path.join(dir, 'exec'),
      '--host', `unix://${socket}`,
      '--pidfile', pidFile,
      '--storage-driver', process.env.HEADCOUNT_DOCKER_STORAGE_DRIVER ?? 'overlay2',
      '--iptables=false',
      '--ip6tables=false',
      '--bridge=none',
    ],
    { stdio: ['ignore', out, out] },
  );
  closeSync(out);
  const pid = child.pid!;
  let exited = false;
  child.on('exit', () => (exited = true));
  // If this process dies without its teardown, the engine must not outlive it.
  const orphanGuard = () => {
    if (!exited) process.kill(pid, 'SIGKILL');
  };
  process.once('exit', orphanGuard);

  const env: Record<string, string> = { DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: config };
  const close = async () => {
    if (!exited) {
      process.kill(pid, 'SIGTERM');
      // dockerd stops its containers and its containerd first; give it time.
      for (let waited = 0; !exited && waited < 30_000; waited += 100) await sleep(100);
      if (!exited) process.kill(pid, 'SIGKILL');
      for (let waited = 0; !exited && waited < 5_000; waited += 100) await sleep(100);
    }
    process.off('exit', orphanGuard);
    await unmountBelow(dir);
    await rm(dir, { recursive: true, force: true });
  };

  try {
    let version = '';
    for (const deadline = Date.now() + 30_000; ; await sleep(200)) {
      if (exited) throw new Error(`dockerd exited at start:\n${tail(logFile)}`);
      const info = await run('docker', ['info', '--format', '{{.ServerVersion}}'], { env: { ...process.env, ...env }, allowFailure: true });
      if (info.code === 0) {
        version = info.stdout.trim();
        break;
      }
      if (Date.now() > deadline) throw new Error(`dockerd did not answer within 30 s:\n${tail(logFile)}`);
    }
    mkdirSync(path.join(config, 'cli-plugins'), { recursive: true });
    const compose = await composePlugin(cacheDir, log);
    await run('ln', ['-s', compose, path.join(config, 'cli-plugins', 'docker-compose')]);
    await requireCompose({ ...process.env, ...env });
    log(`private dockerd ${version} (pid ${pid}) on ${socket}`);
    return { kind: 'private', env, nofileLimit: hardNofile(pid), version, close };
  } catch (error) {
    await close();
    throw error;
  }
}

const tail = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').slice(-15).join('\n') : '');

/** The hard RLIMIT_NOFILE of a process: what the engine can hand its containers and its port proxies. */
function hardNofile(pid: number): number | undefined {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  const hard = line?.trim().split(/\s+/)[4];
  return hard && /^\d+$/.test(hard) ? Number(hard) : undefined;
}

/** Container mounts a killed dockerd left behind would keep `rm` from removing the folder. */
async function unmountBelow(dir: string): Promise<void> {
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1] ?? '')
    .filter((mountPoint) => mountPoint.startsWith(`${dir}/`))
    .reverse();
  for (const mountPoint of mounts) await run('umount', ['-l', mountPoint], { allowFailure: true });
}

/**
 * The Compose v2 CLI plugin from Debian's docker-compose package in sid (it
 * needs only libc), fetched with apt-get into a private apt state folder (the
 * machine's sources and lists stay as they are) and kept in the cache.
 */
async function composePlugin(cacheDir: string, log: (line: string) => void): Promise<string> {
  const target = path.join(cacheDir, 'compose', 'docker-compose');
  if (existsSync(target)) return target;
  log('fetching docker-compose (Compose v2) from Debian sid ...');
  const work = await mkdtemp('/tmp/headcount-apt-');
  try {
    const options = await privateAptOptions(work);
    await run('apt-get', [...options, 'update', '-q'], { timeoutMs: 180_000 });
    await run('apt-get', [...options, 'download', 'docker-compose'], { cwd: work, timeoutMs: 180_000 });
    const deb = (await run('sh', ['-c', 'ls docker-compose_*.deb'], { cwd: work })).stdout.trim();
    await run('dpkg', ['-x', path.join(work, deb), path.join(work, 'root')]);
    mkdirSync(path.dirname(target), { recursive: true });
    await run('install', ['-m', '0755', path.join(work, 'root/usr/libexec/docker/cli-plugins/docker-compose'), target]);
    return target;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export const DEBIAN_MIRROR = process.env.HEADCOUNT_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';

/** apt-get options for sid with its own sources, lists and cache under `work`. */
async function privateAptOptions(work: string): Promise<string[]> {
  const sources = path.join(work, 'sources.list');
  await run('sh', ['-c', `mkdir -p lists/partial cache/archives/partial && echo "deb ${DEBIAN_MIRROR} sid main" > sources.list`], {
    cwd: work,
  });
  return [
    '-o', `Dir::Etc::SourceList=${sources}`,
    '-o', 'Dir::Etc::SourceParts=/dev/null',
    '-o', `Dir::State::Lists=${path.join(work, 'lists')}`,
    '-o', `Dir::Cache=${path.join(work, 'cache')}`,
    // sid's Release file on the mirror can be past its Valid-Until date.
    '-o', 'Acquire::Check-Valid-Until=false',
    // The folder is root's; apt's sandbox user could not write into it.
    '-o', 'APT::Sandbox::User=root',
  ];
}
