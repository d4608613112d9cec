import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ComposeFormation } from './support/compose-formation.js';

describe('docker compose -f docker-compose.yml -f docker-compose.scale.yml up', () => {
  let formation: ComposeFormation;
  beforeAll(async () => {
    formation = await ComposeFormation.create();
  });
  afterAll(() => formation?.destroy());

  test('When the scale override is added and no --scale is given, then 4 replicas run and all of them serve', async () => {
    await formation.up(['-d', '--wait'], 300_000, ['-f', 'docker-compose.yml', '-f', 'docker-compose.scale.yml']);
    const replicas = await formation.replicaIds();

    const results = await formation.client.visitAll(200);

    expect(replicas).toHaveLength(4);
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(new Set(results.map((r) => r.replica))).toEqual(new Set(replicas));
  });
});
