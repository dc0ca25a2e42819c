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
  NewExchange,
  NewMessage,
  PageWindow,
  ReplyEnd,
  ReplyState,
  SavedExchange,
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

  createConversation(userId: string, title: string | null, query: ConversationQuery = {}): Promise<Conversation> {
    return this.db.conversation.create({ ...query, data: { userId, title } });
  }

  updateConversation(userId: string, id: string, changes: ConversationChanges, query: ConversationQuery = {}): Promise<Conversation | null> {
    return this.db.$transaction(async (tx) => {
      const { count } = await tx.conversation.updateMany({ where: { id, userId }, data: changes });
      if (count === 0) return null;
      return tx.conversation.findUniqueOrThrow({ ...query, where: { id } });
    });
  }

  async deleteConversation(userId: string, id: string): Promise<boolean> {
    const { count } = await this.db.conversation.deleteMany({ where: { id, userId } });
    return count > 0;
  }

  async setTitleIfUntitled(conversationId: string, title: string): Promise<void> {
    await this.db.conversation.updateMany({ where: { id: conversationId, title: null }, data: { title } });
  }

  // Messages

  /** The conversation row is updated first: that takes its lock, hands out the next seq and bumps updatedAt. */
  appendMessage(userId: string, conversationId: string | null, message: NewMessage, query: MessageQuery = {}): Promise<Message> {
    return this.db.$transaction(async (tx) => {
      const conversation = await reserveSeqs(tx, userId, conversationId, 1);
      return tx.message.create({
        ...query,
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
    });
  }

  clearMessages(userId: string, conversationId: string): Promise<number | null> {
    return this.db.$transaction(async (tx) => {
      // Touching the conversation first checks ownership and locks it against concurrent adds.
      const { count } = await tx.conversation.updateMany({ where: { id: conversationId, userId }, data: { updatedAt: new Date() } });
      if (count === 0) return null;
      return (await tx.message.deleteMany({ where: { conversationId } })).count;
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

  async saveExchange(exchange: NewExchange): Promise<SavedExchange> {
    // Before the transaction: on SQLite every query shares one connection, so a read waited for
    // inside the transaction would wait for the transaction itself.
    const settings = await exchange.settings;
    try {
      return await this.db.$transaction(async (tx) => {
        const conversation = await reserveSeqs(tx, exchange.userId, exchange.conversationId, 2);
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
        return { conversation, userMessage, assistantMessage };
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

  async saveReplyEnd(messageId: string, end: ReplyEnd): Promise<number> {
    const { count } = await this.db.message.updateMany({
      where: { id: messageId, status: 'STREAMING' },
      data: {
        status: end.status,
        content: end.content,
        error: end.error,
        finishReason: end.finishReason,
        ...(end.model !== null ? { model: end.model } : {}),
        ...(end.metadata !== null ? { metadata: end.metadata } : {}),
        ...(end.promptTokens !== null ? { promptTokens: end.promptTokens } : {}),
        completionTokens: end.completionTokens,
        leaseExpiresAt: null,
      },
    });
    return count;
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
 * Hands out the next `count` message positions of the user's conversation (a new one when no id
 * is given) in one statement. Updating the row takes its lock, so concurrent writers queue up
 * here and never share a seq; it also bumps updatedAt. Returns the conversation after the update.
 */
async function reserveSeqs(tx: Prisma.TransactionClient, userId: string, conversationId: string | null, count: number): Promise<Conversation> {
  if (conversationId === null) return tx.conversation.create({ data: { userId, lastSeq: count } });
  try {
    return await tx.conversation.update({ where: { id: conversationId, userId }, data: { lastSeq: { increment: count } } });
  } catch (error) {
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2025') throw notFound('conversation');
    throw error;
  }
}
