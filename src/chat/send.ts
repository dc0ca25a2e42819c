// sendMessage's writes: the user's message and a STREAMING assistant message, saved together and
// idempotent per (user, clientMessageId).
import { z } from 'zod';
import type { Viewer } from '../auth.ts';
import type { HistoryCache } from '../cache/history-cache.ts';
import { DuplicateKeyError, notFound } from '../errors.ts';
import { countTokens } from '../llm/tokens.ts';
import { isStorableText, parseInput, storableText } from '../services/input.ts';
import type { EventPublisher } from '../services/live-events.ts';
import { maxTokensSchema, modelNameSchema, temperatureSchema, type ModelSettings, type UserConfigService } from '../services/user-config.ts';
import type { NewSavedExchange, SavedExchange, Store } from '../store/store.ts';

export interface SendOptions {
  leaseMs: number;
  maxContentChars: number;
}

/** A saved exchange; `settings` is there when this call created it and its reply is still to run. */
export type Sent = { exchange: SavedExchange; settings?: ModelSettings };

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
      content: storableText()
        .refine((s) => s.trim().length > 0, 'must not be empty')
        .refine((s) => s.length <= options.maxContentChars, `must be at most ${options.maxContentChars} characters`),
      clientMessageId: storableText().min(1, 'must not be empty').max(128, 'must be at most 128 characters').nullish(),
      presetId: storableText().nullish(),
      model: modelNameSchema.nullish(),
      temperature: temperatureSchema.nullish(),
      maxTokens: maxTokensSchema.nullish(),
    });
  }

  async send(viewer: Viewer, rawInput: unknown): Promise<Sent> {
    const input = parseInput(this.schema, rawInput, 'input');
    if (input.conversationId != null && !isStorableText(input.conversationId)) throw notFound('conversation');
    if (input.clientMessageId) {
      const previous = await this.store.findExchange(viewer.userId, input.clientMessageId);
      if (previous) return { exchange: previous };
    }
    // Read beside the history-cache write mark: only the assistant row needs the settings.
    const settingsRead = this.userConfigs.modelSettings(viewer, input);
    settingsRead.catch(() => {});
    const save = () =>
      this.store.saveExchange({
        userId: viewer.userId,
        conversationId: input.conversationId ?? null,
        content: input.content,
        tokenCount: countTokens(input.content),
        clientMessageId: input.clientMessageId ?? null,
        settings: settingsRead,
        leaseMs: this.options.leaseMs,
      });
    let exchange: NewSavedExchange;
    try {
      exchange = input.conversationId != null ? await this.cache.writing(viewer.userId, input.conversationId, save) : await save();
    } catch (error) {
      // A concurrent retry with the same clientMessageId won the insert: answer with its messages.
      if (input.clientMessageId && error instanceof DuplicateKeyError) {
        const previous = await this.store.findExchange(viewer.userId, input.clientMessageId);
        if (previous) return { exchange: previous };
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
