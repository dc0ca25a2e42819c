// Hot paths that skip Prisma's model queries on PostgreSQL: sendMessage's writes as one statement
// instead of an interactive transaction, and message pages read by the window query itself. What
// they return and write must be exactly what the Prisma model queries give.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../src/store/database.ts';
import { applyMigrations } from '../src/store/migrate.ts';
import { NoHistoryCache } from '../src/cache/history-cache.ts';
import { MessagePageLoader } from '../src/services/message-pages.ts';
import { uuid7 } from '../src/store/ids.ts';
import { PgStore } from '../src/store/pg-store.ts';
import { PrismaStore } from '../src/store/prisma-store.ts';
import type { NewExchange as Exchange, ReplyEnd } from '../src/store/store.ts';
import { UserConfigService } from '../src/services/user-config.ts';
import { SecretBox } from '../src/services/secrets.ts';
import { loadConfig } from '../src/config.ts';
import { modelPresets } from '../src/llm/presets.ts';
import { UserEndpoints } from '../src/llm/user-endpoints.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';

// One fresh database with the committed migrations serves every suite in this file.
let database: TestDatabase;
let db: Database;
// The two adapters of the store on one database: named statements, and Prisma's model queries.
let pgStore: PgStore;
let prismaStore: PrismaStore;

beforeAll(async () => {
  database = await createTestDatabase('postgresql');
  await applyMigrations(database.url);
  db = await openDatabase({ url: database.url, poolSize: 4 });
  pgStore = new PgStore(db.prisma, db.sql!);
  prismaStore = new PrismaStore(db.prisma, 'postgresql');
});
afterAll(async () => {
  await db?.close();
  await database?.drop();
});

describe('saving an exchange on PostgreSQL in one statement', () => {
  const exchange = (conversationId: string | null, extra: Partial<Exchange> = {}): Exchange => ({
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
    const { id: _id, conversationId: _c, createdAt: _a, updatedAt: _u, leaseExpiresAt, parentId, currentMessageId, ...rest } = row;
    // Ids differ between the two conversations; which message they name is checked below.
    return { ...rest, leasing: leaseExpiresAt !== null, hasParent: typeof parentId === 'string', hasTip: typeof currentMessageId === 'string' };
  };

  it('returns exactly the rows it wrote, and writes what the Prisma transaction writes', async () => {
    const [fast, slow] = [await newConversation(), await newConversation()];
    const before = Date.now();
    const savedFast = await pgStore.saveExchange(exchange(fast.id, { clientMessageId: 'k1' }));
    const savedSlow = await prismaStore.saveExchange(exchange(slow.id, { clientMessageId: 'k2' }));
    const fastRows = await rowsOf(savedFast);
    expect(savedFast).toEqual({ ...fastRows, conversationSeq: fastRows.conversation.lastEventSeq, viewerSeq: null });
    const slowRows = await rowsOf(savedSlow);
    // Both conversations had no events: the two messages are events 0 and 1, on either path.
    expect([savedFast.conversationSeq, savedSlow.conversationSeq]).toEqual([1, 1]);
    expect(comparable(fastRows.userMessage)).toEqual({ ...comparable(slowRows.userMessage), clientMessageId: 'k1' });
    expect(comparable(fastRows.assistantMessage)).toEqual(comparable(slowRows.assistantMessage));
    expect(comparable(fastRows.conversation)).toEqual(comparable(slowRows.conversation));
    expect([fastRows.userMessage.seq, fastRows.assistantMessage.seq, fastRows.conversation.lastSeq]).toEqual([5, 6, 6]);
    expect(fastRows.conversation.updatedAt.getTime()).toBeGreaterThanOrEqual(before);
    expect(fastRows.assistantMessage.leaseExpiresAt!.getTime()).toBeGreaterThan(Date.now() + 10_000);
    expect(fastRows.userMessage.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // Both answer the tip they found, and leave their reply as the tip.
    for (const [saved, rows, conversation] of [[savedFast, fastRows, fast], [savedSlow, slowRows, slow]] as const) {
      expect(rows.userMessage.parentId).toBe(conversation.currentMessageId);
      expect(rows.assistantMessage.parentId).toBe(saved.userMessage.id);
      expect(rows.conversation.currentMessageId).toBe(saved.assistantMessage.id);
      expect([rows.userMessage.depth, rows.assistantMessage.depth, rows.conversation.pathLength]).toEqual([0, 1, 2]);
    }
  });

  it('starts a new conversation the way the Prisma transaction does', async () => {
    const savedFast = await pgStore.saveExchange(exchange(null));
    const savedSlow = await prismaStore.saveExchange(exchange(null));
    const fastRows = await rowsOf(savedFast);
    expect(savedFast).toEqual({ ...fastRows, conversationSeq: 1, viewerSeq: expect.any(Number) });
    const slowRows = await rowsOf(savedSlow);
    // One user: the two new conversations are its viewer events n and n + 1, on either path.
    expect(savedSlow.viewerSeq).toBe(savedFast.viewerSeq! + 1);
    for (const part of ['conversation', 'userMessage', 'assistantMessage'] as const) expect(comparable(fastRows[part])).toEqual(comparable(slowRows[part]));
    expect([fastRows.userMessage.seq, fastRows.assistantMessage.seq, fastRows.conversation.lastSeq, fastRows.conversation.title]).toEqual([1, 2, 2, null]);
  });

  it('hands out distinct positions to concurrent sends', async () => {
    const conversation = await newConversation();
    const saved = await Promise.all(Array.from({ length: 20 }, () => pgStore.saveExchange(exchange(conversation.id))));
    const seqs = saved.flatMap((s) => [s.userMessage.seq, s.assistantMessage.seq]).sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: 40 }, (_, i) => i + 5));
    expect(saved.every((s) => s.assistantMessage.seq === s.userMessage.seq + 1)).toBe(true);
    // And distinct event seqs, gapless: two per exchange.
    expect(saved.flatMap((s) => [s.conversationSeq! - 1, s.conversationSeq!]).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    // One path: each send answered the tip the one before it left, even one committed while it
    // waited for the conversation's lock (which the statement's snapshot does not see).
    const rows = await db.prisma.message.findMany({ where: { conversationId: conversation.id }, orderBy: { seq: 'asc' } });
    expect(rows.map((m) => m.parentId)).toEqual([null, ...rows.slice(0, -1).map((m) => m.id)]);
    expect(rows.map((m) => [m.depth, m.onPath])).toEqual(rows.map((_, i) => [i, true]));
    expect(await db.prisma.conversation.findUniqueOrThrow({ where: { id: conversation.id } })).toMatchObject({ currentMessageId: rows.at(-1)!.id, pathLength: 40 });
  });

  it("writes nothing to another user's conversation or a missing one, and says NOT_FOUND", async () => {
    const conversation = await newConversation();
    for (const [id, userId] of [[conversation.id, 'mallory'], [uuid7(), 'alice']] as const) {
      await expect(pgStore.saveExchange(exchange(id, { userId }))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    }
    expect(await db.prisma.message.count({ where: { conversationId: conversation.id } })).toBe(0);
    expect((await db.prisma.conversation.findUniqueOrThrow({ where: { id: conversation.id } })).lastSeq).toBe(4);
  });

  it('reports a reused clientMessageId as a duplicate key, and writes nothing', async () => {
    const conversation = await newConversation();
    await pgStore.saveExchange(exchange(conversation.id, { clientMessageId: 'same' }));
    await expect(pgStore.saveExchange(exchange(conversation.id, { clientMessageId: 'same' }))).rejects.toMatchObject({ name: 'DuplicateKeyError', key: 'clientMessageId' });
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

  it('reads message pages of several conversations in one query, with the rows Prisma reads', async () => {
    const conversations = [await newConversation(), await newConversation(), await newConversation()];
    for (const [i, conversation] of conversations.entries()) {
      for (let n = 0; n < 4 + i; n++) await pgStore.saveExchange(exchange(conversation.id, { content: `c${i} n${n}` }));
    }
    await db.prisma.message.updateMany({ where: { conversationId: conversations[0]!.id, role: 'ASSISTANT' }, data: { status: 'COMPLETE', finishReason: 'stop', completionTokens: 3, leaseExpiresAt: null, error: 'none', metadata: { nested: { list: [1, 'two', null] } } } });
    const statements: string[] = [];
    const counted = await openDatabase({ url: database.url, poolSize: 2, onQuery: (sql) => statements.push(sql) });
    try {
      for (const args of [{ last: 3 }, { first: 2 }, { last: 4, before: undefined }]) {
        statements.length = 0;
        const loader = new MessagePageLoader(counted.store, new NoHistoryCache(50), 'alice');
        const pages = await Promise.all(conversations.map((c) => loader.load(c.id, args)));
        expect(statements, statements.join("\n---\n")).toHaveLength(1);
        for (const [i, page] of pages.entries()) {
          const all = await db.prisma.message.findMany({ where: { conversationId: conversations[i]!.id }, orderBy: { seq: 'asc' } });
          const expected = args.first ? all.slice(0, args.first) : all.slice(-args.last!);
          expect(page.edges.map((e) => e.node)).toEqual(expected);
          expect(page.pageInfo.hasNextPage || page.pageInfo.hasPreviousPage).toBe(true);
        }
      }
      const mallory = new MessagePageLoader(counted.store, new NoHistoryCache(50), 'mallory');
      expect(await Promise.all(conversations.map((c) => mallory.count(c.id)))).toEqual([0, 0, 0]);
      const counts = new MessagePageLoader(counted.store, new NoHistoryCache(50), 'alice');
      statements.length = 0;
      expect(await Promise.all(conversations.map((c) => counts.count(c.id)))).toEqual([8, 10, 12]);
      expect(statements).toHaveLength(1);

      // A list asking for pages and counts: one page query, one read of the path lengths, including
      // a conversation without messages (0).
      const empty = await newConversation();
      const ids = [...conversations.map((c) => c.id), empty.id];
      const together = new MessagePageLoader(counted.store, new NoHistoryCache(50), 'alice');
      statements.length = 0;
      const [pages, totals] = await Promise.all([Promise.all(ids.map((id) => together.load(id, { last: 2 }))), Promise.all(ids.map((id) => together.count(id)))]);
      expect(totals).toEqual([8, 10, 12, 0]);
      expect(statements).toHaveLength(2);
      for (const [i, page] of pages.entries()) {
        const all = await db.prisma.message.findMany({ where: { conversationId: ids[i] }, orderBy: { seq: 'asc' } });
        expect(page.edges.map((e) => e.node)).toEqual(all.slice(-2));
      }
      // A page after a cursor: the counts are still the whole paths.
      const cursor = pages[0]!.edges[0]!.cursor;
      const paged = new MessagePageLoader(counted.store, new NoHistoryCache(50), 'alice');
      const [, partTotals] = await Promise.all([Promise.all(ids.map((id) => paged.load(id, { last: 2, before: cursor }))), Promise.all(ids.map((id) => paged.count(id)))]);
      expect(partTotals).toEqual([8, 10, 12, 0]);
      // Another user asking for both gets neither rows nor counts of alice's conversations.
      const intruder = new MessagePageLoader(counted.store, new NoHistoryCache(50), 'mallory');
      const [foreignPages, foreignTotals] = await Promise.all([Promise.all(ids.map((id) => intruder.load(id, { last: 2 }))), Promise.all(ids.map((id) => intruder.count(id)))]);
      expect(foreignTotals).toEqual([0, 0, 0, 0]);
      expect(foreignPages.flatMap((p) => p.edges)).toEqual([]);
    } finally {
      await counted.close();
    }
  });
});

describe('the writes and reads every reply runs, on PostgreSQL without Prisma', () => {
  /** Two identical STREAMING replies, one for each path. */
  const twoReplies = async (extra: Record<string, unknown> = {}) => {
    const conversation = await db.prisma.conversation.create({ data: { userId: 'alice', lastSeq: 4 } });
    const reply = (seq: number) =>
      db.prisma.message.create({
        data: { conversationId: conversation.id, userId: 'alice', seq, role: 'ASSISTANT', content: 'checkpoint', status: 'STREAMING', model: 'gpt-start', metadata: { presetId: 'default' }, promptTokens: 11, leaseExpiresAt: new Date(Date.now() + 60_000), ...extra },
      });
    return [await reply(1), await reply(2)];
  };
  const comparable = ({ id: _id, seq: _seq, createdAt: _c, updatedAt: _u, ...rest }: Record<string, unknown>) => rest;
  const read = (id: string) => db.prisma.message.findUniqueOrThrow({ where: { id } });

  const ends: [string, ReplyEnd][] = [
    ['a completed reply with everything', { status: 'COMPLETE', content: 'Héllo “world” \u{1F600}', error: null, finishReason: 'stop', model: 'gpt-x-2', metadata: { presetId: 'default', context: { includedMessages: 3, omittedMessageIds: ['a', 'b'] } }, promptTokens: 42, completionTokens: 7 }],
    ['a failed reply that leaves model, metadata and prompt tokens as saved', { status: 'FAILED', content: '', error: 'the model said no', finishReason: null, model: null, metadata: null, promptTokens: null, completionTokens: 0 }],
  ];
  it.each(ends)('saves %s exactly as the Prisma update does', async (_name, end) => {
    const [direct, viaPrisma] = await twoReplies();
    const before = Date.now();
    const [directSaved, prismaSaved] = [await pgStore.saveReplyEnd(direct!.id, direct!.conversationId, end), await prismaStore.saveReplyEnd(viaPrisma!.id, viaPrisma!.conversationId, end)];
    // Both replies are in one conversation: each end is its next event.
    expect(directSaved.count).toBe(1);
    expect(prismaSaved).toEqual({ count: 1, eventSeq: directSaved.eventSeq! + 1 });
    const [directRow, prismaRow] = [await read(direct!.id), await read(viaPrisma!.id)];
    expect(comparable(directRow)).toEqual(comparable(prismaRow));
    expect(directRow).toMatchObject({ status: end.status, content: end.content, leaseExpiresAt: null, model: end.model ?? 'gpt-start', promptTokens: end.promptTokens ?? 11 });
    expect(directRow.updatedAt.getTime()).toBeGreaterThanOrEqual(before);
  });

  it('changes nothing once a reply has ended, on either path', async () => {
    const [direct, viaPrisma] = await twoReplies({ status: 'STOPPED', leaseExpiresAt: null });
    const end = ends[0]![1];
    const before = await db.prisma.conversation.findUniqueOrThrow({ where: { id: direct!.conversationId } });
    expect(await pgStore.saveReplyEnd(direct!.id, direct!.conversationId, end)).toEqual({ count: 0, eventSeq: null });
    expect(await prismaStore.saveReplyEnd(viaPrisma!.id, viaPrisma!.conversationId, end)).toEqual({ count: 0, eventSeq: null });
    expect(await read(direct!.id)).toEqual(direct);
    expect(await pgStore.saveReplyEnd(uuid7(), direct!.conversationId, end)).toEqual({ count: 0, eventSeq: null });
    // Nothing saved, no event seq handed out, and the conversation's updatedAt unchanged.
    expect(await db.prisma.conversation.findUniqueOrThrow({ where: { id: direct!.conversationId } })).toEqual(before);
  });

  it('of enders racing on one reply (no stream seal: Redis away), one saves and the seq moves once, on either path', async () => {
    for (const store of [pgStore, prismaStore]) {
      for (let round = 0; round < 5; round++) {
        const [reply] = await twoReplies();
        const before = (await db.prisma.conversation.findUniqueOrThrow({ where: { id: reply!.conversationId } })).lastEventSeq;
        const results = await Promise.all(Array.from({ length: 4 }, (_, i) => store.saveReplyEnd(reply!.id, reply!.conversationId, { ...ends[0]![1], content: `end ${i}` })));
        expect(results.filter((r) => r.count === 1)).toHaveLength(1);
        expect(results.filter((r) => r.count === 0)).toEqual([{ count: 0, eventSeq: null }, { count: 0, eventSeq: null }, { count: 0, eventSeq: null }]);
        expect(results.find((r) => r.count === 1)!.eventSeq).toBe(before + 1);
        expect((await db.prisma.conversation.findUniqueOrThrow({ where: { id: reply!.conversationId } })).lastEventSeq).toBe(before + 1);
      }
    }
  });

  it('titles an untitled conversation once, on either path', async () => {
    for (const store of [pgStore, prismaStore]) {
      const conversation = await db.prisma.conversation.create({ data: { userId: 'alice' } });
      expect(await store.setTitleIfUntitled(conversation.id, 'Weekend in Lisbon')).toMatchObject({ userId: 'alice', conversationSeq: 0 });
      expect(await store.setTitleIfUntitled(conversation.id, 'Something else')).toBeNull();
      const row = await db.prisma.conversation.findUniqueOrThrow({ where: { id: conversation.id } });
      expect(row.title).toBe('Weekend in Lisbon');
      expect(row.updatedAt.getTime()).toBeGreaterThan(conversation.updatedAt.getTime() - 1);
    }
  });

  it("reads a user's settings as Prisma does, with and without a saved row", async () => {
    const config = loadConfig({ LLM_API_URL: 'http://127.0.0.1:9/v1', LLM_MODEL: 'gpt-default', LLM_ALLOWED_HOSTS: '127.0.0.1' });
    const options = { presets: modelPresets(config), secrets: new SecretBox(Buffer.alloc(32, 7)), userEndpoints: new UserEndpoints(config.LLM_ALLOWED_HOSTS), maxSystemPromptChars: 1000 };
    const [direct, viaPrisma] = [new UserConfigService(pgStore, options), new UserConfigService(prismaStore, options)];
    const viewer = { userId: `settings-${uuid7()}` };
    expect(await direct.get(viewer)).toEqual(await viaPrisma.get(viewer));
    await direct.update(viewer, { model: 'gpt-mine', baseUrl: 'http://127.0.0.1:9/custom', apiKey: 'sk-secret', maxTokens: 321, temperature: 0.35, systemPrompt: 'Be brief.', contextTokens: 4096 });
    const [fromDirect, fromPrisma] = [await direct.modelSettings(viewer, {}), await viaPrisma.modelSettings(viewer, {})];
    expect(fromDirect).toEqual(fromPrisma);
    expect(fromDirect).toMatchObject({ model: 'gpt-mine', baseUrl: 'http://127.0.0.1:9/custom', apiKey: 'sk-secret', maxTokens: 321, temperature: 0.35, systemPrompt: 'Be brief.', contextTokens: 4096 });
    expect(await direct.get(viewer)).toEqual(await viaPrisma.get(viewer));
  });
});
