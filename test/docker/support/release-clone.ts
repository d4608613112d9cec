import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT } from '../../../formation/paths.js';
import { run } from './run.js';

/**
 * A temporary clone to release from: this checkout's files as they are (the
 * code under test, committed or not), committed in a fresh repository, then a
 * second commit that changes only the welcome message. Both are real commits,
 * so `make package` and `make release` run there exactly as in a user's clone.
 * The Docker and Swarm tiers both release from it; a tier that needs another
 * release (one that never becomes healthy) adds a commit with commitOn.
 */
export interface ReleaseClone {
  dir: string;
  /** Full shas: the first commit, and the one with the new welcome message. */
  first: string;
  second: string;
  oldWelcome: string;
  newWelcome: string;
  checkout(commit: string): Promise<void>;
  /** A new commit on top of `base`, made by `edit` in the clone's folder (left checked out); its full sha. */
  commitOn(base: string, message: string, edit: (dir: string) => void): Promise<string>;
  remove(): Promise<void>;
}

/** Replaces `from` with `to` in `file` of checkout `dir`, or throws when `from` is not there. */
export function replaceIn(dir: string, file: string, from: string, to: string): void {
  const full = path.join(dir, file);
  const text = readFileSync(full, 'utf8');
  if (!text.includes(from)) throw new Error(`${file} has no "${from}"`);
  writeFileSync(full, text.replace(from, to));
}

const PAGE = 'web/page.ts';

export async function createReleaseClone(newWelcome = 'Welcome, visitor, to headcount'): Promise<ReleaseClone> {
  const dir = await mkdtemp(path.join(tmpdir(), 'headcount-release-clone-'));
  try {
    // Tracked and untracked files, never what .gitignore keeps out (node_modules, dist, .releases, .env).
    await run('sh', ['-c', 'git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf - | tar -C "$1" -xf -', 'sh', dir], {
      cwd: ROOT,
      timeoutMs: 60_000,
    });
    const git = (args: string[]) => run('git', args, { cwd: dir });
    await git(['init', '-q', '-b', 'main']);
    // CI has no git identity; the clone's own is enough for its commits.
    await git(['config', 'user.name', 'headcount tests']);
    await git(['config', 'user.email', 'tests@headcount.invalid']);
    await git(['add', '-A']);
    await git(['commit', '-q', '-m', 'first release']);
    const first = (await git(['rev-parse', 'HEAD'])).stdout.trim();

    const oldWelcome = /export const WELCOME = '([^']*)'/.exec(readFileSync(path.join(dir, PAGE), 'utf8'))?.[1];
    if (!oldWelcome) throw new Error(`${PAGE} has no WELCOME constant`);
    const commitOn = async (base: string, message: string, edit: (dir: string) => void) => {
      await git(['checkout', '-q', base]);
      edit(dir);
      await git(['commit', '-q', '-am', message]);
      return (await git(['rev-parse', 'HEAD'])).stdout.trim();
    };
    const second = await commitOn('main', 'a new welcome message', () =>
      replaceIn(dir, PAGE, `export const WELCOME = '${oldWelcome}'`, `export const WELCOME = '${newWelcome}'`),
    );

    // The clone's own node_modules from the lockfile (npm's cache is warm), so make finds it installed.
    await run('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: dir, timeoutMs: 300_000 });
    return {
      dir,
      first,
      second,
      oldWelcome,
      newWelcome,
      checkout: async (commit) => void (await git(['checkout', '-q', commit])),
      commitOn,
      remove: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
