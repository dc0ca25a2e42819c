import { z } from 'zod';
import type { Viewer } from '../auth.ts';
import type { HistoryCache } from '../cache/history-cache.ts';
import { notFound } from '../errors.ts';
import type { Conversation, ConversationQuery } from '../store/rows.ts';
import type { ConversationChanges, ConversationKey, EventSeqs, Store } from '../store/store.ts';
import { isStorableText, parseInput, storableText } from './input.ts';
import type { EventPublisher } from './live-events.ts';
import { cursorCodec, pageWindow, toConnection, type Connection, type PageArgs } from './pagination.ts';

export const MAX_TITLE_LENGTH = 200;

export type { ConversationQuery };

const title = storableText().trim().max(MAX_TITLE_LENGTH, `must be at most ${MAX_TITLE_LENGTH} characters`).nullish();
const createInput = z.object({ title }).nullish();
const updateInput = z.object({ id: z.string(), title, archived: z.boolean().nullish() });

// 9999-12-31T23:59:59.999Z, the last time MySQL's DATETIME holds: past it a cursor is made up.
const LAST_STORABLE_TIME = 253_402_300_799_999;

const conversationCursor = cursorCodec<ConversationKey>(
  'conversation',
  (key) => `${key.updatedAt.getTime()}:${key.id}`,
  (text) => {
    const match = /^(\d{1,15}):(.+)$/s.exec(text);
    if (!match || Number(match[1]) > LAST_STORABLE_TIME || !isStorableText(match[2]!)) return undefined;
    return { updatedAt: new Date(Number(match[1])), id: match[2]! };
  },
);

export class ConversationService {
  constructor(
    private readonly store: Store,
    private readonly cache: HistoryCache,
    private readonly events: EventPublisher,
  ) {}

  /** The viewer's conversation, or null for a missing or foreign id. */
  async find(viewer: Viewer, id: string, query: ConversationQuery = {}): Promise<Conversation | null> {
    if (!isStorableText(id)) return null;
    return this.store.findConversation(viewer.userId, id, query);
  }

  /**
   * A page of the viewer's list. With `withViewerEventSeq`, the viewer's newest viewer event seq is
   * read first: every change up to it is in the page, so viewerEvents after it misses nothing.
   */
  async list(
    viewer: Viewer,
    args: PageArgs & { archived?: boolean | null },
    query: ConversationQuery = {},
    { withViewerEventSeq = false } = {},
  ): Promise<Connection<Conversation> & { viewerEventSeq?: number }> {
    const window = pageWindow(args, conversationCursor);
    const viewerEventSeq = withViewerEventSeq ? await this.store.viewerEventSeq(viewer.userId) : undefined;
    const rows = await this.store.listConversations(viewer.userId, args.archived, window, query);
    return { ...toConnection(rows, window, (c) => ({ updatedAt: c.updatedAt, id: c.id }), conversationCursor), viewerEventSeq };
  }

  async create(viewer: Viewer, rawInput: unknown, query: ConversationQuery = {}): Promise<Conversation> {
    const input = parseInput(createInput, rawInput, 'input');
    const { conversation, viewerSeq } = await this.store.createConversation(viewer.userId, input?.title || null, query);
    this.events.viewer(viewer.userId, { seq: viewerSeq, kind: 'CONVERSATION_CREATED', conversationId: conversation.id });
    return conversation;
  }

  async update(viewer: Viewer, rawInput: unknown, query: ConversationQuery = {}): Promise<Conversation> {
    const input = parseInput(updateInput, rawInput, 'input');
    if (!isStorableText(input.id)) throw notFound('conversation');
    const changes: ConversationChanges = {};
    if (input.title !== undefined) changes.title = input.title || null;
    if (input.archived != null) changes.archived = input.archived;
    const updated = await this.store.updateConversation(viewer.userId, input.id, changes, query);
    if (!updated) throw notFound('conversation');
    this.changed(viewer.userId, input.id, updated);
    return updated.conversation;
  }

  /** Deletes the conversation and, by cascade, its messages. */
  async delete(viewer: Viewer, id: string): Promise<string> {
    if (!isStorableText(id)) throw notFound('conversation');
    const deleted = await this.cache.writing(viewer.userId, id, () => this.store.deleteConversation(viewer.userId, id));
    if (!deleted) throw notFound('conversation');
    if (deleted.conversationSeq !== null) this.events.conversation(id, [{ seq: deleted.conversationSeq, kind: 'DELETED' }]);
    if (deleted.viewerSeq !== null) this.events.viewer(viewer.userId, { seq: deleted.viewerSeq, kind: 'CONVERSATION_DELETED', conversationId: id });
    return id;
  }

  /** The events of a change to a conversation's own fields (title, archived), on both feeds. */
  private changed(userId: string, conversationId: string, seqs: EventSeqs): void {
    if (seqs.conversationSeq !== null) this.events.conversation(conversationId, [{ seq: seqs.conversationSeq, kind: 'CONVERSATION_UPDATED' }]);
    if (seqs.viewerSeq !== null) this.events.viewer(userId, { seq: seqs.viewerSeq, kind: 'CONVERSATION_UPDATED', conversationId });
  }
}
