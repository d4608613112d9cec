import { execFile } from 'node:child_process';
import { chmodSync, existsSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

// What the cluster tests that release from a temporary repository share
// (test/cluster/releases.test.ts, test/cluster/live-deploy.test.ts).

const run = promisify(execFile);

export interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `make <target> VAR=value ...` in `cwd`, with the environment `env()` gives at
 * the time of the call; never throws, so refusals can be asserted.
 */
export const makeIn =
  (cwd: string, env: () => NodeJS.ProcessEnv, timeoutMs: number) =>
  (target: string, vars: Record<string, string | number> = {}): Promise<Outcome> =>
    run('make', ['--no-print-directory', target, ...Object.entries(vars).map(([k, v]) => `${k}=${v}`)], { cwd, env: env(), timeout: timeoutMs }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code?: number; stdout?: string; stderr?: string }) => ({ code: error.code ?? 1, stdout: error.stdout ?? '', stderr: error.stderr ?? '' }),
    );

/** Removes a scratch folder holding release artifacts, which `make package` leaves read-only. */
export async function removeScratch(dir: string): Promise<void> {
  const writable = (folder: string) => {
    chmodSync(folder, 0o755);
    for (const entry of readdirSync(folder, { withFileTypes: true })) if (entry.isDirectory()) writable(path.join(folder, entry.name));
  };
  if (existsSync(dir)) writable(dir);
  await rm(dir, { recursive: true, force: true });
}
