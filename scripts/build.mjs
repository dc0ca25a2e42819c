// Compiles the server to dist/ with esbuild: `npm start` runs plain JavaScript. Running the
// TypeScript through tsx at run time costs CPU and memory on every closure it creates (tsx
// compiles with keepNames, which defines a `name` property on each function object).
import { build } from 'esbuild';

await build({
  entryPoints: { main: 'src/server/main.ts', deploy: 'src/store/deploy.ts' },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  // Two levels deep, like src/<dir>/, so paths relative to a module (the migrations) still hold.
  outdir: 'dist/server',
  sourcemap: true,
  logLevel: 'warning',
});
