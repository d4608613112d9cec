import { defineConfig } from 'vitest/config';

// Three tiers (see README "Tests"): unit is pure logic; integration talks to a
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
    ],
  },
});
