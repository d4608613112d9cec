// `make loadtest`: node dist/loadtest/cli.js [--requests N] [--connections N] [--duration S] ...
import { dockerTarget, loadtestInDocker } from '../formation/docker-loadtest.js';
import { ConfigError } from '../web/config.js';
import { describeOutcome, runLoadtest } from './loadtest.js';
import { loadLoadtestOptions } from './options.js';

try {
  const options = loadLoadtestOptions(process.argv.slice(2), process.env);
  // A Docker formation on the target port: this CLI runs again in a container
  // in its lb's network namespace, exempt from the rate limit (formation/docker-loadtest.ts).
  const inDocker = await loadtestInDocker(process.argv.slice(2));
  if (inDocker !== undefined) {
    process.exitCode = inDocker;
  } else {
    const outcome = await runLoadtest(options, dockerTarget());
    process.stdout.write(`${describeOutcome(outcome)}\n`);
    process.exitCode = outcome.ok ? 0 : 1;
  }
} catch (error) {
  process.stderr.write(`loadtest: ${error instanceof ConfigError || error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 2;
}
