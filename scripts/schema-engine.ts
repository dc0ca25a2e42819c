// Prisma's schema engine, compiled to Wasm, driven through a Prisma driver adapter.
// The native engine cannot be downloaded on every machine, and the Wasm build only speaks SQLite
// and PostgreSQL, so this is dev tooling: it writes and checks the SQLite and PostgreSQL
// migrations. Parley applies migrations at run time with src/store/migrate.ts.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { bindMigrationAwareSqlAdapterFactory } from '@prisma/driver-adapter-utils';
import type { SqlMigrationAwareDriverAdapterFactory } from '@prisma/driver-adapter-utils';
import type { SchemaEngine, MigrationList } from '@prisma/schema-engine-wasm';
import { PrismaLibSql } from '@prisma/adapter-libsql';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { databaseProvider } from '../src/config.ts';
import { pgConnectionOptions } from '../src/store/dialects/postgresql.ts';
import { readMigrations } from '../src/store/migrate.ts';

const require = createRequire(import.meta.url);

// Node has WebAssembly; the DOM typings that declare it are not loaded here.
declare const WebAssembly: {
  instantiate(bytes: Uint8Array, imports: object): Promise<{ instance: { exports: Record<string, unknown> } }>;
};

async function loadWasm(): Promise<typeof import('@prisma/schema-engine-wasm/schema_engine_bg')> {
  const glue = await import('@prisma/schema-engine-wasm/schema_engine_bg');
  const wasmPath = path.join(path.dirname(require.resolve('@prisma/schema-engine-wasm/schema_engine_bg')), 'schema_engine_bg.wasm');
  const { instance } = await WebAssembly.instantiate(await readFile(wasmPath), { './schema_engine_bg.js': glue as never });
  glue.__wbg_set_wasm(instance.exports);
  (instance.exports as { __wbindgen_start(): void }).__wbindgen_start();
  return glue;
}

let wasm: ReturnType<typeof loadWasm> | undefined;

export type WasmProvider = 'sqlite' | 'postgresql';

export function schemaPath(provider: WasmProvider | 'mysql'): string {
  return path.resolve('prisma', provider, 'schema.prisma');
}

export async function openSchemaEngine(provider: WasmProvider, factory: SqlMigrationAwareDriverAdapterFactory): Promise<SchemaEngine> {
  wasm ??= loadWasm();
  const { SchemaEngine } = await wasm;
  const file = schemaPath(provider);
  const logs = (line: string) => {
    if (process.env.SCHEMA_ENGINE_DEBUG) console.error(line);
  };
  return SchemaEngine.new({ datamodels: [[file, await readFile(file, 'utf8')]] }, logs, bindMigrationAwareSqlAdapterFactory(factory));
}

export async function migrationList(provider: WasmProvider): Promise<MigrationList> {
  const dir = path.resolve('prisma', provider, 'migrations');
  const migrations = await readMigrations(dir);
  return {
    baseDir: dir,
    lockfile: { path: 'migration_lock.toml', content: await readFile(path.join(dir, 'migration_lock.toml'), 'utf8').catch(() => null) },
    shadowDbInitScript: '',
    migrationDirectories: migrations.map((m) => ({
      path: m.name,
      migrationFile: { path: 'migration.sql', content: { tag: 'ok', value: m.script } },
    })),
  };
}

export const noFilters = { externalTables: [], externalEnums: [] };

/** SQL that takes the database the engine is connected to up to the Prisma schema ('' when in step). */
export async function diffDatabaseToSchema(engine: SchemaEngine, provider: WasmProvider): Promise<string> {
  const file = schemaPath(provider);
  const datamodel = { files: [{ path: file, content: await readFile(file, 'utf8') }] };
  const result = await engine.diff({
    from: { tag: 'schemaDatasource', ...datamodel, configDir: path.dirname(file) },
    to: { tag: 'schemaDatamodel', ...datamodel },
    script: true,
    exitCode: null,
    filters: noFilters,
  });
  const sql = (result.stdout ?? '').trim();
  return sql.startsWith('-- This is an empty migration.') ? '' : sql;
}

// @prisma/adapter-pg has no mapping for PostgreSQL's internal "char" type (OID 18), which the
// engine reads from pg_catalog. Reporting those columns as text lets the engine describe a schema.
const PG_CHAR = 18;
const PG_TEXT = 25;
let pgCharPatched = false;
function readPgCharAsText(): void {
  if (pgCharPatched) return;
  pgCharPatched = true;
  const result = pg.Result.prototype as unknown as { addFields(fields: { dataTypeID: number }[]): void };
  const addFields = result.addFields;
  result.addFields = function (fields) {
    for (const field of fields) if (field.dataTypeID === PG_CHAR) field.dataTypeID = PG_TEXT;
    return addFields.call(this, fields);
  };
}

/** A driver adapter factory for the engine, from a file: or postgresql:// URL. */
export function adapterFactoryFor(url: string): SqlMigrationAwareDriverAdapterFactory {
  const provider = databaseProvider(url);
  if (provider === 'sqlite') return new PrismaLibSql({ url });
  if (provider !== 'postgresql') throw new Error(`the Wasm schema engine cannot drive ${provider ?? 'this'} database`);
  readPgCharAsText();
  // Discrete fields: pg ignores a database override next to a connection string.
  return new PrismaPg(pgConnectionOptions(url));
}
