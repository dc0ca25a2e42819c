// The one way a reply ends: seal its stream log (one winner, on any instance), save the message,
// then append the terminal event. Whoever loses the seal changes nothing.
import { randomUUID } from 'node:crypto';
import type { HistoryCache } from '../cache/history-cache.ts';
import { clamp, clampCodePoints, isTokenCount, MAX_FINISH_REASON_CHARS, MAX_MODEL_CHARS } from '../llm/model-output.ts';
import { countTokens } from '../llm/tokens.ts';
import type { Logger } from '../logger.ts';
import type { FinalStatus } from '../model.ts';
import type { JsonObject } from '../store/rows.ts';
import type { EventPublisher } from '../services/live-events.ts';
import type { ReplyEnd, SavedReplyEnd, Store } from '../store/store.ts';
import type { SealResult, StreamBroker, StreamEvent } from '../streaming/events.ts';

/** How a reply ended, as its ender knows it. */
export interface Outcome {
  status: FinalStatus;
  error?: string | null;
  finishReason?: string | null;
  model?: string;
  promptTokens?: number | null;
  completionTokens?: number | null;
}

/** What the generating instance knows of its own reply, so that it need not read it back. */
export interface LocalReply {
  content: string;
  userId: string;
  conversationId: string;
  metadata?: JsonObject;
}

export class ReplyFinalizer {
  constructor(
    private readonly store: Store,
    private readonly cache: HistoryCache,
    private readonly broker: StreamBroker,
    private readonly logger: Logger,
    private readonly events: EventPublisher,
  ) {}

  /**
   * Ends a reply: the first caller to seal its stream log saves the message and appends the
   * terminal event; everybody else returns false. Content is what was published, so it always
   * equals the concatenated deltas subscribers saw.
   */
  async finalize(messageId: string, outcome: Outcome, local?: LocalReply): Promise<boolean> {
    const token = randomUUID();
    let sealed: SealResult | undefined;
    try {
      sealed = await this.broker.seal(messageId, token);
      if (!sealed.won) return false;
    } catch (error) {
      // Redis is away: the database's conditional update alone decides who ends the reply.
      this.logger.warn({ err: error, messageId }, 'could not seal the stream log; saving the reply without it');
    }
    const logged = sealed && sealed.events.length > 0 ? sealed.events.map((e) => (typeof e.delta === 'string' ? e.delta : '')).join('') : undefined;
    // The generating instance knows whose message it is; anyone else reads it.
    const owner = local ?? (await this.store.replyOwner(messageId));
    const terminal = async (events: StreamEvent[]) => {
      if (!sealed) return;
      for (const event of events) {
        await this.broker.append(messageId, event, token).catch((error) => this.logger.warn({ err: error, messageId }, 'could not publish the end of a reply'));
      }
    };
    // Deleted with its conversation while it streamed: still end its subscribers' streams.
    const deleted = () => terminal([{ seq: sealed?.events.length ?? 0, delta: '', done: true, status: outcome.status, error: 'the message was deleted' }]);
    if (!owner) {
      await deleted();
      return true;
    }
    // What subscribers saw; else what this instance generated; else the last checkpoint. The log
    // is Redis's, read back after who knows what: it is made safe like a model's output.
    const content = logged === undefined ? owner.content : clamp(logged, MAX_SAVED_CHARS);
    let end = safeEnd({
      status: outcome.status,
      content,
      error: outcome.error ?? null,
      finishReason: outcome.finishReason ?? null,
      model: outcome.model ?? null,
      metadata: local?.metadata ?? null,
      promptTokens: outcome.promptTokens ?? null,
      completionTokens: outcome.completionTokens ?? countTokens(content),
    });
    const save = (reply: ReplyEnd) => this.cache.writing(owner.userId, owner.conversationId, () => this.store.saveReplyEnd(messageId, owner.conversationId, reply));
    let result: SavedReplyEnd;
    try {
      result = await save(end).catch(async (error: unknown) => {
        // No reply may stay STREAMING because its end cannot be saved: end it FAILED, with its
        // text cut short and nothing else that could be the cause.
        this.logger.error({ err: error, messageId }, 'could not save the end of a reply; ending it FAILED with its text cut short');
        end = failedEnd(end);
        return save(end);
      });
    } catch (error) {
      // Not even that (the database is away): whoever tries next must be able to seal.
      if (sealed) await this.broker.release(messageId, token).catch(() => {});
      throw error;
    }
    const { count } = result;
    if (result.eventSeq !== null) this.events.conversation(owner.conversationId, [{ seq: result.eventSeq, kind: 'MESSAGE_UPDATED', messageId }]);
    if (count === 0 && !sealed) return false;
    const saved = count === 1 ? { status: end.status, error: end.error } : await this.store.replyStateById(messageId);
    if (!saved && local) {
      await deleted();
      return true;
    }
    const events: StreamEvent[] = [];
    let seq = sealed?.events.length ?? 0;
    if (seq === 0 && end.content) {
      // The log was lost (a restart without Redis): the saved text becomes one event, so the
      // replay still adds up to the saved content.
      events.push({ seq: seq++, delta: end.content, done: false, status: 'STREAMING' });
    }
    events.push({ seq, delta: '', done: true, status: saved?.status ?? outcome.status, error: saved?.error ?? null });
    await terminal(events);
    // Sealed, but the row had ended already (by the database alone, during a broker outage): the
    // log now ends as the row did, and whoever saved that end was the winner, not this caller.
    return count === 1;
  }
}

/** Longest text saved: MySQL's MEDIUMTEXT holds 16 MiB, at most 3 bytes per UTF-16 unit. */
const MAX_SAVED_CHARS = 5_000_000;
/** Longest text kept when a reply's end could not be saved. */
const FAILED_CONTENT_CHARS = 16_384;

/** Every field within what each database stores. */
function safeEnd(end: ReplyEnd): ReplyEnd {
  const count = (n: number | null) => (isTokenCount(n) ? n : null);
  return {
    ...end,
    error: end.error === null ? null : clamp(end.error, 1000),
    finishReason: end.finishReason === null ? null : clampCodePoints(end.finishReason, MAX_FINISH_REASON_CHARS),
    model: end.model === null ? null : clampCodePoints(end.model, MAX_MODEL_CHARS),
    promptTokens: count(end.promptTokens),
    completionTokens: count(end.completionTokens) ?? 0,
  };
}

function failedEnd(end: ReplyEnd): ReplyEnd {
  return {
    status: 'FAILED',
    content: clamp(end.content, FAILED_CONTENT_CHARS),
    error: 'the reply could not be saved in full',
    finishReason: null,
    model: end.model,
    metadata: null,
    promptTokens: null,
    completionTokens: 0,
  };
}
