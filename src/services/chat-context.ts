// What a model sees for one reply: the system prompt, the newest messages of the conversation
// that fit the context budget, then the new message.
import type { Viewer } from '../auth.ts';
import type { HistoryCache } from '../cache/history-cache.ts';
import type { ChatTurn } from '../llm/model-client.ts';
import type { MessageStatus } from '../model.ts';
import type { HistoryRow, Store } from '../store/store.ts';
import { countMessageTokens, countTokens } from '../llm/tokens.ts';
import { cachedRecentMessages } from './recent-messages.ts';

const PAGE = 50;

export interface ModelContext {
  turns: ChatTurn[];
  promptTokens: number;
  newMessageTokens: number;
  includedMessages: number;
  /** Newest first, at most this many ids are kept; omittedMessages counts them all. */
  omittedMessageIds: string[];
  omittedMessages: number;
}

const MAX_OMITTED_IDS = 100;

const INCLUDED: readonly MessageStatus[] = ['COMPLETE', 'STOPPED', 'INTERRUPTED'];
const INCLUDED_STATUSES = new Set<MessageStatus>(INCLUDED);

export async function buildContext(
  store: Store,
  cache: HistoryCache,
  viewer: Viewer,
  conversationId: string | null,
  newMessage: { content: string; tokenCount?: number | null },
  settings: { systemPrompt: string | null; contextTokens: number },
  /** Only messages before this position count (the new message and its reply are already saved). */
  newSeq?: number,
): Promise<ModelContext> {
  const newContent = newMessage.content;
  const newMessageTokens = newMessage.tokenCount ?? countTokens(newContent);
  const system: ChatTurn[] = settings.systemPrompt ? [{ role: 'system', content: settings.systemPrompt }] : [];
  let used = countMessageTokens({ content: newContent, tokenCount: newMessageTokens }) + system.reduce((n, t) => n + countMessageTokens(t), 0);
  const history: ChatTurn[] = [];
  const omittedMessageIds: string[] = [];
  let omittedMessages = 0;
  let full = false;

  const consider = (message: HistoryRow) => {
    // Failed and unfinished replies are not part of the conversation a model should see.
    if (!INCLUDED_STATUSES.has(message.status)) return;
    if (!full) {
      const tokens = countMessageTokens({ content: message.content, tokenCount: message.tokenCount ?? message.completionTokens });
      if (used + tokens <= settings.contextTokens) {
        used += tokens;
        history.push({ role: message.role === 'SYSTEM' ? 'system' : message.role === 'USER' ? 'user' : 'assistant', content: message.content });
        return;
      }
      full = true;
    }
    omittedMessages++;
    if (omittedMessageIds.length < MAX_OMITTED_IDS) omittedMessageIds.push(message.id);
  };

  // The newest messages come from the history cache; older ones, if the budget reaches them, from the database.
  const newest = conversationId ? await cachedRecentMessages(store, cache, viewer.userId, conversationId) : null;
  if (conversationId && newest) {
    for (const message of [...newest].reverse()) if (newSeq === undefined || message.seq < newSeq) consider(message);
    let beforeSeq = newest[0]?.seq;
    let more = newest.length === cache.size;
    while (more && beforeSeq !== undefined) {
      if (full) {
        // Past the budget only the count is still needed.
        omittedMessages += await store.countMessagesBefore(viewer.userId, conversationId, beforeSeq, INCLUDED);
        break;
      }
      const page = await store.messagesBefore(viewer.userId, conversationId, beforeSeq, PAGE);
      for (const message of page) consider(message);
      more = page.length === PAGE;
      beforeSeq = page.at(-1)?.seq;
    }
  }
  return {
    turns: [...system, ...history.reverse(), { role: 'user', content: newContent }],
    promptTokens: used,
    newMessageTokens,
    includedMessages: history.length,
    omittedMessageIds,
    omittedMessages,
  };
}
