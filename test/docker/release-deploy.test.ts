import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { deployDocker, webReplicas, type DockerRelease } from '../../formation/docker-deploy.js';
import { loadFormationOptions } from '../../formation/options.js';
import { checkAccuracy, describeViolations } from '../../loadtest/invariants.js';
import { ComposeFormation } from './support/compose-formation.js';
import { watchDns } from './support/dns-watch.js';
import { statusTally } from './support/load.js';
import { startPacedLoad } from './support/paced-load.js';
import { recordFigure } from './support/tier.js';

// EXPERIMENT: the rolling mechanics with two tags of the tier's image.

let formation: ComposeFormation;
const r1: DockerRelease = { id: 'r1-aaaaaaa', tag: 'aaaaaaa', config: {} };
const r2: DockerRelease = { id: 'r2-bbbbbbb', tag: 'bbbbbbb', config: {} };

beforeAll(async () => {
  formation = await ComposeFormation.create();
  for (const r of [r1, r2]) await formation.docker(['tag', 'headcount-web:local', `headcount-web:${r.tag}`]);
  const options = loadFormationOptions({ ...formation.env, MODE: 'docker', REPLICAS: '4' });
  const code = await deployDocker(options, r1, formation.env);
  expect(code).toBe(0);
});

afterAll(async () => {
  await formation?.destroy();
});

async function deployUnderLoad(record: DockerRelease, label: string) {
  const options = loadFormationOptions({ ...formation.env, MODE: 'docker', REPLICAS: '4' });
  const before = await formation.client.count();
  const [lb] = await formation.containers('lb');
  const ips = new Map<string, string>();
  for (const r of webReplicas(options, formation.env)) {
    const ip = (await formation.docker(['inspect', '--format', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', r.id])).stdout.trim();
    ips.set(r.id, ip);
  }
  const dns = watchDns(formation.env, lb!.id, formation.project);
  const started = performance.now();
  const load = startPacedLoad(formation.client, 12_000, 200);
  const code = await deployDocker(options, record, formation.env);
  const deployed = performance.now();
  const results = await load.done;
  dns.stop();
  const seconds = (performance.now() - started) / 1000;
  const report = checkAccuracy({ countBefore: before, countAfter: await formation.client.count(), sent: results.length, results, errors: results.filter((r) => r.status === 0).length });
  const leaving = dns.leaving(ips);
  process.stdout.write(dns.events().map((e) => `${new Date(e.at).toISOString()} ${e.action} ${e.id.slice(0, 12)}`).join("\n") + "\n");
  process.stdout.write(`${label}: ${JSON.stringify(report.figures)} statuses ${JSON.stringify(statusTally(results))} deploy ${((deployed - started) / 1000).toFixed(1)} s load ${seconds.toFixed(1)} s\n${JSON.stringify(leaving, null, 1)}\n`);
  const lbLogs = await formation.compose(['logs', '--no-log-prefix', '--no-color', 'lb']);
  const bad = lbLogs.stdout.split('\n').filter((l) => /"status":5\d\d/.test(l) || /\[(error|warn)\]/.test(l));
  process.stdout.write(`lb lines: ${bad.length}\n${bad.slice(0, 60).join('\n')}\n`);
  process.stdout.write(`ips ${JSON.stringify([...ips])}\n`);
  recordFigure(label, `${results.length} visits, ${report.figures.non2xx} non-2xx, ${seconds.toFixed(1)} s`);
  expect(code).toBe(0);
  expect(load.endedAt()! > deployed).toBe(true);
  expect(report.violations.filter((v) => v.invariant !== 'replica-share'), `${describeViolations(report.violations)}`).toEqual([]);
  const after = webReplicas(options, formation.env).filter((r) => r.status === 'running');
  expect(after.map((r) => r.release)).toEqual([record.id, record.id, record.id, record.id]);
}

describe('experiment', () => {
  test('deploy r2 under load', async () => {
    await deployUnderLoad(r2, 'deploy r2');
  });
  test('deploy r1 under load', async () => {
    await deployUnderLoad(r1, 'rollback r1');
  });
});
