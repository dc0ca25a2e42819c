// Migrations apply from empty on all three databases, a second run is a no-op, and on SQLite and
// PostgreSQL Prisma's own schema engine agrees: same bookkeeping, no drift from the schema. The
// Wasm engine cannot read MySQL, so there the database's columns, keys, indexes and foreign keys
// are compared with prisma/mysql/schema.prisma directly.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { applyMigrations, MigrationError, migrationsDir, pendingMigrations, readMigrations } from '../src/store/migrate.ts';
import { DIALECTS } from '../src/store/dialects/index.ts';
import { providerSchemaPath } from '../scripts/render-prisma-schemas.ts';
import { adapterFactoryFor, diffDatabaseToSchema, migrationList, noFilters, openSchemaEngine } from '../scripts/schema-engine.ts';
import { ALL_PROVIDERS, createTestDatabase, mysqlAdmin, type TestDatabase } from './support/databases.ts';
import { type DeclaredKey, declaredKeys, describeKey } from './support/prisma-keys.ts';

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

  it('create every primary key, unique constraint, index and foreign key the schema declares, and no others', async () => {
    const db = await freshDatabase('mysql');
    await applyMigrations(db.url);
    const declared = declaredKeys(readFileSync(providerSchemaPath('mysql'), 'utf8'));
    // The schema reader sees what Prisma's own datamodel sees: the same ids, unique constraints and relations.
    const { getDatamodel } = await import('../src/generated/pothos-types.ts');
    for (const [model, { fields, primaryKey, uniqueIndexes }] of Object.entries(getDatamodel().datamodel.models)) {
      const count = (kind: string) => declared.filter((k) => k.model === model && k.kind === kind).length;
      expect(count('PRIMARY KEY'), model).toBe(primaryKey || fields.some((f) => f.isId) ? 1 : 0);
      expect(count('UNIQUE'), model).toBe(uniqueIndexes.length + fields.filter((f) => f.isUnique).length);
      expect(count('FOREIGN KEY'), model).toBe(fields.filter((f) => (f.relationFromFields?.length ?? 0) > 0).length);
    }
    expect(declared.filter((k) => k.kind === 'INDEX').length).toBeGreaterThan(0);
    expect(keyDifferences(declared, await mysqlKeys(db.url, declared))).toEqual({ missing: [], unexpected: [], misnamed: [] });
  });

  it('the key check notices a missing unique constraint, a reordered index, a lost DESC, a changed ON DELETE and a renamed index', async () => {
    const db = await freshDatabase('mysql');
    await applyMigrations(db.url);
    const name = new URL(db.url).pathname.slice(1);
    await mysqlAdmin(async (c) => {
      await c.query(`USE \`${name}\``);
      await c.query('DROP INDEX `Message_userId_clientMessageId_key` ON `Message`');
      await c.query('DROP INDEX `Message_status_leaseExpiresAt_idx` ON `Message`');
      await c.query('CREATE INDEX `Message_status_leaseExpiresAt_idx` ON `Message`(`leaseExpiresAt`, `status`)');
      await c.query('DROP INDEX `Conversation_userId_archived_updatedAt_id_idx` ON `Conversation`');
      await c.query('CREATE INDEX `Conversation_userId_archived_updatedAt_id_idx` ON `Conversation`(`userId`, `archived`, `updatedAt` DESC, `id`)');
      await c.query('ALTER TABLE `Message` DROP FOREIGN KEY `Message_conversationId_fkey`');
      await c.query('ALTER TABLE `Message` ADD CONSTRAINT `Message_conversationId_fkey` FOREIGN KEY (`conversationId`) REFERENCES `Conversation`(`id`) ON DELETE RESTRICT ON UPDATE CASCADE');
      await c.query('ALTER TABLE `Message` RENAME INDEX `Message_conversationId_seq_key` TO `Message_seq_key`');
    });
    const declared = declaredKeys(readFileSync(providerSchemaPath('mysql'), 'utf8'));
    const differences = keyDifferences(declared, await mysqlKeys(db.url, declared));
    expect(differences.missing).toEqual([
      'Conversation INDEX (userId, archived, updatedAt DESC, id DESC)',
      'Message FOREIGN KEY (conversationId) REFERENCES Conversation (id) ON DELETE CASCADE ON UPDATE CASCADE',
      'Message INDEX (status, leaseExpiresAt)',
      'Message UNIQUE (userId, clientMessageId)',
    ]);
    expect(differences.unexpected).toEqual([
      'Conversation INDEX (userId, archived, updatedAt DESC, id)',
      'Message FOREIGN KEY (conversationId) REFERENCES Conversation (id) ON DELETE RESTRICT ON UPDATE CASCADE',
      'Message INDEX (leaseExpiresAt, status)',
    ]);
    expect(differences.misnamed).toEqual(['Message UNIQUE Message_conversationId_seq_key (conversationId, seq)']);
  });
});

describe('MySQL: ids compare exactly (migration 20261206000000_exact_ids)', () => {
  const EXACT_IDS = '20261206000000_exact_ids';
  const ID_COLUMNS = [
    'Conversation.id',
    'Conversation.userId',
    'Message.clientMessageId',
    'Message.conversationId',
    'Message.id',
    'Message.userId',
    'UserConfig.presetId',
    'UserConfig.userId',
  ];
  const longPrompt = '中'.repeat(100_000);
  // Binary collations without trailing-space padding: MariaDB's and MySQL 8's.
  const NO_PAD_BINARY = ['utf8mb4_nopad_bin', 'utf8mb4_0900_bin'];

  /** A database at the migration before EXACT_IDS, holding rows of two users. */
  async function populatedBeforeExactIds() {
    const db = await freshDatabase('mysql');
    const migrations = await readMigrations(migrationsDir('mysql'));
    const conn = await DIALECTS.mysql.connectForMigrations(db.url);
    try {
      await conn.script(conn.migrationsTableDdl);
      for (const migration of migrations.slice(0, migrations.findIndex((m) => m.name === EXACT_IDS))) {
        await conn.script(migration.script);
        await conn.query(
          'INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at, finished_at, applied_steps_count) VALUES (?, ?, ?, CURRENT_TIMESTAMP(3), CURRENT_TIMESTAMP(3), 1)',
          [randomUUID(), migration.checksum, migration.name],
        );
      }
      await conn.script(`
        INSERT INTO Conversation (id, userId, title, lastSeq, updatedAt) VALUES
          ('conv-ann', 'ann', 'Ann''s', 3, CURRENT_TIMESTAMP(3)), ('conv-ANN-2', 'ANN', NULL, 1, CURRENT_TIMESTAMP(3));
        INSERT INTO Message (id, conversationId, userId, seq, role, content, metadata, status, clientMessageId, updatedAt) VALUES
          ('m1', 'conv-ann', 'ann', 1, 'USER', 'hello', '{"k": [1, 2]}', 'COMPLETE', 'client-1', CURRENT_TIMESTAMP(3)),
          ('m2', 'CONV-ANN', 'ann', 2, 'ASSISTANT', 'written through a case-insensitive match', NULL, 'COMPLETE', NULL, CURRENT_TIMESTAMP(3)),
          ('m3', 'conv-ann ', 'ann', 3, 'USER', 'written through a padded match', NULL, 'STREAMING', NULL, CURRENT_TIMESTAMP(3)),
          ('m4', 'conv-ANN-2', 'ANN', 1, 'USER', 'another user', NULL, 'COMPLETE', 'client-1', CURRENT_TIMESTAMP(3));
        INSERT INTO UserConfig (userId, presetId, systemPrompt, updatedAt) VALUES ('ann', 'default', 'be brief', CURRENT_TIMESTAMP(3));
      `);
    } finally {
      await conn.close();
    }
    return db;
  }

  const inDatabase = <T,>(url: string, fn: (c: import('mariadb').Connection) => Promise<T>) =>
    mysqlAdmin(async (c) => {
      await c.query(`USE \`${new URL(url).pathname.slice(1)}\``);
      return fn(c);
    });

  it('runs on a populated database: keeps every row, key and foreign key, and makes every id column binary without padding', async () => {
    const db = await populatedBeforeExactIds();
    const rows = (url: string) =>
      inDatabase(url, async (c) => ({
        conversations: await c.query('SELECT id, userId, title, lastSeq FROM Conversation ORDER BY BINARY id'),
        messages: await c.query('SELECT id, userId, seq, role, content, metadata, status, clientMessageId FROM Message ORDER BY BINARY id'),
        configs: await c.query('SELECT userId, presetId, systemPrompt FROM UserConfig'),
      }));
    const before = await rows(db.url);
    // Every migration from exact_ids on runs, in order, on the populated database.
    expect(await applyMigrations(db.url)).toEqual([EXACT_IDS, '20261207000000_live_events', '20261208000000_message_tree']);
    expect(await rows(db.url)).toEqual(before);
    // Messages written through a loose match now name their conversation byte for byte.
    const owners = await inDatabase(db.url, (c) => c.query('SELECT id, conversationId FROM Message ORDER BY BINARY id'));
    expect(owners).toEqual([
      { id: 'm1', conversationId: 'conv-ann' },
      { id: 'm2', conversationId: 'conv-ann' },
      { id: 'm3', conversationId: 'conv-ann' },
      { id: 'm4', conversationId: 'conv-ANN-2' },
    ]);
    const declared = declaredKeys(readFileSync(providerSchemaPath('mysql'), 'utf8'));
    expect(keyDifferences(declared, await mysqlKeys(db.url, declared))).toEqual({ missing: [], unexpected: [], misnamed: [] });

    const name = new URL(db.url).pathname.slice(1);
    const columns = (await mysqlAdmin((c) =>
      c.query('SELECT CONCAT(TABLE_NAME, ".", COLUMN_NAME) AS col, COLLATION_NAME AS collation, COLUMN_TYPE AS type, IS_NULLABLE AS nullable FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?', [name]),
    )) as { col: string; collation: string | null; type: string; nullable: string }[];
    const collated = columns.filter((c) => ID_COLUMNS.includes(c.col));
    expect(collated.map((c) => c.col).sort()).toEqual(ID_COLUMNS);
    for (const column of collated) {
      expect(NO_PAD_BINARY, column.col).toContain(column.collation);
      expect(column.type, column.col).toBe('varchar(191)');
    }
    expect(columns.find((c) => c.col === 'UserConfig.systemPrompt')).toMatchObject({ type: 'mediumtext', nullable: 'YES' });

    await inDatabase(db.url, async (c) => {
      // Another case or a trailing space is another id.
      expect(await c.query("SELECT id FROM Conversation WHERE id IN ('CONV-ANN', 'conv-ann ')")).toEqual([]);
      expect(await c.query("SELECT userId FROM UserConfig WHERE userId IN ('ANN', 'ann ')")).toEqual([]);
      await c.query("INSERT INTO Conversation (id, userId, updatedAt) VALUES ('CONV-ANN', 'ann', CURRENT_TIMESTAMP(3)), ('conv-ann ', 'ann', CURRENT_TIMESTAMP(3))");
      await c.query("INSERT INTO UserConfig (userId, updatedAt) VALUES ('ann ', CURRENT_TIMESTAMP(3))");
      await c.query("INSERT INTO Message (id, conversationId, userId, seq, role, content, clientMessageId, updatedAt) VALUES ('M1', 'CONV-ANN', 'ann', 1, 'USER', 'x', 'CLIENT-1', CURRENT_TIMESTAMP(3))");
      // The foreign key is back, exact, and still cascades.
      await expect(c.query("INSERT INTO Message (id, conversationId, userId, seq, role, content, updatedAt) VALUES ('m9', 'Conv-Ann', 'ann', 9, 'USER', 'x', CURRENT_TIMESTAMP(3))")).rejects.toThrow(/foreign key/i);
      await c.query("DELETE FROM Conversation WHERE id = 'conv-ann'");
      expect(await c.query('SELECT id FROM Message ORDER BY BINARY id')).toEqual([{ id: 'M1' }, { id: 'm4' }]);
      await c.query('UPDATE UserConfig SET systemPrompt = ? WHERE userId = ?', [longPrompt, 'ann']);
      expect((await c.query("SELECT systemPrompt FROM UserConfig WHERE userId = 'ann'"))[0].systemPrompt).toBe(longPrompt);
    });
  });

  it('a database migrated from empty compares ids exactly too', async () => {
    const db = await freshDatabase('mysql');
    await applyMigrations(db.url);
    const name = new URL(db.url).pathname.slice(1);
    const collations = (await mysqlAdmin((c) =>
      c.query('SELECT CONCAT(TABLE_NAME, ".", COLUMN_NAME) AS col, COLLATION_NAME AS collation FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?', [name]),
    )) as { col: string; collation: string }[];
    const collated = collations.filter((c) => ID_COLUMNS.includes(c.col));
    expect(collated.map((c) => c.col).sort()).toEqual(ID_COLUMNS);
    for (const column of collated) expect(NO_PAD_BINARY, column.col).toContain(column.collation);
  });
});

/** The keys of the schema's tables in a MySQL/MariaDB database, read from information_schema. */
async function mysqlKeys(url: string, declared: DeclaredKey[]): Promise<DeclaredKey[]> {
  const database = new URL(url).pathname.slice(1);
  const tables = [...new Set(declared.map((k) => k.table))];
  type Row = { t: string; name: string; kind: string; col: string; collation: string | null; refTable: string | null; refCol: string | null; onDelete: string | null; onUpdate: string | null };
  const rows = (await mysqlAdmin(async (c) => [
    // Primary keys, unique constraints and foreign keys, their columns in order. STATISTICS adds
    // the sort order of an index column (A or D), REFERENTIAL_CONSTRAINTS the ON DELETE/UPDATE rules.
    ...((await c.query(
      `SELECT tc.TABLE_NAME AS t, tc.CONSTRAINT_NAME AS name, tc.CONSTRAINT_TYPE AS kind, k.COLUMN_NAME AS col, s.COLLATION AS collation,
              k.REFERENCED_TABLE_NAME AS refTable, k.REFERENCED_COLUMN_NAME AS refCol, r.DELETE_RULE AS onDelete, r.UPDATE_RULE AS onUpdate
         FROM information_schema.TABLE_CONSTRAINTS tc
         JOIN information_schema.KEY_COLUMN_USAGE k
           ON k.CONSTRAINT_SCHEMA = tc.CONSTRAINT_SCHEMA AND k.TABLE_SCHEMA = tc.TABLE_SCHEMA AND k.TABLE_NAME = tc.TABLE_NAME AND k.CONSTRAINT_NAME = tc.CONSTRAINT_NAME
         LEFT JOIN information_schema.STATISTICS s
           ON tc.CONSTRAINT_TYPE <> 'FOREIGN KEY' AND s.TABLE_SCHEMA = tc.TABLE_SCHEMA AND s.TABLE_NAME = tc.TABLE_NAME AND s.INDEX_NAME = tc.CONSTRAINT_NAME AND s.COLUMN_NAME = k.COLUMN_NAME
         LEFT JOIN information_schema.REFERENTIAL_CONSTRAINTS r
           ON r.CONSTRAINT_SCHEMA = tc.CONSTRAINT_SCHEMA AND r.TABLE_NAME = tc.TABLE_NAME AND r.CONSTRAINT_NAME = tc.CONSTRAINT_NAME
        WHERE tc.TABLE_SCHEMA = ? AND tc.CONSTRAINT_TYPE IN ('PRIMARY KEY', 'UNIQUE', 'FOREIGN KEY')
        ORDER BY tc.TABLE_NAME, tc.CONSTRAINT_NAME, k.ORDINAL_POSITION`,
      [database],
    )) as Row[]),
    // Indexes that are not unique (unique ones are the UNIQUE constraints above).
    ...((await c.query(
      `SELECT TABLE_NAME AS t, INDEX_NAME AS name, 'INDEX' AS kind, COLUMN_NAME AS col, COLLATION AS collation,
              NULL AS refTable, NULL AS refCol, NULL AS onDelete, NULL AS onUpdate
         FROM information_schema.STATISTICS
        WHERE TABLE_SCHEMA = ? AND NON_UNIQUE = 1
        ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX`,
      [database],
    )) as Row[]),
  ])) as Row[];
  const keys = new Map<string, DeclaredKey>();
  for (const row of rows.filter((r) => tables.includes(r.t))) {
    const id = `${row.t}\0${row.kind}\0${row.name}`;
    let key = keys.get(id);
    if (!key) {
      key = { table: row.t, kind: row.kind as DeclaredKey['kind'], name: row.name, columns: [] };
      if (row.kind === 'FOREIGN KEY') key.references = { table: row.refTable!, columns: [], onDelete: row.onDelete!, onUpdate: row.onUpdate! };
      keys.set(id, key);
    }
    key.columns.push({ column: row.col, desc: row.collation === 'D' });
    if (key.references) key.references.columns.push(row.refCol!);
  }
  const all = [...keys.values()];
  // InnoDB adds an index, named after the constraint, for a foreign key that no index starts
  // with. Prisma does not declare those.
  const foreignKeys = all.filter((k) => k.kind === 'FOREIGN KEY');
  return all.filter(
    (k) => !(k.kind === 'INDEX' && foreignKeys.some((fk) => fk.table === k.table && fk.name === k.name && describeKey({ ...fk, kind: 'INDEX', references: undefined }) === describeKey(k))),
  );
}

/** What differs between the declared and the actual keys: by definition, then by name. */
function keyDifferences(declared: DeclaredKey[], actual: DeclaredKey[]) {
  const want = declared.map((k) => describeKey(k, false)).sort();
  const have = actual.map((k) => describeKey(k, false)).sort();
  const named = new Set(actual.map((k) => describeKey(k)));
  return {
    missing: want.filter((k) => !have.includes(k)),
    unexpected: have.filter((k) => !want.includes(k)),
    // Present, but under another name than the schema's (or Prisma's default). MySQL names have
    // at most 64 characters; Prisma shortens longer default names, which is not modelled here.
    misnamed: declared
      .filter((k) => have.includes(describeKey(k, false)) && k.name.length <= 64 && !named.has(describeKey(k)))
      .map((k) => describeKey(k))
      .sort(),
  };
}

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
