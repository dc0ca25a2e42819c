// The chat domain's facade: sendMessage, stopGeneration, messageStream, and the life of the
// replies this instance generates. Every way a reply ends goes through the ReplyFinalizer.
import type { Viewer } from '../auth.ts';
import type { HistoryCache } from '../cache/history-cache.ts';
import { badInput, notFound } from '../errors.ts';
import type { ModelClientOptions } from '../llm/model-client.ts';
import type { Logger } from '../logger.ts';
import { isStorableText } from '../services/input.ts';
import type { EventPublisher } from '../services/live-events.ts';
import type { UserConfigService } from '../services/user-config.ts';
import type { Conversation, Message } from '../store/rows.ts';
import type { FoundExchange, SavedExchange, Store } from '../store/store.ts';
import type { StreamBroker } from '../streaming/events.ts';
import type { FollowedEvent } from '../streaming/follow.ts';
import { eventLoopGauge, ReplyAdmission } from './admission.ts';
import { BranchOperations, type DeletedMessages } from './branches.ts';
import { ReplyFinalizer } from './finalize.ts';
import { FlushScheduler } from './flush-scheduler.ts';
import { ReplyFollower } from './follow.ts';
import { Generations } from './generation.ts';
import { LeaseKeeper } from './leases.ts';
import { ExchangeSender, type Sent } from './send.ts';
import { TitleWriter } from './titles.ts';

export interface ChatOptions {
  flushMs: number;
  leaseMs: number;
  maxEvents: number;
  maxContentChars: number;
  /** Longest reply: past it, the model call is ended and the reply completes with finish reason `max_reply_chars`. */
  maxReplyChars: number;
  /** Replies this instance generates at once; more wait in line. 0: no limit. */
  maxConcurrentReplies: number;
  model: ModelClientOptions;
  /** Without a shared broker no other instance can own a reply: recover all at start. */
  singleInstance: boolean;
}

// Replies that start whatever the event loop's load, so that the line moves under any load.
const ALWAYS_ADMITTED = 8;

export type SendResult = SavedExchange;

/** editMessage's answer: no assistant message when nothing is generated. */
export type EditResult = FoundExchange;

export class ChatService {
  private readonly closing = new AbortController();
  private readonly sender: ExchangeSender;
  private readonly branches: BranchOperations;
  private readonly finalizer: ReplyFinalizer;
  private readonly generations: Generations;
  private readonly leases: LeaseKeeper;
  private readonly follower: ReplyFollower;
  private readonly admission: ReplyAdmission;

  constructor(
    private readonly store: Store,
    private readonly broker: StreamBroker,
    userConfigs: UserConfigService,
    cache: HistoryCache,
    private readonly options: ChatOptions,
    private readonly logger: Logger,
    events: EventPublisher,
  ) {
    this.sender = new ExchangeSender(store, userConfigs, cache, options, events);
    this.branches = new BranchOperations(store, userConfigs, cache, this.sender, events, options, (viewer, messageId) => this.stop(viewer, messageId));
    this.finalizer = new ReplyFinalizer(store, cache, broker, logger, events);
    const titles = new TitleWriter(store, options.model, this.closing.signal, logger, events);
    const flushes = new FlushScheduler(options.flushMs);
    const limit = options.maxConcurrentReplies;
    this.admission = new ReplyAdmission({ limit, floor: Math.min(limit, ALWAYS_ADMITTED), gauge: limit === 0 ? { busy: () => false, close: () => {} } : eventLoopGauge() });
    const admission = this.admission;
    this.generations = new Generations({ store, cache, broker, finalizer: this.finalizer, flushes, titles, logger, admission }, options);
    this.leases = new LeaseKeeper(store, cache, this.finalizer, this.generations.running, options.leaseMs, logger);
    this.follower = new ReplyFollower(store, broker, options.leaseMs);
  }

  /** Starts the lease heartbeat and the recovery of replies whose instance died. */
  async start(): Promise<void> {
    this.broker.onStopRequest((messageId) => this.generations.abort(messageId, 'stopped'));
    await this.leases.start(this.options.singleInstance);
  }

  async send(viewer: Viewer, rawInput: unknown): Promise<SendResult> {
    return this.generate(await this.sender.send(viewer, rawInput));
  }

  /** A new reply to the user message an assistant message answers; the new branch becomes active. */
  async regenerate(viewer: Viewer, rawInput: unknown): Promise<SendResult> {
    return this.generate(await this.branches.regenerate(viewer, rawInput));
  }

  /** A new version of a message; a user message's gets a fresh reply. */
  async edit(viewer: Viewer, rawInput: unknown): Promise<EditResult> {
    const edited = await this.branches.edit(viewer, rawInput);
    return 'sent' in edited ? this.generate(edited.sent) : edited.message;
  }

  switchBranch(viewer: Viewer, messageId: string): Promise<Conversation> {
    return this.branches.switchBranch(viewer, messageId);
  }

  fork(viewer: Viewer, rawInput: unknown): Promise<Conversation> {
    return this.branches.fork(viewer, rawInput);
  }

  deleteMessage(viewer: Viewer, messageId: string): Promise<DeletedMessages> {
    return this.branches.deleteMessage(viewer, messageId);
  }

  /** Starts the reply of an exchange this call created; a replayed one runs (or ran) already. */
  private generate({ exchange, settings }: Sent): SendResult {
    if (settings) this.generations.start(exchange, settings);
    return exchange;
  }

  /** Stops a reply from any instance; a finished message comes back unchanged. */
  async stop(viewer: Viewer, messageId: string): Promise<Message> {
    if (!isStorableText(messageId)) throw notFound('message');
    const message = await this.store.findMessage(viewer.userId, messageId);
    if (!message) throw notFound('message');
    if (message.status !== 'STREAMING') return message;
    this.generations.abort(messageId, 'stopped');
    const finalized = await this.finalizer.finalize(messageId, { status: 'STOPPED' });
    await this.broker.requestStop(messageId).catch((error) => this.logger.warn({ err: error }, 'could not broadcast a stop'));
    if (!finalized) {
      // Someone else is ending it right now: wait for their save.
      for (let i = 0; i < 50; i++) {
        const current = await this.saved(viewer, messageId);
        if (current.status !== 'STREAMING') return current;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return this.saved(viewer, messageId);
  }

  private async saved(viewer: Viewer, messageId: string): Promise<Message> {
    const message = await this.store.findMessage(viewer.userId, messageId);
    if (!message) throw notFound('message');
    return message;
  }

  /** `afterSeq`: the last seq the client has, -1 for none; no reply has more than maxEvents. */
  async follow(viewer: Viewer, messageId: string, afterSeq: number, shutdown: AbortSignal): Promise<AsyncGenerator<FollowedEvent>> {
    const lastSeq = this.options.maxEvents - 1;
    if (afterSeq < -1 || afterSeq > lastSeq) throw badInput('afterSeq', `must be between -1 and ${lastSeq}`);
    if (!isStorableText(messageId)) throw notFound('message');
    return this.follower.follow(viewer, messageId, afterSeq, shutdown);
  }

  /** Ends every local generation as INTERRUPTED, saving what was published. */
  async shutdown(): Promise<void> {
    this.closing.abort('shutdown');
    this.leases.stop();
    await this.generations.shutdown();
    this.admission.close();
  }
}
