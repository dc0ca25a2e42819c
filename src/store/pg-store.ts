// PostgreSQL: the statements every reply runs (settings read, the exchange's save, the reply's end,
// the title, the subscriber's ownership check) go to the shared pg pool as named statements, and
// message pages come from one window query. Everything else is the Prisma store's. A contract
// test holds both adapters to the same rows.
import { randomBytes } from 'node:crypto';
import { DuplicateKeyError, notFound } from '../errors.ts';
import { Prisma } from '../generated/prisma/sqlite/client.ts';
import type { Db, DirectSql } from './dialect.ts';
import { PrismaStore } from './prisma-store.ts';
import { MESSAGE_COLUMNS, type Conversation, type Message, type UserConfigRow } from './rows.ts';
import type { MessagePages, MessagePagesRequest, NewExchange, PageWindow, ReplyEnd, ReplyState, SavedExchange } from './store.ts';

const { empty, join, raw, sql: fragment } = Prisma;

// Read whatever the operation selects: what identifies, pages and owns a row.
const KEY_COLUMNS = new Set(['id', 'conversationId', 'userId', 'seq']);

export class PgStore extends PrismaStore {
  override readonly pagesCarryTotals = true;

  constructor(
    db: Db,
    private readonly sql: DirectSql,
  ) {
    super(db, 'postgresql');
  }

  override async userConfig(userId: string): Promise<UserConfigRow | null> {
    const { rows } = await this.sql.query<UserConfigRow>(
      'parley_user_config',
      `SELECT "userId", "presetId", "model", "baseUrl", "apiKeyEncrypted", "maxTokens", "temperature", "systemPrompt", "contextTokens", "createdAt", "updatedAt" FROM "UserConfig" WHERE "userId" = $1`,
      [userId],
    );
    return rows[0] ?? null;
  }

  override async replyState(userId: string, messageId: string): Promise<ReplyState | null> {
    const { rows } = await this.sql.query<ReplyState>('parley_follow_message', `SELECT "status"::text AS "status", "error", "content" FROM "Message" WHERE "id" = $1 AND "userId" = $2`, [messageId, userId]);
    return rows[0] ?? null;
  }

  /** Absent model, metadata and prompt tokens keep what the row holds, as in the Prisma update. */
  override async saveReplyEnd(messageId: string, end: ReplyEnd): Promise<number> {
    const { rowCount } = await this.sql.query(
      'parley_end_reply',
      `UPDATE "Message" SET "status" = $2::"MessageStatus", "content" = $3, "error" = $4, "finishReason" = $5,
         "model" = COALESCE($6, "model"), "metadata" = COALESCE($7::jsonb, "metadata"), "promptTokens" = COALESCE($8, "promptTokens"),
         "completionTokens" = $9, "leaseExpiresAt" = NULL, "updatedAt" = $10
       WHERE "id" = $1 AND "status" = 'STREAMING'`,
      [messageId, end.status, end.content, end.error, end.finishReason, end.model, end.metadata === null ? null : JSON.stringify(end.metadata), end.promptTokens, end.completionTokens, new Date()],
    );
    return rowCount;
  }

  override async setTitleIfUntitled(conversationId: string, title: string): Promise<void> {
    await this.sql.query('parley_set_title', `UPDATE "Conversation" SET "title" = $2, "updatedAt" = $3 WHERE "id" = $1 AND "title" IS NULL`, [conversationId, title, new Date()]);
  }

  /**
   * The update and both inserts as one statement (data-modifying CTEs): one round trip and no
   * interactive transaction. Columns Prisma would fill are filled here the same way.
   */
  override async saveExchange(exchange: NewExchange): Promise<SavedExchange> {
    const { userId, content, tokenCount, clientMessageId } = exchange;
    const settings = await exchange.settings;
    const now = new Date();
    const leaseExpiresAt = new Date(now.getTime() + exchange.leaseMs);
    const metadata = { presetId: settings.presetId };
    const conversationId = exchange.conversationId ?? uuid7();
    const [userMessageId, assistantMessageId] = [uuid7(), uuid7()];
    // The conversation's row: a new one, or the user's existing one with two more positions (its
    // row lock queues concurrent senders).
    const [name, conversationStep] =
      exchange.conversationId === null
        ? ['parley_send_new', `INSERT INTO "Conversation" ("id", "userId", "lastSeq", "createdAt", "updatedAt") VALUES ($1, $2, 2, $3, $3)`]
        : ['parley_send', `UPDATE "Conversation" SET "lastSeq" = "lastSeq" + 2, "updatedAt" = $3 WHERE "id" = $1 AND "userId" = $2`];
    const text = `
    WITH c AS (
      ${conversationStep}
      RETURNING "title", "archived", "lastSeq", "createdAt"
    ), u AS (
      INSERT INTO "Message" ("id", "conversationId", "userId", "seq", "role", "content", "tokenCount", "status", "clientMessageId", "createdAt", "updatedAt")
      SELECT $4, $1, $2, c."lastSeq" - 1, 'USER'::"Role", $5, $6::int, 'COMPLETE'::"MessageStatus", $7::varchar, $3, $3 FROM c
    ), a AS (
      INSERT INTO "Message" ("id", "conversationId", "userId", "seq", "role", "content", "status", "model", "leaseExpiresAt", "metadata", "createdAt", "updatedAt")
      SELECT $8, $1, $2, c."lastSeq", 'ASSISTANT'::"Role", '', 'STREAMING'::"MessageStatus", $9, $10, $11::jsonb, $3, $3 FROM c
    )
    SELECT "title", "archived", "lastSeq", "createdAt" FROM c`;
    const values = [conversationId, userId, now, userMessageId, content, tokenCount, clientMessageId, assistantMessageId, settings.model, leaseExpiresAt, JSON.stringify(metadata)];
    const { rows } = await this.sql.query<Pick<Conversation, 'title' | 'archived' | 'lastSeq' | 'createdAt'>>(name, text, values).catch((error: unknown) => {
      throw (error as { code?: unknown } | null)?.code === '23505' ? new DuplicateKeyError('clientMessageId', { cause: error }) : error;
    });
    const conversation = rows[0];
    if (!conversation) throw notFound('conversation');
    const message = { conversationId, userId, metadata: null, model: null, finishReason: null, promptTokens: null, completionTokens: null, error: null, leaseExpiresAt: null, tokenCount: null, clientMessageId: null, createdAt: now, updatedAt: now };
    return {
      conversation: { id: conversationId, userId, ...conversation, updatedAt: now },
      userMessage: { ...message, id: userMessageId, seq: conversation.lastSeq - 1, role: 'USER', content, tokenCount, status: 'COMPLETE', clientMessageId },
      assistantMessage: { ...message, id: assistantMessageId, seq: conversation.lastSeq, role: 'ASSISTANT', content: '', status: 'STREAMING', model: settings.model, leaseExpiresAt, metadata },
    };
  }

  /**
   * The window query returns the rows themselves, instead of ids to read in a second query, with
   * only the columns asked for; with totals, each row also carries its conversation's count. Raw
   * rows come back with the same types as Prisma's model queries here (the contract test checks).
   */
  override async messagePages(request: MessagePagesRequest): Promise<MessagePages> {
    const { userId, conversationIds: ids, window, columns: read } = request;
    // Counts come with the rows only when the window covers whole conversations (no cursor).
    const withTotals = request.withTotals === true && window.after === undefined && window.before === undefined;
    if (ids.length === 1 && !withTotals) return super.messagePages(request);
    const order = window.fromEnd ? 'desc' : 'asc';
    const perConversation = window.limit + 1;
    // Names from the model's own list only, in its order.
    const columns = raw(MESSAGE_COLUMNS.filter((c) => !read || read.has(c) || KEY_COLUMNS.has(c)).map((c) => `"${c}"`).join(', '));
    const total = withTotals ? fragment`, (COUNT(*) OVER (PARTITION BY "conversationId"))::int AS total` : empty;
    const rows = await this.db.$queryRaw<(Message & { total?: number })[]>`
      SELECT ${columns}${withTotals ? raw(', total') : empty} FROM (
        SELECT ${columns}, ROW_NUMBER() OVER (PARTITION BY "conversationId" ORDER BY "seq" ${raw(order)}) AS rn${total}
        FROM "Message"
        WHERE ${join(this.pageConditions(userId, ids, window as PageWindow<number>), ' AND ')}
      ) ranked WHERE rn <= ${perConversation} ORDER BY "seq" ${raw(order)}`;
    if (!withTotals) return { rows };
    const totals = new Map<string, number>(ids.map((id) => [id, 0]));
    return {
      rows: rows.map(({ total, ...message }) => {
        totals.set(message.conversationId, total!);
        return message;
      }),
      totals,
    };
  }
}

/** A version 7 UUID (RFC 9562): millisecond timestamp first, like Prisma's uuid(7) default. */
export function uuid7(): string {
  const bytes = randomBytes(16);
  bytes.writeUIntBE(Date.now(), 0, 6);
  bytes[6] = (bytes[6]! & 0x0f) | 0x70;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
