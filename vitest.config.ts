import { defineConfig } from 'vitest/config';

// Suites that measure latency run after the others, one file at a time, so that what they measure
// is Parley and not the test runner's other workers competing for the 2 cores.
const QUIET = ['test/hostile-model.test.ts'];

export default defineConfig({
  resolve: {
    // graphql 16 ships CJS (main) and ESM (module) builds; Node loads the CJS one for every
    // package, so the tests must too, or two copies of graphql meet.
    alias: [{ find: /^graphql$/, replacement: 'graphql/index.js' }],
  },
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Suites start servers and databases of their own; two workers fit the 2-core machines.
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'suites', include: ['test/**/*.test.ts'], exclude: QUIET, fileParallelism: true, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'quiet', include: QUIET, fileParallelism: false, sequence: { groupOrder: 1 } } },
    ],
  },
});
