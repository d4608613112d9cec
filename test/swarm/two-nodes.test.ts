import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { swarmCommands } from '../../formation/swarm-commands.js';
import { createClient, ok, tally, type Client } from './support/client.js';
import { runningTasks } from './support/stack.js';
import { engines, recordFigure, swarmTier } from './support/tier.js';

// One stack for the whole file, on the tier's two-node swarm; the tests run in
// order and each leaves it with 4 healthy web replicas on the first release.
const options = { LB_PORT: 8080, REPLICAS: 4 };
const env = () => ({ ...process.env, ...swarmTier().managerEnv });
const first = () => ({ id: `r1-${swarmTier().image.split(':').at(-1)}`, image: swarmTier().image });

let client: Client;

beforeAll(async () => {
  const started = performance.now();
  expect(await swarmCommands.up(options, first(), env())).toBe(0);
  recordFigure('make up MODE=swarm (4 web replicas, first pull on both nodes)', `${((performance.now() - started) / 1000).toFixed(1)} s`);
  client = createClient(swarmTier().clientAddress);
});

afterAll(() => client?.close());

describe('A two-node swarm built from scratch', () => {
  test('When the stack is deployed with 4 web replicas, then each node runs at least one, all on the first release', async () => {
    const tasks = await runningTasks(engines().node1, 'web');
    expect(tasks).toHaveLength(4);
    expect([...new Set(tasks.map((t) => t.node))].sort()).toEqual([`hcsw${swarmTier().id}-node1`, `hcsw${swarmTier().id}-node2`]);
    expect(new Set(tasks.map((t) => t.release))).toEqual(new Set([first().id]));
  });

  test('When 5000 visits arrive through nginx at node 1, then the count grows by exactly 5000, answered by replicas on both nodes', async () => {
    const tasks = await runningTasks(engines().node1, 'web');
    const nodeOf = new Map(tasks.map((t) => [t.replica, t.node]));
    const before = await client.count();

    const started = performance.now();
    const visits = await client.visitAll(5000);
    const seconds = (performance.now() - started) / 1000;

    expect(tally(visits)).toEqual({ 200: 5000 });
    expect((await client.count()) - before).toBe(5000);
    expect(new Set(visits.map((v) => v.count)).size).toBe(5000);
    const nodes = new Set(visits.map((v) => nodeOf.get(v.replica ?? '')));
    expect([...nodes].sort()).toEqual([...new Set(nodeOf.values())].sort());
    expect(ok(visits)).toHaveLength(5000);
    recordFigure('5000 visits through nginx, 64 connections', `${seconds.toFixed(1)} s (${Math.round(5000 / seconds)}/s), 0 failed`);
  });
});
