// Change feeds: numbered events of one conversation or one user's conversation list, kept in a
// bounded replay log and fanned out live. Seqs are handed out by the database in the write that
// makes each change visible; a feed only carries them, in any order, and keeps them sorted.
import type { StopSignal } from './abortable.ts';

export interface FeedEvent {
  seq: number;
  kind: string;
  conversationId: string;
  messageId: string | null;
}

export interface ChangeFeed {
  /** Logs the events of `feed` and sends them to its listeners on every instance. */
  publish(feed: string, events: FeedEvent[]): Promise<void>;
  /** Logged events with seq > afterSeq, in seq order. */
  read(feed: string, afterSeq: number): Promise<FeedEvent[]>;
  /**
   * Live events of the feed, from the moment the returned promise resolves; while the connection
   * to the other instances is away, from the moment `onReconnect` handlers are called.
   */
  listen(feed: string, onEvent: (event: FeedEvent) => void): Promise<() => void>;
  /** Called when live events may have been missed (the connection to the other instances came back). */
  onReconnect(handler: () => void): () => void;
  close(): Promise<void>;
}

export interface FeedLimits {
  /** Events kept per feed; older ones are dropped first. */
  maxEvents: number;
  /** How long a feed's log lives after its last event. */
  ttlMs: number;
}

export const conversationFeed = (conversationId: string): string => `c:${conversationId}`;
export const viewerFeed = (userId: string): string => `u:${userId}`;

export const encodeFeedEvent = (event: FeedEvent): string => JSON.stringify([event.seq, event.kind, event.conversationId, event.messageId]);

/** A logged or published event; undefined for anything else (the log is Redis's, read back after who knows what). */
export function decodeFeedEvent(text: string): FeedEvent | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(value) || value.length !== 4) return undefined;
  const [seq, kind, conversationId, messageId] = value as unknown[];
  if (!Number.isSafeInteger(seq) || (seq as number) < 0 || typeof kind !== 'string' || typeof conversationId !== 'string') return undefined;
  if (messageId !== null && typeof messageId !== 'string') return undefined;
  return { seq: seq as number, kind, conversationId, messageId };
}


/** What sets one family of feeds apart: one object per family, shared by all its subscribers. */
export interface FeedKind {
  /** Whether an event belongs to the subject's feed; one that does not counts as missing (a RESYNC, never a silent gap). */
  accepts(event: FeedEvent, subject: string): boolean;
  /** Whether the subscription ends after this event. */
  isLast(event: FeedEvent): boolean;
  /** The event that ends the subscription when its subject turned out to be gone and its last event was lost. */
  gone(seq: number, subject: string): FeedEvent;
  /** The RESYNC event of the subject's feed at `seq`. */
  resync(seq: number, subject: string): FeedEvent;
}

/** Where followers register for the sweep: one object per family of feeds, shared by all of them. */
export interface FeedWatch {
  add(subject: string, onSeq: (seq: number | null) => void): void;
  remove(subject: string, onSeq: (seq: number | null) => void): void;
}

export interface FollowFeedOptions {
  /** The last seq the subscriber has. */
  afterSeq: number;
  kind: FeedKind;
  /** What the feed is of: a conversation id, a user id. */
  subject: string;
  /** The newest seq as the database has it now; null once the feed's subject is gone. */
  currentSeq: () => Promise<number | null>;
  limits: FeedLimits;
  /**
   * Tells the follower the database's newest seq now and then (null once the subject is gone): an
   * event whose publish was lost is noticed without waiting for a later one. Whoever gives it
   * also sweeps when the feed reconnects: the follower then leaves reconnects to it.
   */
  watch?: FeedWatch;
  /** How long a missing event may be in flight (published late by another instance) before it counts as lost. */
  gapWaitMs: number;
  signal: StopSignal;
}

/**
 * Follows one feed for one subscriber: logged events after `afterSeq`, then live ones, each once
 * and in seq order. An event that cannot be had (past the log's bounds, or lost while Redis was
 * away) is never skipped silently: the subscriber gets one RESYNC carrying the database's newest
 * seq, then the events after it.
 */
export async function* followFeed(feed: ChangeFeed, name: string, options: FollowFeedOptions): AsyncGenerator<FeedEvent> {
  const { kind, subject } = options;
  let next = options.afterSeq + 1;
  const live = new Map<number, FeedEvent>();
  let wake: (() => void) | undefined;
  let missedLive = false;
  const stopListening = await feed
    .listen(name, (event) => {
      if (event.seq >= next && kind.accepts(event, subject)) live.set(event.seq, event);
      wake?.();
    })
    .catch(() => () => {});
  // With a sweep, a reconnect is the sweeper's to handle (one query for all followers, not one each).
  const stopReconnect = options.watch
    ? () => {}
    : feed.onReconnect(() => {
        missedLive = true;
        wake?.();
      });
  // The newest seq a sweep saw in the database, until the loop takes it.
  let swept: number | null | undefined;
  const onSwept = (seq: number | null) => {
    swept = seq;
    wake?.();
  };
  options.watch?.add(subject, onSwept);
  options.signal.onAbort = () => wake?.();
  // null: the log cannot be read (Redis is away).
  const read = () =>
    feed.read(name, next - 1).then(
      (events) => events.filter((event) => kind.accepts(event, subject)),
      () => null,
    );
  // The newest seq known to exist: events up to it are owed to the subscriber.
  let owed: number | null = null;

  // Until a live event, a reconnect or the stop; after `ms` too, when given.
  const sleep = (ms?: number) =>
    new Promise<void>((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
      wake = done;
    });

  try {
    owed = await options.currentSeq();
    if (owed === null) return yield kind.gone(next, subject);
    if (owed - options.afterSeq > options.limits.maxEvents) {
      // Older than the log holds at most: no need to look.
      yield kind.resync(owed, subject);
      next = owed + 1;
    }
    let gapSince: number | undefined;
    for (;;) {
      if (options.signal.aborted) return;
      // Live events that continue the sequence go out first.
      while (live.has(next)) {
        const event = live.get(next)!;
        live.delete(next);
        next++;
        yield event;
        if (kind.isLast(event)) return;
        if (options.signal.aborted) return;
      }
      for (const seq of live.keys()) if (seq < next) live.delete(seq);
      if (missedLive) {
        missedLive = false;
        const current = await options.currentSeq();
        // Gone: its last event (DELETED) is owed too; the log may still have it, or else `gone`.
        owed = Math.max(owed, current ?? next);
      }
      if (swept !== undefined) {
        const seq = swept;
        swept = undefined;
        if (seq !== null) owed = Math.max(owed, seq);
        else if (next > owed) return yield kind.gone(next, subject);
      }
      for (const seq of live.keys()) owed = Math.max(owed, seq - 1);
      if (next > owed) {
        gapSince = undefined;
        // Idle: no timer, so an idle subscription costs its listener and this closure only.
        await sleep();
        continue;
      }
      // Events up to `owed` exist: the log has them, or they are still on their way.
      let delivered = false;
      const logged = await read();
      if (logged === null) {
        // Whether the events are lost cannot be told while the log is away: look again soon (a
        // disconnected client refuses at once), so an outage ends in one RESYNC, not one per sweep.
        gapSince = undefined;
        await sleep(200);
        continue;
      }
      for (const event of logged) {
        if (event.seq !== next) continue;
        next++;
        delivered = true;
        yield event;
        if (kind.isLast(event)) return;
        if (options.signal.aborted) return;
      }
      if (delivered) {
        gapSince = undefined;
        continue;
      }
      gapSince ??= Date.now();
      if (Date.now() - gapSince < options.gapWaitMs) {
        await sleep(Math.min(50, options.gapWaitMs));
        continue;
      }
      gapSince = undefined;
      const current = await options.currentSeq();
      if (current === null) return yield kind.gone(next, subject);
      const resyncAt = Math.max(current, owed);
      yield kind.resync(resyncAt, subject);
      next = resyncAt + 1;
      owed = resyncAt;
    }
  } finally {
    options.signal.onAbort = undefined;
    options.watch?.remove(subject, onSwept);
    stopReconnect();
    stopListening();
  }
}
