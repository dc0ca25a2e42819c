import { z } from 'zod';
import type { Viewer } from '../auth.ts';
import type { HistoryCache } from '../cache/history-cache.ts';
import { notFound } from '../errors.ts';
import type { Conversation, ConversationQuery } from '../store/rows.ts';
import type { ConversationChanges, ConversationKey, Store } from '../store/store.ts';
import { isStorableText, parseInput, storableText } from './input.ts';
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
  ) {}

  /** The viewer's conversation, or null for a missing or foreign id. */
  async find(viewer: Viewer, id: string, query: ConversationQuery = {}): Promise<Conversation | null> {
    if (!isStorableText(id)) return null;
    return this.store.findConversation(viewer.userId, id, query);
  }

  async list(viewer: Viewer, args: PageArgs & { archived?: boolean | null }, query: ConversationQuery = {}): Promise<Connection<Conversation>> {
    const window = pageWindow(args, conversationCursor);
    const rows = await this.store.listConversations(viewer.userId, args.archived, window, query);
    return toConnection(rows, window, (c) => ({ updatedAt: c.updatedAt, id: c.id }), conversationCursor);
  }

  create(viewer: Viewer, rawInput: unknown, query: ConversationQuery = {}): Promise<Conversation> {
    const input = parseInput(createInput, rawInput, 'input');
    return this.store.createConversation(viewer.userId, input?.title || null, query);
  }

  async update(viewer: Viewer, rawInput: unknown, query: ConversationQuery = {}): Promise<Conversation> {
    const input = parseInput(updateInput, rawInput, 'input');
    if (!isStorableText(input.id)) throw notFound('conversation');
    const changes: ConversationChanges = {};
    if (input.title !== undefined) changes.title = input.title || null;
    if (input.archived != null) changes.archived = input.archived;
    const conversation = await this.store.updateConversation(viewer.userId, input.id, changes, query);
    if (!conversation) throw notFound('conversation');
    return conversation;
  }

  /** Deletes the conversation and, by cascade, its messages. */
  async delete(viewer: Viewer, id: string): Promise<string> {
    if (!isStorableText(id)) throw notFound('conversation');
    const deleted = await this.cache.writing(viewer.userId, id, () => this.store.deleteConversation(viewer.userId, id));
    if (!deleted) throw notFound('conversation');
    return id;
  }
}
