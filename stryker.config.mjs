// Mutation testing of the modules that carry Parley's guarantees: `npm run mutate` (too slow for CI).
// Each group pairs the modules it mutates with the suites that exercise them, so that one mutant
// runs a handful of test files, not the whole suite. `MUTATE=auth,finalize npm run mutate` runs
// some groups; without MUTATE every group runs (an hour or more on 2 cores). `--mutate <file>` on
// the command line narrows a group to some of its modules.
// The HTML and JSON reports go to reports/mutation/.

import { readFileSync } from 'node:fs';

/** `file:line-line` for each line naming `userId` that is not a method or function signature. */
function ownerLines(file) {
  const signature = /^\s*(protected\s+|private\s+)?(async\s+)?(function\s+)?\w+\(.*\)\s*:.*\{\s*$/;
  return readFileSync(file, 'utf8')
    .split('\n')
    .flatMap((line, i) => (/\buserId\b/.test(line) && !signature.test(line) ? [`${file}:${i + 1}-${i + 1}`] : []));
}

/** @type {Record<string, { mutate: string[]; tests: string[] }>} */
export const GROUPS = {
  auth: {
    mutate: ['src/auth.ts'],
    tests: ['test/auth.test.ts'],
  },
  streaming: {
    mutate: ['src/streaming/memory-broker.ts', 'src/streaming/redis-broker.ts', 'src/streaming/follow.ts', 'src/streaming/events.ts'],
    // chat.test.ts follows replies end to end (src/streaming/follow.ts) over both transports.
    tests: ['test/follow.test.ts', 'test/brokers.test.ts', 'test/redis-broker.test.ts', 'test/finalize.test.ts', 'test/reply-end.test.ts', 'test/chat.test.ts'],
  },
  cache: {
    mutate: ['src/cache/history-cache.ts'],
    tests: ['test/history-cache-units.test.ts', 'test/history-cache-races.test.ts', 'test/history-cache.test.ts'],
  },
  finalize: {
    mutate: ['src/chat/finalize.ts'],
    tests: ['test/finalize.test.ts', 'test/reply-end.test.ts'],
  },
  isolation: {
    // The ownership filters: every line of the store that names the owner (userId) in a read or
    // a write, its signatures aside. The rest of the file (pagination, the window query) is the
    // contract suite's business.
    mutate: ownerLines('src/store/prisma-store.ts'),
    tests: ['test/store-contract.test.ts', 'test/isolation.test.ts'],
  },
};

const wanted = (process.env.MUTATE ?? Object.keys(GROUPS).join(','))
  .split(',')
  .map((name) => name.trim())
  .filter(Boolean);
for (const name of wanted) {
  if (!GROUPS[name]) throw new Error(`MUTATE: unknown group "${name}" (groups: ${Object.keys(GROUPS).join(', ')})`);
}
const groups = wanted.map((name) => GROUPS[name]);

// vitest.mutate.config.ts reads this in the test-runner processes, which inherit the environment.
// MUTATE_TESTS (comma-separated test files) replaces the groups' suites, for a quicker look.
process.env.PARLEY_MUTATE_TESTS = process.env.MUTATE_TESTS ?? [...new Set(groups.flatMap((group) => group.tests))].join(',');

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  packageManager: 'npm',
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutate.config.ts', related: false },
  coverageAnalysis: 'perTest',
  checkers: [],
  concurrency: 1,
  mutate: [...new Set(groups.flatMap((group) => group.mutate))],
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  // Stryker rewrites the sandbox's tsconfig.json through the TypeScript JS API, which TypeScript 7
  // no longer has (`ts.parseConfigFileTextToJson is not a function`). Ours has no `extends` or
  // `references` to rewrite and the tests run through vitest, so point Stryker at no tsconfig.
  tsconfigFile: 'no-tsconfig-for-stryker.json',
  // Suites start servers and databases: give a mutant's run room before calling it a timeout.
  timeoutMS: 20_000,
  thresholds: { high: 90, low: 85, break: null },
};
