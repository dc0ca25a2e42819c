// Parley's migration runner and `prisma migrate deploy` take the same lock, so two deployers of
// either kind never migrate one database at once.
import * as mariadb from 'mariadb';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { mysqlConnectionOptions } from '../src/store/dialects/mysql.ts';
import { applyMigrations, pendingMigrations } from '../src/store/migrate.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';

const created: TestDatabase[] = [];
afterAll(async () => {
  await Promise.all(created.map((db) => db.drop()));
});

/** Runs the migrations while `hold` keeps the lock for 600 ms; returns whether they waited for it. */
async function waitsFor(db: TestDatabase, take: () => Promise<void>, release: () => Promise<void>): Promise<boolean> {
  await take();
  let done = false;
  const applying = applyMigrations(db.url).then(() => (done = true));
  await new Promise((resolve) => setTimeout(resolve, 600));
  const waited = !done && (await pendingMigrations(db.url)).length > 0;
  await release();
  await applying;
  expect(await pendingMigrations(db.url)).toEqual([]);
  return waited;
}

describe('the migration lock', () => {
  it("on MySQL/MariaDB is Prisma's named lock prisma_migrate", async () => {
    const db = await createTestDatabase('mysql');
    created.push(db);
    const conn = await mariadb.createConnection(mysqlConnectionOptions(db.url));
    try {
      const waited = await waitsFor(
        db,
        async () => {
          const [row] = await conn.query("SELECT GET_LOCK('prisma_migrate', 5) AS locked");
          expect(Number(row.locked)).toBe(1);
        },
        async () => {
          await conn.query("SELECT RELEASE_LOCK('prisma_migrate')");
        },
      );
      expect(waited).toBe(true);
    } finally {
      await conn.end();
    }
  });

  it("on PostgreSQL is Prisma's advisory lock 72707369", async () => {
    const db = await createTestDatabase('postgresql');
    created.push(db);
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const waited = await waitsFor(
        db,
        async () => {
          await client.query('SELECT pg_advisory_lock(72707369)');
        },
        async () => {
          await client.query('SELECT pg_advisory_unlock(72707369)');
        },
      );
      expect(waited).toBe(true);
    } finally {
      await client.end();
    }
  });
});
