import { setTimeout as sleep } from 'node:timers/promises';
import { NETWORK, service, type ServiceName } from '../../../formation/swarm-docker.js';
import type { Engine } from './topology.js';

export interface Task {
  id: string;
  /** The container's first 12 hex digits: its hostname, so the replica's X-Replica. */
  replica: string;
  node: string;
  image: string;
  release?: string;
  state: string;
  /** Its address on the stack's overlay network (what `tasks.<service>` answers). */
  address?: string;
}

interface TaskJson {
  ID: string;
  NodeID: string;
  Spec: { ContainerSpec: { Image: string; Env?: string[] } };
  Status: { State: string; ContainerStatus?: { ContainerID?: string } };
  NetworksAttachments?: { Network: { Spec: { Name: string } }; Addresses?: string[] }[];
}

/** The running tasks of a service of the stack (desired state running, container started). */
export async function runningTasks(manager: Engine, name: ServiceName): Promise<Task[]> {
  const ids = (await manager.docker(['service', 'ps', '--quiet', '--filter', 'desired-state=running', service(name)])).stdout.split('\n').filter(Boolean);
  if (ids.length === 0) return [];
  // A task listed a moment ago can be gone now: inspect prints the others and exits 1.
  const inspected = await manager.docker(['inspect', '--type', 'task', ...ids], { allowFailure: true });
  const found = JSON.parse(inspected.stdout.trim() || '[]') as TaskJson[];
  const hostnames = await nodeNames(manager);
  return found
    .filter((t) => t.Status.State === 'running')
    .map((t) => ({
      id: t.ID,
      replica: (t.Status.ContainerStatus?.ContainerID ?? '').slice(0, 12),
      node: hostnames.get(t.NodeID) ?? t.NodeID,
      image: t.Spec.ContainerSpec.Image.replace(/@sha256:[0-9a-f]+$/, ''),
      release: t.Spec.ContainerSpec.Env?.find((kv) => kv.startsWith('RELEASE_ID='))?.slice('RELEASE_ID='.length),
      state: t.Status.State,
      address: t.NetworksAttachments?.find((n) => n.Network.Spec.Name === NETWORK)?.Addresses?.[0]?.replace(/\/\d+$/, ''),
    }));
}

/** Node id -> hostname (hcsw<id>-node1, hcsw<id>-node2). */
export async function nodeNames(manager: Engine): Promise<Map<string, string>> {
  const out = (await manager.docker(['node', 'ls', '--format', '{{.ID}} {{.Hostname}}'])).stdout;
  return new Map(out.split('\n').filter(Boolean).map((line) => line.split(' ') as [string, string]));
}

/** Waits until `name` has `count` running tasks (and returns them). */
export async function waitTasks(manager: Engine, name: ServiceName, test: (tasks: Task[]) => boolean, timeoutMs: number): Promise<Task[]> {
  let tasks: Task[] = [];
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(500)) {
    tasks = await runningTasks(manager, name);
    if (test(tasks)) return tasks;
  }
  throw new Error(`${name}'s tasks did not reach the expected state within ${timeoutMs / 1000} s: ${JSON.stringify(tasks)}`);
}

/**
 * redis-cli as the operator (`default`), in the Redis task's container on its
 * node, with the password from its own secret file: never on a command line.
 */
export async function redisCli(nodes: Engine[], args: readonly string[]): Promise<string> {
  for (const node of nodes) {
    const id = (await node.docker(['ps', '--quiet', '--filter', `label=com.docker.swarm.service.name=${service('redis')}`], { allowFailure: true })).stdout.trim().split('\n')[0];
    if (!id) continue;
    const script = 'exec redis-cli --no-auth-warning --user default --pass "$(cat /run/secrets/redis-password)" "$@"';
    return (await node.docker(['exec', id, 'sh', '-c', script, 'sh', ...args])).stdout;
  }
  throw new Error('no running Redis container on any node');
}
