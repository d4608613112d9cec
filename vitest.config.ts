import { defineConfig } from 'vitest/config';

// Three tiers, plus the Docker tier (see README "Tests"): unit is pure logic; integration talks to a
// real redis-server; cluster drives real nginx in front of real replicas. Each
// tier's global setup starts what it needs on free ports and always stops it.
export default defineConfig({
  test: {
    // Real processes on a 2-core machine: one file at a time keeps timings sane.
    fileParallelism: false,
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/support/redis-global-setup.ts'],
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'cluster',
          include: ['test/cluster/**/*.test.ts'],
          globalSetup: ['test/support/build-global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        // `make test-docker`: the Docker path for real (docker compose up,
        // scale, restart, stop) on the engine that answers, or on a private
        // dockerd with stand-in base images (test/docker/global-setup.ts).
        test: {
          name: 'docker',
          include: ['test/docker/**/*.test.ts'],
          globalSetup: ['test/docker/global-setup.ts'],
          testTimeout: 300_000,
          hookTimeout: 300_000,
        },
      },
      {
        // `make test-swarm`: a two-node Swarm of private engines in network
        // namespaces, with a registry (test/swarm/global-setup.ts).
        test: {
          name: 'swarm',
          include: ['test/swarm/**/*.test.ts'],
          globalSetup: ['test/swarm/global-setup.ts'],
          testTimeout: 900_000,
          hookTimeout: 900_000,
        },
      },
    ],
  },
});
