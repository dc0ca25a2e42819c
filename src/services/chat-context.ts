// What a model sees for one reply: the system prompt, the newest messages of the conversation
// that fit the context budget, then the new message.
import type { Viewer } from '../auth.ts';
import type { Db } from '../db/client.ts';
import type { ChatTurn } from '../llm/model-client.ts';
import { countMessageTokens, countTokens } from '../llm/tokens.ts';

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

export async function buildContext(
  db: Db,
  viewer: Viewer,
  conversationId: string | null,
  newContent: string,
  settings: { systemPrompt: string | null; contextTokens: number },
): Promise<ModelContext> {
  const newMessageTokens = countTokens(newContent);
  const system: ChatTurn[] = settings.systemPrompt ? [{ role: 'system', content: settings.systemPrompt }] : [];
  let used = countMessageTokens({ content: newContent, tokenCount: newMessageTokens }) + system.reduce((n, t) => n + countMessageTokens(t), 0);
  const history: ChatTurn[] = [];
  const omittedMessageIds: string[] = [];
  let omittedMessages = 0;
  let full = false;
  let beforeSeq: number | undefined;
  while (conversationId) {
    const page = await db.message.findMany({
      where: {
        conversationId,
        userId: viewer.userId,
        seq: beforeSeq === undefined ? undefined : { lt: beforeSeq },
        // Failed and unfinished replies are not part of the conversation a model should see.
        status: { in: ['COMPLETE', 'STOPPED', 'INTERRUPTED'] },
      },
      select: { id: true, seq: true, role: true, content: true, tokenCount: true, completionTokens: true },
      orderBy: { seq: 'desc' },
      take: PAGE,
    });
    for (const message of page) {
      if (full) {
        omittedMessages++;
        if (omittedMessageIds.length < MAX_OMITTED_IDS) omittedMessageIds.push(message.id);
        continue;
      }
      const tokens = countMessageTokens({ content: message.content, tokenCount: message.tokenCount ?? message.completionTokens });
      if (used + tokens > settings.contextTokens) {
        full = true;
        omittedMessages++;
        omittedMessageIds.push(message.id);
        continue;
      }
      used += tokens;
      history.push({ role: message.role === 'SYSTEM' ? 'system' : message.role === 'USER' ? 'user' : 'assistant', content: message.content });
    }
    if (page.length < PAGE) break;
    beforeSeq = page.at(-1)!.seq;
    // Past the budget only the count is still needed.
    if (full) {
      omittedMessages += await db.message.count({ where: { conversationId, userId: viewer.userId, seq: { lt: beforeSeq }, status: { in: ['COMPLETE', 'STOPPED', 'INTERRUPTED'] } } });
      break;
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
