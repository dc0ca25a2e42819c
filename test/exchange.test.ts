// sendMessage's writes on PostgreSQL go out as one statement instead of Prisma's interactive
// transaction. The rows and the returned objects must be exactly what the Prisma path gives.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../src/db/client.ts';
import { applyMigrations } from '../src/db/migrate.ts';
import { saveInOneStatement, saveInTransaction, uuid7, type Exchange } from '../src/services/exchange.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';

describe('saving an exchange on PostgreSQL in one statement', () => {
  let database: TestDatabase;
  let db: Database;

  beforeAll(async () => {
    database = await createTestDatabase('postgresql');
    await applyMigrations(database.url);
    db = await openDatabase({ url: database.url, poolSize: 4 });
  });
  afterAll(async () => {
    await db?.close();
    await database?.drop();
  });

  const exchange = (conversationId: string, extra: Partial<Exchange> = {}): Exchange => ({
    userId: 'alice',
    conversationId,
    content: 'What is “seq”? \u{1F600} \'quotes\' and $1',
    tokenCount: 9,
    clientMessageId: null,
    settings: Promise.resolve({ model: 'gpt-x', presetId: 'default' }),
    leaseMs: 15_000,
    ...extra,
  });
  const newConversation = () => db.prisma.conversation.create({ data: { userId: 'alice', title: 'Trip', lastSeq: 4 } });
  const rowsOf = async (saved: { userMessage: { id: string }; assistantMessage: { id: string }; conversation: { id: string } }) => ({
    conversation: await db.prisma.conversation.findUniqueOrThrow({ where: { id: saved.conversation.id } }),
    userMessage: await db.prisma.message.findUniqueOrThrow({ where: { id: saved.userMessage.id } }),
    assistantMessage: await db.prisma.message.findUniqueOrThrow({ where: { id: saved.assistantMessage.id } }),
  });
  const comparable = <T extends Record<string, unknown>>(row: T) => {
    const { id: _id, conversationId: _c, createdAt: _a, updatedAt: _u, leaseExpiresAt, ...rest } = row;
    return { ...rest, leasing: leaseExpiresAt !== null };
  };

  it('returns exactly the rows it wrote, and writes what the Prisma transaction writes', async () => {
    const [fast, slow] = [await newConversation(), await newConversation()];
    const before = Date.now();
    const savedFast = await saveInOneStatement(db.prisma, exchange(fast.id, { clientMessageId: 'k1' }), fast.id);
    const savedSlow = await saveInTransaction(db.prisma, exchange(slow.id, { clientMessageId: 'k2' }));
    const fastRows = await rowsOf(savedFast);
    expect(savedFast).toEqual(fastRows);
    const slowRows = await rowsOf(savedSlow);
    expect(comparable(fastRows.userMessage)).toEqual({ ...comparable(slowRows.userMessage), clientMessageId: 'k1' });
    expect(comparable(fastRows.assistantMessage)).toEqual(comparable(slowRows.assistantMessage));
    expect(comparable(fastRows.conversation)).toEqual(comparable(slowRows.conversation));
    expect([fastRows.userMessage.seq, fastRows.assistantMessage.seq, fastRows.conversation.lastSeq]).toEqual([5, 6, 6]);
    expect(fastRows.conversation.updatedAt.getTime()).toBeGreaterThanOrEqual(before);
    expect(fastRows.assistantMessage.leaseExpiresAt!.getTime()).toBeGreaterThan(Date.now() + 10_000);
    expect(fastRows.userMessage.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('hands out distinct positions to concurrent sends', async () => {
    const conversation = await newConversation();
    const saved = await Promise.all(Array.from({ length: 20 }, () => saveInOneStatement(db.prisma, exchange(conversation.id), conversation.id)));
    const seqs = saved.flatMap((s) => [s.userMessage.seq, s.assistantMessage.seq]).sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: 40 }, (_, i) => i + 5));
    expect(saved.every((s) => s.assistantMessage.seq === s.userMessage.seq + 1)).toBe(true);
  });

  it("writes nothing to another user's conversation or a missing one, and says NOT_FOUND", async () => {
    const conversation = await newConversation();
    for (const [id, userId] of [[conversation.id, 'mallory'], [uuid7(), 'alice']] as const) {
      await expect(saveInOneStatement(db.prisma, exchange(id, { userId }), id)).rejects.toMatchObject({ extensions: { code: 'NOT_FOUND' } });
    }
    expect(await db.prisma.message.count({ where: { conversationId: conversation.id } })).toBe(0);
    expect((await db.prisma.conversation.findUniqueOrThrow({ where: { id: conversation.id } })).lastSeq).toBe(4);
  });

  it('reports a reused clientMessageId as the unique violation Prisma reports, and writes nothing', async () => {
    const conversation = await newConversation();
    await saveInOneStatement(db.prisma, exchange(conversation.id, { clientMessageId: 'same' }), conversation.id);
    await expect(saveInOneStatement(db.prisma, exchange(conversation.id, { clientMessageId: 'same' }), conversation.id)).rejects.toMatchObject({ code: 'P2002' });
    expect(await db.prisma.message.count({ where: { conversationId: conversation.id } })).toBe(2);
    expect((await db.prisma.conversation.findUniqueOrThrow({ where: { id: conversation.id } })).lastSeq).toBe(6);
  });

  it('makes time-ordered version 7 ids', () => {
    const ids = Array.from({ length: 5 }, () => uuid7());
    expect(new Set(ids).size).toBe(5);
    const first = uuid7();
    const later = new Promise<string>((resolve) => setTimeout(() => resolve(uuid7()), 3));
    return later.then((second) => expect(second > first).toBe(true));
  });
});
