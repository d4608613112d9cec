import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { startLocalFormation } from '../formation/local-formation.js';
import { fromRoot } from '../formation/paths.js';
import { readLiveState } from '../formation/state.js';
import { httpOk } from '../formation/wait.js';

export interface Target {
  lbUrl: string;
  /** Replica ids, when the formation is local and known. */
  replicas?: string[];
  /** One replica's own URL, bypassing nginx (local formations only). */
  directUrl?: string;
  /** Set when this run started the formation: it must stop it. */
  stop?: () => Promise<void>;
}

const answers = (url: string) => httpOk(new URL('/api/count', url).href).catch(() => false);

/** What a local formation's state file says about the one behind `lbUrl`, if any. */
function localDetails(lbUrl: string): Pick<Target, 'replicas' | 'directUrl'> {
  const { hostname, port } = new URL(lbUrl);
  if (!['127.0.0.1', 'localhost'].includes(hostname)) return {};
  const state = readLiveState(Number(port || 80));
  if (!state) return {};
  return {
    replicas: state.replicas.map((r) => r.id),
    directUrl: `http://127.0.0.1:${state.replicas[0]!.port}`,
  };
}

/**
 * The formation to load: LB_URL if given (it must answer); otherwise the
 * formation on LB_PORT (8080) if one answers; otherwise a local formation
 * started here on a free port, and stopped afterwards.
 */
export async function resolveTarget(lbUrl: string | undefined, replicas: number, lbPort = 8080): Promise<Target> {
  if (lbUrl) {
    if (!(await answers(lbUrl))) throw new Error(`LB_URL ${lbUrl} does not answer GET /api/count`);
    return { lbUrl, ...localDetails(lbUrl) };
  }
  const usual = `http://127.0.0.1:${lbPort}`;
  if (await answers(usual)) return { lbUrl: usual, ...localDetails(usual) };

  process.stderr.write(`no formation answers at ${usual}; starting a local one with ${replicas} replicas\n`);
  await mkdir(fromRoot('.run'), { recursive: true });
  const stateDir = await mkdtemp(path.join(fromRoot('.run'), 'loadtest-'));
  const formation = await startLocalFormation({ replicas, lbPort: 0, stateDir, sink: () => {} });
  return {
    lbUrl: formation.lbUrl,
    replicas: formation.replicas.map((r) => r.id),
    directUrl: formation.replicas[0]!.url,
    async stop() {
      await formation.stop();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}
