import { describe, expect, test } from 'vitest';
import { ConfigError } from '../../web/config.js';
import { loadFormationOptions } from '../../formation/options.js';

describe('loadFormationOptions (make up/start/stop)', () => {
  test('When nothing is set, then it is 4 replicas on port 8080 in auto mode, quiet, logs rotated at 10 MiB', () => {
    expect(loadFormationOptions({})).toEqual({ MODE: 'auto', REPLICAS: 4, LB_PORT: 8080, VERBOSE: false, LOG_MAX_BYTES: 10 * 1024 * 1024 });
  });

  test('When REPLICAS, LB_PORT and MODE are bad, then one error names all three', () => {
    const load = () => loadFormationOptions({ REPLICAS: '0', LB_PORT: 'http', MODE: 'kubernetes' });

    expect(load).toThrow(ConfigError);
    expect(load).toThrow(/^invalid configuration: MODE must be one of auto, local, docker; REPLICAS .*; LB_PORT .*$/);
  });
});
