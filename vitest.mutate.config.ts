// The vitest config of `npm run mutate`: the project's config, limited to the suites that
// exercise the mutated modules (stryker.config.mjs sets PARLEY_MUTATE_TESTS from its groups).
import { defineConfig } from 'vitest/config';
import base from './vitest.config.ts';

const tests = (process.env.PARLEY_MUTATE_TESTS ?? '').split(',').filter(Boolean);
if (tests.length === 0) throw new Error('vitest.mutate.config.ts: PARLEY_MUTATE_TESTS is empty; run it through `npm run mutate`');

// Not mergeConfig: it would append to the base `include` instead of replacing it.
// Not the base's projects either: each has an include of its own, which would run every suite.
const { projects: _projects, ...shared } = base.test ?? {};
export default defineConfig({ ...base, test: { ...shared, include: tests } });
