// The store on Prisma's model queries, for every provider. Raw SQL appears only where Prisma has
// no query for it (per-conversation windows of messages).
import { notFound, DuplicateKeyError } from '../errors.ts';
import { Prisma } from '../generated/prisma/sqlite/client.ts';
import type { MessageStatus } from '../model.ts';
import type { DatabaseProvider, Db } from './dialect.ts';
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
  PageWindow,
  ReplyEnd,
  ReplyState,
  SavedExchange,
  SavedReplyEnd,
  Store,
  UserConfigChanges,
} from './store.ts';

const { join, raw, sql } = Prisma;

export class PrismaStore implements Store {
  /** Whether messagePages counts messages too when asked (withTotals). */
  readonly pagesCarryTotals: boolean = false;

  constructor(
    protected readonly db: Db,
    protected readonly provider: DatabaseProvider,
  ) {}

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
  appendMessage(userId: string, conversationId: string | null, message: NewMessage, query: MessageQuery = {}): Promise<{ message: Message } & EventSeqs> {
    return this.db.$transaction(async (tx) => {
      const conversation = await reserveSeqs(tx, userId, conversationId, 1);
      const viewerSeq = conversationId === null ? await this.nextViewerSeq(tx, userId) : null;
      const created = await tx.message.create({
        ...withId(query),
        data: {
          conversationId: conversation.id,
          userId,
          seq: conversation.lastSeq,
          role: message.role,
          content: message.content,
          tokenCount: message.tokenCount,
          metadata: message.metadata === undefined ? undefined : exactJson(message.metadata),
        },
      });
      return { message: { ...created, conversationId: conversation.id }, conversationSeq: conversation.lastEventSeq, viewerSeq };
    });
  }

  clearMessages(userId: string, conversationId: string): Promise<{ count: number; conversationSeq: number } | null> {
    return this.db.$transaction(async (tx) => {
      // Touching the conversation first checks ownership and locks it against concurrent adds.
      const { count } = await tx.conversation.updateMany({ where: { id: conversationId, userId }, data: { updatedAt: new Date(), lastEventSeq: { increment: 1 } } });
      if (count === 0) return null;
      const conversationSeq = await this.conversationSeqIn(tx, conversationId);
      return { count: (await tx.message.deleteMany({ where: { conversationId } })).count, conversationSeq };
    });
  }

  async recentMessages(userId: string, conversationId: string, take: number): Promise<Message[] | null> {
    const rows = await this.db.message.findMany({ where: { conversationId, userId }, orderBy: { seq: 'desc' }, take });
    // No rows: an empty conversation of the user's, or none of theirs at all.
    if (rows.length === 0 && !(await this.db.conversation.findFirst({ where: { id: conversationId, userId }, select: { id: true } }))) return null;
    return rows.reverse();
  }

  messagesBefore(userId: string, conversationId: string, beforeSeq: number, take: number): Promise<HistoryRow[]> {
    return this.db.message.findMany({
      where: { conversationId, userId, seq: { lt: beforeSeq } },
      select: { id: true, seq: true, role: true, content: true, tokenCount: true, completionTokens: true, status: true },
      orderBy: { seq: 'desc' },
      take,
    });
  }

  countMessagesBefore(userId: string, conversationId: string, beforeSeq: number, statuses: readonly MessageStatus[]): Promise<number> {
    return this.db.message.count({ where: { conversationId, userId, seq: { lt: beforeSeq }, status: { in: [...statuses] } } });
  }

  async messagePages({ userId, conversationIds: ids, window }: MessagePagesRequest): Promise<MessagePages> {
    const seqRange = { gt: window.after, lt: window.before };
    const order = window.fromEnd ? 'desc' : 'asc';
    if (ids.length === 1) {
      return { rows: await this.db.message.findMany({ where: { conversationId: ids[0], userId, seq: seqRange }, orderBy: { seq: order }, take: window.limit + 1 }) };
    }
    const picked = await this.db.$queryRaw<{ id: string }[]>`
      SELECT ${this.name('id')} AS id FROM (
        SELECT ${this.name('id')}, ROW_NUMBER() OVER (PARTITION BY ${this.name('conversationId')} ORDER BY ${this.name('seq')} ${raw(order)}) AS rn
        FROM ${this.name('Message')}
        WHERE ${join(this.pageConditions(userId, ids, window), ' AND ')}
      ) ranked WHERE rn <= ${window.limit + 1}`;
    return { rows: picked.length === 0 ? [] : await this.db.message.findMany({ where: { id: { in: picked.map((p) => p.id) } }, orderBy: { seq: order } }) };
  }

  /** The conditions of a page query; the owner too, though callers checked it: no path reads another user's rows. */
  protected pageConditions(userId: string, ids: string[], window: PageWindow<number>): Prisma.Sql[] {
    const conditions = [sql`${this.name('conversationId')} IN (${join(ids)})`, sql`${this.name('userId')} = ${userId}`];
    if (window.after !== undefined) conditions.push(sql`${this.name('seq')} > ${window.after}`);
    if (window.before !== undefined) conditions.push(sql`${this.name('seq')} < ${window.before}`);
    return conditions;
  }

  /** A table or column name quoted for the provider. */
  protected name(identifier: string): Prisma.Sql {
    const quote = this.provider === 'mysql' ? '`' : '"';
    return raw(`${quote}${identifier}${quote}`);
  }

  /** Counts only the listed conversations, through the (conversationId, seq) index. */
  async countMessages(userId: string, conversationIds: string[]): Promise<Map<string, number>> {
    const groups = await this.db.message.groupBy({ by: ['conversationId'], where: { conversationId: { in: conversationIds }, userId }, _count: { _all: true } });
    return new Map(groups.map((group) => [group.conversationId, group._count._all]));
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
        const conversation = await reserveSeqs(tx, exchange.userId, exchange.conversationId, 2);
        const viewerSeq = exchange.conversationId === null ? await this.nextViewerSeq(tx, exchange.userId) : null;
        const userMessage = await tx.message.create({
          data: {
            conversationId: conversation.id,
            userId: exchange.userId,
            seq: conversation.lastSeq - 1,
            role: 'USER',
            content: exchange.content,
            tokenCount: exchange.tokenCount,
            clientMessageId: exchange.clientMessageId,
          },
        });
        const assistantMessage = await tx.message.create({
          data: {
            conversationId: conversation.id,
            userId: exchange.userId,
            seq: conversation.lastSeq,
            role: 'ASSISTANT',
            content: '',
            status: 'STREAMING',
            model: settings.model,
            leaseExpiresAt: new Date(Date.now() + exchange.leaseMs),
            metadata: { presetId: settings.presetId },
          },
        });
        return { conversation, userMessage, assistantMessage, conversationSeq: conversation.lastEventSeq, viewerSeq };
      });
    } catch (error) {
      if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002') throw new DuplicateKeyError('clientMessageId', { cause: error });
      throw error;
    }
  }

  async findExchange(userId: string, clientMessageId: string): Promise<SavedExchange | null> {
    const userMessage = await this.db.message.findUnique({ where: { userId_clientMessageId: { userId, clientMessageId } } });
    if (!userMessage) return null;
    const [conversation, assistantMessage] = await Promise.all([
      this.db.conversation.findUniqueOrThrow({ where: { id: userMessage.conversationId } }),
      this.db.message.findUniqueOrThrow({ where: { conversationId_seq: { conversationId: userMessage.conversationId, seq: userMessage.seq + 1 } } }),
    ]);
    return { conversation, userMessage, assistantMessage };
  }

  replyState(userId: string, messageId: string): Promise<ReplyState | null> {
    return this.db.message.findFirst({ where: { id: messageId, userId }, select: { status: true, error: true, content: true } });
  }

  replyStateById(messageId: string): Promise<ReplyState | null> {
    return this.db.message.findUnique({ where: { id: messageId }, select: { status: true, error: true, content: true } });
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

/** Thrown inside a transaction to roll it back when there turned out to be nothing to save. */
const NOTHING_TO_SAVE = Symbol('nothing to save');

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
