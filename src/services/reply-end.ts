// The writes that end a reply and name its conversation. On PostgreSQL they skip Prisma: every
// reply runs them, and a named statement through the shared pool costs a third of the CPU.
import type { Db, DirectSql } from '../db/client.ts';
import type { Prisma } from '../generated/prisma/sqlite/client.ts';
import type { MessageStatus } from '../streaming/events.ts';

/** What a reply's end writes; null model, metadata and prompt tokens leave the saved ones. */
export interface ReplyEnd {
  status: Exclude<MessageStatus, 'STREAMING'>;
  content: string;
  error: string | null;
  finishReason: string | null;
  model: string | null;
  metadata: Prisma.InputJsonObject | null;
  promptTokens: number | null;
  completionTokens: number;
}

/** Saves how a reply ended, unless it already ended; returns how many rows it changed. */
export async function saveReplyEnd(db: Db, sql: DirectSql | null, messageId: string, end: ReplyEnd): Promise<number> {
  if (sql) {
    // Absent model, metadata and prompt tokens keep what the row holds, as in the Prisma update.
    const { rowCount } = await sql.query(
      'parley_end_reply',
      `UPDATE "Message" SET "status" = $2::"MessageStatus", "content" = $3, "error" = $4, "finishReason" = $5,
         "model" = COALESCE($6, "model"), "metadata" = COALESCE($7::jsonb, "metadata"), "promptTokens" = COALESCE($8, "promptTokens"),
         "completionTokens" = $9, "leaseExpiresAt" = NULL, "updatedAt" = $10
       WHERE "id" = $1 AND "status" = 'STREAMING'`,
      [messageId, end.status, end.content, end.error, end.finishReason, end.model, end.metadata === null ? null : JSON.stringify(end.metadata), end.promptTokens, end.completionTokens, new Date()],
    );
    return rowCount;
  }
  const { count } = await db.message.updateMany({
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

/** Names a conversation unless it already has a title. */
export async function setTitleIfUntitled(db: Db, sql: DirectSql | null, conversationId: string, title: string): Promise<void> {
  if (sql) {
    await sql.query('parley_set_title', `UPDATE "Conversation" SET "title" = $2, "updatedAt" = $3 WHERE "id" = $1 AND "title" IS NULL`, [conversationId, title, new Date()]);
    return;
  }
  await db.conversation.updateMany({ where: { id: conversationId, title: null }, data: { title } });
}
