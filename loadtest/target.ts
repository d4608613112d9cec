import { readLiveState } from '../formation/state.js';
import { httpOk } from '../formation/wait.js';
import { startThrowawayFormation } from './throwaway-formation.js';

export interface Target {
  lbUrl: string;
  /** Replica ids, when the formation is local and known. */
  replicas?: string[];
  /**
   * When the replica ids are unknown (LB_URL elsewhere, Docker): how many
   * replicas should answer, and where that number came from.
   */
  expectedReplicas?: { count: number; source: string };
  /** One replica's own URL, bypassing nginx (local formations only). */
  directUrl?: string;
  /** Set when this run started the formation: it must stop it. */
  stop?: () => Promise<void>;
  /** Set when this run started the formation: its count is thrown away with it. */
  throwaway?: boolean;
}

const answers = (url: string) => httpOk(new URL('/api/count', url).href).catch(() => false);

/** What a local formation's state file says about the one behind `lbUrl`, if any. */
function localDetails(lbUrl: string): Pick<Target, 'replicas' | 'directUrl'> {
  const { hostname, port } = new URL(lbUrl);
  if (!['127.0.0.1', 'localhost'].includes(hostname)) return {};
  const state = readLiveState(Number(port || 80));
  if (!state || state.replicas.length === 0) return {};
  return {
    replicas: state.replicas.map((r) => r.id),
    directUrl: `http://127.0.0.1:${state.replicas[0]!.port}`,
  };
}

/** A formation this run can look into gives its replica list; any other is judged against REPLICAS. */
function described(lbUrl: string, replicas: number): Target {
  const details = localDetails(lbUrl);
  return details.replicas ? { lbUrl, ...details } : { lbUrl, expectedReplicas: { count: replicas, source: `REPLICAS=${replicas}` } };
}

/**
 * The formation to load: LB_URL if given (it must answer); otherwise the
 * formation on LB_PORT (8080) if one answers; otherwise a local formation
 * started here on a free port, and stopped afterwards.
 */
export async function resolveTarget(lbUrl: string | undefined, replicas: number, lbPort = 8080): Promise<Target> {
  if (lbUrl) {
    if (!(await answers(lbUrl))) throw new Error(`LB_URL ${lbUrl} does not answer GET /api/count`);
    return described(lbUrl, replicas);
  }
  const usual = `http://127.0.0.1:${lbPort}`;
  if (await answers(usual)) return described(usual, replicas);

  process.stderr.write(`no formation answers at ${usual}; starting a throwaway local one with ${replicas} replicas\n`);
  const formation = await startThrowawayFormation({ purpose: 'loadtest', replicas });
  return {
    lbUrl: formation.lbUrl,
    replicas: formation.replicas.map((r) => r.id),
    directUrl: formation.replicas[0]!.url,
    throwaway: true,
    stop: () => formation.destroy(),
  };
}
