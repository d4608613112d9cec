import { startThrowawayFormation } from '../throwaway-formation.js';
import { verdictOf, type Scenario, type ScenarioResult } from './scenario.js';

/**
 * Runs one scenario on a fresh throwaway formation (4 replicas, real nginx,
 * real Redis on free ports), and always stops it. The formation's output goes
 * to a log file, kept (and named on stderr) unless every check passed.
 */
export async function runScenario(scenario: Scenario, counterKey = 'headcount:visits'): Promise<ScenarioResult> {
  const formation = await startThrowawayFormation({
    purpose: 'chaos',
    replicas: 4,
    replicaEnv: { COUNTER_KEY: counterKey, ...scenario.formation?.replicaEnv },
    lbEnv: scenario.formation?.lbEnv,
  });
  let result: ScenarioResult | undefined;
  try {
    result = await scenario.run(formation, counterKey);
    return result;
  } finally {
    const passed = result !== undefined && verdictOf(result).status === 'PASS';
    await formation.destroy({ keepFiles: !passed });
    if (!passed) process.stderr.write(`chaos: "${scenario.name}" left its logs in ${formation.logFile ?? formation.stateDir}\n`);
  }
}
