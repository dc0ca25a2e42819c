// The store on Prisma's model queries, for every provider. Raw SQL appears only where Prisma has
// no query for it (per-conversation windows of messages).
import { notFound, DuplicateKeyError } from '../errors.ts';
import { Prisma } from '../generated/prisma/sqlite/client.ts';
import { uuid7 } from './ids.ts';
import type { MessageStatus } from '../model.ts';
import type { DatabaseProvider, Db } from './dialect.ts';
import { MessageTree } from './message-tree.ts';
import type { Conversation, ConversationQuery, JsonObject, JsonValue, Message, MessageQuery, UserConfigRow } from './rows.ts';
import type {
  ConversationChanges,
  ConversationKey,
  HistoryRow,
  MessagePages,
  MessagePagesRequest,
  EventSeqs,
  NewExchange,
  NewSavedExchange,
  NewMessage,
  NewReply,
  PageWindow,
  ReplyEnd,
  ReplyState,
  ReplyStates,
  FoundExchange,
  SavedReplyEnd,
  DeletedSubtree,
  Store,
  UserConfigChanges,
} from './store.ts';
import { siblingKey } from './store.ts';

const { join, raw, sql } = Prisma;

export class PrismaStore implements Store {
  protected readonly tree: MessageTree;

  constructor(
    protected readonly db: Db,
    protected readonly provider: DatabaseProvider,
  ) {
    this.tree = new MessageTree((identifier) => this.name(identifier));
  }

  // Conversations

  findConversation(userId: string, id: string, query: ConversationQuery = {}): Promise<Conversation | null> {
    return this.db.conversation.findFirst({ ...query, where: { id, userId } });
  }

  listConversations(userId: string, archived: boolean | null | undefined, window: PageWindow<ConversationKey>, query: ConversationQuery = {}): Promise<Conversation[]> {
    const conditions: Prisma.ConversationWhereInput[] = [{ userId }];
    if (archived != null) conditions.push({ archived });
    if (window.after) conditions.push(listedAfter(window.after));
    if (window.before) conditions.push(listedBefore(window.before));
    const direction = window.fromEnd ? 'asc' : 'desc';
    return this.db.conversation.findMany({
      ...query,
      where: { AND: conditions },
      orderBy: [{ updatedAt: direction }, { id: direction }],
      take: window.limit + 1,
    });
  }

  createConversation(userId: string, title: string | null, query: ConversationQuery = {}): Promise<{ conversation: Conversation; viewerSeq: number }> {
    return this.db.$transaction(async (tx) => {
      const conversation = await tx.conversation.create({ ...withId(query), data: { userId, title } });
      return { conversation, viewerSeq: await this.nextViewerSeq(tx, userId) };
    });
  }

  updateConversation(userId: string, id: string, changes: ConversationChanges, query: ConversationQuery = {}): Promise<({ conversation: Conversation } & EventSeqs) | null> {
    return this.db.$transaction(async (tx) => {
      const { count } = await tx.conversation.updateMany({ where: { id, userId }, data: { ...changes, lastEventSeq: { increment: 1 } } });
      if (count === 0) return null;
      const conversationSeq = await this.conversationSeqIn(tx, id);
      const viewerSeq = await this.nextViewerSeq(tx, userId);
      return { conversation: await tx.conversation.findUniqueOrThrow({ ...query, where: { id } }), conversationSeq, viewerSeq };
    });
  }

  deleteConversation(userId: string, id: string): Promise<EventSeqs | null> {
    return this.db.$transaction(async (tx) => {
      // The DELETED event's seq first: that takes the row's lock, as every other write does first.
      const { count } = await tx.conversation.updateMany({ where: { id, userId }, data: { lastEventSeq: { increment: 1 } } });
      if (count === 0) return null;
      const conversationSeq = await this.conversationSeqIn(tx, id);
      const viewerSeq = await this.nextViewerSeq(tx, userId);
      await tx.conversation.delete({ where: { id } });
      return { conversationSeq, viewerSeq };
    });
  }

  setTitleIfUntitled(conversationId: string, title: string): Promise<({ userId: string } & EventSeqs) | null> {
    return this.db.$transaction(async (tx) => {
      const { count } = await tx.conversation.updateMany({ where: { id: conversationId, title: null }, data: { title, lastEventSeq: { increment: 1 } } });
      if (count === 0) return null;
      const { userId, lastEventSeq } = await tx.conversation.findUniqueOrThrow({ where: { id: conversationId }, select: { userId: true, lastEventSeq: true } });
      return { userId, conversationSeq: lastEventSeq, viewerSeq: await this.nextViewerSeq(tx, userId) };
    });
  }

  async conversationEventSeq(userId: string, id: string): Promise<number | null> {
    const row = await this.db.conversation.findFirst({ where: { id, userId }, select: { lastEventSeq: true } });
    return row?.lastEventSeq ?? null;
  }

  async viewerEventSeq(userId: string): Promise<number> {
    const row = await this.db.viewerState.findUnique({ where: { userId }, select: { lastEventSeq: true } });
    return row?.lastEventSeq ?? -1;
  }

  async conversationEventSeqs(conversationIds: string[]): Promise<Map<string, number>> {
    const rows = await this.db.conversation.findMany({ where: { id: { in: conversationIds } }, select: { id: true, lastEventSeq: true } });
    return new Map(rows.map((row) => [row.id, row.lastEventSeq]));
  }

  async viewerEventSeqs(userIds: string[]): Promise<Map<string, number>> {
    const rows = await this.db.viewerState.findMany({ where: { userId: { in: userIds } } });
    return new Map(rows.map((row) => [row.userId, row.lastEventSeq]));
  }

  generatingMessages(userId: string, conversationId: string, query: MessageQuery = {}): Promise<Message[]> {
    return this.db.message.findMany({ ...query, where: { conversationId, userId, status: 'STREAMING' }, orderBy: { seq: 'asc' } });
  }

  /** The conversation's event seq, read in the transaction that just moved it (and holds its lock). */
  private async conversationSeqIn(tx: Prisma.TransactionClient, id: string): Promise<number> {
    return (await tx.conversation.findUniqueOrThrow({ where: { id }, select: { lastEventSeq: true } })).lastEventSeq;
  }

  /**
   * Hands out the user's next viewer event seq in the caller's transaction. The upsert holds the
   * counter row's lock until the transaction ends, so seqs follow the order in which changes
   * become visible. Every caller locks a conversation row first, if any, then this one.
   */
  protected async nextViewerSeq(tx: Prisma.TransactionClient, userId: string): Promise<number> {
    const table = this.name('ViewerState');
    const seq = this.name('lastEventSeq');
    if (this.provider === 'mysql') {
      await tx.$executeRaw`INSERT INTO ${table} (${this.name('userId')}, ${seq}) VALUES (${userId}, 0) ON DUPLICATE KEY UPDATE ${seq} = ${seq} + 1`;
      return this.viewerSeqIn(tx, userId);
    }
    const rows = await tx.$queryRaw<{ seq: number | bigint }[]>`
      INSERT INTO ${table} (${this.name('userId')}, ${seq}) VALUES (${userId}, 0)
      ON CONFLICT (${this.name('userId')}) DO UPDATE SET ${seq} = ${table}.${seq} + 1
      RETURNING ${seq} AS seq`;
    return Number(rows[0]!.seq);
  }

  private async viewerSeqIn(tx: Prisma.TransactionClient, userId: string): Promise<number> {
    return (await tx.viewerState.findUniqueOrThrow({ where: { userId }, select: { lastEventSeq: true } })).lastEventSeq;
  }

  // Messages

  /** The conversation row is updated first: that takes its lock, hands out the next seq and bumps updatedAt. */
  async appendMessage(userId: string, conversationId: string | null, message: NewMessage, query: MessageQuery = {}): Promise<{ message: Message } & EventSeqs> {
    try {
      return await this.db.$transaction(async (tx) => {
        const conversation = await reserveSeqs(tx, userId, conversationId, 1);
        const viewerSeq = conversationId === null ? await this.nextViewerSeq(tx, userId) : null;
        const place = await this.tree.place(tx, userId, conversation, message.parentId);
        // The tip moves first: a conversation the query includes with the message is read after it.
        const id = uuid7();
        await this.tree.setTip(tx, conversation.id, { id, depth: place.depth });
        const created = await tx.message.create({
          ...withId(query),
          data: {
            id,
            conversationId: conversation.id,
            userId,
            seq: conversation.lastSeq,
            ...place,
            role: message.role,
            content: message.content,
            tokenCount: message.tokenCount,
            clientMessageId: message.clientMessageId ?? null,
            metadata: message.metadata === undefined ? undefined : exactJson(message.metadata),
          },
        });
        return { message: { ...created, conversationId: conversation.id }, conversationSeq: conversation.lastEventSeq, viewerSeq };
      });
    } catch (error) {
      throw duplicateKey(error);
    }
  }

  clearMessages(userId: string, conversationId: string): Promise<{ count: number; conversationSeq: number } | null> {
    return this.db.$transaction(async (tx) => {
      // Touching the conversation first checks ownership and locks it against concurrent adds.
      const { count } = await tx.conversation.updateMany({
        where: { id: conversationId, userId },
        data: { updatedAt: new Date(), lastEventSeq: { increment: 1 }, currentMessageId: null, pathLength: 0 },
      });
      if (count === 0) return null;
      const conversationSeq = await this.conversationSeqIn(tx, conversationId);
      return { count: (await tx.message.deleteMany({ where: { conversationId } })).count, conversationSeq };
    });
  }

  async recentMessages(userId: string, conversationId: string, take: number): Promise<Message[] | null> {
    const rows = await this.db.message.findMany({ where: { conversationId, userId, onPath: true }, orderBy: { seq: 'desc' }, take });
    // No rows: an empty conversation of the user's, or none of theirs at all.
    if (rows.length === 0 && !(await this.db.conversation.findFirst({ where: { id: conversationId, userId }, select: { id: true } }))) return null;
    return rows.reverse();
  }

  messagesBefore(userId: string, conversationId: string, beforeSeq: number, take: number): Promise<HistoryRow[]> {
    return this.db.message.findMany({
      where: { conversationId, userId, onPath: true, seq: { lt: beforeSeq } },
      select: { id: true, seq: true, role: true, content: true, tokenCount: true, completionTokens: true, status: true },
      orderBy: { seq: 'desc' },
      take,
    });
  }

  countMessagesBefore(userId: string, conversationId: string, beforeSeq: number, statuses: readonly MessageStatus[]): Promise<number> {
    return this.db.message.count({ where: { conversationId, userId, onPath: true, seq: { lt: beforeSeq }, status: { in: [...statuses] } } });
  }

  /**
   * Each conversation's page through the (conversationId, onPath, seq) index: one subquery per
   * conversation, so a page costs its own rows whatever the length of the conversations listed.
   */
  async messagePages({ userId, conversationIds: ids, window }: MessagePagesRequest): Promise<MessagePages> {
    const seqRange = { gt: window.after, lt: window.before };
    const order = window.fromEnd ? 'desc' : 'asc';
    if (ids.length === 1) {
      return { rows: await this.db.message.findMany({ where: { conversationId: ids[0], userId, onPath: true, seq: seqRange }, orderBy: { seq: order }, take: window.limit + 1 }) };
    }
    const pages = ids.map(
      (id, i) => sql`SELECT * FROM (
        SELECT ${this.name('id')} AS id FROM ${this.name('Message')}
        WHERE ${join(this.pageConditions(userId, id, window), ' AND ')}
        ORDER BY ${this.name('seq')} ${raw(order)} LIMIT ${window.limit + 1}
      ) AS ${raw(`page${i}`)}`,
    );
    const picked = await this.db.$queryRaw<{ id: string }[]>`${join(pages, ' UNION ALL ')}`;
    return { rows: picked.length === 0 ? [] : await this.db.message.findMany({ where: { id: { in: picked.map((p) => p.id) } }, orderBy: { seq: order } }) };
  }

  /** The conditions of a page query of one conversation; the owner too, though callers checked it: no path reads another user's rows. */
  protected pageConditions(userId: string, conversationId: string, window: PageWindow<number>): Prisma.Sql[] {
    const conditions = [sql`${this.name('conversationId')} = ${conversationId}`, sql`${this.name('userId')} = ${userId}`, sql`${this.name('onPath')} = TRUE`];
    if (window.after !== undefined) conditions.push(sql`${this.name('seq')} > ${window.after}`);
    if (window.before !== undefined) conditions.push(sql`${this.name('seq')} < ${window.before}`);
    return conditions;
  }

  /** A table or column name quoted for the provider. */
  protected name(identifier: string): Prisma.Sql {
    const quote = this.provider === 'mysql' ? '`' : '"';
    return raw(`${quote}${identifier}${quote}`);
  }

  /** The active paths' lengths, kept on the conversations: nothing is counted. */
  async countMessages(userId: string, conversationIds: string[]): Promise<Map<string, number>> {
    const rows = await this.db.conversation.findMany({ where: { id: { in: conversationIds }, userId }, select: { id: true, pathLength: true } });
    return new Map(rows.map((row) => [row.id, row.pathLength]));
  }

  findMessage(userId: string, id: string, query: MessageQuery = {}): Promise<Message | null> {
    return this.db.message.findFirst({ ...query, where: { id, userId } });
  }

  // Replies

  async saveExchange(exchange: NewExchange): Promise<NewSavedExchange> {
    // Before the transaction: on SQLite every query shares one connection, so a read waited for
    // inside the transaction would wait for the transaction itself.
    const settings = await exchange.settings;
    try {
      return await this.db.$transaction(async (tx) => {
        const reserved = await reserveSeqs(tx, exchange.userId, exchange.conversationId, 2);
        const viewerSeq = exchange.conversationId === null ? await this.nextViewerSeq(tx, exchange.userId) : null;
        const place = await this.tree.place(tx, exchange.userId, reserved, exchange.parentId);
        const userMessage = await tx.message.create({
          data: {
            conversationId: reserved.id,
            userId: exchange.userId,
            seq: reserved.lastSeq - 1,
            ...place,
            role: 'USER',
            content: exchange.content,
            tokenCount: exchange.tokenCount,
            clientMessageId: exchange.clientMessageId,
          },
        });
        const assistantMessage = await tx.message.create({
          data: {
            conversationId: reserved.id,
            userId: exchange.userId,
            seq: reserved.lastSeq,
            parentId: userMessage.id,
            depth: place.depth + 1,
            ...newReplyColumns(settings, exchange.leaseMs),
          },
        });
        const conversation = await this.tree.setTip(tx, reserved.id, assistantMessage);
        return { conversation, userMessage, assistantMessage, conversationSeq: reserved.lastEventSeq, viewerSeq };
      });
    } catch (error) {
      throw duplicateKey(error);
    }
  }

  async saveReply(reply: NewReply): Promise<NewSavedExchange> {
    const settings = await reply.settings;
    try {
      return await this.db.$transaction(async (tx) => {
        const reserved = await reserveSeqs(tx, reply.userId, reply.conversationId, 1);
        const userMessage = await tx.message.findFirst({ where: { id: reply.parentId, userId: reply.userId, conversationId: reply.conversationId } });
        if (!userMessage) throw notFound('message');
        const place = await this.tree.place(tx, reply.userId, reserved, userMessage.id);
        const assistantMessage = await tx.message.create({
          data: {
            conversationId: reserved.id,
            userId: reply.userId,
            seq: reserved.lastSeq,
            ...place,
            clientMessageId: reply.clientMessageId,
            ...newReplyColumns(settings, reply.leaseMs),
          },
        });
        const conversation = await this.tree.setTip(tx, reserved.id, assistantMessage);
        return { conversation, userMessage, assistantMessage, conversationSeq: reserved.lastEventSeq, viewerSeq: null };
      });
    } catch (error) {
      throw duplicateKey(error);
    }
  }

  // Branches

  switchBranch(userId: string, messageId: string): Promise<({ conversation: Conversation; conversationSeq: number }) | null> {
    return this.afterLock(async (tx) => {
      const conversationId = await this.lockConversationOf(tx, userId, messageId);
      if (conversationId === null) return null;
      const leaf = await this.tree.newestLeaf(tx, conversationId, messageId);
      if (!leaf) throw NOTHING_TO_SAVE;
      await this.tree.activate(tx, conversationId, leaf.id);
      const conversation = await this.tree.setTip(tx, conversationId, leaf);
      return { conversation, conversationSeq: conversation.lastEventSeq };
    }).catch(nothingIsNull);
  }

  deleteSubtree(userId: string, messageId: string): Promise<DeletedSubtree | null> {
    return this.afterLock(async (tx) => {
      const conversationId = await this.lockConversationOf(tx, userId, messageId);
      if (conversationId === null) return null;
      const { parentId } = (await tx.message.findUnique({ where: { id: messageId }, select: { parentId: true } })) ?? {};
      const doomed = await this.tree.subtree(tx, conversationId, messageId);
      if (doomed.length === 0 || parentId === undefined) throw NOTHING_TO_SAVE;
      const before = await tx.conversation.findUniqueOrThrow({ where: { id: conversationId }, select: { currentMessageId: true } });
      const deletedIds = doomed.map((node) => node.id);
      await this.tree.deleteAll(tx, deletedIds);
      let conversation: Conversation;
      if (before.currentMessageId !== null && deletedIds.includes(before.currentMessageId)) {
        // The tip went with the subtree: the parent's newest other branch, or the parent, takes over.
        const tip = await this.tree.newestLeaf(tx, conversationId, parentId);
        if (tip) await this.tree.activate(tx, conversationId, tip.id);
        conversation = await this.tree.setTip(tx, conversationId, tip);
      } else {
        conversation = await tx.conversation.findUniqueOrThrow({ where: { id: conversationId } });
      }
      return { conversation, deletedIds, conversationSeq: conversation.lastEventSeq };
    }).catch(nothingIsNull);
  }

  async forkPath(userId: string, messageId: string, title: string | null | undefined): Promise<({ conversation: Conversation; viewerSeq: number }) | null> {
    return this.db.$transaction(async (tx) => {
      const source = await tx.message.findFirst({ where: { id: messageId, userId }, select: { conversationId: true } });
      const original = source && (await tx.conversation.findUnique({ where: { id: source.conversationId }, select: { title: true } }));
      if (!original) return null;
      const ids = await this.tree.pathTo(tx, userId, messageId);
      const path: Message[] = [];
      for (let i = 0; i < ids.length; i += COPY_CHUNK) path.push(...(await tx.message.findMany({ where: { id: { in: ids.slice(i, i + COPY_CHUNK) } }, orderBy: { seq: 'asc' } })));
      // Fewer rows than ids: a delete took part of the path, and the message with it.
      if (ids.length === 0 || path.length !== ids.length) return null;
      const newIds = new Map(path.map((m) => [m.id, uuid7()]));
      const conversationId = uuid7();
      await tx.conversation.create({
        data: { id: conversationId, userId, title: title === undefined ? original.title : title, lastSeq: path.length, currentMessageId: newIds.get(messageId) ?? null, pathLength: path.length },
      });
      const copies = path.map((m, i) => ({
        ...copiedColumns(m),
        id: newIds.get(m.id)!,
        conversationId,
        seq: i + 1,
        depth: i,
        parentId: m.parentId === null ? null : (newIds.get(m.parentId) ?? null),
      }));
      for (let i = 0; i < copies.length; i += COPY_CHUNK) await tx.message.createMany({ data: copies.slice(i, i + COPY_CHUNK) });
      const viewerSeq = await this.nextViewerSeq(tx, userId);
      return { conversation: await tx.conversation.findUniqueOrThrow({ where: { id: conversationId } }), viewerSeq };
    });
  }

  async siblings(userId: string, parents: readonly { conversationId: string; parentId: string | null }[]): Promise<Map<string, string[]>> {
    const rows = await this.db.message.findMany({
      where: { userId, OR: parents.map(({ conversationId, parentId }) => ({ conversationId, parentId })) },
      select: { id: true, conversationId: true, parentId: true },
      orderBy: { seq: 'asc' },
    });
    const byParent = new Map<string, string[]>();
    for (const row of rows) {
      const key = siblingKey(row.conversationId, row.parentId);
      const list = byParent.get(key);
      if (list) list.push(row.id);
      else byParent.set(key, [row.id]);
    }
    return byParent;
  }

  async subtreeIds(userId: string, messageId: string): Promise<string[]> {
    const message = await this.db.message.findFirst({ where: { id: messageId, userId }, select: { conversationId: true } });
    return message ? (await this.tree.subtree(this.db, message.conversationId, messageId)).map((node) => node.id) : [];
  }

  /**
   * A transaction that reads the message before it locks the conversation. On MySQL's default
   * REPEATABLE READ, that first read would fix the snapshot, and every read after the lock would
   * miss what the writer it waited for committed (the path flags it moved): READ COMMITTED reads
   * the newest. PostgreSQL reads each statement afresh; SQLite writes one transaction at a time.
   */
  private afterLock<T>(fn: (tx: Prisma.TransactionClient) => Promise<T>): Promise<T> {
    return this.provider === 'mysql' ? this.db.$transaction(fn, { isolationLevel: 'ReadCommitted' as Prisma.TransactionIsolationLevel }) : this.db.$transaction(fn);
  }

  /** Locks the conversation of the user's message (moving its event seq); null when the message is not theirs. */
  private async lockConversationOf(tx: Prisma.TransactionClient, userId: string, messageId: string): Promise<string | null> {
    const message = await tx.message.findFirst({ where: { id: messageId, userId }, select: { conversationId: true } });
    if (!message) return null;
    const { count } = await tx.conversation.updateMany({ where: { id: message.conversationId, userId }, data: { lastEventSeq: { increment: 1 } } });
    return count === 0 ? null : message.conversationId;
  }

  async findExchange(userId: string, clientMessageId: string): Promise<FoundExchange | null> {
    const keyed = await this.db.message.findUnique({ where: { userId_clientMessageId: { userId, clientMessageId } } });
    if (!keyed) return null;
    const conversation = await this.db.conversation.findUnique({ where: { id: keyed.conversationId } });
    if (!conversation) return null;
    if (keyed.role === 'USER') {
      // Its reply was created with it, at the next seq.
      const reply = await this.db.message.findFirst({ where: { conversationId: keyed.conversationId, parentId: keyed.id, seq: keyed.seq + 1 } });
      return { conversation, userMessage: keyed, assistantMessage: reply };
    }
    // A reply regenerate created carries its model; an assistant message written by editMessage has none.
    if (keyed.role === 'ASSISTANT' && keyed.model !== null && keyed.parentId !== null) {
      const prompted = await this.db.message.findUnique({ where: { id: keyed.parentId } });
      if (prompted) return { conversation, userMessage: prompted, assistantMessage: keyed };
    }
    return { conversation, userMessage: keyed, assistantMessage: null };
  }

  replyState(userId: string, messageId: string): Promise<ReplyState | null> {
    return this.db.message.findFirst({ where: { id: messageId, userId }, select: { status: true, error: true, content: true } });
  }

  replyStateById(messageId: string): Promise<ReplyState | null> {
    return this.db.message.findUnique({ where: { id: messageId }, select: { status: true, error: true, content: true } });
  }

  /** Two reads: the text of a reply is read only once it ended, not every time one is still streaming. */
  async replyStatesById(messageIds: string[]): Promise<ReplyStates> {
    const states = await this.db.message.findMany({ where: { id: { in: messageIds } }, select: { id: true, status: true, error: true } });
    const streaming = new Set<string>();
    const endedIds: string[] = [];
    for (const { id, status } of states) (status === 'STREAMING' ? streaming.add(id) : endedIds.push(id));
    const ended = new Map<string, ReplyState>();
    if (endedIds.length === 0) return { streaming, ended };
    const texts = await this.db.message.findMany({ where: { id: { in: endedIds } }, select: { id: true, status: true, error: true, content: true } });
    for (const { id, status, error, content } of texts) ended.set(id, { status, error, content });
    return { streaming, ended };
  }

  replyOwner(messageId: string): Promise<{ userId: string; conversationId: string; content: string } | null> {
    return this.db.message.findUnique({ where: { id: messageId }, select: { userId: true, conversationId: true, content: true } });
  }

  /**
   * The conversation's row is locked first, as by every other write of the conversation (clearing
   * and deleting lock it, then its messages): the other order could deadlock with them. Its
   * event seq is moved in raw SQL, so that its `updatedAt` stays: an ending reply does not
   * reorder the conversation list. Nothing to save rolls the seq back.
   */
  async saveReplyEnd(messageId: string, conversationId: string, end: ReplyEnd): Promise<SavedReplyEnd> {
    try {
      return await this.db.$transaction(async (tx) => {
        const moved = await tx.$executeRaw`UPDATE ${this.name('Conversation')} SET ${this.name('lastEventSeq')} = ${this.name('lastEventSeq')} + 1 WHERE ${this.name('id')} = ${conversationId}`;
        if (moved === 0) throw NOTHING_TO_SAVE;
        const { count } = await tx.message.updateMany({ where: { id: messageId, conversationId, status: 'STREAMING' }, data: replyEndData(end) });
        if (count === 0) throw NOTHING_TO_SAVE;
        return { count, eventSeq: await this.conversationSeqIn(tx, conversationId) };
      });
    } catch (error) {
      if (error === NOTHING_TO_SAVE) return { count: 0, eventSeq: null };
      throw error;
    }
  }

  async saveReplyPrompt(messageId: string, metadata: JsonObject, promptTokens: number | null): Promise<void> {
    await this.db.message.updateMany({ where: { id: messageId }, data: { metadata, promptTokens } });
  }

  async renewLeases(messageIds: string[], until: Date): Promise<void> {
    await this.db.message.updateMany({ where: { id: { in: messageIds }, status: 'STREAMING' }, data: { leaseExpiresAt: until } });
  }

  async checkpointReply(messageId: string, content: string): Promise<void> {
    await this.db.message.updateMany({ where: { id: messageId, status: 'STREAMING' }, data: { content } });
  }

  async orphanedReplies(everything: boolean, limit: number): Promise<string[]> {
    const rows = await this.db.message.findMany({
      where: { status: 'STREAMING', ...(everything ? {} : { leaseExpiresAt: { lt: new Date() } }) },
      select: { id: true },
      // Longest expired first: a crowd of orphans is worked through, not sampled.
      orderBy: { leaseExpiresAt: 'asc' },
      take: limit,
    });
    return rows.map((row) => row.id);
  }

  // Settings

  userConfig(userId: string): Promise<UserConfigRow | null> {
    return this.db.userConfig.findUnique({ where: { userId } });
  }

  saveUserConfig(userId: string, changes: UserConfigChanges): Promise<UserConfigRow> {
    return this.db.userConfig.upsert({ where: { userId }, create: { userId, ...changes }, update: changes });
  }
}

/** A selection that also reads the id, which events name whatever the operation asked for. */
function withId<Q extends { select?: object }>(query: Q): Q {
  return query.select ? { ...query, select: { ...query.select, id: true } } : query;
}

// Rows per statement of a fork's copy: far below every database's limit on bound parameters.
const COPY_CHUNK = 500;

/** Thrown inside a transaction to roll it back when there turned out to be nothing to save. */
const NOTHING_TO_SAVE = Symbol('nothing to save');

function nothingIsNull(error: unknown): null {
  if (error === NOTHING_TO_SAVE) return null;
  throw error;
}

/** A unique-key refusal as the domain's error: the only unique key a client chooses is its clientMessageId. */
function duplicateKey(error: unknown): unknown {
  if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002') return new DuplicateKeyError('clientMessageId', { cause: error });
  return error;
}

/** A STREAMING reply's columns as sendMessage and regenerate create it. */
function newReplyColumns(settings: { model: string; presetId: string | null }, leaseMs: number) {
  return {
    role: 'ASSISTANT' as const,
    content: '',
    status: 'STREAMING' as const,
    model: settings.model,
    leaseExpiresAt: new Date(Date.now() + leaseMs),
    metadata: { presetId: settings.presetId },
  };
}

/**
 * What a fork copies of a message: its content and how it ended. A reply still generating is
 * copied as it stands, INTERRUPTED: no generation writes into the copy.
 */
function copiedColumns(m: Message) {
  return {
    userId: m.userId,
    role: m.role,
    content: m.content,
    tokenCount: m.tokenCount,
    metadata: m.metadata === null ? undefined : (m.metadata as JsonValue),
    status: m.status === 'STREAMING' ? ('INTERRUPTED' as const) : m.status,
    model: m.model,
    finishReason: m.finishReason,
    promptTokens: m.promptTokens,
    completionTokens: m.completionTokens,
    error: m.error,
    createdAt: m.createdAt,
    onPath: true,
  };
}

/** A reply's end as the columns of its row; absent model, metadata and prompt tokens keep the saved ones. */
function replyEndData(end: ReplyEnd): Prisma.MessageUpdateManyMutationInput {
  return {
    status: end.status,
    content: end.content,
    error: end.error,
    finishReason: end.finishReason,
    ...(end.model !== null ? { model: end.model } : {}),
    ...(end.metadata !== null ? { metadata: end.metadata } : {}),
    ...(end.promptTokens !== null ? { promptTokens: end.promptTokens } : {}),
    completionTokens: end.completionTokens,
    leaseExpiresAt: null,
  };
}

/**
 * A client's JSON for a Json column, kept exactly. Prisma copies a plain object key by key, which
 * drops an own `__proto__` key; JSON text in Prisma's tagged form (which `toJSON` may return)
 * is parsed back with JSON.parse, which keeps it.
 */
function exactJson(value: JsonValue): JsonValue {
  const text = JSON.stringify(value);
  return { toJSON: () => ({ $type: 'Json', value: text }) };
}

/** Rows strictly after `key` in the list order. */
function listedAfter(key: ConversationKey): Prisma.ConversationWhereInput {
  return { OR: [{ updatedAt: { lt: key.updatedAt } }, { updatedAt: key.updatedAt, id: { lt: key.id } }] };
}

function listedBefore(key: ConversationKey): Prisma.ConversationWhereInput {
  return { OR: [{ updatedAt: { gt: key.updatedAt } }, { updatedAt: key.updatedAt, id: { gt: key.id } }] };
}

/**
 * Hands out the next `count` message positions and event seqs of the user's conversation (a new one when no id
 * is given) in one statement. Updating the row takes its lock, so concurrent writers queue up
 * here and never share a seq; it also bumps updatedAt. Returns the conversation after the update.
 */
async function reserveSeqs(tx: Prisma.TransactionClient, userId: string, conversationId: string | null, count: number): Promise<Conversation> {
  // One conversation event per message: seqs 0..count-1 in a new conversation.
  if (conversationId === null) return tx.conversation.create({ data: { userId, lastSeq: count, lastEventSeq: count - 1 } });
  try {
    return await tx.conversation.update({ where: { id: conversationId, userId }, data: { lastSeq: { increment: count }, lastEventSeq: { increment: count } } });
  } catch (error) {
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2025') throw notFound('conversation');
    throw error;
  }
}
