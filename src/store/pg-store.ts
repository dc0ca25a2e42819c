// PostgreSQL: the statements every reply runs (settings read, the exchange's save, the reply's end,
// the title, the subscriber's ownership check) go to the shared pg pool as named statements, and
// message pages come from one window query. Everything else is the Prisma store's. A contract
// test holds both adapters to the same rows.
import { DuplicateKeyError, notFound } from '../errors.ts';
import { Prisma } from '../generated/prisma/sqlite/client.ts';
import type { Db, DirectSql } from './dialect.ts';
import { uuid7 } from './ids.ts';
import { PrismaStore } from './prisma-store.ts';
import { MESSAGE_COLUMNS, type Conversation, type Message, type UserConfigRow } from './rows.ts';
import type { EventSeqs, MessagePages, MessagePagesRequest, NewExchange, NewSavedExchange, ReplyEnd, ReplyState, SavedReplyEnd } from './store.ts';

const { empty, raw, sql: fragment } = Prisma;

// Read whatever the operation selects: what identifies, pages and owns a row.
const KEY_COLUMNS = new Set(['id', 'conversationId', 'userId', 'seq']);

export class PgStore extends PrismaStore {
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

  /**
   * One statement. Absent model, metadata and prompt tokens keep what the row holds, as in the
   * Prisma update. The conversation's row is locked first (`lock`), as every other write of the
   * conversation does; the message's update comes next and re-checks its status once it holds
   * the row, so of two enders racing without the stream seal (Redis away) only one saves; the seq
   * moves only with a saved end (`c` reads `m`).
   */
  override async saveReplyEnd(messageId: string, conversationId: string, end: ReplyEnd): Promise<SavedReplyEnd> {
    const { rows } = await this.sql.query<{ eventSeq: number | null; count: number }>(
      'parley_end_reply',
      `WITH lock AS (
         SELECT 1 FROM "Conversation" WHERE "id" = $11 FOR NO KEY UPDATE
       ), m AS (
         UPDATE "Message" SET "status" = $2::"MessageStatus", "content" = $3, "error" = $4, "finishReason" = $5,
           "model" = COALESCE($6, "model"), "metadata" = COALESCE($7::jsonb, "metadata"), "promptTokens" = COALESCE($8, "promptTokens"),
           "completionTokens" = $9, "leaseExpiresAt" = NULL, "updatedAt" = $10
         WHERE "id" = $1 AND "conversationId" = $11 AND "status" = 'STREAMING' AND EXISTS (SELECT 1 FROM lock)
         RETURNING 1
       ), c AS (
         UPDATE "Conversation" SET "lastEventSeq" = "lastEventSeq" + 1
         WHERE "id" = $11 AND EXISTS (SELECT 1 FROM m)
         RETURNING "lastEventSeq"
       )
       SELECT (SELECT "lastEventSeq" FROM c) AS "eventSeq", (SELECT count(*)::int FROM m) AS "count"`,
      [messageId, end.status, end.content, end.error, end.finishReason, end.model, end.metadata === null ? null : JSON.stringify(end.metadata), end.promptTokens, end.completionTokens, new Date(), conversationId],
    );
    const row = rows[0]!;
    return { count: row.count, eventSeq: row.eventSeq };
  }

  /** One statement: the title, the conversation's event seq and the owner's viewer event seq. */
  override async setTitleIfUntitled(conversationId: string, title: string): Promise<({ userId: string } & EventSeqs) | null> {
    const { rows } = await this.sql.query<{ userId: string; conversationSeq: number; viewerSeq: number }>(
      'parley_set_title',
      `WITH c AS (
         UPDATE "Conversation" SET "title" = $2, "updatedAt" = $3, "lastEventSeq" = "lastEventSeq" + 1
         WHERE "id" = $1 AND "title" IS NULL
         RETURNING "userId", "lastEventSeq"
       ), v AS (
         ${VIEWER_SEQ_FROM_C}
       )
       SELECT c."userId", c."lastEventSeq" AS "conversationSeq", v."lastEventSeq" AS "viewerSeq" FROM c, v`,
      [conversationId, title, new Date()],
    );
    return rows[0] ?? null;
  }

  /**
   * The update and both inserts as one statement (data-modifying CTEs): one round trip and no
   * interactive transaction. Columns Prisma would fill are filled here the same way. An answer
   * under another message than the tip moves the active path: the Prisma store's transaction.
   *
   * The tip the user's message answers is read from the conversation row as `old` locks it
   * (FOR NO KEY UPDATE hands back the newest committed version, even one committed while this
   * statement waited); `c` updates the row only after that (it reads `old`). The statement's
   * snapshot cannot be asked instead: it misses messages committed while the lock was waited for.
   */
  override async saveExchange(exchange: NewExchange): Promise<NewSavedExchange> {
    if (exchange.parentId !== undefined) return super.saveExchange(exchange);
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
        ? [
            'parley_send_new',
            `old AS (SELECT NULL::text AS "tip"), c AS (
               INSERT INTO "Conversation" ("id", "userId", "lastSeq", "lastEventSeq", "currentMessageId", "pathLength", "createdAt", "updatedAt") VALUES ($1, $2, 2, 1, $8, 2, $3, $3)`,
          ]
        : [
            'parley_send',
            `old AS (
               SELECT "currentMessageId" AS "tip" FROM "Conversation" WHERE "id" = $1 AND "userId" = $2 FOR NO KEY UPDATE
             ), c AS (
               UPDATE "Conversation" SET "lastSeq" = "lastSeq" + 2, "lastEventSeq" = "lastEventSeq" + 2, "currentMessageId" = $8, "pathLength" = "pathLength" + 2, "updatedAt" = $3
               WHERE "id" = (SELECT $1::text FROM old) AND "userId" = $2`,
          ];
    // A new conversation is also a viewer event.
    const viewerStep = exchange.conversationId === null ? `, v AS (${VIEWER_SEQ_FROM_C})` : '';
    const viewerSeq = exchange.conversationId === null ? '(SELECT "lastEventSeq" FROM v)' : 'NULL::int';
    const text = `
    WITH ${conversationStep}
      RETURNING "userId", "title", "archived", "lastSeq", "lastEventSeq", "pathLength", "createdAt"
    )${viewerStep}, u AS (
      INSERT INTO "Message" ("id", "conversationId", "userId", "seq", "parentId", "depth", "role", "content", "tokenCount", "status", "clientMessageId", "createdAt", "updatedAt")
      SELECT $4, $1, $2, c."lastSeq" - 1, (SELECT "tip" FROM old), c."pathLength" - 2, 'USER'::"Role", $5, $6::int, 'COMPLETE'::"MessageStatus", $7::varchar, $3, $3 FROM c
    ), a AS (
      INSERT INTO "Message" ("id", "conversationId", "userId", "seq", "parentId", "depth", "role", "content", "status", "model", "leaseExpiresAt", "metadata", "createdAt", "updatedAt")
      SELECT $8, $1, $2, c."lastSeq", $4, c."pathLength" - 1, 'ASSISTANT'::"Role", '', 'STREAMING'::"MessageStatus", $9, $10, $11::jsonb, $3, $3 FROM c
    )
    SELECT "title", "archived", "lastSeq", "lastEventSeq", "pathLength", "createdAt", (SELECT "tip" FROM old) AS "tip", ${viewerSeq} AS "viewerSeq" FROM c`;
    const values = [conversationId, userId, now, userMessageId, content, tokenCount, clientMessageId, assistantMessageId, settings.model, leaseExpiresAt, JSON.stringify(metadata)];
    const { rows } = await this.sql.query<Pick<Conversation, 'title' | 'archived' | 'lastSeq' | 'lastEventSeq' | 'pathLength' | 'createdAt'> & { tip: string | null; viewerSeq: number | null }>(name, text, values).catch((error: unknown) => {
      throw (error as { code?: unknown } | null)?.code === '23505' ? new DuplicateKeyError('clientMessageId', { cause: error }) : error;
    });
    const row = rows[0];
    if (!row) throw notFound('conversation');
    const { viewerSeq: savedViewerSeq, tip, ...conversation } = row;
    const message = { conversationId, userId, metadata: null, model: null, finishReason: null, promptTokens: null, completionTokens: null, error: null, leaseExpiresAt: null, tokenCount: null, clientMessageId: null, onPath: true, createdAt: now, updatedAt: now };
    return {
      conversation: { id: conversationId, userId, ...conversation, currentMessageId: assistantMessageId, updatedAt: now },
      userMessage: { ...message, id: userMessageId, seq: conversation.lastSeq - 1, parentId: tip, depth: conversation.pathLength - 2, role: 'USER', content, tokenCount, status: 'COMPLETE', clientMessageId },
      assistantMessage: {
        ...message,
        id: assistantMessageId,
        seq: conversation.lastSeq,
        parentId: userMessageId,
        depth: conversation.pathLength - 1,
        role: 'ASSISTANT',
        content: '',
        status: 'STREAMING',
        model: settings.model,
        leaseExpiresAt,
        metadata,
      },
      conversationSeq: conversation.lastEventSeq,
      viewerSeq: savedViewerSeq,
    };
  }

  /**
   * Every conversation's page in one statement, each through the (conversationId, onPath, seq)
   * index (a LATERAL subquery per listed id), with only the columns asked for. Raw rows come back
   * with the same types as Prisma's model queries here (the contract test checks).
   */
  override async messagePages(request: MessagePagesRequest): Promise<MessagePages> {
    const { userId, conversationIds: ids, window, columns: read } = request;
    if (ids.length === 1) return super.messagePages(request);
    const order = raw(window.fromEnd ? 'DESC' : 'ASC');
    // Names from the model's own list only, in its order.
    const columns = raw(MESSAGE_COLUMNS.filter((c) => !read || read.has(c) || KEY_COLUMNS.has(c)).map((c) => `page."${c}"`).join(', '));
    const range = [window.after !== undefined ? fragment` AND "seq" > ${window.after}` : empty, window.before !== undefined ? fragment` AND "seq" < ${window.before}` : empty];
    const rows = await this.db.$queryRaw<Message[]>`
      SELECT ${columns} FROM unnest(${ids}::text[]) AS listed(id)
      CROSS JOIN LATERAL (
        SELECT * FROM "Message"
        WHERE "conversationId" = listed.id AND "userId" = ${userId} AND "onPath" = TRUE${range[0]}${range[1]}
        ORDER BY "seq" ${order} LIMIT ${window.limit + 1}
      ) AS page
      ORDER BY page."seq" ${order}`;
    return { rows };
  }
}

/** The next viewer event seq of the owner of the conversation row `c` returns, as a CTE's body. */
const VIEWER_SEQ_FROM_C = `INSERT INTO "ViewerState" ("userId", "lastEventSeq") SELECT "userId", 0 FROM c
         ON CONFLICT ("userId") DO UPDATE SET "lastEventSeq" = "ViewerState"."lastEventSeq" + 1
         RETURNING "lastEventSeq"`;
