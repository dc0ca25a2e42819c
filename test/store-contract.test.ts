// The storage port's contract (the doc comments of src/store/store.ts), held against every adapter
// on every provider it runs on. Expected values are literals wherever they can be, so the four
// adapters must give the same rows for the same inputs. "Another user" is always the owner's id in
// other letter case: the closest id that must still never share a row (MySQL compares ids
// case-sensitively on purpose, see its init migration).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../src/store/database.ts';
import { uuid7 } from '../src/store/ids.ts';
import type { Conversation, Message } from '../src/store/rows.ts';
import type { ConversationKey, MessagePagesRequest, PageWindow } from '../src/store/store.ts';
import { ADAPTERS, closeDatabases, databaseFor, ENDED, exchange, history, intruderOf, KEYS, message, newKey, newUser, NULL_END, plain, range, TEXT, TITLE, type ContractStore } from './support/store-contract.ts';

afterAll(closeDatabases);

describe.each(ADAPTERS)('the store contract, $name', ({ provider, make }) => {
  let db: Database;
  let store: ContractStore;
  beforeAll(async () => {
    db = (await databaseFor(provider)).db;
    store = make(db);
  });

  // The writes as rows and counts; their event seqs have a contract of their own below.
  const create = async (...args: Parameters<ContractStore['createConversation']>) => (await store.createConversation(...args)).conversation;
  const append = async (...args: Parameters<ContractStore['appendMessage']>) => (await store.appendMessage(...args)).message;
  const update = async (...args: Parameters<ContractStore['updateConversation']>) => (await store.updateConversation(...args))?.conversation ?? null;
  const remove = async (...args: Parameters<ContractStore['deleteConversation']>) => (await store.deleteConversation(...args)) !== null;
  const clear = async (...args: Parameters<ContractStore['clearMessages']>) => (await store.clearMessages(...args))?.count ?? null;
  const send = async (...args: Parameters<ContractStore['saveExchange']>) => {
    const { conversationSeq: _c, viewerSeq: _v, ...saved } = await store.saveExchange(...args);
    return saved;
  };
  const endReply = async (messageId: string, end: Parameters<ContractStore['saveReplyEnd']>[2]) => {
    const row = await db.prisma.message.findUnique({ where: { id: messageId }, select: { conversationId: true } });
    return (await store.saveReplyEnd(messageId, row?.conversationId ?? uuid7(), end)).count;
  };

  /** A conversation of `userId` with one message per content, appended in order (seq 1, 2, ...). */
  const conversationWith = async (userId: string, contents: string[]) => {
    const conversation = await create(userId, null);
    const messages: Message[] = [];
    for (const content of contents) messages.push(await append(userId, conversation.id, { role: 'USER', content, tokenCount: content.length, metadata: { tag: content, list: [1, 'two', null] } }));
    return { conversation, messages };
  };

  describe('conversations', () => {
    it("creates, finds and updates the owner's conversation, and nobody else's", async () => {
      const owner = newUser();
      const intruder = intruderOf(owner);
      const created = await create(owner, 'Trip');
      expect(created).toMatchObject({ userId: owner, title: 'Trip', archived: false, lastSeq: 0 });
      expect(await store.findConversation(owner, created.id)).toEqual(created);
      expect(await store.findConversation(owner, created.id, { select: { id: true, title: true } })).toEqual({ id: created.id, title: 'Trip' });
      expect(await store.findConversation(intruder, created.id)).toBeNull();
      expect(await store.findConversation(owner, uuid7())).toBeNull();

      const updated = await update(owner, created.id, { title: 'Lisbon', archived: true });
      expect(updated).toEqual({ ...created, title: 'Lisbon', archived: true, lastEventSeq: 0, updatedAt: expect.any(Date) });
      expect(updated!.updatedAt.getTime()).toBeGreaterThanOrEqual(created.updatedAt.getTime());
      expect(await store.findConversation(owner, created.id)).toEqual(updated);
      const cleared = await update(owner, created.id, { title: null });
      expect(cleared).toMatchObject({ id: created.id, title: null, archived: true });

      expect(await update(intruder, created.id, { title: 'Mine now', archived: false })).toBeNull();
      expect(await update(owner, uuid7(), { title: 'Nowhere' })).toBeNull();
      expect(await store.findConversation(owner, created.id)).toEqual(cleared);
    });

    it('deletes a conversation with its messages, for its owner only', async () => {
      const owner = newUser();
      const { conversation, messages } = await conversationWith(owner, ['one', 'two']);
      expect(await remove(intruderOf(owner), conversation.id)).toBe(false);
      expect(await store.findMessage(owner, messages[0]!.id)).toEqual(messages[0]);
      expect(await remove(owner, conversation.id)).toBe(true);
      expect(await store.findConversation(owner, conversation.id)).toBeNull();
      expect(await store.findMessage(owner, messages[1]!.id)).toBeNull();
      expect(await db.prisma.message.count({ where: { conversationId: conversation.id } })).toBe(0);
      expect(await remove(owner, conversation.id)).toBe(false);
      expect(await remove(owner, uuid7())).toBe(false);
    });

    it('titles an untitled conversation once', async () => {
      const owner = newUser();
      const [untitled, titled] = [await create(owner, null), await create(owner, 'Kept')];
      for (const title of ['First', 'Second']) await store.setTitleIfUntitled(untitled.id, title);
      await store.setTitleIfUntitled(titled.id, 'Other');
      expect((await store.findConversation(owner, untitled.id))?.title).toBe('First');
      expect((await store.findConversation(owner, titled.id))?.title).toBe('Kept');
    });

    it('lists the owner\'s conversations in list order (updatedAt desc, id desc) through every kind of window', async () => {
      const owner = newUser();
      const base = Date.now() - 3_600_000;
      // Ties at offsets 0 and 1: there the id decides.
      const rows: Conversation[] = [];
      for (const [i, offset] of [0, 0, 1, 1, 2, 3].entries()) {
        const { id } = await create(owner, `c${i}`);
        rows.push(await db.prisma.conversation.update({ where: { id }, data: { updatedAt: new Date(base + offset * 1000) } }));
      }
      const foreign = await create(intruderOf(owner), 'foreign');
      await db.prisma.conversation.update({ where: { id: foreign.id }, data: { updatedAt: new Date(base + 1500) } });
      const ordered = [...rows].sort((a, b) => b.updatedAt.getTime() - a.updatedAt.getTime() || (a.id < b.id ? 1 : -1));
      const t = ordered.map((c) => c.title);
      expect(t.slice(0, 2)).toEqual(['c5', 'c4']);
      expect(new Set(t.slice(2, 4))).toEqual(new Set(['c2', 'c3']));
      const key = (i: number): ConversationKey => ({ updatedAt: ordered[i]!.updatedAt, id: ordered[i]!.id });
      const list = async (window: PageWindow<ConversationKey>, archived: boolean | null = null, userId = owner) => (await store.listConversations(userId, archived, window)).map((c) => c.title);

      // Window order: list order, or from the other end (reversed) when fromEnd; limit + 1 rows.
      const cases: [PageWindow<ConversationKey>, (string | null)[]][] = [
        [{ limit: 2, fromEnd: false }, t.slice(0, 3)],
        [{ limit: 10, fromEnd: false }, t],
        [{ limit: 2, fromEnd: false, after: key(1) }, t.slice(2, 5)],
        [{ limit: 1, fromEnd: false, after: key(2) }, [t[3]!, t[4]!]],
        [{ limit: 2, fromEnd: true }, t.slice(3).reverse()],
        [{ limit: 1, fromEnd: true, before: key(3) }, [t[2]!, t[1]!]],
        [{ limit: 9, fromEnd: true, before: key(2) }, [t[1]!, t[0]!]],
        [{ limit: 5, fromEnd: false, after: key(0), before: key(4) }, t.slice(1, 4)],
        [{ limit: 1, fromEnd: true, after: key(0), before: key(5) }, [t[4]!, t[3]!]],
      ];
      for (const [window, expected] of cases) expect(await list(window), JSON.stringify(window)).toEqual(expected);

      const all = { limit: 10, fromEnd: false };
      expect(await store.listConversations(owner, null, all)).toEqual(ordered);
      await update(owner, ordered[1]!.id, { archived: true });
      const rest = t.filter((_, i) => i !== 1);
      expect(await list(all, true)).toEqual([t[1]]);
      expect(await list(all, false)).toEqual(rest);
      expect(await list(all, null)).toEqual([t[1], ...rest]);
      expect(await list(all, null, intruderOf(owner))).toEqual(['foreign']);
    });
  });

  describe('messages', () => {
    it('appends with seq 1, 2, 3, starting a conversation when given none', async () => {
      const owner = newUser();
      const metadata = { nested: { list: [1, 'two', null], quote: '"\\' } };
      const first = await append(owner, null, { role: 'SYSTEM', content: 'one', tokenCount: null, metadata });
      const second = await append(owner, first.conversationId, { role: 'USER', content: 'two', tokenCount: 3 });
      const third = await append(owner, first.conversationId, { role: 'ASSISTANT', content: 'three', tokenCount: 4 });
      expect([first, second, third].map(plain)).toEqual([
        message({ seq: 1, role: 'SYSTEM', content: 'one', metadata }),
        message({ seq: 2, role: 'USER', content: 'two', tokenCount: 3 }),
        message({ seq: 3, role: 'ASSISTANT', content: 'three', tokenCount: 4 }),
      ]);
      expect([first, second, third].map((m) => [m.userId, m.conversationId])).toEqual(Array(3).fill([owner, first.conversationId]));
      expect(await store.findConversation(owner, first.conversationId)).toMatchObject({ userId: owner, title: null, lastSeq: 3 });
      expect(await store.recentMessages(owner, first.conversationId, 10)).toEqual([first, second, third]);
    });

    it('gives 10 concurrent appends distinct seqs', async () => {
      const owner = newUser();
      const { conversation } = await conversationWith(owner, ['a', 'b']);
      const appended = await Promise.all(range(1, 10).map((i) => append(owner, conversation.id, { role: 'USER', content: `m${i}`, tokenCount: 1 })));
      expect(appended.map((m) => m.seq).sort((a, b) => a - b)).toEqual(range(3, 12));
      expect((await store.findConversation(owner, conversation.id))?.lastSeq).toBe(12);
      expect((await store.recentMessages(owner, conversation.id, 20))!.map((m) => m.seq)).toEqual(range(1, 12));
    });

    it("appends nothing to another user's conversation or a missing one: NOT_FOUND", async () => {
      const owner = newUser();
      const { conversation, messages } = await conversationWith(owner, ['mine']);
      const before = await store.findConversation(owner, conversation.id);
      for (const [userId, id] of [[intruderOf(owner), conversation.id], [owner, uuid7()]] as const) {
        await expect(append(userId, id, { role: 'USER', content: 'sneaky', tokenCount: 1 })).rejects.toMatchObject({ code: 'NOT_FOUND' });
      }
      expect(await store.findConversation(owner, conversation.id)).toEqual(before);
      expect(await store.recentMessages(owner, conversation.id, 10)).toEqual(messages);
    });

    it("reads recent messages, history and counts of the owner's conversation only", async () => {
      const owner = newUser();
      const intruder = intruderOf(owner);
      const { conversation, messages: [m1, m2] } = await conversationWith(owner, ['one', 'two']);
      const { userMessage: m3, assistantMessage: m4 } = await send(exchange(owner, conversation.id, { content: 'three' }));
      const empty = await create(owner, null);
      const { conversation: foreign } = await conversationWith(intruder, ['theirs']);
      const id = conversation.id;

      expect(await store.recentMessages(owner, id, 2)).toEqual([m3, m4]);
      expect(await store.recentMessages(owner, id, 10)).toEqual([m1, m2, m3, m4]);
      expect(await store.recentMessages(owner, empty.id, 10)).toEqual([]);
      for (const [userId, other] of [[intruder, id], [owner, foreign.id], [owner, uuid7()]] as const) expect(await store.recentMessages(userId, other, 10)).toBeNull();

      expect(await store.messagesBefore(owner, id, 4, 10)).toEqual([m3!, m2!, m1!].map(history));
      expect((await store.messagesBefore(owner, id, 5, 2)).map(({ id: _, ...row }) => row)).toEqual([
        { seq: 4, role: 'ASSISTANT', content: '', tokenCount: null, completionTokens: null, status: 'STREAMING' },
        { seq: 3, role: 'USER', content: 'three', tokenCount: 2, completionTokens: null, status: 'COMPLETE' },
      ]);
      expect(await store.messagesBefore(owner, id, 1, 10)).toEqual([]);
      expect(await store.messagesBefore(intruder, id, 5, 10)).toEqual([]);

      expect(await store.countMessagesBefore(owner, id, 5, ['COMPLETE'])).toBe(3);
      expect(await store.countMessagesBefore(owner, id, 5, ['STREAMING', 'FAILED'])).toBe(1);
      expect(await store.countMessagesBefore(owner, id, 3, ['COMPLETE', 'STREAMING'])).toBe(2);
      expect(await store.countMessagesBefore(intruder, id, 5, ['COMPLETE', 'STREAMING'])).toBe(0);

      const counted = (counts: Map<string, number>, ids: string[]) => ids.map((c) => counts.get(c) ?? 0);
      expect(counted(await store.countMessages(owner, [id, empty.id, foreign.id]), [id, empty.id, foreign.id])).toEqual([4, 0, 0]);
      expect(counted(await store.countMessages(intruder, [id, foreign.id]), [id, foreign.id])).toEqual([0, 1]);

      expect(await store.findMessage(owner, m1!.id)).toEqual(m1);
      expect(await store.findMessage(owner, m4!.id, { select: { id: true, status: true } })).toEqual({ id: m4!.id, status: 'STREAMING' });
      expect(await store.findMessage(intruder, m1!.id)).toBeNull();
      expect(await store.findMessage(owner, uuid7())).toBeNull();
    });

    it('clears the messages of the owner only', async () => {
      const owner = newUser();
      const { conversation, messages } = await conversationWith(owner, ['one', 'two', 'three']);
      expect(await clear(intruderOf(owner), conversation.id)).toBeNull();
      expect(await clear(owner, uuid7())).toBeNull();
      expect(await store.recentMessages(owner, conversation.id, 10)).toEqual(messages);
      expect(await clear(owner, conversation.id)).toBe(3);
      expect(await store.recentMessages(owner, conversation.id, 10)).toEqual([]);
      expect(await clear(owner, conversation.id)).toBe(0);
    });
  });

  describe('message pages', () => {
    const owner = newUser();
    const intruder = intruderOf(owner);
    // a: five messages of every kind; b: three; c: none; f: another user's two.
    const ids = { a: '', b: '', c: '', f: '' };
    let full: Map<string, Message>;
    beforeAll(async () => {
      ids.a = (await conversationWith(owner, ['a1', 'a2', 'a3'])).conversation.id;
      const saved = await send(exchange(owner, ids.a, { content: 'a4', clientMessageId: newKey() }));
      await endReply(saved.assistantMessage.id, { ...ENDED, content: 'a5' });
      ids.b = (await conversationWith(owner, ['b1', 'b2', 'b3'])).conversation.id;
      ids.c = (await create(owner, null)).id;
      ids.f = (await conversationWith(intruder, ['f1', 'f2'])).conversation.id;
      full = new Map((await db.prisma.message.findMany({ where: { conversationId: { in: Object.values(ids) } } })).map((m) => [m.id, m]));
    });
    const label = (id: string) => Object.entries(ids).find(([, value]) => value === id)![0];
    const pages = async (names: (keyof typeof ids)[], window: PageWindow<number>, extra: Partial<MessagePagesRequest> = {}) => {
      const { rows } = await store.messagePages({ userId: owner, conversationIds: names.map((n) => ids[n]), window, ...extra });
      const contents: Record<string, string[]> = {};
      for (const row of rows) (contents[label(row.conversationId)] ??= []).push(row.content);
      return { rows, contents };
    };
    const WINDOWS: [PageWindow<number>, Record<string, string[]>][] = [
      [{ limit: 2, fromEnd: false }, { a: ['a1', 'a2', 'a3'], b: ['b1', 'b2', 'b3'] }],
      [{ limit: 2, fromEnd: true }, { a: ['a5', 'a4', 'a3'], b: ['b3', 'b2', 'b1'] }],
      [{ limit: 1, fromEnd: false, after: 2 }, { a: ['a3', 'a4'], b: ['b3'] }],
      [{ limit: 5, fromEnd: true, before: 4 }, { a: ['a3', 'a2', 'a1'], b: ['b3', 'b2', 'b1'] }],
      [{ limit: 1, fromEnd: true, after: 1, before: 5 }, { a: ['a4', 'a3'], b: ['b3', 'b2'] }],
      [{ limit: 9, fromEnd: false, after: 3 }, { a: ['a4', 'a5'] }],
    ];
    const only = (expected: Record<string, string[]>, name: string) => (expected[name] ? { [name]: expected[name] } : {});

    it('reads at most limit + 1 rows per conversation in window order, several conversations at once, as full rows', async () => {
      for (const [window, expected] of WINDOWS) {
        const { rows, contents } = await pages(['a', 'b', 'c', 'f'], window);
        expect(contents, JSON.stringify(window)).toEqual(expected);
        expect(rows).toEqual(rows.map((row) => full.get(row.id)));
      }
    });

    it('reads the same rows for one conversation', async () => {
      for (const [window, expected] of WINDOWS) {
        for (const name of ['a', 'b', 'c'] as const) {
          const { rows, contents } = await pages([name], window);
          expect(contents, `${name} ${JSON.stringify(window)}`).toEqual(only(expected, name));
          expect(rows).toEqual(rows.map((row) => full.get(row.id)));
        }
      }
    });

    it("reads no rows of another user's conversations, alone or with others", async () => {
      for (const [window, expected] of WINDOWS) {
        expect((await pages(['f'], window)).rows, JSON.stringify(window)).toEqual([]);
        expect((await pages(['a', 'f'], window)).contents).toEqual(only(expected, 'a'));
        for (const names of [['a'], ['a', 'b']] as const) {
          expect((await store.messagePages({ userId: intruder, conversationIds: names.map((n) => ids[n]), window })).rows).toEqual([]);
        }
      }
    });

    it("counts each conversation's active path, and nothing of another user", async () => {
      expect(Object.fromEntries([...(await store.countMessages(owner, [ids.a, ids.b, ids.c, ids.f]))].map(([id, n]) => [label(id), n]))).toEqual({ a: 5, b: 3, c: 0 });
      expect(await store.countMessages(intruder, [ids.a, ids.b])).toEqual(new Map());
    });

    // The loader lists the keys itself; the port says they come whether listed or not.
    const SELECTED = ['content', 'status', 'metadata'];
    it.each([
      ['with the keys listed', [...KEYS, ...SELECTED]],
      ['with the keys left out', SELECTED],
    ])("reads the selected columns (%s), and the keys, with the full rows' values", async (_, listed) => {
      for (const names of [['a', 'b', 'c'], ['a']] as const) {
        const window = { limit: 9, fromEnd: true };
        const { rows } = await pages([...names], window, { columns: new Set(listed) });
        expect(rows.map((r) => r.id)).toEqual((await pages([...names], window)).rows.map((r) => r.id));
        expect(rows).toHaveLength(names.length === 1 ? 5 : 8);
        for (const row of rows) for (const column of [...KEYS, ...SELECTED]) expect(row).toHaveProperty(column, full.get(row.id)![column as keyof Message]);
      }
    });
  });

  describe('exchanges', () => {
    it('saves the user message at n + 1 and a STREAMING reply at n + 2, returning exactly what findExchange reads', async () => {
      const [owner, key] = [newUser(), newKey()];
      const { conversation } = await conversationWith(owner, ['one', 'two', 'three']);
      const before = Date.now();
      const saved = await send(exchange(owner, conversation.id, { content: 'four', tokenCount: 5, clientMessageId: key, settings: Promise.resolve({ model: 'model-b', presetId: null }), leaseMs: 30_000 }));
      const after = Date.now();
      expect(plain(saved.userMessage)).toEqual(message({ seq: 4, role: 'USER', content: 'four', tokenCount: 5, clientMessageId: key }));
      expect(plain(saved.assistantMessage)).toEqual(message({ seq: 5, role: 'ASSISTANT', content: '', status: 'STREAMING', model: 'model-b', metadata: { presetId: null }, leased: true }));
      expect(saved.conversation).toMatchObject({ id: conversation.id, userId: owner, title: null, archived: false, lastSeq: 5 });
      for (const m of [saved.userMessage, saved.assistantMessage]) expect([m.userId, m.conversationId]).toEqual([owner, conversation.id]);
      expect(saved.assistantMessage.leaseExpiresAt!.getTime()).toBeGreaterThanOrEqual(before + 30_000);
      expect(saved.assistantMessage.leaseExpiresAt!.getTime()).toBeLessThanOrEqual(after + 30_000);

      const written = { conversation: await store.findConversation(owner, conversation.id), userMessage: await store.findMessage(owner, saved.userMessage.id), assistantMessage: await store.findMessage(owner, saved.assistantMessage.id) };
      expect(saved).toEqual(written);
      expect(await store.findExchange(owner, key)).toEqual(saved);
      expect(await store.findExchange(intruderOf(owner), key)).toBeNull();
      expect(await store.findExchange(owner, newKey())).toBeNull();
    });

    it('starts a new conversation at seq 1, 2', async () => {
      const owner = newUser();
      const saved = await send(exchange(owner, null));
      expect([saved.userMessage.seq, saved.assistantMessage.seq]).toEqual([1, 2]);
      expect(saved.conversation).toMatchObject({ userId: owner, title: null, archived: false, lastSeq: 2 });
      expect(saved.conversation).toEqual(await store.findConversation(owner, saved.conversation.id));
      expect(await store.recentMessages(owner, saved.conversation.id, 10)).toEqual([saved.userMessage, saved.assistantMessage]);
    });

    it('never gives 10 concurrent exchanges to one conversation a shared seq', async () => {
      const owner = newUser();
      const { conversation } = await conversationWith(owner, []);
      const saved = await Promise.all(range(1, 10).map((i) => send(exchange(owner, conversation.id, { content: `q${i}` }))));
      expect(saved.flatMap((s) => [s.userMessage.seq, s.assistantMessage.seq]).sort((a, b) => a - b)).toEqual(range(1, 20));
      expect(saved.map((s) => [s.assistantMessage.seq - s.userMessage.seq, s.conversation.lastSeq - s.assistantMessage.seq])).toEqual(Array(10).fill([1, 0]));
      expect((await store.findConversation(owner, conversation.id))?.lastSeq).toBe(20);
    });

    it('rejects a clientMessageId the user already used and writes nothing; other users and other keys may use it', async () => {
      const [owner, key] = [newUser(), newKey()];
      const first = await send(exchange(owner, null, { clientMessageId: key }));
      const id = first.conversation.id;
      for (const conversationId of [id, null]) {
        await expect(send(exchange(owner, conversationId, { clientMessageId: key, content: 'again' }))).rejects.toMatchObject({ name: 'DuplicateKeyError', key: 'clientMessageId' });
      }
      expect(await store.findConversation(owner, id)).toEqual(first.conversation);
      expect(await store.recentMessages(owner, id, 10)).toEqual([first.userMessage, first.assistantMessage]);
      expect(await store.listConversations(owner, null, { limit: 10, fromEnd: false })).toEqual([first.conversation]);
      expect(await store.findExchange(owner, key)).toEqual(first);

      const theirs = await send(exchange(intruderOf(owner), null, { clientMessageId: key }));
      expect(await store.findExchange(intruderOf(owner), key)).toEqual(theirs);
      const otherCase = await send(exchange(owner, id, { clientMessageId: key.toUpperCase() }));
      expect([otherCase.userMessage.seq, otherCase.userMessage.clientMessageId]).toEqual([3, key.toUpperCase()]);
      expect(await store.findExchange(owner, key)).toMatchObject({ userMessage: first.userMessage, assistantMessage: first.assistantMessage });
    });

    it("writes nothing to another user's conversation or a missing one: NOT_FOUND", async () => {
      const [owner, key] = [newUser(), newKey()];
      const { conversation, messages } = await conversationWith(owner, ['mine']);
      const before = await store.findConversation(owner, conversation.id);
      for (const [userId, id] of [[intruderOf(owner), conversation.id], [owner, uuid7()]] as const) {
        await expect(send(exchange(userId, id, { clientMessageId: key }))).rejects.toMatchObject({ code: 'NOT_FOUND' });
      }
      expect(await store.findConversation(owner, conversation.id)).toEqual(before);
      expect(await store.recentMessages(owner, conversation.id, 10)).toEqual(messages);
      for (const userId of [owner, intruderOf(owner)]) expect(await store.findExchange(userId, key)).toBeNull();
    });
  });

  describe('replies', () => {
    it('checkpoints and ends a STREAMING reply once; an end without model, metadata or prompt tokens keeps the saved ones', async () => {
      const owner = newUser();
      const { assistantMessage: reply } = await send(exchange(owner, null));
      const { assistantMessage: bare } = await send(exchange(owner, reply.conversationId));
      await store.checkpointReply(reply.id, 'partial');
      const streaming = { status: 'STREAMING', error: null, content: 'partial' };
      expect([await store.replyState(owner, reply.id), await store.replyStateById(reply.id)]).toEqual([streaming, streaming]);
      expect(await store.replyOwner(reply.id)).toEqual({ userId: owner, conversationId: reply.conversationId, content: 'partial' });
      expect(await store.replyState(intruderOf(owner), reply.id)).toBeNull();
      for (const missing of [store.replyState(owner, uuid7()), store.replyStateById(uuid7()), store.replyOwner(uuid7())]) expect(await missing).toBeNull();

      expect(await endReply(reply.id, ENDED)).toBe(1);
      const ended = (await store.findMessage(owner, reply.id))!;
      expect(plain(ended)).toEqual(message({ seq: 2, role: 'ASSISTANT', content: 'All done', status: 'COMPLETE', finishReason: 'stop', model: 'model-z', metadata: ENDED.metadata, promptTokens: 42, completionTokens: 7 }));
      // Once ended, neither another end nor a checkpoint changes anything.
      expect(await endReply(reply.id, { ...NULL_END, content: 'late' })).toBe(0);
      await store.checkpointReply(reply.id, 'late checkpoint');
      expect(await store.findMessage(owner, reply.id)).toEqual(ended);
      expect(await store.replyState(owner, reply.id)).toEqual({ status: 'COMPLETE', error: null, content: 'All done' });

      await store.saveReplyPrompt(bare.id, { presetId: 'preset-p', context: { includedMessages: 2 } }, 11);
      expect(await endReply(bare.id, NULL_END)).toBe(1);
      expect(plain((await store.findMessage(owner, bare.id))!)).toEqual(
        message({ seq: 4, role: 'ASSISTANT', content: 'half', status: 'FAILED', error: 'boom', model: 'model-a', metadata: { presetId: 'preset-p', context: { includedMessages: 2 } }, promptTokens: 11, completionTokens: 0 }),
      );
      expect(await store.replyStateById(bare.id)).toEqual({ status: 'FAILED', error: 'boom', content: 'half' });
      expect(await endReply(uuid7(), ENDED)).toBe(0);
    });

    it('reads the states of many replies at once, whoever owns them: streaming, ended with their text, gone', async () => {
      const [owner, other] = [newUser(), newUser()];
      const { assistantMessage: live } = await send(exchange(owner, null));
      await store.checkpointReply(live.id, 'partial');
      const { assistantMessage: done } = await send(exchange(owner, live.conversationId));
      const { assistantMessage: failed } = await send(exchange(other, null));
      const { assistantMessage: deleted } = await send(exchange(other, null));
      expect(await endReply(done.id, ENDED)).toBe(1);
      expect(await endReply(failed.id, NULL_END)).toBe(1);
      expect(await remove(other, deleted.conversationId)).toBe(true);
      const missing = uuid7();
      const states = await store.replyStatesById([live.id, done.id, failed.id, deleted.id, missing, live.id]);
      expect([...states.streaming]).toEqual([live.id]);
      expect(Object.fromEntries(states.ended)).toEqual({
        [done.id]: { status: 'COMPLETE', error: null, content: 'All done' },
        [failed.id]: { status: 'FAILED', error: 'boom', content: 'half' },
      });
      expect(await store.replyStatesById([])).toEqual({ streaming: new Set(), ended: new Map() });
    });

    it('saves the prompt of a reply someone else ended', async () => {
      const owner = newUser();
      const { assistantMessage: reply } = await send(exchange(owner, null));
      expect(await endReply(reply.id, { ...NULL_END, status: 'STOPPED', error: null })).toBe(1);
      await store.saveReplyPrompt(reply.id, { presetId: 'preset-a', context: { includedMessages: 1, omittedMessageIds: [] } }, 99);
      expect(plain((await store.findMessage(owner, reply.id))!)).toEqual(
        message({ seq: 2, role: 'ASSISTANT', content: 'half', status: 'STOPPED', model: 'model-a', metadata: { presetId: 'preset-a', context: { includedMessages: 1, omittedMessageIds: [] } }, promptTokens: 99, completionTokens: 0 }),
      );
    });

    it('renews the leases of STREAMING replies only, and finds the orphans among them', async () => {
      const owner = newUser();
      const live = (await send(exchange(owner, null))).assistantMessage;
      const stale = (await send(exchange(owner, live.conversationId))).assistantMessage;
      const ended = (await send(exchange(owner, live.conversationId))).assistantMessage;
      expect(await endReply(ended.id, ENDED)).toBe(1);
      const leaseOf = async (id: string) => (await store.findMessage(owner, id))?.leaseExpiresAt;
      const past = new Date(Date.now() - 60_000);
      await store.renewLeases([stale.id, ended.id], past);
      expect([await leaseOf(live.id), await leaseOf(stale.id), await leaseOf(ended.id)]).toEqual([live.leaseExpiresAt, past, null]);

      // The database is shared with other suites: look at ours, and check what the rest are.
      const mine = (found: string[]) => [live.id, stale.id, ended.id].filter((id) => found.includes(id));
      const [expired, streaming] = [await store.orphanedReplies(false, 10_000), await store.orphanedReplies(true, 10_000)];
      expect(mine(expired)).toEqual([stale.id]);
      expect(mine(streaming)).toEqual([live.id, stale.id]);
      const rowsOf = (found: string[]) => db.prisma.message.findMany({ where: { id: { in: found } } });
      const now = Date.now();
      expect((await rowsOf(expired)).filter((r) => r.status !== 'STREAMING' || !(r.leaseExpiresAt!.getTime() < now))).toEqual([]);
      expect((await rowsOf(streaming)).filter((r) => r.status !== 'STREAMING')).toEqual([]);
      expect(new Set(expired).size).toBe(expired.length);
      expect(await store.orphanedReplies(true, 1)).toHaveLength(1);

      const future = new Date(Date.now() + 120_000);
      await store.renewLeases([stale.id, ended.id], future);
      expect([await leaseOf(stale.id), await leaseOf(ended.id)]).toEqual([future, null]);
      expect(mine(await store.orphanedReplies(false, 10_000))).toEqual([]);
    });

    it('forgets a reply whose conversation was deleted', async () => {
      const owner = newUser();
      const { assistantMessage: reply } = await send(exchange(owner, null));
      expect(await remove(owner, reply.conversationId)).toBe(true);
      expect([await store.replyStateById(reply.id), await store.replyOwner(reply.id), await store.replyState(owner, reply.id)]).toEqual([null, null, null]);
      expect(await store.orphanedReplies(true, 10_000)).not.toContain(reply.id);
    });
  });

  describe('event seqs', () => {
    it('hands out each conversation and viewer seq once, gapless from 0, in the write that makes the change, for the owner only', async () => {
      const owner = newUser();
      const intruder = intruderOf(owner);
      expect(await store.viewerEventSeq(owner)).toBe(-1);
      const created = await store.createConversation(owner, null);
      expect(created.viewerSeq).toBe(0);
      expect(created.conversation.lastEventSeq).toBe(-1);
      expect(await store.conversationEventSeq(owner, created.conversation.id)).toBe(-1);
      expect(await store.conversationEventSeq(intruder, created.conversation.id)).toBeNull();
      const id = created.conversation.id;
      const appended = await store.appendMessage(owner, id, { role: 'USER', content: 'one', tokenCount: 1 });
      expect(appended).toMatchObject({ conversationSeq: 0, viewerSeq: null });
      const sent = await store.saveExchange(exchange(owner, id));
      // Two messages, two events: the user message's seq is one before the assistant's.
      expect(sent).toMatchObject({ conversationSeq: 2, viewerSeq: null });
      expect(await store.saveReplyEnd(sent.assistantMessage.id, id, ENDED)).toEqual({ count: 1, eventSeq: 3 });
      expect(await store.saveReplyEnd(sent.assistantMessage.id, id, ENDED)).toEqual({ count: 0, eventSeq: null });
      // A reply of another conversation named with this one saves nothing and takes no seq.
      const other = await store.saveExchange(exchange(owner, null));
      expect(other).toMatchObject({ conversationSeq: 1, viewerSeq: 1 });
      expect(await store.saveReplyEnd(other.assistantMessage.id, id, ENDED)).toEqual({ count: 0, eventSeq: null });
      expect(await store.conversationEventSeq(owner, id)).toBe(3);
      const updated = await store.updateConversation(owner, id, { title: 'Renamed' }, { select: { title: true } });
      expect(updated).toEqual({ conversation: { title: 'Renamed' }, conversationSeq: 4, viewerSeq: 2 });
      expect(await store.updateConversation(intruder, id, { title: 'Mine' })).toBeNull();
      expect(await store.setTitleIfUntitled(id, 'Ignored')).toBeNull();
      expect(await store.setTitleIfUntitled(other.conversation.id, 'Titled')).toEqual({ userId: owner, conversationSeq: 2, viewerSeq: 3 });
      expect(await store.clearMessages(intruder, id)).toBeNull();
      expect(await store.clearMessages(owner, id)).toEqual({ count: 3, conversationSeq: 5 });
      const added = await store.appendMessage(owner, null, { role: 'SYSTEM', content: 'new', tokenCount: null }, { select: { role: true } });
      // The id comes along whatever the selection, for the event to name it.
      expect(added).toEqual({ message: { role: 'SYSTEM', id: expect.any(String), conversationId: expect.any(String) }, conversationSeq: 0, viewerSeq: 4 });
      expect(await store.deleteConversation(intruder, id)).toBeNull();
      expect(await store.deleteConversation(owner, id)).toEqual({ conversationSeq: 6, viewerSeq: 5 });
      expect(await store.conversationEventSeq(owner, id)).toBeNull();
      expect(await store.viewerEventSeq(owner)).toBe(5);
      expect(await store.viewerEventSeq(intruder)).toBe(-1);
    });

    it('gives concurrent writers of one conversation and one user distinct, gapless seqs', async () => {
      const owner = newUser();
      const { conversation } = await store.createConversation(owner, null);
      const results = await Promise.all([
        ...range(1, 6).map((i) => store.appendMessage(owner, conversation.id, { role: 'USER', content: `m${i}`, tokenCount: 1 }).then((r) => [r.conversationSeq!])),
        ...range(1, 4).map(() => store.saveExchange(exchange(owner, conversation.id)).then((r) => [r.conversationSeq! - 1, r.conversationSeq!])),
        ...range(1, 3).map((i) => store.updateConversation(owner, conversation.id, { title: `t${i}` }).then((r) => [r!.conversationSeq!])),
      ]);
      expect(results.flat().sort((a, b) => a - b)).toEqual(range(0, 16));
      const viewerSeqs = await Promise.all(range(1, 6).map(() => store.createConversation(owner, null).then((r) => r.viewerSeq)));
      // 0 was the first conversation, 1-3 the title updates.
      expect(viewerSeqs.sort((a, b) => a - b)).toEqual(range(4, 9));
      expect(await store.viewerEventSeq(owner)).toBe(9);
    });

    it("lists a conversation's STREAMING messages, its owner's only", async () => {
      const owner = newUser();
      const first = await store.saveExchange(exchange(owner, null));
      const second = await store.saveExchange(exchange(owner, first.conversation.id));
      await store.saveReplyEnd(first.assistantMessage.id, first.conversation.id, ENDED);
      expect((await store.generatingMessages(owner, first.conversation.id)).map((m) => m.id)).toEqual([second.assistantMessage.id]);
      expect(await store.generatingMessages(intruderOf(owner), first.conversation.id)).toEqual([]);
    });
  });

  describe('user config', () => {
    it('is null until saved; saving upserts the given fields only, and returns the row', async () => {
      const owner = newUser();
      expect(await store.userConfig(owner)).toBeNull();
      const first = await store.saveUserConfig(owner, { model: 'gpt-mine', temperature: 0.35, systemPrompt: 'Be brief.', contextTokens: 4096 });
      const { createdAt: _c, updatedAt: _u, ...fields } = first;
      expect(fields).toEqual({ userId: owner, presetId: null, model: 'gpt-mine', baseUrl: null, apiKeyEncrypted: null, maxTokens: null, temperature: 0.35, systemPrompt: 'Be brief.', contextTokens: 4096 });
      expect(await store.userConfig(owner)).toEqual(first);
      expect(await store.userConfig(intruderOf(owner))).toBeNull();

      const second = await store.saveUserConfig(owner, { maxTokens: 321, presetId: 'preset-b', systemPrompt: null });
      expect(second).toEqual({ ...first, maxTokens: 321, presetId: 'preset-b', systemPrompt: null, updatedAt: expect.any(Date) });
      expect(second.updatedAt.getTime()).toBeGreaterThanOrEqual(first.updatedAt.getTime());
      expect(await store.userConfig(owner)).toEqual(second);
      expect(await store.saveUserConfig(intruderOf(owner), { model: 'theirs' })).toMatchObject({ userId: intruderOf(owner), model: 'theirs', maxTokens: null });
      expect(await store.userConfig(owner)).toEqual(second);
    });
  });

  describe('text', () => {
    it('round-trips emoji, RTL, combining characters, quotes, $1 and backslashes exactly', async () => {
      const owner = newUser();
      const key = `${newKey()}-😀'"$1\\`;
      const conversation = await create(owner, TITLE);
      const appended = await append(owner, conversation.id, { role: 'USER', content: TEXT, tokenCount: 1, metadata: { text: TEXT } });
      const saved = await send(exchange(owner, conversation.id, { content: TEXT, clientMessageId: key }));
      await store.checkpointReply(saved.assistantMessage.id, TEXT);
      expect(await store.replyState(owner, saved.assistantMessage.id)).toEqual({ status: 'STREAMING', error: null, content: TEXT });
      expect(await endReply(saved.assistantMessage.id, { ...NULL_END, content: TEXT, error: TEXT, metadata: { text: TEXT } })).toBe(1);

      expect([appended.content, saved.userMessage.content, appended.metadata]).toEqual([TEXT, TEXT, { text: TEXT }]);
      const recent = (await store.recentMessages(owner, conversation.id, 10))!;
      expect(recent.map((m) => m.content)).toEqual([TEXT, TEXT, TEXT]);
      expect(recent.map((m) => [m.metadata, m.error])).toEqual([[{ text: TEXT }, null], [null, null], [{ text: TEXT }, TEXT]]);
      expect(recent[0]!.content.length).toBe(TEXT.length);
      const { rows } = await store.messagePages({ userId: owner, conversationIds: [conversation.id, uuid7()], window: { limit: 9, fromEnd: false } });
      expect(rows.map((m) => m.content)).toEqual([TEXT, TEXT, TEXT]);
      expect((await store.findConversation(owner, conversation.id))?.title).toBe(TITLE);
      expect(await store.findExchange(owner, key)).toMatchObject({ userMessage: { content: TEXT, clientMessageId: key } });
      await store.saveUserConfig(owner, { systemPrompt: TEXT });
      expect((await store.userConfig(owner))?.systemPrompt).toBe(TEXT);
    });
  });
});
