import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { findExecutable } from '../../../formation/prerequisites.js';
import { run, type RunOptions, type RunResult } from '../../docker/support/run.js';

/**
 * A two-node Docker Swarm on one machine, owned whole by one test run
 * (../../../../shared/notes/swarm-on-one-machine.md has the measured facts):
 *
 *   root namespace ── hcsw<id>r 192.168.214.1 ──veth── 192.168.214.2 ┐
 *     (the test's clients; the build engine)                         node 1 (netns hcsw<id>n1): dockerd,
 *                                                                    │  swarm manager, registry :5000
 *                                                    192.168.213.1 ──┘
 *                                                         │ veth
 *                                                    192.168.213.2 ── node 2 (netns hcsw<id>n2): dockerd, worker
 *
 * Each node's dockerd runs in its namespace (`nsenter --net`, never `ip netns
 * exec`, which remounts /sys), with its own data root, exec root and socket,
 * no iptables rules and no bridge. Every process of a node (dockerd,
 * containerd, shims) and every container it runs (--cgroup-parent) is in the
 * pids cgroup hcsw<id>/<node>, so a node can be killed whole, as a power cut
 * would: the containers' own network namespaces hide them from `ip netns pids`.
 * A third engine, in the root namespace, builds images (it needs the npm
 * registry, which no node may reach) and pushes them to the registry. The
 * nodes pull everything from that registry: the web images by name, the
 * stand-ins for the official images as its docker.io mirror.
 *
 * One cleanup for every exit path: reap.sh beside this file, run by stop(), by
 * a watchdog when the test process dies without its teardown, and for stale
 * runs before a start.
 */

const REAP = fileURLToPath(new URL('./reap.sh', import.meta.url));
const NODE_NET = '192.168.213';
const CLIENT_NET = '192.168.214';
export const REGISTRY = `${NODE_NET}.1:5000`;

export type NodeName = 'node1' | 'node2';

export interface Engine {
  name: NodeName | 'build';
  /** Its network namespace (nodes only). */
  netns?: string;
  /** Where the other node and the registry reach it (nodes only). */
  address?: string;
  /** DOCKER_HOST and DOCKER_CONFIG: merged into its docker commands' environment. */
  env: Record<string, string>;
  docker(args: readonly string[], options?: RunOptions): Promise<RunResult>;
}

export interface Topology {
  id: string;
  node1: Engine;
  node2: Engine;
  build: Engine;
  /** node 1's address on the test's own link: where clients reach the load balancer. */
  clientAddress: string;
  registry: string;
  /** Every process of node 2, its containers' too, SIGKILLed at once. */
  killNode2(): Promise<void>;
  /** node 2's dockerd started again on the same data root; resolves once it answers. */
  restartNode2(): Promise<void>;
  stop(): Promise<void>;
}

const sh = (script: string, options: RunOptions = {}) => run('sh', ['-c', script], { timeoutMs: 60_000, ...options });

export async function startTopology(log: (line: string) => void): Promise<Topology> {
  for (const tool of ['dockerd', 'docker-registry', 'ip', 'nsenter']) {
    if (!findExecutable(tool)) throw new Error(`the Swarm tier needs ${tool}: apt-get install -y docker.io docker-registry iproute2 util-linux`);
  }
  if (process.getuid?.() !== 0) throw new Error('the Swarm tier creates network namespaces and engines: it needs root');
  if (!existsSync('/sys/fs/cgroup/pids')) throw new Error('the Swarm tier needs the cgroup v1 pids controller at /sys/fs/cgroup/pids');

  // What a crashed earlier run left (its test process is gone).
  const stale = await run('sh', [REAP, 'stale']);
  if (stale.stdout.trim()) log(stale.stdout.trim());

  const id = randomBytes(2).toString('hex');
  const dir = `/tmp/hcsw-${id}`;
  const ns = { node1: `hcsw${id}n1`, node2: `hcsw${id}n2` };
  const cgroup = cgroupOf(id);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'owner.pid'), String(process.pid));
  const watchdog = spawn('sh', [REAP, 'watch', String(process.pid), id], { detached: true, stdio: 'ignore' });
  watchdog.unref();

  const stop = async () => {
    await run('sh', [REAP, 'run', id], { timeoutMs: 120_000, allowFailure: true });
    if (watchdog.exitCode === null) process.kill(watchdog.pid!, 'SIGKILL');
  };

  try {
    mkdirSync(cgroup, { recursive: true });
    await sh(
      [
        `ip netns add ${ns.node1}`,
        `ip netns add ${ns.node2}`,
        // node 1 <-> node 2: the cluster's own link.
        `ip link add hcsw${id}a netns ${ns.node1} type veth peer name hcsw${id}b netns ${ns.node2}`,
        // root <-> node 1: for the test's clients and the build engine's pushes only.
        `ip link add hcsw${id}r type veth peer name hcsw${id}c netns ${ns.node1}`,
        `ip -n ${ns.node1} addr add ${NODE_NET}.1/24 dev hcsw${id}a`,
        `ip -n ${ns.node2} addr add ${NODE_NET}.2/24 dev hcsw${id}b`,
        `ip -n ${ns.node1} addr add ${CLIENT_NET}.2/24 dev hcsw${id}c`,
        `ip addr add ${CLIENT_NET}.1/24 dev hcsw${id}r`,
        `ip -n ${ns.node1} link set lo up`,
        `ip -n ${ns.node2} link set lo up`,
        `ip -n ${ns.node1} link set hcsw${id}a up`,
        `ip -n ${ns.node2} link set hcsw${id}b up`,
        `ip -n ${ns.node1} link set hcsw${id}c up`,
        `ip link set hcsw${id}r up`,
        // The registry listens on node 1's cluster address; node 1 itself answers for it.
        `ip route add ${NODE_NET}.1/32 via ${CLIENT_NET}.2 dev hcsw${id}r`,
      ].join(' && '),
    );

    const registryDir = path.join(dir, 'registry');
    mkdirSync(path.join(registryDir, 'data'), { recursive: true });
    writeFileSync(
      path.join(registryDir, 'config.yml'),
      [
        'version: 0.1',
        'log: { level: warn }',
        `storage: { filesystem: { rootdirectory: ${registryDir}/data }, delete: { enabled: true } }`,
        `http: { addr: "${REGISTRY}" }`,
        '',
      ].join('\n'),
    );
    const registry = startIn(id, 'registry', ns.node1, ['docker-registry', 'serve', path.join(registryDir, 'config.yml')], path.join(registryDir, 'log'));
    for (const deadline = Date.now() + 20_000; ; await sleep(200)) {
      if (registry.exited) throw new Error(`docker-registry exited at start:\n${tail(path.join(registryDir, 'log'))}`);
      const probe = await run('curl', ['-fsS', '-m', '2', `http://${REGISTRY}/v2/`], { allowFailure: true });
      if (probe.code === 0) break;
      if (Date.now() > deadline) throw new Error(`docker-registry did not answer within 20 s:\n${tail(path.join(registryDir, 'log'))}`);
    }

    const node1 = engineOf(id, 'node1');
    const node2 = engineOf(id, 'node2');
    const build = engineOf(id, 'build');
    await Promise.all([startEngine(id, node1), startEngine(id, node2), startEngine(id, build)]);
    log(`engines: node1 and node2 in namespaces ${ns.node1}, ${ns.node2}; build engine; registry at ${REGISTRY}`);

    await node1.docker(['swarm', 'init', '--advertise-addr', node1.address!]);
    const token = (await node1.docker(['swarm', 'join-token', '--quiet', 'worker'])).stdout.trim();
    await node2.docker(['swarm', 'join', '--advertise-addr', node2.address!, '--token', token, `${node1.address}:2377`]);
    await waitNodesReady(node1, 2, 60_000);

    return {
      id,
      node1,
      node2,
      build,
      clientAddress: `${CLIENT_NET}.2`,
      registry: REGISTRY,
      killNode2: () => killNode(id, 'node2'),
      restartNode2: () => startEngine(id, node2),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Every node Ready (as the manager sees them), `count` of them. */
export async function waitNodesReady(manager: Engine, count: number, timeoutMs: number): Promise<void> {
  let last = '';
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(500)) {
    last = (await manager.docker(['node', 'ls', '--format', '{{.Hostname}} {{.Status}} {{.Availability}}'], { allowFailure: true })).stdout;
    const ready = last.split('\n').filter((line) => / Ready /.test(`${line} `));
    if (ready.length === count) return;
  }
  throw new Error(`not ${count} nodes Ready within ${timeoutMs / 1000} s:\n${last}`);
}

const cgroupOf = (id: string) => `/sys/fs/cgroup/pids/hcsw${id}`;
const partOf = (name: Engine['name']) => ({ build: 'b', node1: 'n1', node2: 'n2' })[name];

/** `argv` in the pids cgroup of `part`, in network namespace `netns` when given; its output in `logFile`. */
function startIn(id: string, part: string, netns: string | undefined, argv: string[], logFile: string) {
  const cgroup = cgroupOf(id);
  mkdirSync(path.join(cgroup, part, 'main'), { recursive: true });
  const out = openSync(logFile, 'a');
  const enter = netns ? ['nsenter', `--net=/var/run/netns/${netns}`] : [];
  const quoted = [...enter, ...argv].map((a) => `'${a}'`).join(' ');
  // Detached: it belongs to the run (its cgroup), not to the process that started it.
  const child = spawn('sh', ['-c', `echo $$ > ${cgroup}/${part}/main/cgroup.procs && exec ${quoted}`], { stdio: ['ignore', out, out], detached: true });
  child.unref();
  closeSync(out);
  const state = { exited: false };
  child.on('exit', () => (state.exited = true));
  return state;
}

/** The engine `name` of run `id`: its socket, its namespace and address (nodes). */
export function engineOf(id: string, name: Engine['name']): Engine {
  const home = `/tmp/hcsw-${id}/${partOf(name)}`;
  const env = { DOCKER_HOST: `unix://${home}/docker.sock`, DOCKER_CONFIG: path.join(home, 'config') };
  return {
    name,
    netns: name === 'build' ? undefined : `hcsw${id}${partOf(name)}`,
    address: name === 'node1' ? `${NODE_NET}.1` : name === 'node2' ? `${NODE_NET}.2` : undefined,
    env,
    docker: (args, options = {}) => run('docker', args, { ...options, env: { ...process.env, ...env, ...options.env } }),
  };
}

/** Every process of a node, its containers' too, SIGKILLed at once: a power cut. */
export async function killNode(id: string, name: NodeName): Promise<void> {
  await run('sh', [REAP, 'kill', id, partOf(name)]);
}

/** Starts (or starts again, on the same data root) the dockerd of `e`; resolves once it answers. */
export async function startEngine(id: string, e: Engine): Promise<void> {
  const part = partOf(e.name);
  const home = `/tmp/hcsw-${id}/${part}`;
  mkdirSync(path.join(home, 'config'), { recursive: true });
  // Its own hostname (a UTS namespace of its own), so `docker node ls` tells the nodes apart.
  const argv = [
    'unshare', '--uts', 'sh', '-c', `hostname hcsw${id}-${e.name} && exec "$@"`, 'sh',
    'dockerd',
    '--data-root', path.join(home, 'data'),
    '--exec-root', path.join(home, 'exec'),
    '--host', e.env.DOCKER_HOST!,
    '--pidfile', path.join(home, 'dockerd.pid'),
    '--storage-driver', 'overlay2',
    '--iptables=false',
    '--ip6tables=false',
    '--bridge=none',
    '--insecure-registry', REGISTRY,
    // Its containers in the node's cgroup, so killing the node kills them.
    '--cgroup-parent', `/hcsw${id}/${part}`,
    // The nodes pull the official images' stand-ins from the run's registry.
    ...(e.netns ? ['--registry-mirror', `http://${REGISTRY}`] : []),
  ];
  const state = startIn(id, part, e.netns, argv, path.join(home, 'dockerd.log'));
  for (const deadline = Date.now() + 60_000; ; await sleep(250)) {
    if (state.exited) throw new Error(`dockerd of ${e.name} exited at start:\n${tail(path.join(home, 'dockerd.log'))}`);
    if ((await e.docker(['info', '--format', '{{.ServerVersion}}'], { allowFailure: true })).code === 0) return;
    if (Date.now() > deadline) throw new Error(`dockerd of ${e.name} did not answer within 60 s:\n${tail(path.join(home, 'dockerd.log'))}`);
  }
}

const tail = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').slice(-15).join('\n') : '');
