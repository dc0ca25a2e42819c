// MySQL and MariaDB through the mariadb driver.
import * as mariadb from 'mariadb';
import { MigrationError, urlConnectionFields, withDatabase, type Db, type Dialect } from '../dialect.ts';

// The named lock `prisma migrate deploy` takes, so that Parley and Prisma exclude each other.
const MIGRATION_LOCK = 'prisma_migrate';

/** Connection fields of a mysql:// URL, in the shape of the mariadb driver's options. */
export function mysqlConnectionOptions(url: string): mariadb.ConnectionConfig {
  return urlConnectionFields(url.replace(/^mariadb:/, 'mysql:'), 3306);
}

async function asAdmin(adminUrl: string, statement: string): Promise<void> {
  const { database: _, ...server } = mysqlConnectionOptions(adminUrl);
  const conn = await mariadb.createConnection(server);
  try {
    await conn.query(statement);
  } finally {
    await conn.end();
  }
}

export const mysql: Dialect = {
  provider: 'mysql',

  async openClient(url, { poolSize, log, transactionOptions }) {
    const [{ PrismaClient }, { PrismaMariaDb }] = await Promise.all([import('../../generated/prisma/mysql/client.ts'), import('@prisma/adapter-mariadb')]);
    const adapter = new PrismaMariaDb({ ...mysqlConnectionOptions(url), connectionLimit: poolSize });
    return { prisma: new PrismaClient({ adapter, log, transactionOptions }) as unknown as Db, sql: null, close: async () => {} };
  },

  async connectForMigrations(url) {
    const conn = await mariadb.createConnection({ ...mysqlConnectionOptions(url), multipleStatements: true });
    return {
      script: async (sql) => {
        await conn.query(sql);
      },
      query: async <Row>(sql: string, params: unknown[] = []) => {
        const result = await conn.query(sql, params);
        return (Array.isArray(result) ? result : []) as Row[];
      },
      lock: async () => {
        const [row] = await conn.query('SELECT GET_LOCK(?, 60) AS locked', [MIGRATION_LOCK]);
        if (Number(row?.locked) !== 1) throw new MigrationError('timed out waiting for the migration lock');
      },
      verify: async () => {},
      close: () => conn.end(),
      now: 'CURRENT_TIMESTAMP(3)',
      migrationsTableDdl: `CREATE TABLE IF NOT EXISTS _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             DATETIME(3),
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          DATETIME(3),
    started_at              DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    applied_steps_count     INTEGER UNSIGNED NOT NULL DEFAULT 0
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;`,
    };
  },

  async createDatabase(adminUrl, name) {
    await asAdmin(adminUrl, `CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
    return withDatabase(adminUrl, name);
  },

  async dropDatabase(adminUrl, name) {
    await asAdmin(adminUrl, `DROP DATABASE IF EXISTS \`${name}\``);
  },
};
