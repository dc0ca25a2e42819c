import type { HistoryCache } from '../cache/history-cache.ts';
import { recentMessages } from '../cache/history-cache.ts';
import type { Db } from '../db/client.ts';
import type { Message } from '../generated/prisma/sqlite/client.ts';

/** The newest `take` messages of the user's conversation, oldest first; null when it is not theirs. */
export async function loadRecentMessages(db: Db, userId: string, conversationId: string, take: number): Promise<Message[] | null> {
  const rows = await db.message.findMany({ where: { conversationId, userId }, orderBy: { seq: 'desc' }, take });
  // No rows: an empty conversation of the user's, or none of theirs at all.
  if (rows.length === 0 && !(await db.conversation.findFirst({ where: { id: conversationId, userId }, select: { id: true } }))) return null;
  return rows.reverse();
}

/** The newest `cache.size` messages through the history cache. */
export function cachedRecentMessages(db: Db, cache: HistoryCache, userId: string, conversationId: string): Promise<Message[] | null> {
  return recentMessages(cache, userId, conversationId, () => loadRecentMessages(db, userId, conversationId, cache.size));
}
