// Conversation and viewer events: what each write tells the other tabs and devices of its user.
// The store hands out each event's seq in the write that makes the change visible; this service
// publishes the events once the write has committed, without the writer waiting for Redis, and
// follows a feed for a subscriber with the same guarantees as messageStream.
import type { Viewer } from '../auth.ts';
import { badInput, notFound } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { ConversationEventKind, ViewerEventKind } from '../model.ts';
import type { Message, MessageQuery } from '../store/rows.ts';
import type { Store } from '../store/store.ts';
import { abortable } from '../streaming/abortable.ts';
import { conversationFeed, followFeed, viewerFeed, type ChangeFeed, type FeedEvent, type FeedKind, type FeedLimits, type FeedWatch } from '../streaming/change-feed.ts';
import { isStorableText } from './input.ts';

export interface ConversationEvent {
  seq: number;
  kind: ConversationEventKind;
  conversationId: string;
  messageId: string | null;
}

export interface ViewerEvent {
  seq: number;
  kind: ViewerEventKind;
  conversationId: string;
}

export interface LiveEventOptions extends FeedLimits {
  /** How long an event published late by another instance is waited for before it counts as lost. */
  gapWaitMs: number;
  /**
   * How often the seqs of every feed followed on this instance are read from the database (one
   * query per kind of feed): an event whose publish was lost (a writer that died, a Redis that
   * refused it) reaches idle followers as a RESYNC within about this long.
   */
  sweepMs: number;
}

type Scope = 'conversation' | 'viewer';
type OnSeq = (seq: number | null) => void;


const CONVERSATION_KINDS = new Set<string>(Object.values(ConversationEventKind));
const VIEWER_KINDS = new Set<string>(Object.values(ViewerEventKind));
const CONVERSATION_FEED: FeedKind = {
  accepts: (event, conversationId) => CONVERSATION_KINDS.has(event.kind) && event.kind !== ConversationEventKind.RESYNC && event.conversationId === conversationId,
  isLast: (event) => event.kind === ConversationEventKind.DELETED,
  gone: (seq, conversationId) => ({ seq, kind: ConversationEventKind.DELETED, conversationId, messageId: null }),
  resync: (seq, conversationId) => ({ seq, kind: ConversationEventKind.RESYNC, conversationId, messageId: null }),
};

const VIEWER_FEED: FeedKind = {
  accepts: (event) => VIEWER_KINDS.has(event.kind) && event.kind !== ViewerEventKind.RESYNC && event.conversationId !== '',
  isLast: () => false,
  // A user's feed is never gone.
  gone: (seq) => ({ seq, kind: ViewerEventKind.RESYNC, conversationId: '', messageId: null }),
  resync: (seq) => ({ seq, kind: ViewerEventKind.RESYNC, conversationId: '', messageId: null }),
};

/** The largest seq a database INT column holds. */
const MAX_SEQ = 2 ** 31 - 1;

/** What writers call after their write: each call publishes in the background. */
export interface EventPublisher {
  conversation(conversationId: string, events: { seq: number; kind: ConversationEventKind; messageId?: string | null }[]): void;
  viewer(userId: string, event: { seq: number; kind: ViewerEventKind; conversationId: string }): void;
}

/** For parts run without subscribers (unit tests of a writer). */
export const noEvents: EventPublisher = { conversation() {}, viewer() {} };

export class LiveEvents implements EventPublisher {
  private failing = false;
  /** The followers of this instance by feed, for the sweep; ownership was checked when they subscribed. */
  private readonly watched: Record<Scope, Map<string, Set<OnSeq>>> = { conversation: new Map(), viewer: new Map() };
  private readonly watches: Record<Scope, FeedWatch> = { conversation: this.watchOf('conversation'), viewer: this.watchOf('viewer') };
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Store,
    private readonly feed: ChangeFeed,
    private readonly options: LiveEventOptions,
    private readonly logger: Logger,
  ) {
    // Whatever was published while the connection was away: one sweep for every follower.
    feed.onReconnect(() => void this.sweep().catch((error: unknown) => this.logger.warn({ err: error }, 'could not read the event seqs of followed feeds')));
  }

  conversation(conversationId: string, events: { seq: number; kind: ConversationEventKind; messageId?: string | null }[]): void {
    if (events.length === 0) return;
    this.send(
      conversationFeed(conversationId),
      events.map((e) => ({ seq: e.seq, kind: e.kind, conversationId, messageId: e.messageId ?? null })),
    );
  }

  viewer(userId: string, event: { seq: number; kind: ViewerEventKind; conversationId: string }): void {
    this.send(viewerFeed(userId), [{ ...event, messageId: null }]);
  }

  /**
   * Not awaited by the writer: the database holds the change. A lost event becomes a RESYNC for
   * its followers: at their next event, at their reconnect, or at the next sweep when idle.
   */
  private send(name: string, events: FeedEvent[]): void {
    this.feed.publish(name, events).then(
      () => {
        if (this.failing) this.logger.info('conversation events are published again');
        this.failing = false;
      },
      (error: unknown) => {
        if (!this.failing) this.logger.warn({ err: error }, 'could not publish conversation events; subscribers will be told to refetch');
        this.failing = true;
      },
    );
  }

  private watchOf(scope: Scope): FeedWatch {
    const followers = this.watched[scope];
    return {
      add: (subject, onSeq) => {
        let set = followers.get(subject);
        if (!set) followers.set(subject, (set = new Set()));
        set.add(onSeq);
        this.sweeper ??= setInterval(() => void this.sweep().catch(() => {}), this.options.sweepMs).unref();
      },
      remove: (subject, onSeq) => {
        const set = followers.get(subject);
        if (!set) return;
        set.delete(onSeq);
        if (set.size === 0) followers.delete(subject);
        if (this.watched.conversation.size === 0 && this.watched.viewer.size === 0) {
          clearInterval(this.sweeper);
          this.sweeper = undefined;
        }
      },
    };
  }

  /** Tells every follower on this instance its feed's seq as the database has it: one query per kind, in chunks. */
  async sweep(): Promise<void> {
    await Promise.all([
      this.sweepEach('conversation', async (ids) => {
        const rows = await this.store.conversationEventSeqs(ids);
        return (id) => rows.get(id) ?? null;
      }),
      this.sweepEach('viewer', async (ids) => {
        const rows = await this.store.viewerEventSeqs(ids);
        return (id) => rows.get(id) ?? -1;
      }),
    ]);
  }

  private async sweepEach(scope: Scope, read: (subjects: string[]) => Promise<(subject: string) => number | null>): Promise<void> {
    const subjects = [...this.watched[scope].keys()];
    for (let at = 0; at < subjects.length; at += 1000) {
      const chunk = subjects.slice(at, at + 1000);
      const seqOf = await read(chunk);
      for (const subject of chunk) for (const onSeq of this.watched[scope].get(subject) ?? []) onSeq(seqOf(subject));
    }
  }

  /** The viewer's newest viewer event seq, -1 before the first. */
  viewerEventSeq(viewer: Viewer): Promise<number> {
    return this.store.viewerEventSeq(viewer.userId);
  }

  /** The conversation's STREAMING messages: what a tab opening mid-reply follows with messageStream. */
  generating(viewer: Viewer, conversationId: string, query: MessageQuery = {}): Promise<Message[]> {
    return this.store.generatingMessages(viewer.userId, conversationId, query);
  }

  /**
   * The events of the viewer's conversation after `afterSeq` (omitted: from now on). A missing or
   * foreign conversation is NOT_FOUND before anything is listened to.
   */
  async followConversation(viewer: Viewer, conversationId: string, afterSeq: number | null | undefined, shutdown: AbortSignal): Promise<AsyncGenerator<ConversationEvent>> {
    if (!isStorableText(conversationId)) throw notFound('conversation');
    const current = await this.store.conversationEventSeq(viewer.userId, conversationId);
    if (current === null) throw notFound('conversation');
    const from = checkedAfterSeq(afterSeq, current);
    const events = abortable(
      (signal) =>
        followFeed(this.feed, conversationFeed(conversationId), {
          afterSeq: from,
          currentSeq: () => this.store.conversationEventSeq(viewer.userId, conversationId),
          limits: this.options,
          gapWaitMs: this.options.gapWaitMs,
          kind: CONVERSATION_FEED,
          subject: conversationId,
          watch: this.watches.conversation,
          signal,
        }),
      shutdown,
    );
    // Accepted events are ConversationEvents: their kind and conversation were checked.
    return events as AsyncGenerator<ConversationEvent>;
  }

  /** Changes to the viewer's list of conversations after `afterSeq` (omitted: from now on). */
  async followViewer(viewer: Viewer, afterSeq: number | null | undefined, shutdown: AbortSignal): Promise<AsyncGenerator<ViewerEvent>> {
    const current = await this.store.viewerEventSeq(viewer.userId);
    const from = checkedAfterSeq(afterSeq, current);
    const events = abortable(
      (signal) =>
        followFeed(this.feed, viewerFeed(viewer.userId), {
          afterSeq: from,
          currentSeq: () => this.store.viewerEventSeq(viewer.userId),
          limits: this.options,
          gapWaitMs: this.options.gapWaitMs,
          kind: VIEWER_FEED,
          subject: viewer.userId,
          watch: this.watches.viewer,
          signal,
        }),
      shutdown,
    );
    return events as AsyncGenerator<ViewerEvent>;
  }
}

/** afterSeq as the last seq the client has: -1 for none, at most the newest; omitted means the newest. */
function checkedAfterSeq(afterSeq: number | null | undefined, current: number): number {
  if (afterSeq === null || afterSeq === undefined) return current;
  if (afterSeq < -1 || afterSeq > MAX_SEQ) throw badInput('afterSeq', `must be between -1 and the newest seq (${current})`);
  if (afterSeq > current) throw badInput('afterSeq', `must be between -1 and the newest seq (${current})`);
  return afterSeq;
}
