// A SQLite migration that redefines a table (how Prisma alters SQLite tables) on a populated
// database keeps every row: with foreign keys on inside the runner's transaction, dropping the old
// `Conversation` would cascade-delete every message.
import { cp, mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createClient } from '@libsql/client';
import { afterAll, describe, expect, it } from 'vitest';
import { applyMigrations, migrationsDir } from '../src/store/migrate.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';

// As `prisma migrate dev` writes it when a column of Conversation changes.
const REDEFINE_CONVERSATION = `-- RedefineTables
PRAGMA defer_foreign_keys=ON;
PRAGMA foreign_keys=OFF;
CREATE TABLE "new_Conversation" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "userId" TEXT NOT NULL,
    "title" TEXT,
    "archived" BOOLEAN NOT NULL DEFAULT false,
    "lastSeq" INTEGER NOT NULL DEFAULT 0,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL,
    "pinned" BOOLEAN NOT NULL DEFAULT false
);
INSERT INTO "new_Conversation" ("archived", "createdAt", "id", "lastSeq", "title", "updatedAt", "userId") SELECT "archived", "createdAt", "id", "lastSeq", "title", "updatedAt", "userId" FROM "Conversation";
DROP TABLE "Conversation";
ALTER TABLE "new_Conversation" RENAME TO "Conversation";
CREATE INDEX "Conversation_userId_archived_updatedAt_id_idx" ON "Conversation"("userId", "archived", "updatedAt" DESC, "id" DESC);
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;
`;

const CONVERSATIONS = 1000;
const MESSAGES_EACH = 3;

const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const step of cleanup) await step();
});

async function populatedDatabase(): Promise<TestDatabase> {
  const db = await createTestDatabase('sqlite');
  cleanup.push(() => db.drop());
  await applyMigrations(db.url);
  const client = createClient({ url: db.url });
  const now = new Date().toISOString();
  const statements = [];
  for (let c = 0; c < CONVERSATIONS; c++) {
    statements.push({ sql: 'INSERT INTO "Conversation" ("id", "userId", "lastSeq", "updatedAt") VALUES (?, ?, ?, ?)', args: [`c${c}`, `u${c % 7}`, MESSAGES_EACH, now] });
    for (let m = 1; m <= MESSAGES_EACH; m++) {
      statements.push({ sql: 'INSERT INTO "Message" ("id", "conversationId", "userId", "seq", "role", "content", "updatedAt") VALUES (?, ?, ?, ?, ?, ?, ?)', args: [`c${c}m${m}`, `c${c}`, `u${c % 7}`, m, 'USER', `text ${c}/${m}`, now] });
    }
  }
  await client.batch(statements, 'write');
  client.close();
  return db;
}

async function counts(url: string): Promise<{ conversations: number; messages: number }> {
  const client = createClient({ url });
  try {
    const [c, m] = await client.batch(['SELECT COUNT(*) AS n FROM "Conversation"', 'SELECT COUNT(*) AS n FROM "Message"'], 'read');
    return { conversations: Number(c!.rows[0]!.n), messages: Number(m!.rows[0]!.n) };
  } finally {
    client.close();
  }
}

describe('a SQLite migration that redefines a table', () => {
  it('keeps every row and relation of a populated database', async () => {
    const db = await populatedDatabase();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'parley-migrations-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    await cp(migrationsDir('sqlite'), dir, { recursive: true });
    await mkdir(path.join(dir, '20990101000000_redefine_conversation'));
    await writeFile(path.join(dir, '20990101000000_redefine_conversation', 'migration.sql'), REDEFINE_CONVERSATION);

    expect(await applyMigrations(db.url, () => {}, { migrationsDir: dir })).toEqual(['20990101000000_redefine_conversation']);
    expect(await counts(db.url)).toEqual({ conversations: CONVERSATIONS, messages: CONVERSATIONS * MESSAGES_EACH });
    // The relation still holds, and still cascades.
    const client = createClient({ url: db.url });
    try {
      await client.execute('PRAGMA foreign_keys = ON');
      expect((await client.execute('PRAGMA foreign_key_check')).rows).toEqual([]);
      await client.execute(`DELETE FROM "Conversation" WHERE "id" = 'c0'`);
      expect(Number((await client.execute(`SELECT COUNT(*) AS n FROM "Message" WHERE "conversationId" = 'c0'`)).rows[0]!.n)).toBe(0);
    } finally {
      client.close();
    }
  });

  it('would lose every message if run inside a transaction with foreign keys on (why the runner turns them off first)', async () => {
    const db = await populatedDatabase();
    const client = createClient({ url: db.url });
    try {
      const transaction = await client.transaction('write');
      await transaction.executeMultiple(REDEFINE_CONVERSATION);
      await transaction.commit();
    } finally {
      client.close();
    }
    expect(await counts(db.url)).toEqual({ conversations: CONVERSATIONS, messages: 0 });
  });

  it('fails, naming the table, when it leaves rows whose foreign keys point nowhere', async () => {
    const db = await populatedDatabase();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'parley-migrations-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    await cp(migrationsDir('sqlite'), dir, { recursive: true });
    await mkdir(path.join(dir, '20990101000000_orphans'));
    await writeFile(path.join(dir, '20990101000000_orphans', 'migration.sql'), `DELETE FROM "Conversation" WHERE "id" = 'c1';`);
    await expect(applyMigrations(db.url, () => {}, { migrationsDir: dir })).rejects.toThrow(/foreign keys point nowhere \(in Message\)/);
  });
});
