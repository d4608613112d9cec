import type { ReleaseRecord } from './ledger.js';
import type { FormationOptions } from './options.js';
import { readLiveState } from './state.js';

export function runningReleaseLocal(options: FormationOptions): string | undefined {
  void readLiveState(options.LB_PORT);
  return undefined;
}

export async function deployLocal(_options: FormationOptions, _record: ReleaseRecord): Promise<number> {
  return 2;
}
