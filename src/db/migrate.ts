// Applies the committed SQL migrations in prisma/<provider>/migrations, keeping the same
// `_prisma_migrations` bookkeeping as `prisma migrate deploy`: one row per migration, the
// SHA-256 of its script as checksum, a failed migration blocks later deploys until resolved.
// It talks to the database through the plain drivers, because Prisma's native schema engine is
// not available everywhere and its Wasm build has no MySQL support.
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { createClient as createLibsqlClient, type Transaction } from '@libsql/client';
import * as mariadb from 'mariadb';
import pg from 'pg';
import { databaseProvider, migrationsDir, sqliteFilePath, type DatabaseProvider } from './provider.ts';

export interface Migration {
  name: string;
  script: string;
  checksum: string;
}

interface AppliedMigration {
  migration_name: string;
  checksum: string;
  finished_at: unknown;
  rolled_back_at: unknown;
}

/** The few operations the runner needs, one implementation per provider. */
interface MigrationConnection {
  /** Runs a script that may hold several statements. */
  script(sql: string): Promise<void>;
  /** Runs one statement; `?` placeholders. */
  query<Row>(sql: string, params?: unknown[]): Promise<Row[]>;
  lock(): Promise<void>;
  close(): Promise<void>;
  migrationsTableDdl: string;
  now: string;
}

export async function readMigrations(dir: string): Promise<Migration[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const names = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
  return Promise.all(
    names.map(async (name) => {
      const script = await readFile(path.join(dir, name, 'migration.sql'), 'utf8');
      return { name, script, checksum: createHash('sha256').update(script).digest('hex') };
    }),
  );
}

export class MigrationError extends Error {
  override name = 'MigrationError';
}

/**
 * Applies every pending migration and returns the names applied, in order.
 * Concurrent callers on PostgreSQL and MySQL wait for each other on an advisory lock.
 */
export async function applyMigrations(url: string, log: (msg: string) => void = () => {}): Promise<string[]> {
  const provider = databaseProvider(url);
  if (!provider) throw new MigrationError('DATABASE_URL must start with file:, postgresql:// or mysql://');
  const migrations = await readMigrations(migrationsDir(provider));
  const conn = await connect(provider, url);
  try {
    await conn.lock();
    await conn.script(conn.migrationsTableDdl);
    const applied = await conn.query<AppliedMigration>(
      'SELECT migration_name, checksum, finished_at, rolled_back_at FROM _prisma_migrations ORDER BY started_at',
    );
    const failed = applied.filter((m) => m.finished_at == null && m.rolled_back_at == null);
    if (failed.length > 0) {
      throw new MigrationError(
        `migration ${failed.map((m) => m.migration_name).join(', ')} failed earlier; fix the database and mark it resolved (prisma migrate resolve) before deploying again`,
      );
    }
    const done = new Map(applied.filter((m) => m.finished_at != null && m.rolled_back_at == null).map((m) => [m.migration_name, m]));
    const appliedNow: string[] = [];
    for (const migration of migrations) {
      const previous = done.get(migration.name);
      if (previous) {
        if (previous.checksum !== migration.checksum) log(`migration ${migration.name} was edited after it was applied`);
        continue;
      }
      const id = randomUUID();
      await conn.query(
        `INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at, applied_steps_count) VALUES (?, ?, ?, ${conn.now}, 0)`,
        [id, migration.checksum, migration.name],
      );
      try {
        await conn.script(migration.script);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        await conn.query('UPDATE _prisma_migrations SET logs = ? WHERE id = ?', [message, id]);
        throw new MigrationError(`migration ${migration.name} failed: ${message}`);
      }
      await conn.query(`UPDATE _prisma_migrations SET finished_at = ${conn.now}, applied_steps_count = 1 WHERE id = ?`, [id]);
      appliedNow.push(migration.name);
      log(`applied migration ${migration.name}`);
    }
    return appliedNow;
  } finally {
    await conn.close();
  }
}

/** Names of the committed migrations the database has not applied yet. Changes nothing. */
export async function pendingMigrations(url: string): Promise<string[]> {
  const provider = databaseProvider(url);
  if (!provider) throw new MigrationError('DATABASE_URL must start with file:, postgresql:// or mysql://');
  const migrations = await readMigrations(migrationsDir(provider));
  const conn = await connect(provider, url);
  try {
    const applied = await conn
      .query<AppliedMigration>('SELECT migration_name, checksum, finished_at, rolled_back_at FROM _prisma_migrations')
      // No bookkeeping table yet: nothing is applied.
      .catch(() => [] as AppliedMigration[]);
    const done = new Set(applied.filter((m) => m.finished_at != null && m.rolled_back_at == null).map((m) => m.migration_name));
    return migrations.map((m) => m.name).filter((name) => !done.has(name));
  } finally {
    await conn.close();
  }
}

// Prisma's advisory lock key, so that Parley and `prisma migrate deploy` exclude each other.
const ADVISORY_LOCK_KEY = 72707369;

async function connect(provider: DatabaseProvider, url: string): Promise<MigrationConnection> {
  switch (provider) {
    case 'sqlite': {
      const file = sqliteFilePath(url);
      await mkdir(path.dirname(file), { recursive: true });
      const client = createLibsqlClient({ url: `file:${file}` });
      let session: Pick<Transaction, 'execute' | 'executeMultiple'> = client;
      let transaction: Transaction | undefined;
      return {
        script: (sql) => session.executeMultiple(sql),
        query: async <Row>(sql: string, params: unknown[] = []) =>
          (await session.execute({ sql, args: params as never })).rows as unknown as Row[],
        // One writer at a time: a second process waits here, then sees the first one's work.
        lock: async () => {
          await client.execute('PRAGMA busy_timeout = 30000');
          session = transaction = await client.transaction('write');
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
    }
    case 'postgresql': {
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
    }
    case 'mysql': {
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
          const [row] = await conn.query(`SELECT GET_LOCK('${ADVISORY_LOCK_KEY}', 60) AS locked`);
          if (Number(row?.locked) !== 1) throw new MigrationError('timed out waiting for the migration lock');
        },
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
    }
  }
}

/** Connection fields of a mysql:// URL, in the shape of the mariadb driver's options. */
export function mysqlConnectionOptions(url: string): mariadb.ConnectionConfig {
  const u = new URL(url.replace(/^mariadb:/, 'mysql:'));
  return {
    host: u.hostname,
    port: u.port ? Number(u.port) : 3306,
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: decodeURIComponent(u.pathname.slice(1)),
  };
}
