// The build stage's immutable output (twelve-factor V): `make package`.
// One commit becomes one artifact, built once from the committed tree (never
// from whatever else lies in the checkout): a folder that runs on its own,
// and, where Docker runs, the image headcount-web:<tag>.
import { execFileSync, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { CountingContract } from '../web/counting-contract.js';
import { ROOT } from './paths.js';

export interface ArtifactInfo {
  tag: string;
  commit: string;
  builtAt: string;
  countingContract: { version: number; crossesFrom: number[] };
  node: string;
}

export interface Artifact extends ArtifactInfo {
  /** The folder, absolute: `node <folder>/dist/web/server.js` runs a replica. */
  folder: string;
  dirty: boolean;
  /** `headcount-web:<tag>`, when an image was built (or found). */
  image?: string;
}

export interface PackageOptions {
  releasesDir: string;
  /** Also build the image (a Docker engine answers, or MODE=docker|swarm). */
  image: boolean;
  say?: (line: string) => void;
  /** The checkout to package; default: this one. */
  root?: string;
}

export const IMAGE_NAME = 'headcount-web';
export const artifactsDir = (releasesDir: string) => path.join(releasesDir, 'artifacts');

const git = (root: string, ...args: string[]) => execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();

/**
 * A tree object of the checkout as it is (tracked changes and new files that
 * .gitignore does not exclude), written through a scratch index so the real
 * index and the checkout stay untouched.
 */
function snapshotTree(root: string, scratch: string): string {
  mkdirSync(scratch, { recursive: true });
  const env = { ...process.env, GIT_INDEX_FILE: path.join(scratch, 'index') };
  const inScratch = (...args: string[]) => execFileSync('git', args, { cwd: root, encoding: 'utf8', env }).trim();
  inScratch('read-tree', 'HEAD');
  inScratch('add', '-A');
  return inScratch('write-tree');
}

/** The commit, its artifact tag (`<short sha>`, `<short sha>-dirty`) and whether tracked files differ from it. */
export function currentTag(root = ROOT): { commit: string; tag: string; dirty: boolean } {
  const commit = git(root, 'rev-parse', 'HEAD');
  const short = git(root, 'rev-parse', '--short=7', 'HEAD');
  // A new file counts too (unless .gitignore excludes it): it would be in the artifact.
  const dirty = git(root, 'status', '--porcelain') !== '';
  return { commit, tag: dirty ? `${short}-dirty` : short, dirty };
}

export function readArtifactInfo(folder: string): ArtifactInfo | undefined {
  try {
    return JSON.parse(readFileSync(path.join(folder, 'artifact.json'), 'utf8')) as ArtifactInfo;
  } catch {
    return undefined;
  }
}

function run(command: string, args: string[], options: SpawnSyncOptions & { what: string }) {
  const result = spawnSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...options });
  if (result.status !== 0) {
    const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n');
    throw new Error(`${options.what} failed (${command} ${args.join(' ')}):\n${output || result.error?.message}`);
  }
}

/** Writes the tree of `treeish` (a commit, or snapshotTree's tree of a dirty checkout) into `dir`. */
function exportTree(root: string, treeish: string, dir: string) {
  mkdirSync(dir, { recursive: true });
  const tar = `${dir}.tar`;
  run('git', ['archive', '--format=tar', '-o', tar, treeish], { cwd: root, what: 'git archive' });
  run('tar', ['-xf', tar, '-C', dir], { what: 'unpacking the exported tree' });
  rmSync(tar);
}

/** Files read-only, folders read+enter only: an artifact never changes once built. */
function makeReadOnly(target: string) {
  for (const entry of readdirSync(target, { withFileTypes: true })) {
    const full = path.join(target, entry.name);
    if (entry.isDirectory()) makeReadOnly(full);
    else if (!entry.isSymbolicLink()) chmodSync(full, statSync(full).mode & 0o555);
  }
  chmodSync(target, 0o555);
}

/** Undoes makeReadOnly so a folder can be deleted (a dirty artifact is rebuilt each time). */
export function removeArtifactFolder(target: string) {
  if (!existsSync(target)) return;
  const writable = (dir: string) => {
    chmodSync(dir, 0o755);
    for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) writable(path.join(dir, entry.name));
  };
  writable(target);
  rmSync(target, { recursive: true, force: true });
}

const npm = (args: string[], cwd: string, what: string) =>
  // --prefer-offline: the npm cache first (CI and this machine have it warm); --ignore-scripts: no
  // dependency needs an install script (web/Dockerfile does the same for the runtime image).
  run('npm', [...args, '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd, what, env: { ...process.env, NODE_ENV: '' } });

/** The counting contract the packaged code declares: read from the artifact itself, never from the packaging code. */
async function contractOf(folder: string): Promise<ArtifactInfo['countingContract']> {
  const file = path.join(folder, 'dist/web/counting-contract.js');
  // A commit from before contracts had versions speaks version 1 (the same keys and script).
  let contract: CountingContract = { version: 1, crossesFrom: [] };
  if (existsSync(file)) contract = ((await import(pathToFileURL(file).href)) as { COUNTING_CONTRACT: CountingContract }).COUNTING_CONTRACT;
  return { version: contract.version, crossesFrom: [...contract.crossesFrom] };
}

export const imageRef = (tag: string) => `${IMAGE_NAME}:${tag}`;

export function imageExists(ref: string): boolean {
  return spawnSync('docker', ['image', 'inspect', ref], { stdio: 'ignore', timeout: 30_000 }).status === 0;
}

/** docker build from the exported tree, with the labels a release and Swarm read (NODE_IMAGE: another base). */
function buildImage(tree: string, info: ArtifactInfo, say: (line: string) => void): string {
  const ref = imageRef(info.tag);
  say(`package | building image ${ref}`);
  const labels = {
    'org.opencontainers.image.revision': info.commit,
    'io.headcount.counting-contract': String(info.countingContract.version),
    'io.headcount.crosses-from': info.countingContract.crossesFrom.join(','),
  };
  const args = ['build', '-f', 'web/Dockerfile', '-t', ref, ...Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`])];
  if (process.env.NODE_IMAGE) args.push('--build-arg', `NODE_IMAGE=${process.env.NODE_IMAGE}`);
  // DOCKER_BUILD_NETWORK=host: the build's RUN steps (npm ci) on the host's network, for an engine
  // without NAT, such as the Docker tier's private dockerd (test/docker/compose.build-host.yml).
  if (process.env.DOCKER_BUILD_NETWORK) args.push('--network', process.env.DOCKER_BUILD_NETWORK);
  run('docker', [...args, '.'], { cwd: tree, what: `docker build of ${ref}`, timeout: 20 * 60_000 });
  return ref;
}

/**
 * `make package`: the artifact of the current commit, built unless it exists.
 * A dirty tree gives `<sha>-dirty`, built from a snapshot of the checkout
 * (snapshotTree, which changes nothing in it) and rebuilt each time, since the same tag may then hold different code; `make release`
 * refuses it.
 */
export async function packageArtifact(options: PackageOptions): Promise<Artifact> {
  const { releasesDir, say = () => {}, root = ROOT } = options;
  const { commit, tag, dirty } = currentTag(root);
  const folder = path.resolve(artifactsDir(releasesDir), tag);
  let info = dirty ? undefined : readArtifactInfo(folder);
  const scratch = path.resolve(artifactsDir(releasesDir), `.build-${tag}-${process.pid}`);
  const tree = path.join(scratch, 'tree');
  try {
    const treeish = dirty ? snapshotTree(root, scratch) : commit;
    if (info) {
      say(`package | ${tag} is already packaged: ${folder}`);
    } else {
      say(`package | building ${tag} from ${dirty ? 'the checkout as it is (a dirty tree)' : `commit ${commit.slice(0, 12)}`}`);
      const started = Date.now();
      exportTree(root, treeish, tree);
      npm(['ci'], tree, 'npm ci (build dependencies)');
      run('npm', ['run', 'build'], { cwd: tree, what: 'npm run build' });
      const out = path.join(scratch, 'out');
      mkdirSync(out);
      cpSync(path.join(tree, 'dist'), path.join(out, 'dist'), { recursive: true });
      for (const file of ['package.json', 'package-lock.json']) cpSync(path.join(tree, file), path.join(out, file));
      // The runtime's dependencies only, from the lockfile: what web/Dockerfile's runtime stage installs.
      npm(['ci', '--omit=dev'], out, 'npm ci --omit=dev');
      rmSync(path.join(out, 'dist', '.built'), { force: true });
      info = { tag, commit, builtAt: new Date().toISOString(), countingContract: await contractOf(out), node: process.version };
      writeFileSync(path.join(out, 'artifact.json'), `${JSON.stringify(info, null, 2)}\n`);
      if (dirty) removeArtifactFolder(folder);
      try {
        renameSync(out, folder);
        makeReadOnly(folder);
      } catch (error) {
        // Another `make package` of the same commit finished first: its artifact is this one.
        if (!readArtifactInfo(folder)) throw error;
        info = readArtifactInfo(folder)!;
      }
      say(`package | built ${folder} in ${((Date.now() - started) / 1000).toFixed(1)} s (counting contract ${info.countingContract.version})`);
    }
    let image: string | undefined;
    if (options.image) {
      const ref = imageRef(tag);
      if (!dirty && imageExists(ref)) say(`package | image ${ref} exists`);
      else {
        if (!existsSync(tree)) exportTree(root, treeish, tree);
        buildImage(tree, info, say);
      }
      image = ref;
    }
    return { ...info, folder, dirty, ...(image ? { image } : {}) };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
