import { spawnSync } from 'node:child_process';
import type { FormationOptions } from './options.js';
import { ROOT } from './paths.js';

/**
 * Docker mode: the same verbs as the local formation, as docker compose
 * commands on docker-compose.yml. A formation on a port other than 8080 gets
 * its own project name, so `make stop LB_PORT=p` touches only that one.
 */
function compose(options: FormationOptions, args: readonly string[]): number {
  const project = options.LB_PORT === 8080 ? 'headcount' : `headcount-${options.LB_PORT}`;
  const argv = ['compose', '-p', project, ...args];
  process.stderr.write(`+ docker ${argv.join(' ')}\n`);
  const result = spawnSync('docker', argv, {
    cwd: ROOT,
    stdio: 'inherit',
    env: { ...process.env, LB_PORT: String(options.LB_PORT) },
  });
  return result.status ?? 1;
}

const scale = (options: FormationOptions) => ['--scale', `web=${options.REPLICAS}`];

export const dockerCommands = {
  run: (o: FormationOptions) => compose(o, ['up', '--build', ...scale(o)]),
  start: (o: FormationOptions) => compose(o, ['up', '--build', '--detach', '--wait', ...scale(o)]),
  stop: (o: FormationOptions) => compose(o, ['down']),
  status: (o: FormationOptions) => compose(o, ['ps']),
  logs: (o: FormationOptions) => compose(o, ['logs', '--follow', '--tail', '100']),
  resetCount: (o: FormationOptions, value = '0') => compose(o, ['--profile', 'admin', 'run', '--rm', 'admin', 'node', 'dist/admin/reset-count.js', value]),
  // One replica at a time, so the others keep serving (`docker compose restart
  // web` would stop them all at once).
  restart: (o: FormationOptions) => {
    const project = o.LB_PORT === 8080 ? 'headcount' : `headcount-${o.LB_PORT}`;
    const ids = spawnSync('docker', ['compose', '-p', project, 'ps', '--quiet', 'web'], { cwd: ROOT, encoding: 'utf8' });
    for (const id of ids.stdout.split('\n').filter(Boolean)) {
      if (spawnSync('docker', ['restart', id], { stdio: 'inherit' }).status !== 0 || waitHealthy(id) !== 0) return 1;
    }
    return 0;
  },
};

function waitHealthy(id: string): number {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const r = spawnSync('docker', ['inspect', '--format', '{{.State.Health.Status}}', id], { encoding: 'utf8' });
    if (r.stdout.trim() === 'healthy') return 0;
    spawnSync('sleep', ['0.5']);
  }
  process.stderr.write(`container ${id} did not become healthy within 60 s\n`);
  return 1;
}
