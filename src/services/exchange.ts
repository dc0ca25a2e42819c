// Saves what sendMessage writes: positions for two messages in the conversation, the user's
// message and a STREAMING assistant message, all or nothing.
import { randomBytes } from 'node:crypto';
import type { Db, DirectSql } from '../db/client.ts';
import { Prisma, type Conversation, type Message } from '../generated/prisma/sqlite/client.ts';
import { notFound } from '../graphql/errors.ts';
import { reserveSeqs } from './sequence.ts';

export interface Exchange {
  userId: string;
  /** null: a new conversation. */
  conversationId: string | null;
  content: string;
  tokenCount: number;
  clientMessageId: string | null;
  /** The assistant message's model and preset, read while the first writes go out. */
  settings: Promise<{ model: string; presetId: string | null }>;
  leaseMs: number;
}

export interface SavedExchange {
  conversation: Conversation;
  userMessage: Message;
  assistantMessage: Message;
}

/** `sql` is there on PostgreSQL only. */
export function saveExchange(db: Db, sql: DirectSql | null, exchange: Exchange): Promise<SavedExchange> {
  return sql ? saveInOneStatement(sql, exchange) : saveInTransaction(db, exchange);
}

export async function saveInTransaction(db: Db, exchange: Exchange): Promise<SavedExchange> {
  // Before the transaction: on SQLite every query shares one connection, so a read waited for
  // inside the transaction would wait for the transaction itself.
  const settings = await exchange.settings;
  return db.$transaction(async (tx) => {
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
}

/**
 * PostgreSQL: the update and both inserts as one statement (data-modifying CTEs), so one round
 * trip and no interactive transaction: sendMessage's hottest path. An interactive Prisma
 * transaction took about four times as long. Columns Prisma would fill are filled here the same
 * way; a test compares the rows with what the Prisma path writes.
 */
export async function saveInOneStatement(sql: DirectSql, exchange: Exchange): Promise<SavedExchange> {
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
  const { rows } = await sql.query<Pick<Conversation, 'title' | 'archived' | 'lastSeq' | 'createdAt'>>(name, text, values).catch((error: unknown) => {
    throw asUniqueViolation(error);
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

/** A unique violation from PostgreSQL, reported the way Prisma reports one from a model query. */
function asUniqueViolation(error: unknown): unknown {
  if ((error as { code?: unknown } | null)?.code === '23505') {
    const { message, constraint } = error as { message: string; constraint?: string };
    return new Prisma.PrismaClientKnownRequestError(message, { code: 'P2002', clientVersion: Prisma.prismaVersion.client, meta: { constraint } });
  }
  return error;
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
