// followFeed on its own, against a scriptable change feed and database: the log after afterSeq,
// then live events, each exactly once and in seq order; a gap waited for up to gapWaitMs, then one
// RESYNC carrying the database's newest seq; a log too short for afterSeq; refused events; the
// last event and a subject that is gone; reconnects; the stop; and a feed that fails. Also
// decodeFeedEvent, which reads back what Redis holds. feeds.test.ts runs the real feeds.
import { describe, expect, it } from 'vitest';
import { abortable, type StopSignal } from '../src/streaming/abortable.ts';
import { decodeFeedEvent, encodeFeedEvent, followFeed, type ChangeFeed, type FeedEvent, type FeedKind, type FollowFeedOptions } from '../src/streaming/change-feed.ts';

const FEED = 'c:conv';
const ev = (seq: number, kind = 'UPDATED', conversationId = 'conv', messageId: string | null = `m${seq}`): FeedEvent => ({ seq, kind, conversationId, messageId });
const RESYNC = 'RESYNC';
const resync = (seq: number): FeedEvent => ({ seq, kind: RESYNC, conversationId: 'conv', messageId: null });
const goneEvent = (seq: number): FeedEvent => ({ seq, kind: 'GONE', conversationId: 'conv', messageId: null });

/** The feed family under test: a conversation's events (the subject), refusing 'BAD' ones; 'END' is the last. */
const KIND: FeedKind = {
  accepts: (e, subject) => e.kind !== 'BAD' && e.kind !== RESYNC && e.conversationId === subject,
  isLast: (e) => e.kind === 'END',
  gone: (seq, subject) => ({ seq, kind: 'GONE', conversationId: subject, messageId: null }),
  resync: (seq, subject) => ({ seq, kind: RESYNC, conversationId: subject, messageId: null }),
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `check` holds, at most `ms`; says whether it did. */
async function until(check: () => boolean, ms = 2000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await sleep(5);
  }
  return true;
}

/** A feed that does what the test says: a log read back sorted and each seq once, as the real feeds do. */
class ScriptedFeed implements ChangeFeed {
  log: FeedEvent[] = [];
  readonly listeners = new Set<(event: FeedEvent) => void>();
  readonly reconnectHandlers = new Set<() => void>();
  readonly reads: number[] = [];
  readonly names: string[] = [];
  /** How many of the next reads fail. */
  readFailures = 0;
  listenFails = false;

  async publish(name: string, events: FeedEvent[]): Promise<void> {
    this.names.push(name);
    for (const e of events) this.emit(e);
  }

  async read(name: string, afterSeq: number): Promise<FeedEvent[]> {
    this.names.push(name);
    this.reads.push(afterSeq);
    if (this.readFailures > 0) {
      this.readFailures--;
      throw new Error('Redis is away');
    }
    const bySeq = new Map<number, FeedEvent>();
    for (const e of this.log) if (e.seq > afterSeq && !bySeq.has(e.seq)) bySeq.set(e.seq, e);
    return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
  }

  async listen(name: string, onEvent: (event: FeedEvent) => void): Promise<() => void> {
    this.names.push(name);
    if (this.listenFails) throw new Error('Redis is away');
    this.listeners.add(onEvent);
    return () => this.listeners.delete(onEvent);
  }

  onReconnect(handler: () => void): () => void {
    this.reconnectHandlers.add(handler);
    return () => this.reconnectHandlers.delete(handler);
  }

  async close(): Promise<void> {}

  /** Publishes an event: into the log unless `logged` is false, to the listeners unless `live` is false. */
  emit(e: FeedEvent, { logged = true, live = true } = {}): void {
    if (logged) this.log.push(e);
    if (live) for (const listener of [...this.listeners]) listener(e);
  }

  reconnect(): void {
    for (const handler of [...this.reconnectHandlers]) handler();
  }
}

/** The database's side: the newest seq, and how often it was asked. */
class Database {
  calls = 0;
  failures = 0;
  constructor(public seq: number | null) {}
  currentSeq = async (): Promise<number | null> => {
    this.calls++;
    if (this.failures > 0) {
      this.failures--;
      throw new Error('database is away');
    }
    return this.seq;
  };
}

function stopSignal(): StopSignal & { abort(): void } {
  const signal = {
    aborted: false,
    onAbort: undefined as (() => void) | undefined,
    abort() {
      if (signal.aborted) return;
      signal.aborted = true;
      signal.onAbort?.();
    },
  };
  return signal;
}

function optionsFor(db: Database, overrides: Partial<FollowFeedOptions> = {}): FollowFeedOptions {
  return {
    afterSeq: 0,
    kind: KIND,
    subject: 'conv',
    currentSeq: db.currentSeq,
    limits: { maxEvents: 100, ttlMs: 60_000 },
    gapWaitMs: 1000,
    signal: stopSignal(),
    ...overrides,
  };
}

/** A subscriber consuming followFeed in the background. */
function follow(feed: ScriptedFeed, options: FollowFeedOptions, onEvent?: (e: FeedEvent) => void) {
  const signal = options.signal as ReturnType<typeof stopSignal>;
  const events: FeedEvent[] = [];
  const times: number[] = [];
  const state = { ended: false, error: undefined as unknown };
  const run = (async () => {
    try {
      for await (const e of followFeed(feed, FEED, options)) {
        events.push(e);
        times.push(Date.now());
        onEvent?.(e);
      }
    } catch (error) {
      state.error = error;
    } finally {
      state.ended = true;
    }
  })();
  return {
    events,
    times,
    state,
    signal,
    /** Seqs as sent: RESYNCs as 'R<seq>', gone events as 'G<seq>'. */
    sent: () => events.map((e) => (e.kind === RESYNC ? `R${e.seq}` : e.kind === 'GONE' ? `G${e.seq}` : e.seq)),
    ended: () => until(() => state.ended, 2000),
    async stop() {
      signal.abort();
      const ended = await until(() => state.ended, 1000);
      await run;
      return ended;
    },
  };
}

describe('followFeed: replay and live events', () => {
  it('replays the log after afterSeq, then live events, each once and in order, when live ones come out of order, repeated, and also logged', async () => {
    const feed = new ScriptedFeed();
    feed.log = [ev(0), ev(1), ev(2), ev(3)];
    const db = new Database(3);
    const f = follow(feed, optionsFor(db), (e) => {
      // While the replay goes out: a live repeat of a logged event, and 4..6 out of order, one twice, some logged.
      if (e.seq === 1)
        queueMicrotask(() => {
          feed.emit(ev(3), { logged: false });
          feed.emit(ev(5), { logged: false });
          feed.emit(ev(4));
          feed.emit(ev(5), { logged: false });
          feed.emit(ev(6));
        });
    });
    expect(await until(() => f.events.length >= 6)).toBe(true);
    await sleep(100);
    expect(f.sent()).toEqual([1, 2, 3, 4, 5, 6]);
    // The logged events themselves, not copies with other fields.
    expect(f.events.slice(0, 3)).toEqual([ev(1), ev(2), ev(3)]);
    expect(feed.reads[0]).toBe(0);
    expect(new Set(feed.names)).toEqual(new Set([FEED]));
    expect(await f.stop()).toBe(true);
    expect(f.state.error).toBeUndefined();
  });

  it('puts live events that are not logged yet in order, each once, without a RESYNC', async () => {
    const feed = new ScriptedFeed();
    const db = new Database(0);
    const f = follow(feed, optionsFor(db));
    expect(await until(() => feed.listeners.size === 1 && db.calls === 1)).toBe(true);
    db.seq = 3;
    feed.emit(ev(3), { logged: false });
    await sleep(20);
    feed.emit(ev(2), { logged: false });
    feed.emit(ev(3), { logged: false });
    await sleep(20);
    expect(f.sent()).toEqual([]);
    feed.emit(ev(1), { logged: false });
    feed.emit(ev(2), { logged: false });
    expect(await until(() => f.events.length >= 3)).toBe(true);
    await sleep(100);
    expect(f.sent()).toEqual([1, 2, 3]);
    await f.stop();
  });

  it('ignores live events at or before afterSeq', async () => {
    const feed = new ScriptedFeed();
    const db = new Database(5);
    feed.log = [ev(4), ev(5)];
    const f = follow(feed, optionsFor(db, { afterSeq: 5 }));
    expect(await until(() => feed.listeners.size === 1 && db.calls === 1)).toBe(true);
    feed.emit(ev(5), { logged: false });
    feed.emit(ev(3), { logged: false });
    feed.emit(ev(6));
    expect(await until(() => f.events.length >= 1)).toBe(true);
    await sleep(100);
    expect(f.sent()).toEqual([6]);
    await f.stop();
  });

  it('delivers 1..N exactly once and in order, whatever mix of log-only, live-only, both and repeats they come by (seeded)', async () => {
    let state = 20240611;
    const random = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let round = 0; round < 3; round++) {
      const feed = new ScriptedFeed();
      const N = 40;
      // The database already has them all: they are in flight.
      const db = new Database(N);
      const f = follow(feed, optionsFor(db, { gapWaitMs: 3000 }));
      const order = Array.from({ length: N }, (_, i) => i + 1).sort(() => random() - 0.5);
      for (const seq of order) {
        const mode = Math.floor(random() * 4);
        if (mode === 0) feed.emit(ev(seq), { live: false });
        else if (mode === 1) feed.emit(ev(seq), { logged: false });
        else feed.emit(ev(seq));
        if (mode === 3) feed.emit(ev(seq), { logged: false });
        if (random() < 0.3) await sleep(random() * 10);
      }
      expect(await until(() => f.events.length >= N, 2500), `round ${round}`).toBe(true);
      await sleep(80);
      expect(f.sent(), `round ${round}`).toEqual(Array.from({ length: N }, (_, i) => i + 1));
      await f.stop();
    }
  });
});

describe('followFeed: gaps', () => {
  it.each([
    ['in the log only', { live: false }],
    ['live only', { logged: false }],
    ['logged and live', {}],
  ] as const)('waits for a seq the database has but the log lacks: published late (%s), it is delivered, no RESYNC', async (_, how) => {
    const feed = new ScriptedFeed();
    feed.log = [ev(1)];
    const db = new Database(2);
    const gapWaitMs = 300;
    const f = follow(feed, optionsFor(db, { gapWaitMs }));
    expect(await until(() => f.events.length >= 1)).toBe(true);
    await sleep(120);
    expect(f.sent()).toEqual([1]);
    feed.emit(ev(2), how);
    expect(await until(() => f.events.length >= 2, 1000)).toBe(true);
    // Well past the wait: nothing more.
    await sleep(gapWaitMs + 50);
    expect(f.sent()).toEqual([1, 2]);
    expect(f.events[1]).toEqual(ev(2));
    await f.stop();
  });

  it('past gapWaitMs: exactly one RESYNC with the database’s newest seq (asked then), then seq + 1 on; live events up to it are dropped', async () => {
    const feed = new ScriptedFeed();
    feed.log = [ev(1)];
    const db = new Database(2);
    const gapWaitMs = 250;
    const f = follow(feed, optionsFor(db, { gapWaitMs }));
    expect(await until(() => f.events.length >= 1)).toBe(true);
    await sleep(50);
    // The database moves on; 4 is heard live, 2 and 3 never come.
    db.seq = 4;
    feed.emit(ev(4), { logged: false });
    expect(await until(() => f.events.length >= 2, 2000)).toBe(true);
    expect(f.events[1]).toEqual(resync(4));
    const waited = f.times[1]! - f.times[0]!;
    expect(waited).toBeGreaterThanOrEqual(gapWaitMs);
    expect(waited).toBeLessThan(gapWaitMs + 600);
    // Late copies of what the RESYNC covers are dropped; what follows goes out.
    feed.emit(ev(3), { logged: false });
    feed.emit(ev(4));
    feed.emit(ev(2));
    feed.emit(ev(5));
    expect(await until(() => f.events.length >= 3)).toBe(true);
    await sleep(gapWaitMs + 50);
    expect(f.sent()).toEqual([1, 'R4', 5]);
    await f.stop();
  });

  it('a RESYNC is not postponed forever by live events that keep waking the subscriber past the gap', async () => {
    const feed = new ScriptedFeed();
    feed.log = [ev(1)];
    const db = new Database(2);
    const gapWaitMs = 250;
    const f = follow(feed, optionsFor(db, { gapWaitMs }));
    expect(await until(() => f.events.length >= 1)).toBe(true);
    // 2 is lost; 3, 4, ... keep coming live every 20 ms.
    const emitted: number[] = [];
    const started = Date.now();
    for (let seq = 3; Date.now() - started < gapWaitMs + 500 && !f.events.some((e) => e.kind === RESYNC); seq++) {
      db.seq = seq;
      feed.emit(ev(seq));
      emitted.push(seq);
      await sleep(20);
    }
    for (let i = 0; i < 3; i++) {
      const seq = emitted.at(-1)! + 1;
      db.seq = seq;
      feed.emit(ev(seq));
      emitted.push(seq);
      await sleep(20);
    }
    await sleep(100);
    const resyncs = f.events.filter((e) => e.kind === RESYNC);
    expect(resyncs).toHaveLength(1);
    const at = f.events.indexOf(resyncs[0]!);
    expect(f.sent().slice(0, at)).toEqual([1]);
    // After the RESYNC: every later seq, consecutive, none of it 'skipped' silently.
    const after = f.events.slice(at + 1).map((e) => e.seq);
    expect(after).toEqual(emitted.filter((seq) => seq > resyncs[0]!.seq));
    expect(after[0]).toBe(resyncs[0]!.seq + 1);
    await f.stop();
  });

  it('a log read that fails now and then is tried again within the wait, and the events still go out without a RESYNC', async () => {
    const feed = new ScriptedFeed();
    feed.log = [ev(1), ev(2)];
    feed.readFailures = 2;
    const db = new Database(2);
    const f = follow(feed, optionsFor(db, { gapWaitMs: 1500 }));
    expect(await until(() => f.events.length >= 2, 1000)).toBe(true);
    await sleep(100);
    expect(f.sent()).toEqual([1, 2]);
    expect(f.state.error).toBeUndefined();
    await f.stop();
  });
});

describe('followFeed: a log too short for afterSeq', () => {
  it('afterSeq more than maxEvents below the newest: RESYNC at once, without reading or waiting; then live events', async () => {
    const feed = new ScriptedFeed();
    // What a log of 10 keeps of 1..11.
    feed.log = Array.from({ length: 10 }, (_, i) => ev(i + 2));
    const db = new Database(11);
    const started = Date.now();
    const f = follow(feed, optionsFor(db, { afterSeq: 0, limits: { maxEvents: 10, ttlMs: 60_000 }, gapWaitMs: 5000 }));
    expect(await until(() => f.events.length >= 1, 1000)).toBe(true);
    expect(f.times[0]! - started).toBeLessThan(300);
    expect(f.events[0]).toEqual(resync(11));
    expect(feed.reads).toEqual([]);
    feed.emit(ev(11), { logged: false });
    feed.emit(ev(12));
    expect(await until(() => f.events.length >= 2)).toBe(true);
    await sleep(100);
    expect(f.sent()).toEqual(['R11', 12]);
    await f.stop();
  });

  it('exactly maxEvents below the newest: the log holds them all, replayed without a RESYNC', async () => {
    const feed = new ScriptedFeed();
    feed.log = Array.from({ length: 10 }, (_, i) => ev(i));
    const db = new Database(9);
    const f = follow(feed, optionsFor(db, { afterSeq: -1, limits: { maxEvents: 10, ttlMs: 60_000 }, gapWaitMs: 200 }));
    expect(await until(() => f.events.length >= 10)).toBe(true);
    await sleep(300);
    expect(f.sent()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await f.stop();
  });
});

describe('followFeed: events it does not accept', () => {
  it('a logged event it refuses counts as missing: a RESYNC, never a silent skip to the next one', async () => {
    const feed = new ScriptedFeed();
    feed.log = [ev(1), ev(2, 'BAD'), ev(3, 'UPDATED', 'another-conversation'), ev(4)];
    const db = new Database(4);
    const f = follow(feed, optionsFor(db, { gapWaitMs: 200 }));
    expect(await until(() => f.events.length >= 2, 2000)).toBe(true);
    expect(f.sent()).toEqual([1, 'R4']);
    feed.emit(ev(5));
    expect(await until(() => f.events.length >= 3)).toBe(true);
    await sleep(250);
    expect(f.sent()).toEqual([1, 'R4', 5]);
    expect(f.events.some((e) => e.kind === 'BAD' || e.conversationId === 'another-conversation')).toBe(false);
    await f.stop();
  });

  it('a live event it refuses counts as missing too: the next accepted one does not go out before the RESYNC', async () => {
    const feed = new ScriptedFeed();
    const db = new Database(0);
    const f = follow(feed, optionsFor(db, { gapWaitMs: 200 }));
    expect(await until(() => feed.listeners.size === 1 && db.calls === 1)).toBe(true);
    db.seq = 2;
    feed.emit(ev(1, 'BAD'));
    feed.emit(ev(2));
    expect(await until(() => f.events.length >= 1, 2000)).toBe(true);
    expect(f.events[0]).toEqual(resync(2));
    feed.emit(ev(3));
    expect(await until(() => f.events.length >= 2)).toBe(true);
    await sleep(250);
    expect(f.sent()).toEqual(['R2', 3]);
    await f.stop();
  });
});

describe('followFeed: the end', () => {
  it('ends after a last event found in the log, releasing its listener and reconnect handler', async () => {
    const feed = new ScriptedFeed();
    feed.log = [ev(1), ev(2, 'END'), ev(3)];
    const db = new Database(3);
    const f = follow(feed, optionsFor(db));
    expect(await f.ended()).toBe(true);
    expect(f.sent()).toEqual([1, 2]);
    expect(f.events[1]!.kind).toBe('END');
    expect(feed.listeners.size).toBe(0);
    expect(feed.reconnectHandlers.size).toBe(0);
  });

  it('ends after a last event heard live', async () => {
    const feed = new ScriptedFeed();
    const db = new Database(0);
    const f = follow(feed, optionsFor(db));
    expect(await until(() => feed.listeners.size === 1 && db.calls === 1)).toBe(true);
    db.seq = 3;
    feed.emit(ev(1), { logged: false });
    feed.emit(ev(3), { logged: false });
    feed.emit(ev(2, 'END'), { logged: false });
    expect(await f.ended()).toBe(true);
    expect(f.sent()).toEqual([1, 2]);
    expect(feed.listeners.size).toBe(0);
    expect(feed.reconnectHandlers.size).toBe(0);
    expect(f.signal.onAbort).toBeUndefined();
  });

  it('yields `gone` and ends when the subject is gone at the start', async () => {
    const feed = new ScriptedFeed();
    feed.log = [ev(4), ev(5)];
    const db = new Database(null);
    const f = follow(feed, optionsFor(db, { afterSeq: 3 }));
    expect(await f.ended()).toBe(true);
    expect(f.events).toEqual([goneEvent(4)]);
    expect(f.state.error).toBeUndefined();
    expect(feed.listeners.size).toBe(0);
    expect(feed.reconnectHandlers.size).toBe(0);
  });

  it('yields `gone` and ends when the subject is gone once a gap times out', async () => {
    const feed = new ScriptedFeed();
    feed.log = [ev(1)];
    const db = new Database(2);
    const f = follow(feed, optionsFor(db, { gapWaitMs: 200 }));
    expect(await until(() => f.events.length >= 1)).toBe(true);
    db.seq = null;
    expect(await f.ended()).toBe(true);
    expect(f.events).toEqual([ev(1), goneEvent(2)]);
    expect(feed.listeners.size).toBe(0);
    expect(feed.reconnectHandlers.size).toBe(0);
  });

  it('yields `gone` and ends when, after a reconnect, the subject is gone and its last event was lost', async () => {
    const feed = new ScriptedFeed();
    feed.log = [ev(1)];
    const db = new Database(1);
    const f = follow(feed, optionsFor(db, { gapWaitMs: 200 }));
    expect(await until(() => f.events.length >= 1)).toBe(true);
    await sleep(50);
    db.seq = null;
    feed.reconnect();
    expect(await f.ended()).toBe(true);
    expect(f.events).toEqual([ev(1), goneEvent(2)]);
    expect(feed.listeners.size).toBe(0);
    expect(feed.reconnectHandlers.size).toBe(0);
  });

  it('after a reconnect, a last event the log has goes out instead of `gone`', async () => {
    const feed = new ScriptedFeed();
    feed.log = [ev(1)];
    const db = new Database(1);
    const f = follow(feed, optionsFor(db, { gapWaitMs: 200 }));
    expect(await until(() => f.events.length >= 1)).toBe(true);
    await sleep(50);
    db.seq = null;
    feed.log.push(ev(2), ev(3, 'END'));
    feed.reconnect();
    expect(await f.ended()).toBe(true);
    expect(f.sent()).toEqual([1, 2, 3]);
    expect(f.events[2]!.kind).toBe('END');
  });
});

describe('followFeed: reconnects', () => {
  it('the database moved past what was received and the log lacks it: one RESYNC (however many reconnects), then live events', async () => {
    const feed = new ScriptedFeed();
    feed.log = [ev(1)];
    const db = new Database(1);
    const gapWaitMs = 200;
    const f = follow(feed, optionsFor(db, { gapWaitMs }));
    expect(await until(() => f.events.length >= 1)).toBe(true);
    await sleep(50);
    // 2 and 3 were published while the connection was away.
    db.seq = 3;
    feed.reconnect();
    feed.reconnect();
    expect(await until(() => f.events.length >= 2, 2000)).toBe(true);
    expect(f.events[1]).toEqual(resync(3));
    feed.reconnect();
    await sleep(gapWaitMs + 50);
    feed.emit(ev(4));
    expect(await until(() => f.events.length >= 3)).toBe(true);
    await sleep(100);
    expect(f.sent()).toEqual([1, 'R3', 4]);
    await f.stop();
  });

  it('the database moved and the log has the events: they go out, no RESYNC', async () => {
    const feed = new ScriptedFeed();
    feed.log = [ev(1)];
    const db = new Database(1);
    const gapWaitMs = 200;
    const f = follow(feed, optionsFor(db, { gapWaitMs }));
    expect(await until(() => f.events.length >= 1)).toBe(true);
    await sleep(50);
    db.seq = 3;
    feed.log.push(ev(2), ev(3));
    feed.reconnect();
    expect(await until(() => f.events.length >= 3)).toBe(true);
    await sleep(gapWaitMs + 50);
    expect(f.sent()).toEqual([1, 2, 3]);
    await f.stop();
  });

  it('nothing moved: it asks the database, and sends nothing', async () => {
    const feed = new ScriptedFeed();
    feed.log = [ev(1)];
    const db = new Database(1);
    const gapWaitMs = 150;
    const f = follow(feed, optionsFor(db, { gapWaitMs }));
    expect(await until(() => f.events.length >= 1)).toBe(true);
    await sleep(30);
    const asked = db.calls;
    feed.reconnect();
    expect(await until(() => db.calls > asked, 1000)).toBe(true);
    await sleep(gapWaitMs * 2);
    expect(f.sent()).toEqual([1]);
    // Still following.
    feed.emit(ev(2));
    expect(await until(() => f.events.length >= 2)).toBe(true);
    expect(f.sent()).toEqual([1, 2]);
    await f.stop();
  });

  it('a database error while it checks after a reconnect still releases its listener and reconnect handler', async () => {
    const feed = new ScriptedFeed();
    const db = new Database(0);
    const f = follow(feed, optionsFor(db));
    expect(await until(() => feed.listeners.size === 1 && db.calls === 1)).toBe(true);
    db.failures = 1;
    feed.reconnect();
    expect(await f.ended()).toBe(true);
    expect(f.state.error).toBeInstanceOf(Error);
    expect(feed.listeners.size).toBe(0);
    expect(feed.reconnectHandlers.size).toBe(0);
  });
});

describe('followFeed: the stop', () => {
  function abortableFollower(feed: ScriptedFeed, db: Database, parent: AbortSignal, overrides: Partial<FollowFeedOptions> = {}) {
    const captured: { signal?: StopSignal } = {};
    const iterator = abortable((signal) => {
      captured.signal = signal;
      return followFeed(feed, FEED, optionsFor(db, { ...overrides, signal }));
    }, parent);
    return { iterator, captured };
  }

  it('return() ends an idle subscriber at once, removing its listener and reconnect handler', async () => {
    const feed = new ScriptedFeed();
    const db = new Database(0);
    const { iterator, captured } = abortableFollower(feed, db, new AbortController().signal);
    const pending = iterator.next();
    expect(await until(() => feed.listeners.size === 1 && feed.reconnectHandlers.size === 1 && db.calls === 1)).toBe(true);
    await sleep(30);
    const started = Date.now();
    await iterator.return(undefined);
    expect(await pending).toEqual({ done: true, value: undefined });
    expect(Date.now() - started).toBeLessThan(200);
    expect(feed.listeners.size).toBe(0);
    expect(feed.reconnectHandlers.size).toBe(0);
    expect(captured.signal!.aborted).toBe(true);
    expect(captured.signal!.onAbort).toBeUndefined();
    // Later events and reconnects reach nobody and break nothing.
    feed.emit(ev(1));
    feed.reconnect();
    expect(await iterator.next()).toEqual({ done: true, value: undefined });
  });

  it('the parent signal (shutdown) ends an idle subscriber at once, with the same cleanup', async () => {
    const feed = new ScriptedFeed();
    const db = new Database(0);
    const parent = new AbortController();
    const { iterator } = abortableFollower(feed, db, parent.signal);
    const pending = iterator.next();
    expect(await until(() => feed.listeners.size === 1 && db.calls === 1)).toBe(true);
    await sleep(30);
    const started = Date.now();
    parent.abort();
    expect(await pending).toEqual({ done: true, value: undefined });
    expect(Date.now() - started).toBeLessThan(200);
    expect(feed.listeners.size).toBe(0);
    expect(feed.reconnectHandlers.size).toBe(0);
  });

  it('return() ends a subscriber waiting out a long gap at once, without a RESYNC', async () => {
    const feed = new ScriptedFeed();
    feed.log = [ev(1)];
    const db = new Database(2);
    const { iterator } = abortableFollower(feed, db, new AbortController().signal, { gapWaitMs: 10_000 });
    expect(await iterator.next()).toEqual({ done: false, value: ev(1) });
    const pending = iterator.next();
    await sleep(100);
    const started = Date.now();
    await iterator.return(undefined);
    expect(await pending).toEqual({ done: true, value: undefined });
    expect(Date.now() - started).toBeLessThan(200);
    expect(feed.listeners.size).toBe(0);
    expect(feed.reconnectHandlers.size).toBe(0);
  });

  it('a parent already aborted: the subscriber sends nothing and keeps nothing', async () => {
    const feed = new ScriptedFeed();
    feed.log = [ev(1)];
    const db = new Database(1);
    const parent = new AbortController();
    parent.abort();
    const { iterator } = abortableFollower(feed, db, parent.signal);
    expect(await iterator.next()).toEqual({ done: true, value: undefined });
    expect(feed.listeners.size).toBe(0);
    expect(feed.reconnectHandlers.size).toBe(0);
  });
});

describe('followFeed: a failing feed or database', () => {
  it('a listen() that rejects does not break it: the log still replays, a reconnect still brings what was missed, the stop still cleans up', async () => {
    const feed = new ScriptedFeed();
    feed.listenFails = true;
    feed.log = [ev(1), ev(2)];
    const db = new Database(2);
    const f = follow(feed, optionsFor(db, { gapWaitMs: 200 }));
    expect(await until(() => f.events.length >= 2)).toBe(true);
    expect(feed.reconnectHandlers.size).toBe(1);
    db.seq = 4;
    feed.log.push(ev(3), ev(4));
    feed.reconnect();
    expect(await until(() => f.events.length >= 4)).toBe(true);
    await sleep(300);
    expect(f.sent()).toEqual([1, 2, 3, 4]);
    expect(f.state.error).toBeUndefined();
    expect(await f.stop()).toBe(true);
    expect(feed.reconnectHandlers.size).toBe(0);
    expect(f.state.error).toBeUndefined();
  });

  it('a database error at the start leaves no listener or reconnect handler behind', async () => {
    const feed = new ScriptedFeed();
    const db = new Database(0);
    db.failures = 1;
    const f = follow(feed, optionsFor(db));
    expect(await f.ended()).toBe(true);
    expect(f.state.error).toBeInstanceOf(Error);
    expect(feed.listeners.size).toBe(0);
    expect(feed.reconnectHandlers.size).toBe(0);
    expect(f.signal.onAbort).toBeUndefined();
  });
});

describe('decodeFeedEvent', () => {
  it('round-trips encodeFeedEvent', () => {
    const events: FeedEvent[] = [
      ev(0),
      { seq: 1, kind: 'DELETED', conversationId: 'c1', messageId: null },
      { seq: Number.MAX_SAFE_INTEGER, kind: 'MESSAGE_ADDED', conversationId: 'é ✓ "q" \n \\ 🎉', messageId: '' },
      { seq: 7, kind: '', conversationId: '', messageId: '[1,2]' },
    ];
    for (const e of events) expect(decodeFeedEvent(encodeFeedEvent(e))).toStrictEqual(e);
  });

  it.each([
    ['not JSON', 'not json'],
    ['empty', ''],
    ['truncated', '[1,"k","c",nu'],
    ['null', 'null'],
    ['a number', '5'],
    ['a string', '"[1,\\"k\\",\\"c\\",null]"'],
    ['an object', '{"seq":1,"kind":"k","conversationId":"c","messageId":null}'],
    ['an empty array', '[]'],
    ['three fields', '[1,"k","c"]'],
    ['five fields', '[1,"k","c",null,"x"]'],
    ['a negative seq', '[-1,"k","c",null]'],
    ['a fractional seq', '[1.5,"k","c",null]'],
    ['an unsafe seq', '[9007199254740992,"k","c",null]'],
    ['an infinite seq', '[1e400,"k","c",null]'],
    ['a string seq', '["1","k","c",null]'],
    ['a null seq', '[null,"k","c",null]'],
    ['a boolean seq', '[true,"k","c",null]'],
    ['a number kind', '[1,2,"c",null]'],
    ['a null kind', '[1,null,"c",null]'],
    ['a number conversationId', '[1,"k",3,null]'],
    ['a null conversationId', '[1,"k",null,null]'],
    ['an array conversationId', '[1,"k",["c"],null]'],
    ['a number messageId', '[1,"k","c",5]'],
    ['an object messageId', '[1,"k","c",{}]'],
    ['a boolean messageId', '[1,"k","c",false]'],
  ])('refuses %s', (_, text) => {
    expect(decodeFeedEvent(text)).toBeUndefined();
  });

  it('never throws, whatever it is given', () => {
    for (const text of ['\u0000', '[', ']', '{{', '[1,"k","c",null]]', ' '.repeat(10), '\ud800', '1'.repeat(400)]) expect(() => decodeFeedEvent(text)).not.toThrow();
  });
});

describe('followFeed: the sweep (watch)', () => {
  /** A watch option the test drives, counting who is registered. */
  function sweeper() {
    const callbacks = new Set<(seq: number | null) => void>();
    return {
      callbacks,
      watch: {
        add: (subject: string, onSeq: (seq: number | null) => void) => {
          expect(subject).toBe('conv');
          callbacks.add(onSeq);
        },
        remove: (_subject: string, onSeq: (seq: number | null) => void) => void callbacks.delete(onSeq),
      },
      report: (seq: number | null) => [...callbacks].forEach((callback) => callback(seq)),
    };
  }

  it('an idle follower told of a seq the log never got (a lost publish) gets one RESYNC after gapWaitMs, then live events', async () => {
    const feed = new ScriptedFeed();
    const db = new Database(0);
    const sweep = sweeper();
    const f = follow(feed, optionsFor(db, { watch: sweep.watch, gapWaitMs: 150 }));
    expect(await until(() => feed.listeners.size === 1 && db.calls === 1 && sweep.callbacks.size === 1)).toBe(true);
    // Seq 1 was committed, and its publish lost: nothing live, nothing in the log.
    db.seq = 1;
    await sleep(300);
    expect(f.sent()).toEqual([]);
    const toldAt = Date.now();
    sweep.report(1);
    expect(await until(() => f.events.length === 1)).toBe(true);
    expect(f.times[0]! - toldAt).toBeGreaterThanOrEqual(140);
    expect(f.events[0]).toEqual(resync(1));
    feed.emit(ev(2));
    expect(await until(() => f.events.length === 2)).toBe(true);
    expect(f.sent()).toEqual(['R1', 2]);
    expect(await f.stop()).toBe(true);
    expect(sweep.callbacks.size).toBe(0);
  });

  it('a sweep that reports a seq the log has delivers it without RESYNC, and one that reports nothing new sends nothing', async () => {
    const feed = new ScriptedFeed();
    const db = new Database(0);
    const sweep = sweeper();
    const f = follow(feed, optionsFor(db, { watch: sweep.watch, gapWaitMs: 150 }));
    expect(await until(() => sweep.callbacks.size === 1 && db.calls === 1)).toBe(true);
    sweep.report(0);
    await sleep(250);
    expect(f.sent()).toEqual([]);
    // Logged but its live copy lost (the subscriber connection blinked).
    feed.emit(ev(1), { live: false });
    db.seq = 1;
    sweep.report(1);
    expect(await until(() => f.events.length === 1)).toBe(true);
    await sleep(250);
    expect(f.sent()).toEqual([1]);
    expect(await f.stop()).toBe(true);
  });

  it('a sweep that finds the subject gone ends an idle follower with the gone event', async () => {
    const feed = new ScriptedFeed();
    const db = new Database(0);
    const sweep = sweeper();
    const f = follow(feed, optionsFor(db, { watch: sweep.watch }));
    expect(await until(() => sweep.callbacks.size === 1 && db.calls === 1)).toBe(true);
    sweep.report(null);
    expect(await f.ended()).toBe(true);
    expect(f.sent()).toEqual(['G1']);
    expect(sweep.callbacks.size).toBe(0);
    expect(feed.listeners.size).toBe(0);
  });
});
