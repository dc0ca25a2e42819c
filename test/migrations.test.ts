// Migrations apply from empty on all three databases, a second run is a no-op, and on SQLite and
// PostgreSQL Prisma's own schema engine agrees: same bookkeeping, no drift from the schema.
import { afterAll, describe, expect, it } from 'vitest';
import { applyMigrations, MigrationError, pendingMigrations, readMigrations } from '../src/store/migrate.ts';
import { migrationsDir } from '../src/store/migrate.ts';
import { adapterFactoryFor, diffDatabaseToSchema, migrationList, noFilters, openSchemaEngine } from '../scripts/schema-engine.ts';
import { ALL_PROVIDERS, createTestDatabase, mysqlAdmin, type TestDatabase } from './support/databases.ts';

const created: TestDatabase[] = [];
afterAll(async () => {
  await Promise.all(created.map((db) => db.drop()));
});

async function freshDatabase(provider: (typeof ALL_PROVIDERS)[number]) {
  const db = await createTestDatabase(provider);
  created.push(db);
  return db;
}

describe.each(ALL_PROVIDERS)('migrations on %s', (provider) => {
  it('apply from empty, then a second run applies nothing', async () => {
    const db = await freshDatabase(provider);
    const all = (await readMigrations(migrationsDir(provider))).map((m) => m.name);
    expect(all.length).toBeGreaterThan(1);
    expect(await pendingMigrations(db.url)).toEqual(all);
    expect(await applyMigrations(db.url)).toEqual(all);
    expect(await pendingMigrations(db.url)).toEqual([]);
    expect(await applyMigrations(db.url)).toEqual([]);
  });

  it('two instances starting at once apply each migration once', async () => {
    const db = await freshDatabase(provider);
    const results = await Promise.all([applyMigrations(db.url), applyMigrations(db.url)]);
    expect(results.flat().sort()).toEqual((await readMigrations(migrationsDir(provider))).map((m) => m.name));
  });

  it('every migration directory of the three providers has the same name', async () => {
    const names = await Promise.all(ALL_PROVIDERS.map(async (p) => (await readMigrations(migrationsDir(p))).map((m) => m.name)));
    expect(names[1]).toEqual(names[0]);
    expect(names[2]).toEqual(names[0]);
  });
});

describe.each(['sqlite', 'postgresql'] as const)('Prisma schema engine agreement on %s', (provider) => {
  it('sees the migrations as applied, the checksums as unchanged, and no drift from schema.prisma', async () => {
    const db = await freshDatabase(provider);
    await applyMigrations(db.url);
    const engine = await openSchemaEngine(provider, adapterFactoryFor(db.url));
    const migrationsList = await migrationList(provider);
    const diagnosis = await engine.diagnoseMigrationHistory({ migrationsList, optInToShadowDatabase: false, filters: noFilters });
    expect(diagnosis).toEqual({ editedMigrationNames: [], failedMigrationNames: [], hasMigrationsTable: true, history: null });
    expect(await engine.applyMigrations({ migrationsList, filters: noFilters })).toEqual({ appliedMigrationNames: [] });
    expect(await diffDatabaseToSchema(engine, provider)).toBe('');
  });
});

describe('MySQL migrations against prisma/mysql/schema.prisma', () => {
  it('create every table and column the Prisma client reads, with the same nullability', async () => {
    const db = await freshDatabase('mysql');
    await applyMigrations(db.url);
    const { getDatamodel } = await import('../src/generated/pothos-types.ts');
    const name = new URL(db.url).pathname.slice(1);
    const columns = await mysqlAdmin((c) =>
      c.query('SELECT TABLE_NAME AS t, COLUMN_NAME AS c, IS_NULLABLE AS n FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?', [name]),
    );
    const actual = new Set((columns as { t: string; c: string; n: string }[]).map((r) => `${r.t}.${r.c}:${r.n}`));
    for (const [model, { fields }] of Object.entries(getDatamodel().datamodel.models)) {
      for (const field of fields.filter((f) => f.kind !== 'object')) {
        expect(actual, `${model}.${field.name}`).toContain(`${model}.${field.name}:${field.isRequired ? 'NO' : 'YES'}`);
      }
    }
  });
});

describe('a failing migration', () => {
  it('is recorded, stops the deploy, and blocks later deploys until resolved', async () => {
    const db = await freshDatabase('postgresql');
    await applyMigrations(db.url);
    // Simulate a half-applied migration row as `prisma migrate deploy` leaves it.
    const pg = await import('pg');
    const client = new pg.default.Client({ connectionString: db.url });
    await client.connect();
    await client.query(`INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at) VALUES ('x', 'y', '20990101000000_broken', now())`);
    await client.end();
    await expect(applyMigrations(db.url)).rejects.toThrow(MigrationError);
    await expect(applyMigrations(db.url)).rejects.toThrow(/20990101000000_broken/);
  });
});
