// The release ledger (twelve-factor V's "release" stage): one JSON line per
// release, appended and never rewritten, so the history of what was released
// with which config can be read back and rolled back to.
import { createHash } from 'node:crypto';
import { appendFileSync, closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ReleaseRecord {
  /** r<seq>-<tag>, e.g. r3-1a2b3c4. */
  id: string;
  seq: number;
  commit: string;
  tag: string;
  /** ISO time. */
  created: string;
  /** The env file the config came from ('' when none). */
  envFile: string;
  /** The non-secret replica config set for this release; unset keys take the artifact's defaults. */
  config: Record<string, string>;
  /** Secrets the environment set, by name only: their values never reach the ledger. */
  secretNames: string[];
  /** sha256:<hex> over the canonical config and secret names. */
  configDigest: string;
  countingContract: { version: number; crossesFrom: number[] };
  /** The artifact folder, absolute. */
  folder?: string;
  /** The full image reference, registry-qualified when REGISTRY was set. */
  image?: string;
}

export type ReleaseDraft = Omit<ReleaseRecord, 'id' | 'seq' | 'created' | 'configDigest'>;

export const ledgerFile = (dir: string) => path.join(dir, 'ledger.jsonl');

/** Every release so far, oldest first. A line a crash cut short (no newline yet) is skipped. */
export function readLedger(dir: string): ReleaseRecord[] {
  let text: string;
  try {
    text = readFileSync(ledgerFile(dir), 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as ReleaseRecord];
      } catch {
        return [];
      }
    });
}

/** Keys sorted, so the same config always gives the same digest. */
export function configDigest(config: Record<string, string>, secretNames: readonly string[]): string {
  const canonical = JSON.stringify({
    config: Object.fromEntries(Object.entries(config).sort(([a], [b]) => a.localeCompare(b))),
    secretNames: [...secretNames].sort(),
  });
  return `sha256:${createHash('sha256').update(canonical).digest('hex')}`;
}

const LOCK_STALE_MS = 30_000;

/**
 * Runs `use` holding the ledger's lock: a file created with O_EXCL, so two
 * `make release` at once get distinct sequence numbers. A lock older than
 * LOCK_STALE_MS is a crashed holder's and is taken over.
 */
async function withLock<T>(dir: string, use: () => T): Promise<T> {
  const lock = path.join(dir, 'ledger.lock');
  for (const deadline = Date.now() + 2 * LOCK_STALE_MS; ; ) {
    try {
      closeSync(openSync(lock, 'wx'));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      try {
        if (Date.now() - statSync(lock).mtimeMs > LOCK_STALE_MS) rmSync(lock, { force: true });
      } catch {
        // gone meanwhile: try again
      }
      if (Date.now() > deadline) throw new Error(`the ledger stays locked (${lock})`);
      await sleep(20 + Math.random() * 30);
    }
  }
  try {
    return use();
  } finally {
    rmSync(lock, { force: true });
  }
}

/** Appends a release with the next sequence number; the file is only ever opened to append. */
export async function appendRelease(dir: string, draft: ReleaseDraft): Promise<ReleaseRecord> {
  mkdirSync(dir, { recursive: true });
  return withLock(dir, () => {
    const seq = readLedger(dir).reduce((max, record) => Math.max(max, record.seq), 0) + 1;
    const record: ReleaseRecord = {
      id: `r${seq}-${draft.tag}`,
      seq,
      commit: draft.commit,
      tag: draft.tag,
      created: new Date().toISOString(),
      envFile: draft.envFile,
      config: draft.config,
      secretNames: draft.secretNames,
      configDigest: configDigest(draft.config, draft.secretNames),
      countingContract: draft.countingContract,
      ...(draft.folder ? { folder: draft.folder } : {}),
      ...(draft.image ? { image: draft.image } : {}),
    };
    // One write of a whole line (O_APPEND): a reader sees all of it or none.
    appendFileSync(ledgerFile(dir), `${JSON.stringify(record)}\n`, { flag: 'a', mode: 0o644 });
    return record;
  });
}

/** The release with this id, or the newest when `id` is undefined. */
export function findRelease(dir: string, id?: string): ReleaseRecord | undefined {
  const records = readLedger(dir);
  return id === undefined ? records.at(-1) : records.find((record) => record.id === id);
}

/** The release released just before `currentId`: what `make rollback` deploys. */
export function previousRelease(records: readonly ReleaseRecord[], currentId: string | undefined): ReleaseRecord | undefined {
  const current = records.find((record) => record.id === currentId);
  if (!current) return undefined;
  return records.filter((record) => record.seq < current.seq).sort((a, b) => b.seq - a.seq)[0];
}
