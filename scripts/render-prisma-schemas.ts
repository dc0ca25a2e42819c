// npm run schema:prisma — renders prisma/<provider>/schema.prisma for SQLite, PostgreSQL and MySQL
// from the one data model in prisma/schema.base.prisma.
//
// A Prisma schema has exactly one datasource provider, so each database needs a schema (and a
// client, and migrations) of its own. The models and enums are the same everywhere; what differs
// is written here:
// - the generator blocks (each client goes to src/generated/prisma/<provider>; Pothos' types are
//   generated from the SQLite schema only, the three clients having one shape) and the datasource;
// - native column types. The base marks such a column with `@native(kind)` and NATIVE_TYPES below
//   says what each kind becomes per provider. The placeholder is replaced in place, keeping the
//   spaces before it; where a provider has no type for the kind, it is dropped with those spaces.
// test/schema.test.ts fails while a committed schema differs from this rendering.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { DatabaseProvider } from '../src/config.ts';

export const PROVIDERS: readonly DatabaseProvider[] = ['sqlite', 'postgresql', 'mysql'];

const root = path.resolve(import.meta.dirname, '..');
export const baseSchemaPath = path.join(root, 'prisma', 'schema.base.prisma');
export const providerSchemaPath = (provider: DatabaseProvider) => path.join(root, 'prisma', provider, 'schema.prisma');

/** `@native(kind)` per provider. No entry: the column keeps Prisma's default type for its scalar. */
export const NATIVE_TYPES: Record<string, Partial<Record<DatabaseProvider, string>>> = {
  // Ids and lookup keys. VARCHAR(191) is what Prisma gives a MySQL String anyway; PostgreSQL
  // gets the same limit.
  key: { postgresql: '@db.VarChar(191)', mysql: '@db.VarChar(191)' },
  // Titles and model names.
  label: { postgresql: '@db.VarChar(255)', mysql: '@db.VarChar(255)' },
  // Short codes such as a finish reason.
  code: { postgresql: '@db.VarChar(64)', mysql: '@db.VarChar(64)' },
  // Timestamps with milliseconds; on PostgreSQL with time zone.
  time: { postgresql: '@db.Timestamptz(3)', mysql: '@db.DateTime(3)' },
  // Long text, such as message content and system prompts: up to 16 MiB on MySQL (TEXT stops at
  // 64 KiB). PostgreSQL's text has no limit.
  body: { mysql: '@db.MediumText' },
  // Free text longer than a MySQL VARCHAR(191), up to 64 KiB.
  text: { mysql: '@db.Text' },
};

const TITLES: Record<DatabaseProvider, string> = { sqlite: 'SQLite', postgresql: 'PostgreSQL', mysql: 'MySQL and MariaDB' };

function blocks(provider: DatabaseProvider): string {
  const client = `generator client {
  provider        = "prisma-client"
  output          = "../../src/generated/prisma/${provider}"
  moduleFormat    = "esm"
  runtime         = "nodejs"
}
`;
  const pothos = `// Pothos reads model and relation types from here; the three clients share one shape.
generator pothos {
  provider          = "prisma-pothos-types"
  clientOutput      = "./prisma/sqlite/client.js"
  output            = "../../src/generated/pothos-types.ts"
  generateDatamodel = true
}
`;
  const datasource = `datasource db {
  provider = "${provider}"
}
`;
  return [client, ...(provider === 'sqlite' ? [pothos] : []), datasource].join('\n');
}

/** The base's models and enums: everything after its leading `//` comment lines. */
function dataModel(base: string): string {
  const lines = base.split('\n');
  let start = 0;
  while (start < lines.length && (lines[start] === '' || (lines[start]!.startsWith('//') && !lines[start]!.startsWith('///')))) start++;
  const model = lines.slice(start).join('\n');
  const misplaced = /^\s*(generator|datasource)\s+\w+\s*\{/m.exec(model);
  if (misplaced) throw new Error(`${path.basename(baseSchemaPath)}: the ${misplaced[1]} blocks are written by the render script, not the base`);
  return model;
}

export function renderPrismaSchema(base: string, provider: DatabaseProvider): string {
  const model = dataModel(base).replace(/([ \t]+)@native\(([^)]*)\)/g, (_, space: string, kind: string) => {
    const types = NATIVE_TYPES[kind];
    if (!types) throw new Error(`@native(${kind}): unknown kind; NATIVE_TYPES has ${Object.keys(NATIVE_TYPES).join(', ')}`);
    const type = types[provider];
    return type === undefined ? '' : `${space}${type}`;
  });
  const stray = /.*@native\b.*/.exec(model);
  if (stray) throw new Error(`a @native placeholder must follow a space and name one kind: ${stray[0].trim()}`);
  const header = `// Parley's data model for ${TITLES[provider]}, rendered from prisma/schema.base.prisma by
// \`npm run schema:prisma\`; do not edit: change the base and render again.
`;
  return `${header}\n${blocks(provider)}\n${model}`;
}

export function renderPrismaSchemas(base: string = readFileSync(baseSchemaPath, 'utf8')): Record<DatabaseProvider, string> {
  return Object.fromEntries(PROVIDERS.map((p) => [p, renderPrismaSchema(base, p)])) as Record<DatabaseProvider, string>;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  for (const [provider, text] of Object.entries(renderPrismaSchemas())) {
    const file = providerSchemaPath(provider as DatabaseProvider);
    const current = (() => {
      try {
        return readFileSync(file, 'utf8');
      } catch {
        return undefined;
      }
    })();
    if (current === text) {
      console.log(`${path.relative(root, file)} is up to date`);
    } else {
      writeFileSync(file, text);
      console.log(`wrote ${path.relative(root, file)}`);
    }
  }
}
