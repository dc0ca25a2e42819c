// sendMessage's writes: the user's message and a STREAMING assistant message, saved together and
// idempotent per (user, clientMessageId).
import { z } from 'zod';
import type { Viewer } from '../auth.ts';
import type { HistoryCache } from '../cache/history-cache.ts';
import { badInput, DuplicateKeyError, notFound } from '../errors.ts';
import { countTokens } from '../llm/tokens.ts';
import { isStorableText, parseInput, storableText } from '../services/input.ts';
import type { EventPublisher } from '../services/live-events.ts';
import { maxTokensSchema, modelNameSchema, temperatureSchema, type ModelSettings, type UserConfigService } from '../services/user-config.ts';
import { resolveParent } from '../services/parents.ts';
import type { FoundExchange, NewSavedExchange, ParentChoice, SavedExchange, Store } from '../store/store.ts';

export interface SendOptions {
  leaseMs: number;
  maxContentChars: number;
}

/** A saved exchange; `settings` is there when this call created it and its reply is still to run. */
export type Sent = { exchange: SavedExchange; settings?: ModelSettings };

/** The generation options every operation that starts a reply takes. */
export function generationFields() {
  return {
    clientMessageId: storableText().min(1, 'must not be empty').max(128, 'must be at most 128 characters').nullish(),
    presetId: storableText().nullish(),
    model: modelNameSchema.nullish(),
    temperature: temperatureSchema.nullish(),
    maxTokens: maxTokensSchema.nullish(),
  };
}

/** What a user's message says, checked as sendMessage checks it. */
export function contentSchema(maxContentChars: number) {
  return storableText()
    .refine((s) => s.trim().length > 0, 'must not be empty')
    .refine((s) => s.length <= maxContentChars, `must be at most ${maxContentChars} characters`);
}

/** An exchange a clientMessageId already made, as the answer to a retry; a key spent on a message without a reply cannot answer one. */
export function replayedExchange(previous: FoundExchange): SavedExchange {
  const { assistantMessage } = previous;
  if (!assistantMessage) throw badInput('input.clientMessageId', 'was used for a message without a reply');
  return { ...previous, assistantMessage };
}

/** A parsed request for a new exchange; `parentId` undefined answers the active tip. */
export interface ExchangeRequest {
  conversationId: string | null;
  parentId: ParentChoice;
  content: string;
  clientMessageId?: string | null;
  presetId?: string | null;
  model?: string | null;
  temperature?: number | null;
  maxTokens?: number | null;
}

export class ExchangeSender {
  private readonly schema;

  constructor(
    private readonly store: Store,
    private readonly userConfigs: UserConfigService,
    private readonly cache: HistoryCache,
    private readonly options: SendOptions,
    private readonly events: EventPublisher,
  ) {
    this.schema = z.object({
      conversationId: z.string().nullish(),
      parentId: z.string().nullish(),
      content: contentSchema(options.maxContentChars),
      ...generationFields(),
    });
  }

  async send(viewer: Viewer, rawInput: unknown): Promise<Sent> {
    const input = parseInput(this.schema, rawInput, 'input');
    if (input.conversationId != null && !isStorableText(input.conversationId)) throw notFound('conversation');
    const { conversationId, parentId } = await resolveParent(this.store, viewer, input.conversationId ?? null, input.parentId ?? undefined);
    return this.exchange(viewer, { ...input, conversationId, parentId });
  }

  /** Saves the exchange, or answers with the one its clientMessageId made. */
  async exchange(viewer: Viewer, input: ExchangeRequest): Promise<Sent> {
    if (input.clientMessageId) {
      const previous = await this.store.findExchange(viewer.userId, input.clientMessageId);
      if (previous) return { exchange: replayedExchange(previous) };
    }
    // Read beside the history-cache write mark: only the assistant row needs the settings.
    const settingsRead = this.userConfigs.modelSettings(viewer, input);
    settingsRead.catch(() => {});
    const save = () =>
      this.store.saveExchange({
        userId: viewer.userId,
        conversationId: input.conversationId,
        parentId: input.parentId,
        content: input.content,
        tokenCount: countTokens(input.content),
        clientMessageId: input.clientMessageId ?? null,
        settings: settingsRead,
        leaseMs: this.options.leaseMs,
      });
    let exchange: NewSavedExchange;
    try {
      exchange = input.conversationId !== null ? await this.cache.writing(viewer.userId, input.conversationId, save) : await save();
    } catch (error) {
      // A concurrent retry with the same clientMessageId won the insert: answer with its messages.
      if (input.clientMessageId && error instanceof DuplicateKeyError) {
        const previous = await this.store.findExchange(viewer.userId, input.clientMessageId);
        if (previous) return { exchange: replayedExchange(previous) };
      }
      throw error;
    }
    this.published(viewer, exchange);
    return { exchange, settings: await settingsRead };
  }

  /** A new exchange's events: both messages, and the conversation when it is new. */
  private published(viewer: Viewer, exchange: NewSavedExchange): void {
    const conversationId = exchange.conversation.id;
    if (exchange.viewerSeq !== null) this.events.viewer(viewer.userId, { seq: exchange.viewerSeq, kind: 'CONVERSATION_CREATED', conversationId });
    if (exchange.conversationSeq === null) return;
    this.events.conversation(conversationId, [
      { seq: exchange.conversationSeq - 1, kind: 'MESSAGE_ADDED', messageId: exchange.userMessage.id },
      { seq: exchange.conversationSeq, kind: 'MESSAGE_ADDED', messageId: exchange.assistantMessage.id },
    ]);
  }
}
