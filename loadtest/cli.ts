// `make loadtest`: node dist/loadtest/cli.js [--requests N] [--connections N] [--duration S] ...
// Exit code: 0 every check passed; 1 a check failed; 3 a required check could
// not run (NOT CHECKED; ACCEPT_NOT_CHECKED=<names>|all accepts it); 2 bad options
// or no formation to load (loadtest/verdict.ts).
import { dockerTarget, loadtestInDocker } from '../formation/docker-loadtest.js';
import { ConfigError } from '../web/config.js';
import { loadEnvFile } from '../web/env-file.js';
import { describeOutcome, runLoadtest } from './loadtest.js';
import { loadLoadtestOptions } from './options.js';
import { EXIT } from './verdict.js';

try {
  // The same env file as the formation's commands, so LB_PORT or REPLICAS set there point here too.
  loadEnvFile(process.env);
  const options = loadLoadtestOptions(process.argv.slice(2), process.env);
  // A Docker formation on the target port: this CLI runs again in a container
  // in its lb's network namespace, exempt from the rate limit (formation/docker-loadtest.ts).
  const inDocker = await loadtestInDocker(process.argv.slice(2));
  if (inDocker !== undefined) {
    process.exitCode = inDocker;
  } else {
    const outcome = await runLoadtest(options, dockerTarget(), (text) => process.stdout.write(`${text}\n`));
    process.stdout.write(`${describeOutcome(outcome)}\n`);
    process.exitCode = outcome.verdict.exitCode;
  }
} catch (error) {
  process.stderr.write(`loadtest: ${error instanceof ConfigError || error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = EXIT.usage;
}
