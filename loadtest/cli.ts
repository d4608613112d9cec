// `make loadtest`: node dist/loadtest/cli.js [--requests N] [--connections N] [--duration S] ...
import { ConfigError } from '../web/config.js';
import { describeOutcome, runLoadtest } from './loadtest.js';
import { loadLoadtestOptions } from './options.js';

try {
  const outcome = await runLoadtest(loadLoadtestOptions(process.argv.slice(2), process.env));
  process.stdout.write(`${describeOutcome(outcome)}\n`);
  process.exitCode = outcome.ok ? 0 : 1;
} catch (error) {
  process.stderr.write(`loadtest: ${error instanceof ConfigError || error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 2;
}
