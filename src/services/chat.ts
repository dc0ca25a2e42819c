// sendMessage, the background generation, stopGeneration, and recovery of replies whose instance
// died. Every way a reply can end goes through `finalize`: seal the stream log (one winner, on
// any instance), save the message, then append the terminal event.
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Viewer } from '../auth.ts';
import type { Db, DirectSql } from '../db/client.ts';
import { Prisma, type Message } from '../generated/prisma/sqlite/client.ts';
import type { HistoryCache } from '../cache/history-cache.ts';
import { notFound } from '../graphql/errors.ts';
import { completeText, ModelError, streamCompletion, type ModelClientOptions } from '../llm/model-client.ts';
import { countTokens } from '../llm/tokens.ts';
import type { Logger } from '../logger.ts';
import type { MessageStatus, SealResult, StreamBroker, StreamEvent } from '../streaming/events.ts';
import { abortable } from '../streaming/abortable.ts';
import { followMessage, SilenceClock, type FinishedMessage, type FollowedEvent } from '../streaming/follow.ts';
import { buildContext } from './chat-context.ts';
import { parseInput } from './input.ts';
import { saveReplyEnd, setTitleIfUntitled, type ReplyEnd } from './reply-end.ts';
import { saveExchange, type SavedExchange } from './exchange.ts';
import { maxTokensSchema, modelNameSchema, temperatureSchema, type ModelSettings, type UserConfigService } from './user-config.ts';

export interface ChatOptions {
  flushMs: number;
  leaseMs: number;
  maxEvents: number;
  maxContentChars: number;
  model: ModelClientOptions;
  /** Without a shared broker no other instance can own a reply: recover all at start. */
  singleInstance: boolean;
}

export type SendResult = SavedExchange;

interface Outcome {
  status: Exclude<MessageStatus, 'STREAMING'>;
  error?: string | null;
  finishReason?: string | null;
  model?: string;
  promptTokens?: number | null;
  completionTokens?: number | null;
}

interface Generation {
  controller: AbortController;
  userId: string;
  conversationId: string;
  /** Text published so far, kept for the database checkpoint. */
  content: string;
  checkpointed: number;
  done: Promise<void>;
  /** The reply's metadata once the prompt is built, saved when the reply ends. */
  metadata?: Prisma.InputJsonObject;
}

const TITLE_INPUT_CHARS = 500;
const MAX_TITLE_CHARS = 80;
/**
 * Titles are background work: at most this many are requested at once per instance, the rest
 * wait their turn. Replies that end together (a burst of new conversations) otherwise send a
 * burst of title requests that competes with the live streams for the CPU.
 */
const MAX_CONCURRENT_TITLES = 4;

export class ChatService {
  private readonly generations = new Map<string, Generation>();
  private readonly finishChecks = new Map<string, { at: number; result: Promise<FinishedMessage | null> }>();
  private readonly sendSchema;
  private timers: NodeJS.Timeout[] = [];
  private readonly flushQueue = new Set<() => void>();
  private readonly silence: SilenceClock;
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly closing = new AbortController();
  private titling = 0;
  private readonly titleQueue: (() => void)[] = [];

  constructor(
    private readonly db: Db,
    /** PostgreSQL: the statements every reply runs skip Prisma. */
    private readonly sql: DirectSql | null,
    private readonly broker: StreamBroker,
    private readonly userConfigs: UserConfigService,
    private readonly cache: HistoryCache,
    private readonly options: ChatOptions,
    private readonly logger: Logger,
  ) {
    this.silence = new SilenceClock(Math.min(2000, Math.max(100, Math.floor(options.leaseMs / 3))));
    this.sendSchema = z.object({
      conversationId: z.string().nullish(),
      content: z
        .string()
        .refine((s) => s.trim().length > 0, 'must not be empty')
        .refine((s) => s.length <= options.maxContentChars, `must be at most ${options.maxContentChars} characters`),
      clientMessageId: z.string().min(1, 'must not be empty').max(128, 'must be at most 128 characters').nullish(),
      presetId: z.string().nullish(),
      model: modelNameSchema.nullish(),
      temperature: temperatureSchema.nullish(),
      maxTokens: maxTokensSchema.nullish(),
    });
  }

  /** Starts the lease heartbeat and the recovery of replies whose instance died. */
  async start(): Promise<void> {
    this.broker.onStopRequest((messageId) => this.generations.get(messageId)?.controller.abort('stopped'));
    await this.recover(this.options.singleInstance);
    const every = Math.max(100, Math.floor(this.options.leaseMs / 3));
    this.timers.push(
      setInterval(() => void this.heartbeat().catch((error) => this.logger.error({ err: error }, 'lease heartbeat failed')), every).unref(),
      setInterval(() => void this.recover(false).catch((error) => this.logger.error({ err: error }, 'recovery sweep failed')), every).unref(),
    );
  }

  async send(viewer: Viewer, rawInput: unknown): Promise<SendResult> {
    const input = parseInput(this.sendSchema, rawInput, 'input');
    if (input.clientMessageId) {
      const previous = await this.previousSend(viewer, input.clientMessageId);
      if (previous) return previous;
    }
    // Read beside the history-cache write mark: only the assistant row needs the settings.
    const settingsRead = this.userConfigs.modelSettings(viewer, input);
    settingsRead.catch(() => {});
    let created: SendResult;
    const save = () =>
      saveExchange(this.db, this.sql, {
        userId: viewer.userId,
        conversationId: input.conversationId ?? null,
        content: input.content,
        tokenCount: countTokens(input.content),
        clientMessageId: input.clientMessageId ?? null,
        settings: settingsRead,
        leaseMs: this.options.leaseMs,
      });
    try {
      created = input.conversationId != null ? await this.cache.writing(viewer.userId, input.conversationId, save) : await save();
    } catch (error) {
      // A concurrent retry with the same clientMessageId won the insert: answer with its messages.
      if (input.clientMessageId && error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002') {
        const previous = await this.previousSend(viewer, input.clientMessageId);
        if (previous) return previous;
      }
      throw error;
    }
    this.generate(created, await settingsRead);
    return created;
  }

  private async previousSend(viewer: Viewer, clientMessageId: string): Promise<SendResult | null> {
    const userMessage = await this.db.message.findUnique({ where: { userId_clientMessageId: { userId: viewer.userId, clientMessageId } } });
    if (!userMessage) return null;
    const [conversation, assistantMessage] = await Promise.all([
      this.db.conversation.findUniqueOrThrow({ where: { id: userMessage.conversationId } }),
      this.db.message.findUniqueOrThrow({ where: { conversationId_seq: { conversationId: userMessage.conversationId, seq: userMessage.seq + 1 } } }),
    ]);
    return { conversation, userMessage, assistantMessage };
  }

  /** Runs the model in the background; the reply ends through finalize, whatever happens. */
  private generate({ conversation, userMessage, assistantMessage: message }: SendResult, settings: ModelSettings): void {
    const controller = new AbortController();
    const generation: Generation = { controller, userId: message.userId, conversationId: message.conversationId, content: '', checkpointed: 0, done: Promise.resolve() };
    this.generations.set(message.id, generation);
    // Started after this turn of the event loop, so the mutation's response goes out first.
    generation.done = new Promise((resolve) => setImmediate(resolve))
      .then(() => this.run(message, userMessage, settings, generation))
      .catch((error) => {
        this.logger.error({ err: error, messageId: message.id }, 'generation failed unexpectedly');
        return undefined;
      })
      .finally(() => this.generations.delete(message.id))
      .then((status) => (status === 'COMPLETE' && conversation.title === null ? this.inTitleTurn(() => this.nameConversation(conversation.id, userMessage.content, settings)) : undefined))
      .catch((error) => this.logger.warn({ err: error, conversationId: conversation.id }, 'could not title the conversation'));
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
    const context = await buildContext(this.db, this.cache, viewer, historyFrom, userMessage.content, settings, userMessage.seq);
    const metadata = {
      ...(message.metadata as Prisma.JsonObject),
      context: {
        includedMessages: context.includedMessages,
        omittedMessages: context.omittedMessages,
        omittedMessageIds: context.omittedMessageIds,
        promptTokens: context.promptTokens,
      },
    };
    generation.metadata = metadata;
    return context;
  }

  /** Returns how the reply ended, or undefined when another party ended it. */
  private async run(message: Message, userMessage: Message, settings: ModelSettings, generation: Generation): Promise<Outcome['status'] | undefined> {
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
      this.flushQueue.delete(publish);
      if (!buffer || seq > lastDeltaSeq || (seq === lastDeltaSeq && !controller.signal.aborted && !ended)) return;
      const event: StreamEvent = { seq: seq++, delta: buffer, done: false, status: 'STREAMING' };
      generation.content += buffer;
      buffer = '';
      // Never awaited by the read loop: appends queue up in order behind each other.
      publishing = publishing.then(async () => {
        if (lost) return;
        const result = await this.broker.append(message.id, event).catch((error) => {
          // Subscribers fall back to the saved message; generating goes on.
          if (!publishFailed) this.logger.warn({ err: error, messageId: message.id }, 'could not publish stream events; subscribers will get the saved reply');
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
    try {
      const context = await this.prompt(message, userMessage, settings, generation);
      promptTokens = context.promptTokens;
      controller.signal.throwIfAborted();
      const stream = streamCompletion(
        { baseUrl: settings.baseUrl, apiKey: settings.apiKey, model: settings.model, messages: context.turns, maxTokens: settings.maxTokens, temperature: settings.temperature },
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
        buffer += next.value;
        if (first) {
          first = false;
          publish();
        } else {
          this.scheduleFlush(publish);
        }
      }
    } catch (error) {
      this.flushQueue.delete(publish);
      const reason = controller.signal.reason;
      if (controller.signal.aborted && (reason === 'stopped' || reason === 'lost')) {
        await publishing;
        // Another party ended the reply: its metadata still records the prompt.
        if (generation.metadata) {
          const data = { metadata: generation.metadata, promptTokens };
          await this.cache
            .writing(message.userId, message.conversationId, () => this.db.message.updateMany({ where: { id: message.id }, data }))
            .catch((error) => this.logger.warn({ err: error, messageId: message.id }, 'could not save the metadata of a stopped reply'));
        }
        return undefined;
      }
      ended = true;
      publish();
      if (controller.signal.aborted && reason === 'shutdown') {
        outcome = { status: 'INTERRUPTED', error: 'the server shut down while this reply was being generated' };
      } else if (error instanceof ModelError) {
        outcome = { status: 'FAILED', error: error.message };
      } else {
        this.logger.error({ err: error, messageId: message.id }, 'model call failed');
        outcome = { status: 'FAILED', error: 'the reply could not be generated' };
      }
      outcome.completionTokens = countTokens(generation.content);
      outcome.promptTokens = promptTokens;
    }
    await publishing;
    if (lost) return undefined;
    const local = { content: generation.content, userId: generation.userId, conversationId: generation.conversationId, metadata: generation.metadata };
    return (await this.finalize(message.id, outcome, local)) ? outcome.status : undefined;
  }

  /**
   * Every reply's buffered text is published by one shared timer, so the appends of all replies
   * due in a flush interval leave together (the broker sends them to Redis as one call). A delta
   * still waits at most flushMs.
   */
  private scheduleFlush(publish: () => void): void {
    this.flushQueue.add(publish);
    this.flushTimer ??= setTimeout(() => {
      this.flushTimer = undefined;
      const due = [...this.flushQueue];
      this.flushQueue.clear();
      for (const flush of due) flush();
    }, this.options.flushMs);
  }

  /**
   * Ends a reply: the first caller to seal its stream log saves the message and appends the
   * terminal event; everybody else returns false. Content is what was published, so it always
   * equals the concatenated deltas subscribers saw.
   */
  private async finalize(messageId: string, outcome: Outcome, local?: { content: string; userId: string; conversationId: string; metadata?: Prisma.InputJsonObject }): Promise<boolean> {
    const token = randomUUID();
    let sealed: SealResult | undefined;
    try {
      sealed = await this.broker.seal(messageId, token);
      if (!sealed.won) return false;
    } catch (error) {
      // Redis is away: the database's conditional update alone decides who ends the reply.
      this.logger.warn({ err: error, messageId }, 'could not seal the stream log; saving the reply without it');
    }
    const logged = sealed && sealed.events.length > 0 ? sealed.events.map((e) => e.delta).join('') : undefined;
    // The generating instance knows whose message it is; anyone else reads it.
    const owner = local ?? (await this.db.message.findUnique({ where: { id: messageId }, select: { userId: true, conversationId: true, content: true } }));
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
    // What subscribers saw; else what this instance generated; else the last checkpoint.
    const content = logged ?? owner.content;
    const end: ReplyEnd = {
      status: outcome.status,
      content,
      error: outcome.error ?? null,
      finishReason: outcome.finishReason ?? null,
      model: outcome.model ?? null,
      metadata: local?.metadata ?? null,
      promptTokens: outcome.promptTokens ?? null,
      completionTokens: outcome.completionTokens ?? countTokens(content),
    };
    const count = await this.cache.writing(owner.userId, owner.conversationId, () => saveReplyEnd(this.db, this.sql, messageId, end));
    if (count === 0 && !sealed) return false;
    const saved = count === 1 ? { status: outcome.status, error: outcome.error ?? null } : await this.db.message.findUnique({ where: { id: messageId }, select: { status: true, error: true } });
    if (!saved && local) {
      await deleted();
      return true;
    }
    const events: StreamEvent[] = [];
    let seq = sealed?.events.length ?? 0;
    if (seq === 0 && content) {
      // The log was lost (a restart without Redis): the saved text becomes one event, so the
      // replay still adds up to the saved content.
      events.push({ seq: seq++, delta: content, done: false, status: 'STREAMING' });
    }
    events.push({ seq, delta: '', done: true, status: saved?.status ?? outcome.status, error: saved?.error ?? null });
    await terminal(events);
    return true;
  }

  /** Stops a reply from any instance; a finished message comes back unchanged. */
  async stop(viewer: Viewer, messageId: string): Promise<Message> {
    const message = await this.db.message.findFirst({ where: { id: messageId, userId: viewer.userId } });
    if (!message) throw notFound('message');
    if (message.status !== 'STREAMING') return message;
    this.generations.get(messageId)?.controller.abort('stopped');
    const finalized = await this.finalize(messageId, { status: 'STOPPED' });
    await this.broker.requestStop(messageId).catch((error) => this.logger.warn({ err: error }, 'could not broadcast a stop'));
    if (!finalized) {
      // Someone else is ending it right now: wait for their save.
      for (let i = 0; i < 50; i++) {
        const current = await this.db.message.findUniqueOrThrow({ where: { id: messageId } });
        if (current.status !== 'STREAMING') return current;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return this.db.message.findUniqueOrThrow({ where: { id: messageId } });
  }

  /**
   * The viewer's message as a stream of events after `afterSeq`. Checks ownership before anything
   * else: a foreign or missing id is NOT_FOUND and yields nothing.
   */
  async follow(viewer: Viewer, messageId: string, afterSeq: number, shutdown: AbortSignal): Promise<AsyncGenerator<FollowedEvent>> {
    const message = this.sql
      ? (await this.sql.query<FinishedMessage>('parley_follow_message', `SELECT "status"::text AS "status", "error", "content" FROM "Message" WHERE "id" = $1 AND "userId" = $2`, [messageId, viewer.userId])).rows[0]
      : await this.db.message.findFirst({ where: { id: messageId, userId: viewer.userId }, select: { status: true, error: true, content: true } });
    if (!message) throw notFound('message');
    return abortable(
      (signal) =>
        followMessage(this.broker, messageId, {
          afterSeq,
          finished: finishedState(message),
          silence: this.silence,
          loadFinished: () => this.finishedMessage(messageId),
          signal,
        }),
      shutdown,
    );
  }

  /**
   * Whether a message has ended, read at most about once per check interval however many
   * subscribers of this instance are waiting on it: a thousand idle subscribers cost one query.
   */
  private finishedMessage(messageId: string): Promise<FinishedMessage | null> {
    const recent = this.finishChecks.get(messageId);
    if (recent && Date.now() - recent.at < this.silence.everyMs / 2) return recent.result;
    const result = this.db.message
      .findUnique({ where: { id: messageId }, select: { status: true, error: true, content: true } })
      .then(finishedState);
    const check = { at: Date.now(), result };
    this.finishChecks.set(messageId, check);
    setTimeout(() => {
      if (this.finishChecks.get(messageId) === check) this.finishChecks.delete(messageId);
    }, this.silence.everyMs).unref();
    return result;
  }

  private async heartbeat(): Promise<void> {
    if (this.generations.size === 0) return;
    // The lease is a column of the cached rows too: the renewal is bracketed like any change.
    await this.cache.writingAll([...this.generations.values()], () =>
      this.db.message.updateMany({
        where: { id: { in: [...this.generations.keys()] }, status: 'STREAMING' },
        data: { leaseExpiresAt: new Date(Date.now() + this.options.leaseMs) },
      }),
    );
    // Partial text survives a crash even without the shared log.
    for (const [id, generation] of this.generations) {
      if (generation.content.length === generation.checkpointed) continue;
      generation.checkpointed = generation.content.length;
      const content = generation.content;
      await this.cache.writing(generation.userId, generation.conversationId, () => this.db.message.updateMany({ where: { id, status: 'STREAMING' }, data: { content } }));
    }
  }

  /** Ends replies whose instance stopped renewing its lease (at start: all, if single-instance). */
  private async recover(everything: boolean): Promise<void> {
    if (this.closing.signal.aborted) return;
    const orphans = await this.db.message.findMany({
      where: { status: 'STREAMING', ...(everything ? {} : { leaseExpiresAt: { lt: new Date() } }) },
      select: { id: true },
      take: 100,
    });
    for (const { id } of orphans) {
      if (this.generations.has(id)) continue;
      const finalized = await this.finalize(id, { status: 'INTERRUPTED', error: 'the server generating this reply stopped before it finished' });
      if (finalized) this.logger.warn({ messageId: id }, 'marked an orphaned reply INTERRUPTED');
    }
  }

  private async inTitleTurn(task: () => Promise<void>): Promise<void> {
    // A finishing title hands its slot straight to the next in line.
    if (this.titling >= MAX_CONCURRENT_TITLES) await new Promise<void>((resolve) => this.titleQueue.push(resolve));
    else this.titling++;
    try {
      await task();
    } finally {
      const next = this.titleQueue.shift();
      if (next) next();
      else this.titling--;
    }
  }

  /** A short title from the start of the first exchange, saved only if there is still none. */
  private async nameConversation(conversationId: string, firstInput: string, settings: ModelSettings): Promise<void> {
    if (this.closing.signal.aborted) return;
    const input = firstInput.slice(0, TITLE_INPUT_CHARS);
    let title = '';
    if (settings.baseUrl !== null) {
      const request = {
        baseUrl: settings.baseUrl,
        apiKey: settings.apiKey,
        model: settings.model,
        maxTokens: 24,
        temperature: 0.2,
        messages: [
          { role: 'system' as const, content: 'Write a title of at most six words for a conversation that starts with the user message below. Answer with the title only.' },
          { role: 'user' as const, content: input },
        ],
      };
      // A signal of its own: the client leaves its abort listener on the signal it is given, and
      // on the service's long-lived one that kept a listener per titled conversation forever.
      const titleRequest = new AbortController();
      const onShutdown = () => titleRequest.abort(this.closing.signal.reason);
      this.closing.signal.addEventListener('abort', onShutdown, { once: true });
      title = await completeText(request, titleRequest.signal, this.options.model)
        .catch((error) => {
          this.logger.warn({ err: error, conversationId }, 'title generation failed; using the first words');
          return '';
        })
        .finally(() => this.closing.signal.removeEventListener('abort', onShutdown));
    }
    title = cleanTitle(title) || cleanTitle(input.split(/\s+/).slice(0, 6).join(' '));
    if (!title) return;
    await setTitleIfUntitled(this.db, this.sql, conversationId, title);
  }

  /** Ends every local generation as INTERRUPTED, saving what was published. */
  async shutdown(): Promise<void> {
    this.closing.abort('shutdown');
    for (const timer of this.timers) clearInterval(timer);
    const running = [...this.generations.values()];
    for (const generation of running) generation.controller.abort('shutdown');
    await Promise.all(running.map((g) => g.done));
  }
}

function finishedState(message: { status: MessageStatus; error: string | null; content: string } | null): FinishedMessage | null {
  if (!message) return { status: 'INTERRUPTED', error: 'the message was deleted', content: '' };
  return message.status !== 'STREAMING' ? message : null;
}

function cleanTitle(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim().replace(/^["'«“]+|["'»”.]+$/g, '').trim();
  return line.length > MAX_TITLE_CHARS ? `${line.slice(0, MAX_TITLE_CHARS - 1).trimEnd()}…` : line;
}
