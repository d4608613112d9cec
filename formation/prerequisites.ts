import { accessSync, constants } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

/** Debian/Ubuntu packages that provide each program the local formation runs. */
const PACKAGES: Record<string, string> = {
  'redis-server': 'redis-server',
  nginx: 'nginx',
  chromium: 'chromium',
  prometheus: 'prometheus',
  'prometheus-nginx-exporter': 'prometheus-nginx-exporter',
  'prometheus-redis-exporter': 'prometheus-redis-exporter',
};

/** What the formation runs (chromium is the tests' need: make test-deps). */
export const FORMATION_PROGRAMS = ['redis-server', 'nginx'] as const;
/** What MONITORING=1 runs besides (formation/monitoring.ts). */
export const MONITORING_PROGRAMS = ['prometheus', 'prometheus-nginx-exporter', 'prometheus-redis-exporter'] as const;

// nginx lives in /usr/sbin, which is not on an ordinary user's PATH.
const SEARCH = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'];

export function findExecutable(name: string): string | undefined {
  for (const dir of SEARCH) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export function requireExecutable(name: string): string {
  const found = findExecutable(name);
  if (!found) throw new Error(`${name} is not installed; run: ${installCommand([name])}`);
  return found;
}

export function installCommand(programs: readonly string[]): string {
  const packages = programs.map((p) => PACKAGES[p] ?? p).join(' ');
  return `${process.getuid?.() === 0 ? '' : 'sudo '}apt-get update && ${process.getuid?.() === 0 ? '' : 'sudo '}apt-get install -y --no-install-recommends ${packages}`;
}

/**
 * Makes sure the programs are there: installs them with apt-get when this is
 * Debian/Ubuntu and we are root, and otherwise says exactly what to run.
 * Returns false (after printing) when they are still missing.
 */
export function ensurePrerequisites(
  log: (line: string) => void = console.error,
  programs: readonly string[] = FORMATION_PROGRAMS,
): boolean {
  const missing = programs.filter((program) => !findExecutable(program));
  if (missing.length === 0) return true;
  const canInstall = process.getuid?.() === 0 && findExecutable('apt-get') !== undefined;
  if (!canInstall) {
    log(`missing: ${missing.join(', ')}. Install with:\n  ${installCommand(missing)}`);
    return false;
  }
  log(`installing ${missing.join(', ')} with apt-get ...`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const packages = missing.map((p) => PACKAGES[p]!);
  for (const args of [['update', '-q'], ['install', '-y', '-q', '--no-install-recommends', ...packages]]) {
    if (spawnSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env }).status !== 0) {
      log(`apt-get ${args[0]} failed; install by hand:\n  ${installCommand(missing)}`);
      return false;
    }
  }
  return missing.every((program) => findExecutable(program) !== undefined);
}
