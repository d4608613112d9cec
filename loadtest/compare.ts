// `make bench-compare BEFORE=<git rev>`: one change measured before and after,
// in one run, on the formation users start (REPLICAS replicas behind nginx,
// Redis with redis/redis.conf's persistence). BEFORE is packaged the way
// `make package` packages a commit (formation/artifact.ts; kept under
// .run/bench-compare, so a second comparison reuses it); AFTER is this
// checkout's build, or another rev. Both formations run side by side and are
// loaded in turn, in rounds whose order alternates, so drift on a noisy
// machine falls on both alike; each round pairs a before with an after.
// Each side runs its rev's replica build, nginx template (lb/nginx.conf.template)
// and redis.conf, so a change to any of them is measured; the supervisor, and
// the values it puts into the template (ports, LB_* settings), are this
// checkout's on both sides.
//   BEFORE (required), AFTER (default: this checkout), ROUNDS (default 6),
//   DURATION (s per round, default 8), CONNECTIONS (default 100),
//   ANSWER json|html (default json), REPLICAS (default 4),
//   NODE_FLAGS_BEFORE, NODE_FLAGS_AFTER (flags for the replicas' node, space-separated,
//   or none; default: REPLICA_NODE_FLAGS on both sides; with BEFORE=HEAD they compare
//   flags alone)
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { packageArtifact } from '../formation/artifact.js';
import { REDIS_CONF, type LocalFormation, type LocalFormationOptions, type ReplicaRelease } from '../formation/local-formation.js';
import { TEMPLATE_PATH } from '../formation/nginx-config.js';
import { fromRoot, ROOT } from '../formation/paths.js';
import { ConfigError, integer, parseEnv } from '../web/env.js';
import { fire, latencyOf, type CannonOptions } from './cannon.js';
import { formationCpuGroups, measureCpu } from './cpu.js';
import { machine, median, RESULTS_DIR } from './report.js';
import { newTable } from './terminal.js';
import { startThrowawayFormation, type ThrowawayFormation } from './throwaway-formation.js';

const usage = (message: string): never => {
  process.stderr.write(`make bench-compare: ${message}\n`);
  process.exit(2);
};
const options = (() => {
  try {
    return parseOptions();
  } catch (error) {
    return usage(error instanceof ConfigError ? error.message : String(error));
  }
})();
function parseOptions() {
  const nodeFlags = z
    .string()
    .regex(/^(none|--[\w-]+(=\S+)?( --[\w-]+(=\S+)?)*)$/, { error: 'must be node flags separated by spaces, e.g. --max-semi-space-size=32 --single-threaded-gc, or none' })
    .transform((value) => (value === 'none' ? [] : value.split(' ')))
    .optional();
  return parseEnv(
    z.object({
      BEFORE: z.string({ error: 'is required: the git rev to measure against, e.g. BEFORE=HEAD~1' }).min(1),
      AFTER: z.string().min(1).optional(),
      ROUNDS: integer(2, 100).default(6),
      DURATION: integer(1, 600).default(8),
      CONNECTIONS: integer(1, 10_000).default(100),
      ANSWER: z.enum(['json', 'html']).default('json'),
      REPLICAS: integer(1, 16).default(4),
      NODE_FLAGS_BEFORE: nodeFlags,
      NODE_FLAGS_AFTER: nodeFlags,
    }),
    process.env,
  );
}

const CACHE = fromRoot('.run', 'bench-compare');
const GROUPS = ['nginx', 'replicas', 'redis', 'load generator'] as const;

const git = (...args: string[]) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();

interface Rev extends ReplicaRelease {
  commit: string;
  /** The rev's nginx template and redis.conf, so that the formation around its replicas is its own too. */
  configFiles: NonNullable<LocalFormationOptions['configFiles']>;
}

/** The files of `rev` at these paths, written under .run/bench-compare/files/<commit>/. */
async function formationFiles(commit: string): Promise<Rev['configFiles']> {
  const folder = path.join(CACHE, 'files', commit);
  await mkdir(folder, { recursive: true });
  const [nginxTemplate, redisConf] = [path.join(folder, 'nginx.conf.template'), path.join(folder, 'redis.conf')];
  await writeFile(nginxTemplate, git('show', `${commit}:lb/nginx.conf.template`));
  await writeFile(redisConf, git('show', `${commit}:redis/redis.conf`));
  return { nginxTemplate, redisConf };
}

/** The artifact of `rev` (built once, then reused), from a throwaway worktree so this checkout is untouched. */
async function packageRev(rev: string): Promise<Rev> {
  let commit = '';
  try {
    commit = git('rev-parse', '--verify', '--quiet', `${rev}^{commit}`);
  } catch {
    usage(`${rev} names no commit in ${ROOT} (git rev-parse --verify ${rev})`);
  }
  await mkdir(CACHE, { recursive: true });
  const worktree = await mkdtemp(path.join(CACHE, 'tree-'));
  try {
    git('worktree', 'add', '--detach', '--quiet', worktree, commit);
    const artifact = await packageArtifact({ releasesDir: CACHE, image: false, root: worktree, say: (line) => process.stderr.write(`${line}\n`) });
    const id = `${rev.replace(/[^A-Za-z0-9._-]/g, '_')}-${artifact.tag}`.slice(0, 64);
    return { id, folder: artifact.folder, config: {}, commit, configFiles: await formationFiles(commit) };
  } finally {
    // Guarded: if `worktree add` failed there is no worktree to remove, and
    // that error must not replace the one that explains the failure.
    try {
      git('worktree', 'remove', '--force', worktree);
    } catch (error) {
      process.stderr.write(`bench-compare: git worktree remove ${worktree}: ${error instanceof Error ? error.message : String(error)}\n`);
    }
    await rm(worktree, { recursive: true, force: true });
    git('worktree', 'prune');
  }
}

const flagsNote = (flags: string[] | undefined) => (flags ? `, node ${flags.join(' ') || 'without flags'}` : '');

interface Side {
  name: string;
  what: string;
  /** The nginx template and redis.conf its formation ran with. */
  configFiles: Rev['configFiles'];
  formation: ThrowawayFormation;
  rounds: { requests: number; seconds: number; p50: number; p99: number; cpu: Record<string, number> }[];
}

const headers = options.ANSWER === 'json' ? { accept: 'application/json' } : { accept: 'text/html' };
const load = (f: LocalFormation, extra: Partial<CannonOptions>): CannonOptions => ({ url: f.lbUrl, headers, connections: options.CONNECTIONS, timeout: 10, ...extra });

async function round(side: Side, index: number) {
  const f = side.formation;
  const { value: result, cpu } = await measureCpu(formationCpuGroups(f), () => fire(load(f, { duration: options.DURATION }), `bench-compare: ${side.name}, round ${index + 1} of ${options.ROUNDS}`));
  if (result.errors > 0 || result.non2xx > 0) throw new Error(`${side.name}: ${result.errors} errors and ${result.non2xx} non-2xx answers in round ${index + 1}: not a fair figure`);
  const { p50, p99 } = latencyOf(result);
  side.rounds.push({ requests: result.requests.total, seconds: result.duration, p50, p99, cpu });
}

function summary(side: Side) {
  const requests = side.rounds.reduce((sum, r) => sum + r.requests, 0);
  const seconds = side.rounds.reduce((sum, r) => sum + r.seconds, 0);
  const cpuMs = Object.fromEntries(GROUPS.map((g) => [g, (side.rounds.reduce((sum, r) => sum + (r.cpu[g] ?? 0), 0) * 1000) / Math.max(requests, 1)]));
  return {
    requestsPerSecond: requests / Math.max(seconds, 0.001),
    p50: median(side.rounds.map((r) => r.p50)),
    p99: median(side.rounds.map((r) => r.p99)),
    cpuMsPerVisit: cpuMs,
    cpuMsPerVisitTotal: Object.values(cpuMs).reduce((a, b) => a + b, 0),
  };
}

const before = await packageRev(options.BEFORE);
const after = options.AFTER ? await packageRev(options.AFTER) : undefined;
const afterWhat = after ? `${options.AFTER} (${after.commit.slice(0, 12)})` : `this checkout (${git('rev-parse', '--short=12', 'HEAD')}${git('status', '--porcelain', '--untracked-files=no') ? ', with uncommitted changes' : ''})`;
const started: ThrowawayFormation[] = [];
try {
  const start = async (rev: Rev | undefined, nodeFlags: string[] | undefined) => {
    const f = await startThrowawayFormation({
      purpose: 'bench-compare',
      replicas: options.REPLICAS,
      nodeFlags,
      ...(rev ? { release: { id: rev.id, folder: rev.folder, config: rev.config }, configFiles: rev.configFiles } : {}),
    });
    started.push(f);
    return f;
  };
  const sides: Side[] = [
    {
      name: 'before',
      what: `${options.BEFORE} (${before.commit.slice(0, 12)})${flagsNote(options.NODE_FLAGS_BEFORE)}`,
      configFiles: before.configFiles,
      formation: await start(before, options.NODE_FLAGS_BEFORE),
      rounds: [],
    },
    {
      name: 'after',
      what: `${afterWhat}${flagsNote(options.NODE_FLAGS_AFTER)}`,
      configFiles: after?.configFiles ?? { nginxTemplate: TEMPLATE_PATH, redisConf: REDIS_CONF },
      formation: await start(after, options.NODE_FLAGS_AFTER),
      rounds: [],
    },
  ];
  // Unmeasured first: V8 compiles the hot code only after thousands of calls.
  for (const side of sides) await fire(load(side.formation, { amount: 5_000 * options.REPLICAS }), `bench-compare: warm-up ${side.name}`);
  for (let i = 0; i < options.ROUNDS; i++) {
    for (const side of i % 2 ? [...sides].reverse() : sides) await round(side, i);
  }

  const [b, a] = sides.map(summary) as [ReturnType<typeof summary>, ReturnType<typeof summary>];
  const paired = sides[0]!.rounds.map((r, i) => sides[1]!.rounds[i]!.requests / sides[1]!.rounds[i]!.seconds / (r.requests / r.seconds));
  const table = newTable(['', 'req/s', 'p50 ms', 'p99 ms', ...GROUPS, 'all']);
  const row = (label: string, s: typeof b) => [label, Math.round(s.requestsPerSecond), s.p50, s.p99, ...GROUPS.map((g) => s.cpuMsPerVisit[g]!.toFixed(3)), s.cpuMsPerVisitTotal.toFixed(3)];
  table.push(row(`before: ${sides[0]!.what}`, b), row(`after: ${sides[1]!.what}`, a));
  table.push([
    'after / before',
    (a.requestsPerSecond / b.requestsPerSecond).toFixed(3),
    (a.p50 / b.p50).toFixed(2),
    (a.p99 / b.p99).toFixed(2),
    ...GROUPS.map((g) => (a.cpuMsPerVisit[g]! / b.cpuMsPerVisit[g]!).toFixed(3)),
    (a.cpuMsPerVisitTotal / b.cpuMsPerVisitTotal).toFixed(3),
  ]);
  const m = machine();
  process.stdout.write(
    `make bench-compare: ${options.REPLICAS} replicas via nginx, ${options.ANSWER} answers, ${options.ROUNDS} rounds of ${options.DURATION} s each at ${options.CONNECTIONS} connections, alternating; ` +
      `${m.cpus} CPUs (${m.cpuModel}), Node ${m.node}\n` +
      `${table.toString()}\n` +
      `after / before req/s, round by round: ${paired.map((r) => r.toFixed(3)).join(' ')} (median ${median(paired).toFixed(3)}, range ${Math.min(...paired).toFixed(3)}-${Math.max(...paired).toFixed(3)})\n` +
      `p50 and p99: the median of the rounds'. nginx ... all: CPU-ms per visit by process group (CPU time over all rounds / visits).\n`,
  );
  await mkdir(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `compare-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(file, `${JSON.stringify({ machine: m, options, before: { ...sides[0], formation: undefined, summary: b }, after: { ...sides[1], formation: undefined, summary: a }, paired }, null, 2)}\n`);
  process.stdout.write(`report: ${file}\n`);
} finally {
  for (const f of started) await f.destroy();
}
