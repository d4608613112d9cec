// Build, release, run (twelve-factor V) at the front door: `make package`,
// `release`, `releases`, `deploy` and `rollback`. The flow is the same in
// every mode; only the last step, replacing the replicas, is the mode's own.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ConfigError, loadConfig } from '../web/config.js';
import { canCross, COUNTING_CONTRACT } from '../web/counting-contract.js';
import { currentTag, packageArtifact } from './artifact.js';
import { deployDocker, runningReleaseDocker } from './docker-deploy.js';
import { appendRelease, previousRelease, readLedger, type ReleaseRecord } from './ledger.js';
import { deployLocal, runningReleaseLocal } from './local-deploy.js';
import type { FormationOptions, Mode } from './options.js';
import { ROOT } from './paths.js';
import { runningReleaseSwarm, swarmCommands } from './swarm-commands.js';

const say = (line: string) => process.stderr.write(`${line}\n`);
const print = (line: string) => process.stdout.write(`${line}\n`);

/** The replica config a release pins (web/config.ts); the formation sets the rest (PORT, REPLICA_ID, ...). */
export const RELEASE_CONFIG_KEYS = ['COUNTER_KEY', 'REDIS_COMMAND_TIMEOUT_MS', 'IDEMPOTENCY_TTL_SECONDS', 'KEEP_ALIVE_TIMEOUT_MS', 'SHUTDOWN_GRACE_MS', 'SHUTDOWN_DELAY_MS', 'LOG_LEVEL'] as const;
/** Set by the environment the release runs in, and named in the record, never valued: REDIS_URL may hold a password. */
export const SECRET_KEYS = ['REDIS_URL', 'REDIS_PASSWORD', 'REDIS_WEB_PASSWORD', 'REDIS_ADMIN_PASSWORD'] as const;

export const releasesDirOf = (options: FormationOptions) => path.resolve(ROOT, options.RELEASES_DIR);

/** The release config of an environment: the non-secret keys it sets, and the names of the secrets it sets. */
export function releaseConfigFrom(env: Readonly<Record<string, string | undefined>>): { config: Record<string, string>; secretNames: string[] } {
  const config = Object.fromEntries(RELEASE_CONFIG_KEYS.flatMap((key) => (env[key] ? [[key, env[key]!]] : [])));
  // The replica's own validation, now rather than at the deploy: a bad value names its variable.
  loadConfig(config);
  return { config, secretNames: SECRET_KEYS.filter((key) => env[key]) };
}

/** The release each mode's formation runs now, if every replica runs the same one. */
function runningRelease(mode: Mode, options: FormationOptions): string | undefined {
  // docker: runningReleaseDocker (formation/docker-deploy.ts); swarm: runningReleaseSwarm (formation/swarm-commands.ts).
  if (mode === 'swarm') return runningReleaseSwarm(options);
  if (mode === 'docker') return runningReleaseDocker(options);
  return runningReleaseLocal(options);
}

async function deployIn(mode: Mode, options: FormationOptions, record: ReleaseRecord): Promise<number> {
  if (mode === 'swarm') return swarmCommands.deploy(options, record);
  if (mode === 'docker') return deployDocker(options, record);
  return deployLocal(options, record);
}

export async function packageCommand(options: FormationOptions, mode: Mode): Promise<number> {
  const artifact = await packageArtifact({ releasesDir: releasesDirOf(options), image: mode !== 'local', say: print });
  print(`artifact ${artifact.tag}: ${artifact.folder}${artifact.image ? `, image ${artifact.image}` : ''}`);
  return 0;
}

/** `make release`: package if needed, pair with the environment's config, append to the ledger (and push the image to REGISTRY). */
export async function releaseCommand(options: FormationOptions, mode: Mode, envFile: string | undefined): Promise<number> {
  const dir = releasesDirOf(options);
  let release: ReturnType<typeof releaseConfigFrom>;
  try {
    release = releaseConfigFrom(process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    say(`release refused: ${error.message}`);
    return 1;
  }
  // Checked before packaging: a dirty tree's artifact is never released, so building it would be wasted.
  const { tag, dirty } = currentTag();
  if (dirty) {
    say(`release refused: the tree is dirty (${tag}); commit or stash the changes, then make release`);
    return 1;
  }
  const wantImage = mode !== 'local' || options.REGISTRY !== undefined;
  const artifact = await packageArtifact({ releasesDir: dir, image: wantImage, say: print });
  let image = artifact.image;
  if (image && options.REGISTRY) {
    const pushed = `${options.REGISTRY}/${image}`;
    for (const args of [['tag', image, pushed], ['push', pushed]]) {
      const result = spawnSync('docker', args, { stdio: ['ignore', 'inherit', 'inherit'] });
      if (result.status !== 0) {
        say(`release refused: docker ${args.join(' ')} failed`);
        return 1;
      }
    }
    image = pushed;
  }
  const record = await appendRelease(dir, {
    commit: artifact.commit,
    tag: artifact.tag,
    envFile: envFile ?? '',
    ...release,
    countingContract: artifact.countingContract,
    folder: artifact.folder,
    ...(image ? { image } : {}),
  });
  print(`released ${record.id}: commit ${record.commit.slice(0, 12)}, config ${record.configDigest.slice(0, 19)}${image ? `, image ${image}` : ''}`);
  print(`deploy it with: make deploy RELEASE=${record.id}`);
  return 0;
}

/** `make releases`: the ledger as a table, `*` marking the release the formation in MODE runs. */
export function releasesCommand(options: FormationOptions, mode: Mode): number {
  const records = readLedger(releasesDirOf(options));
  if (records.length === 0) {
    print(`no releases yet in ${releasesDirOf(options)}; make release creates one`);
    return 0;
  }
  const running = runningRelease(mode, options);
  const rows = records.map((r) => [r.id === running ? '*' : ' ', r.id, r.commit.slice(0, 12), r.created, r.configDigest.slice(0, 19)]);
  const header = [' ', 'id', 'commit', 'created', 'config'];
  const widths = header.map((_h, i) => Math.max(...[header, ...rows].map((row) => row[i]!.length)));
  for (const row of [header, ...rows]) print(row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
  if (running === undefined) print(`(no release runs in ${mode} mode on port ${options.LB_PORT})`);
  return 0;
}

/** The shared deploy: the contract check, then the mode's rolling replacement. */
async function deployRecord(options: FormationOptions, mode: Mode, records: readonly ReleaseRecord[], record: ReleaseRecord): Promise<number> {
  const runningId = runningRelease(mode, options);
  const running = records.find((r) => r.id === runningId);
  // A formation never deployed (`dev`) runs this checkout's code.
  const from = running?.countingContract ?? COUNTING_CONTRACT;
  const verdict = canCross(from, record.countingContract);
  if (!verdict.ok) {
    say(`deploy of ${record.id} refused: ${verdict.reason}`);
    return 1;
  }
  if (runningId === record.id) {
    print(`${record.id} already runs on every replica; nothing to deploy`);
    return 0;
  }
  print(`deploying ${record.id} (from ${runningId ?? 'an unreleased build'})`);
  return deployIn(mode, options, record);
}

/** `make deploy [RELEASE=id]`: the newest release unless one is named. */
export async function deployCommand(options: FormationOptions, mode: Mode): Promise<number> {
  const records = readLedger(releasesDirOf(options));
  const record = options.RELEASE === undefined ? records.at(-1) : records.find((r) => r.id === options.RELEASE);
  if (!record) {
    say(options.RELEASE === undefined ? 'no release to deploy: make release creates one' : `no release ${options.RELEASE} in the ledger; make releases lists them`);
    return 1;
  }
  return deployRecord(options, mode, records, record);
}

/** `make rollback`: deploys the release before the running one, through the same checks. */
export async function rollbackCommand(options: FormationOptions, mode: Mode): Promise<number> {
  const records = readLedger(releasesDirOf(options));
  const runningId = runningRelease(mode, options);
  if (runningId === undefined) {
    say(`nothing to roll back: no release runs in ${mode} mode on port ${options.LB_PORT} (make deploy first)`);
    return 1;
  }
  const previous = previousRelease(records, runningId);
  if (!previous) {
    say(`nothing to roll back to: ${runningId} is the first release in the ledger`);
    return 1;
  }
  print(`rolling back from ${runningId} to ${previous.id}`);
  return deployRecord(options, mode, records, previous);
}
