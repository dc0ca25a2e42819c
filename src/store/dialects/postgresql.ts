// PostgreSQL through pg: Parley creates the pool, Prisma's adapter and the store's named
// statements share it.
import pg from 'pg';
import { urlConnectionFields, withDatabase, type Db, type Dialect } from '../dialect.ts';

// Prisma's advisory lock key, so that Parley and `prisma migrate deploy` exclude each other.
const ADVISORY_LOCK_KEY = 72707369;

/** Connection fields of a postgresql:// URL: pg ignores a database override next to a connection string. */
export function pgConnectionOptions(url: string): pg.ClientConfig {
  return urlConnectionFields(url, 5432);
}

async function asAdmin(adminUrl: string, statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

export const postgresql: Dialect = {
  provider: 'postgresql',

  async openClient(url, { poolSize, log, transactionOptions, onQuery }) {
    const [{ PrismaClient }, { PrismaPg }] = await Promise.all([import('../../generated/prisma/postgresql/client.ts'), import('@prisma/adapter-pg')]);
    const pool = new pg.Pool({ connectionString: url, max: poolSize });
    // An idle connection that fails (a database restart) is dropped by the pool and replaced
    // on the next query; without a listener the error would end the process.
    pool.on('error', () => {});
    const prisma = new PrismaClient({ adapter: new PrismaPg(pool), log, transactionOptions }) as unknown as Db;
    return {
      prisma,
      sql: {
        query: async <Row>(name: string, text: string, values: unknown[]) => {
          onQuery?.(text);
          const result = await pool.query({ name, text, values });
          return { rows: result.rows as Row[], rowCount: result.rowCount ?? 0 };
        },
      },
      // Prisma leaves a pool it was given open.
      close: () => pool.end(),
    };
  },

  async connectForMigrations(url) {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const numbered = (sql: string) => {
      let n = 0;
      return sql.replace(/\?/g, () => `$${++n}`);
    };
    return {
      script: async (sql) => {
        await client.query(sql);
      },
      query: async <Row>(sql: string, params: unknown[] = []) => (await client.query(numbered(sql), params)).rows as Row[],
      // Session lock: released when the connection closes, even if the process dies.
      lock: async () => {
        await client.query(`SELECT pg_advisory_lock(${ADVISORY_LOCK_KEY})`);
      },
      verify: async () => {},
      close: () => client.end(),
      now: 'now()',
      migrationsTableDdl: `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
);`,
    };
  },

  async createDatabase(adminUrl, name) {
    await asAdmin(adminUrl, `CREATE DATABASE "${name}"`);
    return withDatabase(adminUrl, name);
  },

  async dropDatabase(adminUrl, name) {
    await asAdmin(adminUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  },
};
