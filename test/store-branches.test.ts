// The tree part of the storage port (src/store/store.ts, BranchStore and the parentId of new
// messages), held against every adapter on every provider: where new messages go, which path is
// active, what every path read returns, and that no edge ever crosses conversations or users.
// Each tree is built from a literal shape, and each check compares the whole active path.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../src/store/database.ts';
import { uuid7 } from '../src/store/ids.ts';
import type { Message } from '../src/store/rows.ts';
import { siblingKey } from '../src/store/store.ts';
import { ADAPTERS, closeDatabases, databaseFor, exchange, intruderOf, newKey, newUser, type ContractStore } from './support/store-contract.ts';

afterAll(closeDatabases);

describe.each(ADAPTERS)('the message tree, $name', ({ provider, make }) => {
  let db: Database;
  let store: ContractStore;
  beforeAll(async () => {
    db = (await databaseFor(provider)).db;
    store = make(db);
  });

  /** Appends `content` as a USER message under `parentId` (undefined: the tip), returns its id. */
  const add = async (userId: string, conversationId: string | null, content: string, parentId?: string | null) =>
    (await store.appendMessage(userId, conversationId, { role: 'USER', content, tokenCount: 1, parentId })).message;

  /** What every path read says the active path is, as contents root → tip, after checking they agree. */
  const activePath = async (userId: string, conversationId: string): Promise<string[]> => {
    const rows = await db.prisma.message.findMany({ where: { conversationId } });
    const byId = new Map(rows.map((m) => [m.id, m]));
    const conversation = await db.prisma.conversation.findUniqueOrThrow({ where: { id: conversationId } });
    // Walk from the tip by parent: the truth the flags and counters must match.
    const walked: Message[] = [];
    for (let id = conversation.currentMessageId; id !== null; id = byId.get(id)!.parentId) walked.unshift(byId.get(id)!);
    const contents = walked.map((m) => m.content);
    expect(rows.filter((m) => m.onPath).map((m) => m.id).sort()).toEqual(walked.map((m) => m.id).sort());
    expect(walked.map((m) => m.depth)).toEqual(walked.map((_, i) => i));
    expect(conversation.pathLength).toBe(walked.length);
    expect((await store.countMessages(userId, [conversationId])).get(conversationId)).toBe(walked.length);
    expect((await store.recentMessages(userId, conversationId, 1000))!.map((m) => m.content)).toEqual(contents);
    const pages = await store.messagePages({ userId, conversationIds: [conversationId, uuid7()], window: { limit: 999, fromEnd: false } });
    expect(pages.rows.map((m) => m.content)).toEqual(contents);
    const single = await store.messagePages({ userId, conversationIds: [conversationId], window: { limit: 1, fromEnd: true } });
    expect(single.rows.map((m) => m.content)).toEqual(contents.slice(-2).reverse());
    const tip = walked.at(-1);
    if (tip) expect((await store.messagesBefore(userId, conversationId, tip.seq, 1000)).map((m) => m.content)).toEqual(contents.slice(0, -1).reverse());
    return contents;
  };

  /** a → b → c, then b2 under a (so the path is a → b2), then c2 under b2: returns the ids by content. */
  const branched = async (userId: string) => {
    const a = await add(userId, null, 'a');
    const conversationId = a.conversationId;
    const b = await add(userId, conversationId, 'b');
    const c = await add(userId, conversationId, 'c');
    const b2 = await add(userId, conversationId, 'b2', a.id);
    const c2 = await add(userId, conversationId, 'c2');
    return { conversationId, ids: { a: a.id, b: b.id, c: c.id, b2: b2.id, c2: c2.id } };
  };

  it('appends to the tip, or under a named message, whose branch becomes the active path', async () => {
    const owner = newUser();
    const { conversationId, ids } = await branched(owner);
    expect(await activePath(owner, conversationId)).toEqual(['a', 'b2', 'c2']);
    // Under c (an old branch): a → b → c → d is active again.
    await add(owner, conversationId, 'd', ids.c);
    expect(await activePath(owner, conversationId)).toEqual(['a', 'b', 'c', 'd']);
    // A new root: a path of one.
    await add(owner, conversationId, 'root2', null);
    expect(await activePath(owner, conversationId)).toEqual(['root2']);
    const siblings = await store.siblings(owner, [
      { conversationId, parentId: ids.a },
      { conversationId, parentId: null },
    ]);
    expect(siblings.get(siblingKey(conversationId, ids.a))).toEqual([ids.b, ids.b2]);
    expect(siblings.get(siblingKey(conversationId, null))).toHaveLength(2);
    expect(await store.siblings(intruderOf(owner), [{ conversationId, parentId: ids.a }])).toEqual(new Map());
  });

  it('refuses a parent of another conversation, of another user, or none at all, and writes nothing', async () => {
    const owner = newUser();
    const { conversationId, ids } = await branched(owner);
    const other = await add(owner, null, 'elsewhere');
    const foreign = await add(intruderOf(owner), null, 'foreign');
    const before = await db.prisma.message.count({ where: { conversationId } });
    for (const parentId of [other.id, foreign.id, uuid7(), `${ids.a} `]) {
      await expect(add(owner, conversationId, 'x', parentId)).rejects.toMatchObject({ code: 'BAD_USER_INPUT', message: expect.stringContaining('parentId') });
      await expect(store.saveExchange(exchange(owner, conversationId, { parentId }))).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    }
    // Nor through another user's conversation with the owner's own parent.
    await expect(add(intruderOf(owner), conversationId, 'x', ids.a)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await db.prisma.message.count({ where: { conversationId } })).toBe(before);
    expect(await activePath(owner, conversationId)).toEqual(['a', 'b2', 'c2']);
  });

  it('saves an exchange under a named message, and a regenerated reply beside the old one', async () => {
    const owner = newUser();
    const { conversationId, ids } = await branched(owner);
    const sent = await store.saveExchange(exchange(owner, conversationId, { content: 'q', parentId: ids.b }));
    expect(sent.userMessage.parentId).toBe(ids.b);
    expect(sent.assistantMessage.parentId).toBe(sent.userMessage.id);
    expect(sent.conversation.currentMessageId).toBe(sent.assistantMessage.id);
    expect(await activePath(owner, conversationId)).toEqual(['a', 'b', 'q', '']);
    const key = newKey();
    const again = await store.saveReply({ userId: owner, conversationId, parentId: sent.userMessage.id, clientMessageId: key, settings: Promise.resolve({ model: 'm', presetId: null }), leaseMs: 60_000 });
    expect(again).toMatchObject({ userMessage: { id: sent.userMessage.id }, assistantMessage: { parentId: sent.userMessage.id, status: 'STREAMING', clientMessageId: key }, viewerSeq: null });
    expect(again.conversation.currentMessageId).toBe(again.assistantMessage.id);
    const found = await store.findExchange(owner, key);
    expect([found?.userMessage.id, found?.assistantMessage?.id]).toEqual([sent.userMessage.id, again.assistantMessage.id]);
    await expect(store.saveReply({ userId: owner, conversationId, parentId: sent.userMessage.id, clientMessageId: key, settings: Promise.resolve({ model: 'm', presetId: null }), leaseMs: 1 })).rejects.toMatchObject({
      key: 'clientMessageId',
    });
    // The path has the new reply, not its sibling.
    const path = await db.prisma.message.findMany({ where: { conversationId, onPath: true }, orderBy: { seq: 'asc' } });
    expect(path.map((m) => m.id)).toEqual([ids.a, ids.b, sent.userMessage.id, again.assistantMessage.id]);
  });

  it('switches to the newest message below the one named, and not for another user', async () => {
    const owner = newUser();
    const { conversationId, ids } = await branched(owner);
    expect(await store.switchBranch(intruderOf(owner), ids.b)).toBeNull();
    expect(await store.switchBranch(owner, uuid7())).toBeNull();
    expect(await activePath(owner, conversationId)).toEqual(['a', 'b2', 'c2']);
    const switched = await store.switchBranch(owner, ids.b);
    expect(switched?.conversation).toMatchObject({ id: conversationId, currentMessageId: ids.c, pathLength: 3 });
    expect(await activePath(owner, conversationId)).toEqual(['a', 'b', 'c']);
    // From the root: the newest leaf anywhere below it (c2).
    await store.switchBranch(owner, ids.a);
    expect(await activePath(owner, conversationId)).toEqual(['a', 'b2', 'c2']);
    const seqs = [switched!.conversationSeq, (await store.switchBranch(owner, ids.c))!.conversationSeq];
    expect(seqs[1]).toBe(seqs[0]! + 2);
  });

  it('deletes a subtree and moves the tip to the parent, or its newest other branch', async () => {
    const owner = newUser();
    const { conversationId, ids } = await branched(owner);
    expect(await store.deleteSubtree(intruderOf(owner), ids.b2)).toBeNull();
    expect(await store.subtreeIds(intruderOf(owner), ids.b2)).toEqual([]);
    expect(await store.subtreeIds(owner, ids.a)).toEqual([ids.a, ids.b, ids.c, ids.b2, ids.c2]);
    // The active branch goes: b's branch takes over, to its newest leaf.
    const deleted = await store.deleteSubtree(owner, ids.b2);
    expect(deleted?.deletedIds).toEqual([ids.b2, ids.c2]);
    expect(deleted?.conversation).toMatchObject({ currentMessageId: ids.c, pathLength: 3 });
    expect(await activePath(owner, conversationId)).toEqual(['a', 'b', 'c']);
    // An inactive branch goes: the tip stays.
    await add(owner, conversationId, 'b3', ids.a);
    expect((await store.deleteSubtree(owner, ids.b))?.deletedIds).toEqual([ids.b, ids.c]);
    expect(await activePath(owner, conversationId)).toEqual(['a', 'b3']);
    // The only child: the parent is the tip. Then the root: empty.
    await store.deleteSubtree(owner, (await db.prisma.message.findFirstOrThrow({ where: { conversationId, content: 'b3' } })).id);
    expect(await activePath(owner, conversationId)).toEqual(['a']);
    expect((await store.deleteSubtree(owner, ids.a))?.conversation).toMatchObject({ currentMessageId: null, pathLength: 0 });
    expect(await activePath(owner, conversationId)).toEqual([]);
    expect(await db.prisma.message.count({ where: { conversationId } })).toBe(0);
    expect(await store.deleteSubtree(owner, ids.a)).toBeNull();
    // And the conversation goes on from empty.
    await add(owner, conversationId, 'again');
    expect(await activePath(owner, conversationId)).toEqual(['again']);
  });

  it('forks the path to a message into a new conversation with new ids, leaving the original as it was', async () => {
    const owner = newUser();
    const { conversationId, ids } = await branched(owner);
    await store.switchBranch(owner, ids.c);
    const originalRows = await db.prisma.message.findMany({ where: { conversationId }, orderBy: { seq: 'asc' } });
    const original = await db.prisma.conversation.findUniqueOrThrow({ where: { id: conversationId } });
    expect(await store.forkPath(intruderOf(owner), ids.b, null)).toBeNull();
    expect(await store.forkPath(owner, uuid7(), null)).toBeNull();
    const forked = await store.forkPath(owner, ids.b, undefined);
    expect(forked?.conversation).toMatchObject({ userId: owner, title: original.title, pathLength: 2, lastSeq: 2 });
    const copy = await db.prisma.message.findMany({ where: { conversationId: forked!.conversation.id }, orderBy: { seq: 'asc' } });
    expect(copy.map((m) => [m.content, m.seq, m.depth, m.onPath, m.userId])).toEqual([
      ['a', 1, 0, true, owner],
      ['b', 2, 1, true, owner],
    ]);
    expect(copy.map((m) => m.parentId)).toEqual([null, copy[0]!.id]);
    expect(copy.some((m) => Object.values(ids).includes(m.id))).toBe(false);
    expect(forked!.conversation.currentMessageId).toBe(copy[1]!.id);
    expect(await activePath(owner, forked!.conversation.id)).toEqual(['a', 'b']);
    expect(await db.prisma.message.findMany({ where: { conversationId }, orderBy: { seq: 'asc' } })).toEqual(originalRows);
    expect(await db.prisma.conversation.findUniqueOrThrow({ where: { id: conversationId } })).toEqual(original);
    expect((await store.forkPath(owner, ids.c2, 'Named'))?.conversation.title).toBe('Named');
  });
});
