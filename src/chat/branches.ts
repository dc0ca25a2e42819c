// The operations on a conversation's tree: a new reply to the same message (regenerate), a new
// version of a message (editMessage), another branch made active (switchBranch), a copy of a path
// (forkConversation) and a subtree deleted (deleteMessage). Each runs with the history cache closed
// around its write, and publishes its events once the write has committed.
import { z } from 'zod';
import type { Viewer } from '../auth.ts';
import type { HistoryCache } from '../cache/history-cache.ts';
import { badInput, DuplicateKeyError, notFound } from '../errors.ts';
import { countTokens } from '../llm/tokens.ts';
import { MAX_TITLE_LENGTH } from '../services/conversations.ts';
import { isStorableText, parseInput, storableText } from '../services/input.ts';
import type { EventPublisher } from '../services/live-events.ts';
import type { UserConfigService } from '../services/user-config.ts';
import type { Conversation, Message } from '../store/rows.ts';
import type { FoundExchange, NewSavedExchange, Store } from '../store/store.ts';
import { contentSchema, generationFields, replayedExchange, type ExchangeSender, type Sent } from './send.ts';

export interface BranchOptions {
  leaseMs: number;
  maxContentChars: number;
}

/** What editMessage made: a new exchange to generate, or one message with nothing to generate. */
export type Edited = { sent: Sent } | { message: FoundExchange };

export interface DeletedMessages {
  deletedIds: string[];
  conversation: Conversation;
}

export class BranchOperations {
  private readonly regenerateSchema;
  private readonly editSchema;
  private readonly forkSchema = z.object({
    messageId: z.string(),
    title: storableText().trim().max(MAX_TITLE_LENGTH, `must be at most ${MAX_TITLE_LENGTH} characters`).nullish(),
  });

  constructor(
    private readonly store: Store,
    private readonly userConfigs: UserConfigService,
    private readonly cache: HistoryCache,
    private readonly sender: ExchangeSender,
    private readonly events: EventPublisher,
    private readonly options: BranchOptions,
    /** Stops a generating reply (stopGeneration). */
    private readonly stop: (viewer: Viewer, messageId: string) => Promise<unknown>,
  ) {
    this.regenerateSchema = z.object({ messageId: z.string(), ...generationFields() });
    this.editSchema = z.object({ messageId: z.string(), content: contentSchema(options.maxContentChars), ...generationFields() });
  }

  /** A new STREAMING reply to the user message that `messageId` (an assistant message) answers. */
  async regenerate(viewer: Viewer, rawInput: unknown): Promise<Sent> {
    const input = parseInput(this.regenerateSchema, rawInput, 'input');
    const replayed = await this.replayed(viewer, input.clientMessageId);
    if (replayed) return { exchange: replayedExchange(replayed) };
    const reply = await this.ownMessage(viewer, input.messageId);
    if (reply.role !== 'ASSISTANT') throw badInput('input.messageId', 'must be an assistant message');
    const prompted = reply.parentId === null ? null : await this.store.findMessage(viewer.userId, reply.parentId);
    if (prompted?.role !== 'USER') throw badInput('input.messageId', 'must answer a user message');
    const settingsRead = this.userConfigs.modelSettings(viewer, input);
    settingsRead.catch(() => {});
    const save = () =>
      this.store.saveReply({
        userId: viewer.userId,
        conversationId: reply.conversationId,
        parentId: prompted.id,
        clientMessageId: input.clientMessageId ?? null,
        settings: settingsRead,
        leaseMs: this.options.leaseMs,
      });
    let exchange: NewSavedExchange;
    try {
      exchange = await this.cache.writing(viewer.userId, reply.conversationId, save);
    } catch (error) {
      const previous = await this.afterDuplicate(viewer, input.clientMessageId, error);
      return { exchange: replayedExchange(previous) };
    }
    if (exchange.conversationSeq !== null) this.events.conversation(reply.conversationId, [{ seq: exchange.conversationSeq, kind: 'MESSAGE_ADDED', messageId: exchange.assistantMessage.id }]);
    return { exchange, settings: await settingsRead };
  }

  /**
   * A sibling of the message with new content. A user message gets a fresh reply (an exchange,
   * as sendMessage makes); a system or assistant message is a new version and nothing runs.
   */
  async edit(viewer: Viewer, rawInput: unknown): Promise<Edited> {
    const input = parseInput(this.editSchema, rawInput, 'input');
    const original = await this.ownMessage(viewer, input.messageId);
    if (original.role === 'USER') {
      return { sent: await this.sender.exchange(viewer, { ...input, conversationId: original.conversationId, parentId: original.parentId }) };
    }
    const replayed = await this.replayed(viewer, input.clientMessageId);
    if (replayed) return { message: replayed };
    const append = () =>
      this.store.appendMessage(viewer.userId, original.conversationId, {
        role: original.role,
        content: input.content,
        tokenCount: countTokens(input.content),
        parentId: original.parentId,
        clientMessageId: input.clientMessageId ?? null,
      });
    let added: Awaited<ReturnType<typeof append>>;
    try {
      added = await this.cache.writing(viewer.userId, original.conversationId, append);
    } catch (error) {
      return { message: await this.afterDuplicate(viewer, input.clientMessageId, error) };
    }
    if (added.conversationSeq !== null) this.events.conversation(original.conversationId, [{ seq: added.conversationSeq, kind: 'MESSAGE_ADDED', messageId: added.message.id }]);
    const conversation = await this.store.findConversation(viewer.userId, original.conversationId);
    if (!conversation) throw notFound('message');
    return { message: { conversation, userMessage: added.message, assistantMessage: null } };
  }

  /** Makes the path through the message active; the tip becomes the newest message below it. */
  async switchBranch(viewer: Viewer, messageId: string): Promise<Conversation> {
    const message = await this.ownMessage(viewer, messageId);
    const switched = await this.cache.writing(viewer.userId, message.conversationId, () => this.store.switchBranch(viewer.userId, message.id));
    if (!switched) throw notFound('message');
    this.events.conversation(message.conversationId, [{ seq: switched.conversationSeq, kind: 'BRANCH_SWITCHED' }]);
    return switched.conversation;
  }

  /** A new conversation holding a copy of the path from the root to the message. */
  async fork(viewer: Viewer, rawInput: unknown): Promise<Conversation> {
    const input = parseInput(this.forkSchema, rawInput, 'input');
    if (!isStorableText(input.messageId)) throw notFound('message');
    const forked = await this.store.forkPath(viewer.userId, input.messageId, input.title === undefined ? undefined : input.title || null);
    if (!forked) throw notFound('message');
    this.events.viewer(viewer.userId, { seq: forked.viewerSeq, kind: 'CONVERSATION_CREATED', conversationId: forked.conversation.id });
    return forked.conversation;
  }

  /** Deletes the message and everything below it, stopping what of it is still generating first. */
  async deleteMessage(viewer: Viewer, messageId: string): Promise<DeletedMessages> {
    const message = await this.ownMessage(viewer, messageId);
    const generating = await this.store.generatingMessages(viewer.userId, message.conversationId, { select: { id: true, seq: true } });
    const below = generating.filter((m) => m.seq >= message.seq);
    if (below.length > 0) {
      const subtree = new Set(await this.store.subtreeIds(viewer.userId, message.id));
      await Promise.all(below.filter((m) => subtree.has(m.id)).map((m) => this.stop(viewer, m.id)));
    }
    const deleted = await this.cache.writing(viewer.userId, message.conversationId, () => this.store.deleteSubtree(viewer.userId, message.id));
    if (!deleted) throw notFound('message');
    this.events.conversation(message.conversationId, [{ seq: deleted.conversationSeq, kind: 'MESSAGE_DELETED', messageId: message.id }]);
    return { deletedIds: deleted.deletedIds, conversation: deleted.conversation };
  }

  /** The viewer's message; a missing and a foreign one are the same NOT_FOUND. */
  private async ownMessage(viewer: Viewer, messageId: string): Promise<Message> {
    const message = isStorableText(messageId) ? await this.store.findMessage(viewer.userId, messageId) : null;
    if (!message) throw notFound('message');
    return message;
  }

  private async replayed(viewer: Viewer, clientMessageId: string | null | undefined): Promise<FoundExchange | null> {
    return clientMessageId ? this.store.findExchange(viewer.userId, clientMessageId) : null;
  }

  /** A concurrent retry with the same clientMessageId won the insert: its result is the answer. */
  private async afterDuplicate(viewer: Viewer, clientMessageId: string | null | undefined, error: unknown): Promise<FoundExchange> {
    if (clientMessageId && error instanceof DuplicateKeyError) {
      const previous = await this.store.findExchange(viewer.userId, clientMessageId);
      if (previous) return previous;
    }
    throw error;
  }
}
