// The formation's front door, called by the Makefile:
//   node dist/formation/cli.js <up|start|stop|restart|status|logs|reset-count|clean-data
//                               |package|release|releases|deploy|rollback> [value]
// REPLICAS, LB_PORT, MODE, ... come from the environment (make passes them)
// and from ENV_FILE (default .env), where the environment has not set them.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadEnvFile } from '../web/env-file.js';
import { dockerCommands } from './docker-commands.js';
import { upDocker } from './docker-up.js';
import { cleanData, logsLocal, restartLocal, runLocal, startLocal, stopLocal } from './local-commands.js';
import { loadFormationOptions, resolveMode, type FormationOptions } from './options.js';
import { deployCommand, packageCommand, releaseCommand, releasesCommand, rollbackCommand } from './release-commands.js';
import { readLiveState } from './state.js';
import { swarmCommands } from './swarm-commands.js';

const ADMIN = fileURLToPath(new URL('../admin/reset-count.js', import.meta.url));

async function main(command: string | undefined, arg: string | undefined): Promise<number> {
  // Loaded into this process's environment, so every process it starts (the
  // replicas, the admin task, docker compose) reads the same values.
  const envFile = loadEnvFile(process.env);
  const options = loadFormationOptions(process.env);
  if (command === 'clean-data') return cleanData();
  // `run` is the detached supervisor that `start` spawns: always local.
  const mode = command === 'run' ? 'local' : resolveMode(options.MODE);
  // Build, release, run: the same flow in every mode (formation/release-commands.ts).
  switch (command) {
    case 'package':
      return packageCommand(options, mode);
    case 'release':
      return releaseCommand(options, mode, envFile);
    case 'releases':
      return releasesCommand(options, mode);
    case 'deploy':
      return deployCommand(options, mode);
    case 'rollback':
      return rollbackCommand(options, mode);
  }
  if (mode === 'swarm') {
    // The stack on the swarm the Docker context points at (formation/swarm-commands.ts).
    switch (command) {
      case 'up':
      case 'start':
        return swarmCommands.upNewest(options);
      case 'status':
        return swarmCommands.status(options);
      case 'reset-count':
        return swarmCommands.resetCount(options, arg);
      case 'stop':
        return swarmCommands.stop(options);
    }
    // Swarm's own commands do these; saying which beats a second wrapper of them.
    const instead: Record<string, string> = {
      logs: 'docker service logs --follow headcount_web (or headcount_lb, headcount_redis)',
      restart: 'docker service update --force headcount_web (a rolling restart under the stack\'s update_config)',
    };
    const hint = command && instead[command] ? `; instead: ${instead[command]}` : '';
    process.stderr.write(`${command ?? '(no command)'} is not a swarm-mode command of headcount${hint}\n`);
    return 2;
  }
  if (mode === 'docker') {
    switch (command) {
      case 'up':
        return upDocker(options);
      case 'start':
        return dockerCommands.start(options);
      case 'stop':
        return dockerCommands.stop(options);
      case 'restart':
        return dockerCommands.restart(options);
      case 'status':
        return dockerCommands.status(options);
      case 'reset-count':
        return dockerCommands.resetCount(options, arg);
      case 'logs':
        return dockerCommands.logs(options);
    }
  } else {
    switch (command) {
      case 'up':
        return runLocal(options);
      case 'run':
        return runLocal(options, true);
      case 'start':
        return startLocal(options);
      case 'stop':
        return stopLocal(options);
      case 'restart':
        return restartLocal(options);
      case 'status':
        return statusLocal(options);
      case 'logs':
        return logsLocal(options);
      case 'reset-count':
        return resetCountLocal(options, arg);
    }
  }
  process.stderr.write('usage: cli.js <up|start|stop|restart|status|logs|reset-count|clean-data|package|release|releases|deploy|rollback> [value]\n');
  return 2;
}

function statusLocal(options: FormationOptions): number {
  const state = readLiveState(options.LB_PORT);
  if (!state) {
    process.stdout.write(`no local formation runs on port ${options.LB_PORT}\n`);
    return 1;
  }
  // Passwords stay in the state file (mode 600), not on the terminal.
  const redacted = JSON.stringify(state, null, 2).replace(/(redis:\/\/[^:/@"]+:)[^@"]+@/g, '$1***@');
  process.stdout.write(`${redacted}\n`);
  return 0;
}

/** The admin one-off process, attached to the running formation's Redis (or REDIS_URL). */
function resetCountLocal(options: FormationOptions, arg: string | undefined): number {
  const redisUrl = readLiveState(options.LB_PORT)?.adminRedisUrl ?? process.env.REDIS_URL;
  if (!redisUrl) {
    process.stderr.write(`no local formation runs on port ${options.LB_PORT} and REDIS_URL is not set\n`);
    return 1;
  }
  const args = [ADMIN, ...(arg === undefined ? [] : [arg])];
  return spawnSync(process.execPath, args, { stdio: 'inherit', env: { ...process.env, REDIS_URL: redisUrl } }).status ?? 1;
}

// `make logs | head` closes the pipe early: that ends the command, it is no failure.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
  process.exit(0);
});

try {
  process.exitCode = await main(process.argv[2], process.argv[3]);
} catch (error) {
  process.stderr.write(`headcount: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
