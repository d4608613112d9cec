import { describe, expect, test } from 'vitest';
import { ConfigError } from '../../web/config.js';
import { loadFormationOptions } from '../../formation/options.js';

describe('loadFormationOptions (make up/start/stop)', () => {
  test('When nothing is set, then it is 4 replicas on port 8080 in auto mode, quiet, logs rotated at 10 MiB, no monitoring', () => {
    expect(loadFormationOptions({})).toEqual({
      MODE: 'auto',
      REPLICAS: 4,
      LB_PORT: 8080,
      VERBOSE: false,
      LOG_MAX_BYTES: 10 * 1024 * 1024,
      RELEASES_DIR: '.releases',
      MONITORING: false,
    });
  });

  test('When MONITORING=1 and PROMETHEUS_PORT are set, then they are kept; a bad PROMETHEUS_PORT is named', () => {
    expect(loadFormationOptions({ MONITORING: '1', PROMETHEUS_PORT: '19090' })).toMatchObject({ MONITORING: true, PROMETHEUS_PORT: 19090 });
    expect(() => loadFormationOptions({ MONITORING: 'yes', PROMETHEUS_PORT: '0' })).toThrow(/MONITORING must be one of 0, 1, false, true; PROMETHEUS_PORT must be an integer from 1 to 65535/);
  });

  test('When REPLICAS, LB_PORT and MODE are bad, then one error names all three', () => {
    const load = () => loadFormationOptions({ REPLICAS: '0', LB_PORT: 'http', MODE: 'kubernetes' });

    expect(load).toThrow(ConfigError);
    expect(load).toThrow(/^invalid configuration: MODE must be one of auto, local, docker, swarm; REPLICAS .*; LB_PORT .*$/);
  });

  test('When MODE=swarm is given, then it is kept as asked', async () => {
    const { resolveMode } = await import('../../formation/options.js');

    expect(loadFormationOptions({ MODE: 'swarm' }).MODE).toBe('swarm');
    expect(resolveMode('swarm')).toBe('swarm');
  });

  test('When REGISTRY or RELEASE are malformed, then one error names both', () => {
    expect(() => loadFormationOptions({ REGISTRY: 'http://x', RELEASE: 'r1 x' })).toThrow(/REGISTRY must be host\[:port\]\[\/path\].*; RELEASE must be a release id/);
    expect(loadFormationOptions({ REGISTRY: '10.0.0.1:5000/team', RELEASE: 'r3-1a2b3c4' })).toMatchObject({ REGISTRY: '10.0.0.1:5000/team', RELEASE: 'r3-1a2b3c4' });
  });
});
