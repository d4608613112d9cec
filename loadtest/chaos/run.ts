import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { startLocalFormation } from '../../formation/local-formation.js';
import { fromRoot } from '../../formation/paths.js';
import type { Scenario, ScenarioResult } from './scenarios.js';

/**
 * Runs one scenario on a fresh local formation (4 replicas, real nginx, real
 * Redis on free ports), and always stops it. The formation's output goes to
 * a log file; its path is in the result's notes when the scenario fails.
 */
export async function runScenario(scenario: Scenario, counterKey = 'headcount:visits'): Promise<ScenarioResult> {
  await mkdir(fromRoot('.run'), { recursive: true });
  const stateDir = await mkdtemp(path.join(fromRoot('.run'), 'chaos-'));
  const logFile = path.join(stateDir, 'formation.log');
  const formation = await startLocalFormation({
    replicas: 4,
    lbPort: 0,
    stateDir,
    logFile,
    replicaEnv: { COUNTER_KEY: counterKey, ...scenario.formation?.replicaEnv },
    lbEnv: scenario.formation?.lbEnv,
  });
  let result: ScenarioResult | undefined;
  try {
    result = await scenario.run(formation, counterKey);
    return result;
  } finally {
    await formation.stop();
    if (result && result.failures.length === 0) await rm(stateDir, { recursive: true, force: true });
    else process.stderr.write(`chaos: "${scenario.name}" left its logs in ${logFile}\n`);
  }
}
