// npm run db:migration -- <name>
// Writes the next migration for SQLite and PostgreSQL from the change between the committed
// migrations and prisma/<provider>/schema.prisma, as `prisma migrate dev --create-only` would.
// It builds a scratch database from the existing migrations (a temp file for SQLite, a temp
// database on MIGRATION_PG_URL for PostgreSQL) and asks the Wasm schema engine for the diff.
// MySQL has no Wasm engine: the MySQL migration is written by hand next to the others, and the
// full test suite runs against a database built from it.
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { applyMigrations } from '../src/store/migrate.ts';
import { adapterFactoryFor, diffDatabaseToSchema, openSchemaEngine, type WasmProvider } from './schema-engine.ts';

const name = process.argv[2]?.replace(/[^A-Za-z0-9_]/g, '_');
if (!name) {
  console.error('usage: npm run db:migration -- <name>');
  process.exit(2);
}
const pgAdminUrl = process.env.MIGRATION_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

async function pendingSql(provider: WasmProvider): Promise<string> {
  if (provider === 'sqlite') {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'parley-migration-'));
    try {
      const url = `file:${path.join(dir, 'scratch.db')}`;
      await applyMigrations(url);
      return await diffDatabaseToSchema(await openSchemaEngine('sqlite', adapterFactoryFor(url)), 'sqlite');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  const admin = new pg.Client({ connectionString: pgAdminUrl });
  await admin.connect();
  const database = `parley_migration_${process.pid}_${Date.now()}`;
  await admin.query(`CREATE DATABASE "${database}"`);
  try {
    const target = new URL(pgAdminUrl);
    target.pathname = `/${database}`;
    await applyMigrations(target.toString());
    const engine = await openSchemaEngine('postgresql', adapterFactoryFor(target.toString()));
    return await diffDatabaseToSchema(engine, 'postgresql');
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
    await admin.end();
  }
}

const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
const folder = `${stamp}_${name}`;
let wrote = false;
for (const provider of ['sqlite', 'postgresql'] as const) {
  const sql = await pendingSql(provider);
  if (!sql) {
    console.log(`${provider}: the schema matches the migrations; nothing to write`);
    continue;
  }
  const dir = path.resolve('prisma', provider, 'migrations', folder);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'migration.sql'), `${sql}\n`);
  console.log(`${provider}: wrote ${path.relative(process.cwd(), dir)}/migration.sql`);
  wrote = true;
}
if (wrote) {
  console.log(`mysql: write prisma/mysql/migrations/${folder}/migration.sql by hand, following the PostgreSQL one, then run npm test`);
}
// The Wasm engine leaves a timer running.
process.exit(0);
