// `make chaos`: every fault scenario, each on a fresh local formation under a
// bounded load on 127.0.0.1, then one table. QUICK=1 runs only the quick ones.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import Table from 'cli-table3';
import { machine, RESULTS_DIR } from '../report.js';
import { runScenario } from './run.js';
import { scenarios, type ScenarioResult } from './scenarios.js';

const chosen = scenarios.filter((s) => process.env.QUICK !== '1' || s.quick);
const results: ScenarioResult[] = [];
for (const scenario of chosen) {
  process.stderr.write(`chaos: ${scenario.name}\n`);
  results.push(await runScenario(scenario));
}

const table = new Table({ head: ['scenario', 'sent', '2xx', 'non-2xx', 'errors', 'delta', 'unique', 'other figures', 'verdict'] });
for (const r of results) {
  const { sent, ok, non2xx, errors, delta, uniqueNumbers, timeouts: _t, ...extra } = r.figures;
  table.push([
    r.name,
    sent,
    ok,
    non2xx,
    errors,
    delta,
    uniqueNumbers ? 'yes' : 'NO',
    Object.entries(extra).map(([k, v]) => `${k}: ${v}`).join('\n'),
    r.failures.length === 0 ? 'PASS' : `FAIL\n${r.failures.join('\n')}`,
  ]);
}
process.stdout.write(`${table.toString()}\n`);
for (const r of results) for (const note of r.notes) process.stdout.write(`${r.name}: ${note}\n`);
await mkdir(RESULTS_DIR, { recursive: true });
const file = path.join(RESULTS_DIR, `chaos-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
await writeFile(file, `${JSON.stringify({ machine: machine(), results }, null, 2)}\n`);
process.stdout.write(`report: ${file}\n`);
process.exitCode = results.every((r) => r.failures.length === 0) ? 0 : 1;
