// A reply being generated on this instance: the model call, its deltas published in order behind
// each other, and its end through the finalizer, whatever happens.
import type { HistoryCache } from '../cache/history-cache.ts';
import { ModelError, streamCompletion, type ModelClientOptions } from '../llm/model-client.ts';
import { truncate } from '../llm/model-output.ts';
import { countTokens } from '../llm/tokens.ts';
import type { Logger } from '../logger.ts';
import { buildContext } from '../services/chat-context.ts';
import type { ModelSettings } from '../services/user-config.ts';
import type { JsonObject, Message } from '../store/rows.ts';
import type { SavedExchange, Store } from '../store/store.ts';
import type { StreamBroker, StreamEvent } from '../streaming/events.ts';
import type { ReplyAdmission } from './admission.ts';
import type { ReplyFinalizer, Outcome } from './finalize.ts';
import type { FlushScheduler } from './flush-scheduler.ts';
import type { TitleWriter } from './titles.ts';

export interface Generation {
  controller: AbortController;
  userId: string;
  conversationId: string;
  /** Text published so far, kept for the database checkpoint. */
  content: string;
  checkpointed: number;
  done: Promise<void>;
  /** The reply's metadata once the prompt is built, saved when the reply ends. */
  metadata?: JsonObject;
}

export interface GenerationOptions {
  maxEvents: number;
  maxReplyChars: number;
  model: ModelClientOptions;
}

/** The finish reason of a reply cut at the server's size limit. */
export const MAX_REPLY_CHARS_REASON = 'max_reply_chars';

export interface GenerationDeps {
  store: Store;
  cache: HistoryCache;
  broker: StreamBroker;
  finalizer: ReplyFinalizer;
  flushes: FlushScheduler;
  titles: TitleWriter;
  logger: Logger;
  admission: ReplyAdmission;
}

/** The replies this instance generates, by message id. */
export class Generations {
  readonly running = new Map<string, Generation>();

  constructor(
    private readonly deps: GenerationDeps,
    private readonly options: GenerationOptions,
  ) {}

  /** Runs the model in the background; the reply ends through the finalizer, whatever happens. */
  start({ conversation, userMessage, assistantMessage: message }: SavedExchange, settings: ModelSettings): void {
    const controller = new AbortController();
    const generation: Generation = { controller, userId: message.userId, conversationId: message.conversationId, content: '', checkpointed: 0, done: Promise.resolve() };
    this.running.set(message.id, generation);
    const { logger, titles } = this.deps;
    // Started after this turn of the event loop, so the mutation's response goes out first.
    generation.done = new Promise((resolve) => setImmediate(resolve))
      .then(() => this.run(message, userMessage, settings, generation))
      .catch((error) => {
        logger.error({ err: error, messageId: message.id }, 'generation failed unexpectedly');
        return undefined;
      })
      .finally(() => this.running.delete(message.id))
      .then((status) => (status === 'COMPLETE' && conversation.title === null ? titles.name(conversation.id, userMessage.content, settings) : undefined))
      .catch((error) => logger.warn({ err: error, conversationId: conversation.id }, 'could not title the conversation'));
  }

  /** Aborts the local model call of a reply, if this instance runs it. */
  abort(messageId: string, reason: 'stopped' | 'shutdown'): void {
    this.running.get(messageId)?.controller.abort(reason);
  }

  /** Ends every local generation as INTERRUPTED, saving what was published. */
  async shutdown(): Promise<void> {
    const running = [...this.running.values()];
    for (const generation of running) generation.controller.abort('shutdown');
    await Promise.all(running.map((g) => g.done));
  }

  /**
   * The prompt for the reply, built here rather than in sendMessage so that the mutation answers
   * as soon as both messages are saved. The reply's metadata records what was left out; it is
   * saved with the reply's end (one write per reply instead of two).
   */
  private async prompt(message: Message, userMessage: Message, settings: ModelSettings, generation: Generation) {
    const viewer = { userId: message.userId };
    // Position 1 is the first message of its conversation: there is no history to read.
    const historyFrom = userMessage.seq > 1 ? message.conversationId : null;
    const context = await buildContext(this.deps.store, this.deps.cache, viewer, historyFrom, userMessage, settings, userMessage.seq);
    generation.metadata = {
      ...(message.metadata as JsonObject),
      context: {
        includedMessages: context.includedMessages,
        omittedMessages: context.omittedMessages,
        omittedMessageIds: context.omittedMessageIds,
        promptTokens: context.promptTokens,
      },
    };
    return context;
  }

  /** Returns how the reply ended, or undefined when another party ended it. */
  private async run(message: Message, userMessage: Message, settings: ModelSettings, generation: Generation): Promise<Outcome['status'] | undefined> {
    const { broker, cache, store, flushes, finalizer, logger } = this.deps;
    const { controller } = generation;
    let seq = 0;
    let buffer = '';
    let lost = false;
    let ended = false;
    let publishFailed = false;
    let publishing = Promise.resolve();
    // The last event slot is the terminal's: past this, text waits for the end.
    const lastDeltaSeq = this.options.maxEvents - 2;

    const publish = () => {
      flushes.cancel(publish);
      if (!buffer || seq > lastDeltaSeq || (seq === lastDeltaSeq && !controller.signal.aborted && !ended)) return;
      const event: StreamEvent = { seq: seq++, delta: buffer, done: false, status: 'STREAMING' };
      generation.content += buffer;
      buffer = '';
      // Never awaited by the read loop: appends queue up in order behind each other.
      publishing = publishing.then(async () => {
        if (lost) return;
        const result = await broker.append(message.id, event).catch((error) => {
          // Subscribers fall back to the saved message; generating goes on.
          if (!publishFailed) logger.warn({ err: error, messageId: message.id }, 'could not publish stream events; subscribers will get the saved reply');
          publishFailed = true;
          return 'ok' as const;
        });
        if (result !== 'ok') {
          lost = true;
          controller.abort('lost');
        }
      });
    };

    let outcome: Outcome;
    let promptTokens: number | null = null;
    let release = () => {};
    try {
      // A reply waits here, saved and leased, while the instance runs as many as it admits.
      const admitted = await this.deps.admission.admit(message.userId, controller.signal);
      release = admitted.release;
      // Ended meanwhile by someone whose stop did not reach this instance (or deleted): no model call.
      if (admitted.waited && (await store.replyStateById(message.id))?.status !== 'STREAMING') return undefined;
      const context = await this.prompt(message, userMessage, settings, generation);
      promptTokens = context.promptTokens;
      controller.signal.throwIfAborted();
      const stream = streamCompletion(
        { baseUrl: settings.baseUrl, custom: settings.custom, apiKey: settings.apiKey, model: settings.model, messages: context.turns, maxTokens: settings.maxTokens, temperature: settings.temperature },
        controller.signal,
        this.options.model,
      );
      let first = true;
      for (;;) {
        const next = await stream.next();
        if (next.done) {
          ended = true;
          publish();
          const content = generation.content;
          outcome = {
            status: 'COMPLETE',
            finishReason: next.value.finishReason,
            model: next.value.model,
            promptTokens: next.value.usage?.promptTokens ?? promptTokens,
            completionTokens: next.value.usage?.completionTokens ?? countTokens(content),
          };
          break;
        }
        const room = this.options.maxReplyChars - generation.content.length - buffer.length;
        if (next.value.length > room) {
          // Past the size limit: keep what fits, end the model call, and complete the reply.
          buffer += truncate(next.value, room);
          ended = true;
          publish();
          await stream.return({ finishReason: MAX_REPLY_CHARS_REASON, model: settings.model });
          outcome = { status: 'COMPLETE', finishReason: MAX_REPLY_CHARS_REASON, model: settings.model, promptTokens, completionTokens: countTokens(generation.content) };
          break;
        }
        buffer += next.value;
        if (first) {
          first = false;
          publish();
        } else {
          flushes.schedule(publish);
        }
      }
    } catch (error) {
      release();
      flushes.cancel(publish);
      const reason = controller.signal.reason;
      if (controller.signal.aborted && (reason === 'stopped' || reason === 'lost')) {
        await publishing;
        // Another party ended the reply: its metadata still records the prompt. This is part of that
        // end, not a change of its own: the end's one MESSAGE_UPDATED stands for both.
        if (generation.metadata) {
          const metadata = generation.metadata;
          await cache
            .writing(message.userId, message.conversationId, () => store.saveReplyPrompt(message.id, metadata, promptTokens))
            .catch((error) => logger.warn({ err: error, messageId: message.id }, 'could not save the metadata of a stopped reply'));
        }
        return undefined;
      }
      ended = true;
      publish();
      if (controller.signal.aborted && reason === 'shutdown') {
        outcome = { status: 'INTERRUPTED', error: 'the server shut down while this reply was being generated' };
      } else if (error instanceof ModelError) {
        logger.warn({ messageId: message.id, custom: settings.custom, detail: error.detail }, 'the model call failed');
        outcome = { status: 'FAILED', error: error.message };
      } else {
        logger.error({ err: error, messageId: message.id }, 'model call failed');
        outcome = { status: 'FAILED', error: 'the reply could not be generated' };
      }
      outcome.completionTokens = countTokens(generation.content);
      outcome.promptTokens = promptTokens;
    } finally {
      release();
    }
    await publishing;
    if (lost) return undefined;
    const local = { content: generation.content, userId: generation.userId, conversationId: generation.conversationId, metadata: generation.metadata };
    return (await finalizer.finalize(message.id, outcome, local)) ? outcome.status : undefined;
  }
}
