// `make chaos`: every fault scenario, each on a fresh local formation under a
// bounded load on 127.0.0.1, then one table and one verdict line. QUICK=1 runs
// only the quick ones; ONLY=<text> only those whose name contains it. Exit code as `make loadtest` (loadtest/verdict.ts):
// 0 every check passed, 1 one failed, 3 one could not run (ACCEPT_NOT_CHECKED
// takes "<scenario>: <check>" names, or all).
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { machine, RESULTS_DIR } from '../report.js';
import { newTable, statusText, verdictText } from '../terminal.js';
import { judge, parseAccepted } from '../verdict.js';
import { runScenario } from './run.js';
import { verdictOf, type ScenarioResult } from './scenario.js';
import { scenarios } from './scenarios.js';

const chosen = scenarios.filter((s) => (process.env.QUICK !== '1' || s.quick) && s.name.includes(process.env.ONLY ?? ''));
if (chosen.length === 0) {
  process.stderr.write(`make chaos: no scenario matches ONLY=${process.env.ONLY}; the scenarios are:\n${scenarios.map((s) => `  ${s.name}`).join('\n')}\n`);
  process.exit(2);
}
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const file = path.join(RESULTS_DIR, `chaos-${stamp}.json`);
process.stdout.write(
  `make chaos: ${chosen.length} fault scenarios, each under load on a throwaway formation of its own (its count is deleted with it).\n` +
    `Report will be written to ${file}\n`,
);
const results: ScenarioResult[] = [];
for (const scenario of chosen) {
  process.stderr.write(`chaos: ${scenario.name}\n`);
  results.push(await runScenario(scenario));
}

const table = newTable(['scenario', 'sent', '2xx', 'non-2xx', 'errors', 'delta', 'other figures', 'checks'], {
  colWidths: [26, null, null, null, null, null, 30, 60],
});
for (const r of results) {
  const { sent, ok, non2xx, errors, delta, uniqueNumbers: _u, timeouts: _t, ...extra } = r.figures;
  const verdict = verdictOf(r);
  const notPassed = r.checks.filter((c) => c.status !== 'PASS').map((c) => `${statusText(c.status)} ${c.name}: ${c.detail}`);
  table.push([
    r.name,
    sent,
    ok,
    non2xx,
    errors,
    delta,
    Object.entries(extra).map(([k, v]) => `${k}: ${v}`).join('\n'),
    [`${statusText(verdict.status)} (${verdict.passed} of ${r.checks.length} passed)`, ...notPassed].join('\n'),
  ]);
}
process.stdout.write(`${table.toString()}\n`);
for (const r of results) for (const note of r.notes) process.stdout.write(`${r.name}: ${note}\n`);
const all = results.flatMap((r) => r.checks.map((c) => ({ ...c, name: `${r.name}: ${c.name}` })));
const verdict = judge(all, { accepted: parseAccepted(process.env.ACCEPT_NOT_CHECKED) });
await mkdir(RESULTS_DIR, { recursive: true });
await writeFile(file, `${JSON.stringify({ machine: machine(), verdict, results: results.map((r) => ({ ...r, verdict: verdictOf(r) })) }, null, 2)}\n`);
process.stdout.write(`report: ${file}\nverdict: ${verdictText(verdict.line)}\n`);
process.exitCode = verdict.exitCode;
