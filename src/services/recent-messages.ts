import type { HistoryCache } from '../cache/history-cache.ts';
import { recentMessages } from '../cache/history-cache.ts';
import type { Message } from '../store/rows.ts';
import type { Store } from '../store/store.ts';

/** The newest `cache.size` messages of the user's conversation through the history cache; null when it is not theirs. */
export function cachedRecentMessages(store: Store, cache: HistoryCache, userId: string, conversationId: string): Promise<Message[] | null> {
  return recentMessages(cache, userId, conversationId, () => store.recentMessages(userId, conversationId, cache.size));
}
