// Applies the committed SQL migrations in prisma/<provider>/migrations, keeping the same
// `_prisma_migrations` bookkeeping as `prisma migrate deploy`: one row per migration, the
// SHA-256 of its script as checksum, a failed migration blocks later deploys until resolved.
// It talks to the database through the plain drivers, because Prisma's native schema engine is
// not available everywhere and its Wasm build has no MySQL support.
import { createHash, randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { MigrationError, type DatabaseProvider } from './dialect.ts';
import { DIALECTS, databaseProvider, UNSUPPORTED_URL } from './dialects/index.ts';

export { MigrationError };

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

/** prisma/<provider>/migrations. This module sits two levels deep, as in the compiled build. */
export function migrationsDir(provider: DatabaseProvider): string {
  return path.resolve(import.meta.dirname, '../../prisma', provider, 'migrations');
}

/**
 * Applies every pending migration and returns the names applied, in order.
 * Concurrent callers on PostgreSQL and MySQL wait for each other on an advisory lock.
 */
export async function applyMigrations(url: string, log: (msg: string) => void = () => {}, options: { migrationsDir?: string } = {}): Promise<string[]> {
  const provider = databaseProvider(url);
  if (!provider) throw new MigrationError(UNSUPPORTED_URL);
  const migrations = await readMigrations(options.migrationsDir ?? migrationsDir(provider));
  const conn = await DIALECTS[provider].connectForMigrations(url);
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
        await conn.verify();
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
  if (!provider) throw new MigrationError(UNSUPPORTED_URL);
  const migrations = await readMigrations(migrationsDir(provider));
  const conn = await DIALECTS[provider].connectForMigrations(url);
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
