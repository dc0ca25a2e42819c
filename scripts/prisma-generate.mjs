// Generates one Prisma client per database provider (and Pothos' types from the SQLite schema).
// Runs on `npm install`. The native schema engine is not needed to generate, and cannot be
// downloaded everywhere, so it is pointed at /bin/false.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const prismaCli = require.resolve('prisma/build/index.js');
const bin = path.resolve('node_modules/.bin');
const env = {
  ...process.env,
  PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}`,
  PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? '/bin/false',
  PRISMA_HIDE_UPDATE_MESSAGE: '1',
};

for (const provider of ['sqlite', 'postgresql', 'mysql']) {
  execFileSync(process.execPath, [prismaCli, 'generate', '--schema', `prisma/${provider}/schema.prisma`], {
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}
console.log('Generated Prisma clients for sqlite, postgresql and mysql.');
