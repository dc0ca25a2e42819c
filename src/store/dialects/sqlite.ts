// SQLite through libsql: the embedded default.
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { createClient, type Transaction } from '@libsql/client';
import { MigrationError, type Dialect } from '../dialect.ts';

/** The absolute path of a `file:` URL, relative paths taken from the working directory. */
export function sqliteFilePath(url: string): string {
  const file = decodeURIComponent(url.slice('file:'.length).replace(/^\/\/(?=\/)/, '').split('?')[0] ?? '');
  return path.resolve(file);
}

export const sqlite: Dialect = {
  provider: 'sqlite',

  async openClient(url, { log, transactionOptions }) {
    const file = sqliteFilePath(url);
    await mkdir(path.dirname(file), { recursive: true });
    const [{ PrismaClient }, { PrismaLibSql }] = await Promise.all([import('../../generated/prisma/sqlite/client.ts'), import('@prisma/adapter-libsql')]);
    const prisma = new PrismaClient({ adapter: new PrismaLibSql({ url: `file:${file}` }), log, transactionOptions });
    // WAL lets readers run beside the writer; the busy timeout covers other processes' writes.
    await prisma.$queryRawUnsafe('PRAGMA journal_mode = WAL');
    await prisma.$executeRawUnsafe('PRAGMA busy_timeout = 5000');
    return { prisma, sql: null, close: async () => {} };
  },

  async connectForMigrations(url) {
    const file = sqliteFilePath(url);
    await mkdir(path.dirname(file), { recursive: true });
    const client = createClient({ url: `file:${file}` });
    let session: Pick<Transaction, 'execute' | 'executeMultiple'> = client;
    let transaction: Transaction | undefined;
    return {
      script: (sql) => session.executeMultiple(sql),
      query: async <Row>(sql: string, params: unknown[] = []) => (await session.execute({ sql, args: params as never })).rows as unknown as Row[],
      // One writer at a time: a second process waits here, then sees the first one's work.
      // Foreign keys go off first: inside a transaction `PRAGMA foreign_keys` is a no-op, and a
      // table redefinition (Prisma's way to alter a SQLite table) would cascade-delete every row
      // that points at the table it drops.
      lock: async () => {
        await client.execute('PRAGMA busy_timeout = 30000');
        await client.execute('PRAGMA foreign_keys = OFF');
        session = transaction = await client.transaction('write');
      },
      verify: async () => {
        const broken = await session.execute('PRAGMA foreign_key_check');
        if (broken.rows.length > 0) {
          const tables = [...new Set(broken.rows.map((row) => String(row.table)))].join(', ');
          throw new MigrationError(`the migration left ${broken.rows.length} rows whose foreign keys point nowhere (in ${tables})`);
        }
      },
      close: async () => {
        await transaction?.commit();
        client.close();
      },
      now: "strftime('%Y-%m-%d %H:%M:%f', 'now')",
      migrationsTableDdl: `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    TEXT PRIMARY KEY NOT NULL,
    "checksum"              TEXT NOT NULL,
    "finished_at"           DATETIME,
    "migration_name"        TEXT NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        DATETIME,
    "started_at"            DATETIME NOT NULL DEFAULT current_timestamp,
    "applied_steps_count"   INTEGER UNSIGNED NOT NULL DEFAULT 0
);`,
    };
  },

  /** `adminUrl` is a directory (a `file:` URL or a path); the database is a file in it. */
  async createDatabase(adminUrl, name) {
    const dir = adminUrl.startsWith('file:') ? sqliteFilePath(adminUrl) : path.resolve(adminUrl);
    await mkdir(dir, { recursive: true });
    return `file:${path.join(dir, `${name}.db`)}`;
  },

  async dropDatabase(adminUrl, name) {
    const dir = adminUrl.startsWith('file:') ? sqliteFilePath(adminUrl) : path.resolve(adminUrl);
    await Promise.all(['', '-wal', '-shm', '-journal'].map((suffix) => rm(path.join(dir, `${name}.db${suffix}`), { force: true })));
  },
};
