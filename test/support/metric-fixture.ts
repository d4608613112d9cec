import { readFileSync } from 'node:fs';
import { fromRoot } from '../../formation/paths.js';

export const METRIC_FIXTURE = 'test/fixtures/metric-names.txt';

/** test/fixtures/metric-names.txt: the metric names the dashboard and rules rely on, by the source that exports each. */
export function readMetricFixture(): Record<string, string[]> {
  const sections: Record<string, string[]> = {};
  let current: string[] | undefined;
  for (const raw of readFileSync(fromRoot(METRIC_FIXTURE), 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const section = /^\[([a-z-]+)\]$/.exec(line);
    if (section) {
      current = sections[section[1]!] = [];
    } else if (current) {
      current.push(line);
    } else {
      throw new Error(`${METRIC_FIXTURE}: "${line}" comes before any [section]`);
    }
  }
  return sections;
}
