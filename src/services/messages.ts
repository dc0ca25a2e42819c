import { z } from 'zod';
import type { Viewer } from '../auth.ts';
import type { HistoryCache } from '../cache/history-cache.ts';
import { notFound } from '../errors.ts';
import { Role } from '../model.ts';
import type { JsonValue, Message, MessageQuery } from '../store/rows.ts';
import type { Store } from '../store/store.ts';
import { isStorableText, parseInput, storableJson, storableText } from './input.ts';
import type { EventPublisher } from './live-events.ts';
import { resolveParent } from './parents.ts';
import { cachedRecentMessages } from './recent-messages.ts';

export const MAX_HISTORY_LIMIT = 100;
export const MAX_METADATA_BYTES = 64 * 1024;
// MariaDB refuses JSON with 32 arrays and objects inside each other.
export const MAX_METADATA_DEPTH = 31;

export type { MessageQuery };

export interface ChatMessage {
  role: Role;
  content: string;
}

export interface MessageLimits {
  maxContentChars: number;
}

function addInput(limits: MessageLimits) {
  return z.object({
    conversationId: z.string().nullish(),
    parentId: z.string().nullish(),
    role: z.enum(Role),
    content: storableText()
      .refine((s) => s.trim().length > 0, 'must not be empty')
      .refine((s) => s.length <= limits.maxContentChars, `must be at most ${limits.maxContentChars} characters`),
    metadata: storableJson({ maxDepth: MAX_METADATA_DEPTH, maxChars: MAX_METADATA_BYTES }).nullish(),
    tokenCount: z.number().int().min(0, 'must not be negative').nullish(),
  });
}

const historyLimit = z.number().int().min(1, `must be between 1 and ${MAX_HISTORY_LIMIT}`).max(MAX_HISTORY_LIMIT, `must be between 1 and ${MAX_HISTORY_LIMIT}`);

export class MessageService {
  private readonly addSchema: ReturnType<typeof addInput>;

  constructor(
    private readonly store: Store,
    limits: MessageLimits,
    private readonly cache: HistoryCache,
    private readonly events: EventPublisher,
  ) {
    this.addSchema = addInput(limits);
  }

  /**
   * Appends a message, creating the conversation when no id is given. The conversation row is
   * updated first: that takes its lock, hands out the next `seq` and bumps `updatedAt`.
   */
  async add(viewer: Viewer, rawInput: unknown, query: MessageQuery = {}): Promise<Message> {
    const input = parseInput(this.addSchema, rawInput, 'input');
    if (input.conversationId != null && !isStorableText(input.conversationId)) throw notFound('conversation');
    const { conversationId, parentId } = await resolveParent(this.store, viewer, input.conversationId ?? null, input.parentId ?? undefined);
    const append = () =>
      this.store.appendMessage(
        viewer.userId,
        conversationId,
        { role: input.role, content: input.content, tokenCount: input.tokenCount ?? null, metadata: (input.metadata ?? undefined) as JsonValue | undefined, parentId },
        query,
      );
    // A new conversation has no cache entry to keep in step.
    const added = conversationId !== null ? await this.cache.writing(viewer.userId, conversationId, append) : await append();
    const { message } = added;
    if (added.viewerSeq !== null) this.events.viewer(viewer.userId, { seq: added.viewerSeq, kind: 'CONVERSATION_CREATED', conversationId: message.conversationId });
    if (added.conversationSeq !== null) this.events.conversation(message.conversationId, [{ seq: added.conversationSeq, kind: 'MESSAGE_ADDED', messageId: message.id }]);
    return message;
  }

  /** Deletes every message of the viewer's conversation; returns how many. */
  async clear(viewer: Viewer, conversationId: string): Promise<number> {
    if (!isStorableText(conversationId)) throw notFound('conversation');
    const cleared = await this.cache.writing(viewer.userId, conversationId, () => this.store.clearMessages(viewer.userId, conversationId));
    if (cleared === null) throw notFound('conversation');
    this.events.conversation(conversationId, [{ seq: cleared.conversationSeq, kind: 'CLEARED' }]);
    return cleared.count;
  }

  /** The viewer's message by id, carrying what `query` asks for; null for a missing or foreign one. */
  async find(viewer: Viewer, id: string, query: MessageQuery = {}): Promise<Message | null> {
    if (!isStorableText(id)) return null;
    return this.store.findMessage(viewer.userId, id, query);
  }

  /** The newest `limit` messages of the viewer's conversation, oldest first. */
  async history(viewer: Viewer, conversationId: string, limit: number): Promise<ChatMessage[]> {
    parseInput(historyLimit, limit, 'limit');
    if (!isStorableText(conversationId)) throw notFound('conversation');
    const newest =
      limit <= this.cache.size
        ? await cachedRecentMessages(this.store, this.cache, viewer.userId, conversationId)
        : await this.store.recentMessages(viewer.userId, conversationId, limit);
    if (!newest) throw notFound('conversation');
    return chatMessages(newest, limit);
  }
}

// A cached entry's messages are the same frozen array on every hit: its chat view is built once
// (one object per message, whatever the limits asked), and each read takes a slice of it.
const chatViews = new WeakMap<readonly Message[], readonly ChatMessage[]>();

/** The last `limit` messages as role and content; the objects are shared (frozen) between readers of the same rows. */
function chatMessages(messages: readonly Message[], limit: number): ChatMessage[] {
  // Only a frozen array is known never to change under its view.
  if (!Object.isFrozen(messages)) return view(messages.slice(-limit));
  let shared = chatViews.get(messages);
  if (!shared) chatViews.set(messages, (shared = Object.freeze(view(messages))));
  return (limit >= shared.length ? shared : shared.slice(-limit)) as ChatMessage[];
}

function view(rows: readonly Message[]): ChatMessage[] {
  return rows.map(({ role, content }) => Object.freeze({ role, content }));
}
