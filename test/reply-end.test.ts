// The one-winner rule of a reply's end, with no HTTP server: ReplyFinalizer, ChatService and
// LeaseKeeper on the in-memory broker and a fresh SQLite database. However many parties try to
// end a reply at once, one does: its outcome is saved, the saved text is the logged deltas, and
// the log ends with exactly one terminal event that carries the saved status.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { NoHistoryCache } from '../src/cache/history-cache.ts';
import { ChatService, type ChatOptions } from '../src/chat/chat-service.ts';
import { ReplyFinalizer, type LocalReply, type Outcome } from '../src/chat/finalize.ts';
import type { Generation, Generations } from '../src/chat/generation.ts';
import { LeaseKeeper } from '../src/chat/leases.ts';
import { loadConfig } from '../src/config.ts';
import { modelPresets } from '../src/llm/presets.ts';
import { chatOptions } from '../src/server/compose.ts';
import { UserEndpoints } from '../src/llm/user-endpoints.ts';
import { createLogger } from '../src/logger.ts';
import { noEvents } from '../src/services/live-events.ts';
import type { FinalStatus } from '../src/model.ts';
import { UserConfigService } from '../src/services/user-config.ts';
import { openDatabase, type Database } from '../src/store/database.ts';
import { applyMigrations } from '../src/store/migrate.ts';
import type { Message } from '../src/store/rows.ts';
import type { Store } from '../src/store/store.ts';
import type { AppendResult, SealResult, StreamBroker, StreamEvent } from '../src/streaming/events.ts';
import { MemoryBroker } from '../src/streaming/memory-broker.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import { streamingReply, type Reply } from './support/replies.ts';

const logger = createLogger('silent');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const INTERRUPTED_ERROR = 'the server generating this reply stopped before it finished';

function shuffled<T>(items: T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

/** A fresh migrated SQLite database and an in-memory broker for one describe block. */
function useFixture() {
  const f = {} as { database: TestDatabase; db: Database; broker: MemoryBroker; cache: NoHistoryCache };
  beforeAll(async () => {
    f.database = await createTestDatabase('sqlite');
    await applyMigrations(f.database.url);
    f.db = await openDatabase({ url: f.database.url, poolSize: 1 });
    f.broker = new MemoryBroker(60 * 60_000);
    f.cache = new NoHistoryCache(50);
  });
  afterAll(async () => {
    await f.broker?.close();
    await f.db?.close();
    await f.database?.drop();
  });
  return f;
}

const rowOf = (db: Database, id: string) => db.prisma.message.findUnique({ where: { id } });

/**
 * A well-formed log: seq 0, 1, 2, ... with no gap; exactly one terminal event, the last one.
 * Returns the concatenated deltas and the terminal event.
 */
function wellFormed(events: StreamEvent[]): { content: string; terminal: StreamEvent } {
  expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i));
  const terminals = events.filter((e) => e.done);
  expect(terminals).toHaveLength(1);
  expect(events.at(-1)!.done).toBe(true);
  for (const event of events.slice(0, -1)) expect(event.status).toBe('STREAMING');
  const terminal = events.at(-1)!;
  expect(terminal.delta).toBe('');
  return { content: events.map((e) => e.delta).join(''), terminal };
}

/** Every way to end a reply, each told apart by its error or finish reason. */
function outcomeFor(i: number, reply: Reply): { outcome: Outcome; local?: LocalReply } {
  const local = { content: `local text of caller ${i}, never published`, userId: reply.userId, conversationId: reply.conversationId, metadata: { caller: i } };
  switch (i % 4) {
    case 0:
      return { outcome: { status: 'COMPLETE', finishReason: `stop-${i}`, model: `model-${i}`, promptTokens: 7, completionTokens: 3 }, local };
    case 1:
      return { outcome: { status: 'STOPPED' } };
    case 2:
      return { outcome: { status: 'INTERRUPTED', error: `interrupted by caller ${i}` } };
    default:
      return { outcome: { status: 'FAILED', error: `failed for caller ${i}` }, local: i % 8 === 3 ? local : undefined };
  }
}

/** A ReplyFinalizer that records every call and its result. */
class RecordingFinalizer extends ReplyFinalizer {
  readonly calls: { messageId: string; status: FinalStatus; result?: boolean; running?: boolean }[] = [];
  constructor(
    store: Store,
    cache: NoHistoryCache,
    broker: StreamBroker,
    private readonly running?: ReadonlyMap<string, unknown>,
  ) {
    super(store, cache, broker, logger, noEvents);
  }
  override async finalize(messageId: string, outcome: Outcome, local?: LocalReply): Promise<boolean> {
    const call: (typeof this.calls)[number] = { messageId, status: outcome.status, running: this.running?.has(messageId) };
    this.calls.push(call);
    call.result = await super.finalize(messageId, outcome, local);
    return call.result;
  }
}

/** The shared log while Redis is away: every seal fails, the rest works. */
class SealFailingBroker implements StreamBroker {
  seals = 0;
  constructor(private readonly inner: MemoryBroker) {}
  append(messageId: string, event: StreamEvent, sealToken?: string): Promise<AppendResult> {
    return this.inner.append(messageId, event, sealToken);
  }
  async seal(_messageId: string, _token: string): Promise<SealResult> {
    this.seals++;
    await sleep(1);
    throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
  }
  release(messageId: string, token: string): Promise<void> {
    return this.inner.release(messageId, token);
  }
  read(messageId: string, fromSeq: number): Promise<StreamEvent[]> {
    return this.inner.read(messageId, fromSeq);
  }
  listen(messageId: string, onEvent: (event: StreamEvent) => void): Promise<() => void> {
    return this.inner.listen(messageId, onEvent);
  }
  requestStop(messageId: string): Promise<void> {
    return this.inner.requestStop(messageId);
  }
  onStopRequest(handler: (messageId: string) => void): void {
    this.inner.onStopRequest(handler);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The store with saveReplyEnd's answers (rows changed) recorded. */
function countingStore(store: Store): { store: Store; saves: Map<string, number[]> } {
  const saves = new Map<string, number[]>();
  const wrapped = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'saveReplyEnd') {
        return async (...args: Parameters<Store['saveReplyEnd']>) => {
          const saved = await target.saveReplyEnd(...args);
          saves.set(args[0], [...(saves.get(args[0]) ?? []), saved.count]);
          return saved;
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { store: wrapped, saves };
}

/** The ChatService of src/server/compose.ts, on the default configuration's presets (local-echo). */
function chatService(f: ReturnType<typeof useFixture>, options: Partial<ChatOptions> = {}) {
  const config = loadConfig({});
  const presets = modelPresets(config);
  expect(presets.default.baseUrl).toBeNull();
  const userEndpoints = config.ALLOW_CUSTOM_BASE_URL ? new UserEndpoints(config.LLM_ALLOWED_HOSTS) : undefined;
  const userConfigs = new UserConfigService(f.db.store, { presets, userEndpoints, maxSystemPromptChars: config.MAX_CONTENT_CHARS });
  const service = new ChatService(
    f.db.store,
    f.broker,
    userConfigs,
    f.cache,
    { ...chatOptions(config, { userEndpoints, singleInstance: true }), flushMs: 5, ...options },
    logger,
    noEvents,
  );
  const running = (service as unknown as { generations: Generations }).generations.running;
  return { service, running };
}

describe('ReplyFinalizer: one winner', () => {
  const f = useFixture();

  it('of 20 concurrent finalize calls with every outcome, exactly one wins; the row and the log agree with it', async () => {
    for (let round = 0; round < 5; round++) {
      const deltas = ['Hello', ', ', 'wor', 'ld', ` (round ${round})`];
      const reply = await streamingReply(f.db, f.broker, { deltas, checkpoint: 'Hello, wo' });
      const calls = shuffled(Array.from({ length: 20 }, (_, i) => outcomeFor(i, reply)));
      // Every other round a caller with text of its own goes first (and so seals first).
      if (round % 2 === 0) calls.unshift(...calls.splice(calls.findIndex((c) => c.local), 1));
      // Separate finalizers, as on separate instances sharing the broker and the store; half of
      // them start a little later, while the first ones are saving.
      const racing = Promise.all(
        calls.map(async ({ outcome, local }, i) => {
          if (i % 2) await sleep(Math.random() * 3);
          return new ReplyFinalizer(f.db.store, f.cache, f.broker, logger, noEvents).finalize(reply.id, outcome, local);
        }),
      );
      // The generating instance, still publishing, comes too late: the first call has sealed the log.
      expect(await f.broker.append(reply.id, { seq: deltas.length, delta: 'late', done: false, status: 'STREAMING' })).toBe('sealed');
      const results = await racing;
      expect(results.filter(Boolean)).toHaveLength(1);
      const winner = calls[results.indexOf(true)]!;

      const row = (await rowOf(f.db, reply.id))!;
      expect(row.status).toBe(winner.outcome.status);
      expect(row.error).toBe(winner.outcome.error ?? null);
      expect(row.finishReason).toBe(winner.outcome.finishReason ?? null);
      expect(row.model).toBe(winner.outcome.model ?? 'saved-model');
      expect(row.leaseExpiresAt).toBeNull();
      // What subscribers saw, not the winner's local text nor the checkpoint.
      expect(row.content).toBe(deltas.join(''));

      const log = await f.broker.read(reply.id, 0);
      const { content, terminal } = wellFormed(log);
      expect(log).toHaveLength(deltas.length + 1);
      expect(content).toBe(row.content);
      expect(terminal).toEqual({ seq: deltas.length, delta: '', done: true, status: row.status, error: row.error });
    }
  });

  it('after a reply has ended, further finalize calls return false and change neither the row nor the log', async () => {
    const deltas = ['one ', 'two ', 'three'];
    const reply = await streamingReply(f.db, f.broker, { deltas });
    expect(await new ReplyFinalizer(f.db.store, f.cache, f.broker, logger, noEvents).finalize(reply.id, { status: 'STOPPED' })).toBe(true);
    const rowBefore = await rowOf(f.db, reply.id);
    const logBefore = structuredClone(await f.broker.read(reply.id, 0));
    expect(rowBefore!.status).toBe('STOPPED');
    wellFormed(logBefore);
    // A later update would move updatedAt.
    await sleep(5);

    const late = Array.from({ length: 12 }, (_, i) => outcomeFor(i, reply));
    const results = await Promise.all(late.map(({ outcome, local }) => new ReplyFinalizer(f.db.store, f.cache, f.broker, logger, noEvents).finalize(reply.id, outcome, local)));
    expect(results).toEqual(late.map(() => false));
    // And one at a time, after the others have settled.
    for (const { outcome, local } of late.slice(0, 4)) expect(await new ReplyFinalizer(f.db.store, f.cache, f.broker, logger, noEvents).finalize(reply.id, outcome, local)).toBe(false);

    expect(await rowOf(f.db, reply.id)).toEqual(rowBefore);
    expect(await f.broker.read(reply.id, 0)).toEqual(logBefore);
  });

  it('without a log, the winner publishes the saved checkpoint as one delta before the terminal event', async () => {
    // Checkpointed text, nothing in the log (a restart without Redis).
    const reply = await streamingReply(f.db, f.broker, { checkpoint: 'partial text that was checkpointed' });
    const outcomes: Outcome[] = [{ status: 'INTERRUPTED', error: 'gone' }, { status: 'STOPPED' }, { status: 'FAILED', error: 'x' }, { status: 'INTERRUPTED', error: 'again' }];
    const results = await Promise.all(outcomes.map((o) => new ReplyFinalizer(f.db.store, f.cache, f.broker, logger, noEvents).finalize(reply.id, o)));
    expect(results.filter(Boolean)).toHaveLength(1);
    const winner = outcomes[results.indexOf(true)]!;
    const row = (await rowOf(f.db, reply.id))!;
    expect(row).toMatchObject({ status: winner.status, error: winner.error ?? null, content: 'partial text that was checkpointed' });
    const log = await f.broker.read(reply.id, 0);
    expect(log).toEqual([
      { seq: 0, delta: 'partial text that was checkpointed', done: false, status: 'STREAMING' },
      { seq: 1, delta: '', done: true, status: winner.status, error: winner.error ?? null },
    ]);
    expect(wellFormed(log).content).toBe(row.content);

    // The generating instance's own text stands in for a lost log, the same way.
    const generated = await streamingReply(f.db, f.broker, { checkpoint: 'older checkpoint' });
    const local = { content: 'everything it generated', userId: generated.userId, conversationId: generated.conversationId };
    expect(await new ReplyFinalizer(f.db.store, f.cache, f.broker, logger, noEvents).finalize(generated.id, { status: 'COMPLETE', finishReason: 'stop' }, local)).toBe(true);
    expect((await rowOf(f.db, generated.id))!.content).toBe('everything it generated');
    expect(wellFormed(await f.broker.read(generated.id, 0)).content).toBe('everything it generated');

    // Nothing saved, nothing logged: the terminal event alone, at seq 0.
    const empty = await streamingReply(f.db, f.broker);
    expect(await new ReplyFinalizer(f.db.store, f.cache, f.broker, logger, noEvents).finalize(empty.id, { status: 'STOPPED' })).toBe(true);
    expect(await f.broker.read(empty.id, 0)).toEqual([{ seq: 0, delta: '', done: true, status: 'STOPPED', error: null }]);
    expect((await rowOf(f.db, empty.id))!.content).toBe('');
  });

  it('a reply whose conversation was deleted mid-stream still gets one terminal event, "the message was deleted"', async () => {
    for (const withLocal of [false, true]) {
      const deltas = ['soon ', 'to be ', 'deleted'];
      const reply = await streamingReply(f.db, f.broker, { deltas });
      expect(await f.db.store.deleteConversation(reply.userId, reply.conversationId)).not.toBeNull();
      expect(await rowOf(f.db, reply.id)).toBeNull();
      const local = withLocal ? { content: deltas.join(''), userId: reply.userId, conversationId: reply.conversationId } : undefined;
      const calls = shuffled<{ outcome: Outcome; local?: LocalReply }>([
        { outcome: { status: 'COMPLETE', finishReason: 'stop' }, local },
        { outcome: { status: 'STOPPED' } },
        { outcome: { status: 'INTERRUPTED', error: 'orphan' } },
      ]);
      const results = await Promise.all(calls.map(({ outcome, local }) => new ReplyFinalizer(f.db.store, f.cache, f.broker, logger, noEvents).finalize(reply.id, outcome, local)));
      expect(results.filter(Boolean)).toHaveLength(1);
      const status = calls[results.indexOf(true)]!.outcome.status;
      const log = await f.broker.read(reply.id, 0);
      const { content, terminal } = wellFormed(log);
      expect(content).toBe(deltas.join(''));
      expect(terminal).toEqual({ seq: deltas.length, delta: '', done: true, status, error: 'the message was deleted' });
      expect(await rowOf(f.db, reply.id)).toBeNull();
    }
  });

  it('when the broker cannot seal (Redis away), the conditional update alone picks one winner and nobody throws', async () => {
    const broken = new SealFailingBroker(f.broker);
    for (let round = 0; round < 6; round++) {
      const deltas = ['logged ', 'but ', 'unreadable'];
      const reply = await streamingReply(f.db, f.broker, { deltas, checkpoint: 'the checkpoint' });
      const rowBefore = (await rowOf(f.db, reply.id))!;
      const { store, saves } = countingStore(f.db.store);
      const local = { content: 'the generator text', userId: reply.userId, conversationId: reply.conversationId, metadata: { round } };
      const calls: { outcome: Outcome; local?: LocalReply }[] = [
        { outcome: { status: 'COMPLETE', finishReason: 'stop', model: 'end-model' }, local },
        { outcome: { status: 'STOPPED' } },
      ];
      if (round % 2) calls.reverse();
      const settled = await Promise.allSettled(calls.map(({ outcome, local }) => new ReplyFinalizer(store, f.cache, broken, logger, noEvents).finalize(reply.id, outcome, local)));
      expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'fulfilled']);
      const results = settled.map((s) => (s as PromiseFulfilledResult<boolean>).value);
      expect(results.filter(Boolean)).toHaveLength(1);
      // Exactly one update changed the row: the winner's.
      expect([...saves.get(reply.id)!].sort()).toEqual([0, 1]);
      const winner = calls[results.indexOf(true)]!;
      const row = (await rowOf(f.db, reply.id))!;
      expect(row.status).toBe(winner.outcome.status);
      // The log could not be read: the winner's own text, else the checkpoint.
      expect(row.content).toBe(winner.local ? 'the generator text' : 'the checkpoint');
      expect(row.metadata).toEqual(winner.local ? { round } : rowBefore.metadata);
      // Unsealed, the log is not the finalizer's to end.
      expect(await f.broker.read(reply.id, 0)).toEqual(deltas.map((delta, seq) => ({ seq, delta, done: false, status: 'STREAMING' })));
    }
    expect(broken.seals).toBe(12);
  });

  it('a reply ended during a broker outage, finalized again once the broker is back: the log ends as the row did, and the late caller is no winner', async () => {
    const deltas = ['seen ', 'live'];
    const reply = await streamingReply(f.db, f.broker, { deltas, checkpoint: 'seen live' });
    // During the outage: the conditional update alone ends it.
    expect(await new ReplyFinalizer(f.db.store, f.cache, new SealFailingBroker(f.broker), logger, noEvents).finalize(reply.id, { status: 'STOPPED' })).toBe(true);
    const ended = (await rowOf(f.db, reply.id))!;
    expect(ended.status).toBe('STOPPED');
    // Back: another party (recovery, a stop elsewhere) tries to end it too.
    expect(await new ReplyFinalizer(f.db.store, f.cache, f.broker, logger, noEvents).finalize(reply.id, { status: 'INTERRUPTED', error: INTERRUPTED_ERROR })).toBe(false);
    expect(await rowOf(f.db, reply.id)).toEqual(ended);
    const { content, terminal } = wellFormed(await f.broker.read(reply.id, 0));
    expect(content).toBe(deltas.join(''));
    expect(terminal).toEqual({ seq: deltas.length, delta: '', done: true, status: 'STOPPED', error: null });
  });
});

describe('ChatService: stop racing the end of a generation', () => {
  const f = useFixture();
  let chat: ReturnType<typeof chatService>;
  const viewer = { userId: 'racer' };

  beforeAll(async () => {
    chat = chatService(f);
    await chat.service.start();
  });
  afterAll(async () => {
    await chat?.service.shutdown();
  });

  async function sendReply(content: string) {
    const exchange = await chat.service.send(viewer, { content, maxTokens: 4 });
    const id = exchange.assistantMessage.id;
    const generation = chat.running.get(id);
    expect(generation).toBeDefined();
    return { id, generation: generation! };
  }

  it('every time, exactly one terminal event, saved status STOPPED or COMPLETE, saved content the logged deltas', async () => {
    // Which party's finalize won each time: a STOPPED call that lost is a stop beaten by completion.
    const finalizer = (chat.service as unknown as { finalizer: ReplyFinalizer }).finalizer;
    const finalize = finalizer.finalize.bind(finalizer);
    const seen: Record<string, number> = {};
    finalizer.finalize = async (...args) => {
      const won = await finalize(...args);
      const key = `${args[1].status} ${won ? 'won' : 'lost'}`;
      seen[key] = (seen[key] ?? 0) + 1;
      return won;
    };
    const iterations = 30;
    try {
      for (let i = 0; i < iterations; i++) {
        const { id, generation } = await sendReply(`race number ${i}`);
        let stopped: Message;
        if (i < 4) {
          // Before the first delta, or just after it.
          await sleep(i * 10);
          stopped = await chat.service.stop(viewer, id);
        } else {
          // Timed off the reply's own events: a stop during its last word or two, and one that
          // lands as the generation publishes its last delta and finalizes.
          const trigger = i % 2 ? 3 : 2;
          const after = Math.random() * (i % 2 ? 6 : 25);
          stopped = await new Promise<Message>((resolve, reject) => {
            let fired = false;
            void f.broker.listen(id, (event) => {
              if (fired || (event.seq < trigger && !event.done)) return;
              fired = true;
              const stop = () => chat.service.stop(viewer, id).then(resolve, reject);
              // Sometimes in the very turn the last delta is appended, ahead of the generation's seal.
              if (i % 4 === 1) stop();
              else setTimeout(stop, after);
            });
          });
        }
        await generation.done;

        const row = (await rowOf(f.db, id))!;
        expect(['STOPPED', 'COMPLETE']).toContain(row.status);
        expect(stopped.status).toBe(row.status);
        expect(stopped.content).toBe(row.content);
        seen[row.status] = (seen[row.status] ?? 0) + 1;
        const log = await f.broker.read(id, 0);
        const { content, terminal } = wellFormed(log);
        expect(terminal.status).toBe(row.status);
        expect(content).toBe(row.content);
        if (row.status === 'COMPLETE') expect(row.content).toBe('You said: race number ');
      }
    } finally {
      Reflect.deleteProperty(finalizer, 'finalize');
    }
    // The first stops land before any delta: those at least are STOPPED.
    expect(seen.STOPPED).toBeGreaterThan(0);
    console.info(`stop vs. completion over ${iterations} races:`, seen);
  });

  it('concurrent stops of one reply: one ends it, every caller gets the saved message', async () => {
    for (let i = 0; i < 5; i++) {
      const { id, generation } = await sendReply(`stop me ${i}`);
      await sleep(10 * i);
      const stops = await Promise.all(Array.from({ length: 6 }, () => chat.service.stop(viewer, id)));
      await generation.done;
      const row = (await rowOf(f.db, id))!;
      expect(['STOPPED', 'COMPLETE']).toContain(row.status);
      for (const stopped of stops) expect(stopped).toMatchObject({ status: row.status, content: row.content });
      const { content, terminal } = wellFormed(await f.broker.read(id, 0));
      expect(terminal.status).toBe(row.status);
      expect(content).toBe(row.content);
    }
  });
});

describe('LeaseKeeper: recovery racing live generations and other instances', () => {
  const f = useFixture();
  let chat: ReturnType<typeof chatService> | undefined;
  const viewer = { userId: 'leaser' };

  afterEach(async () => {
    await chat?.service.shutdown();
    chat = undefined;
  });

  it('never ends a reply this instance is running, even when its lease looks expired', async () => {
    // A lease of 1 ms: every live reply looks orphaned to a sweep; only `running` protects it.
    chat = chatService(f, { leaseMs: 1, singleInstance: false });
    await chat.service.start();
    const { store, saves } = countingStore(f.db.store);
    let listed = 0;
    const listing: Store = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'orphanedReplies') {
          return async (everything: boolean, limit: number) => {
            const ids = await target.orphanedReplies(everything, limit);
            listed += ids.length;
            return ids;
          };
        }
        return Reflect.get(target, prop, receiver);
      },
    });
    const finalizer = new RecordingFinalizer(listing, f.cache, f.broker, chat.running);
    const keepers = [0, 1].map(() => new LeaseKeeper(listing, f.cache, finalizer, chat!.running, 1, logger));

    for (let i = 0; i < 8; i++) {
      const exchange = await chat.service.send(viewer, { content: `keep me ${i}`, maxTokens: 5 });
      const id = exchange.assistantMessage.id;
      const generation = chat.running.get(id)!;
      let finished = false;
      void generation.done.then(() => (finished = true));
      // Sweep as fast as the database answers, through the generation's last deltas and its end.
      // (SQLite answers without a turn of the event loop: yield one, or the model's timers starve.)
      while (!finished) {
        await Promise.all(keepers.map((k) => k.recover(false)));
        await new Promise((resolve) => setImmediate(resolve));
      }
      await Promise.all(keepers.map((k) => k.recover(false)));

      const row = (await rowOf(f.db, id))!;
      expect(row.status).toBe('COMPLETE');
      const { content, terminal } = wellFormed(await f.broker.read(id, 0));
      expect(terminal.status).toBe('COMPLETE');
      expect(content).toBe(row.content);
      const mine = finalizer.calls.filter((c) => c.messageId === id);
      // Never while it ran; after it had ended (a stale listing), only to lose.
      expect(mine.filter((c) => c.running)).toEqual([]);
      expect(mine.filter((c) => c.result)).toEqual([]);
      expect((saves.get(id) ?? []).filter((changed) => changed !== 0)).toEqual([]);
    }
    // The sweeps did see the live replies as expired.
    expect(listed).toBeGreaterThan(0);
  });

  it('skips an expired reply in its own `running`, which another instance would recover', async () => {
    const reply = await streamingReply(f.db, f.broker, { deltas: ['mine ', 'still'], leaseMs: -60_000 });
    const running = new Map<string, Generation>([[reply.id, { controller: new AbortController(), userId: reply.userId, conversationId: reply.conversationId, content: 'mine still', checkpointed: 0, done: Promise.resolve() }]]);
    const finalizer = new RecordingFinalizer(f.db.store, f.cache, f.broker, running);
    const keeper = new LeaseKeeper(f.db.store, f.cache, finalizer, running, 1000, logger);
    const rowBefore = await rowOf(f.db, reply.id);
    await keeper.recover(false);
    await keeper.recover(true);
    expect(finalizer.calls.filter((c) => c.messageId === reply.id)).toEqual([]);
    expect(await rowOf(f.db, reply.id)).toEqual(rowBefore);
    expect((await f.broker.read(reply.id, 0)).some((e) => e.done)).toBe(false);

    const other = new RecordingFinalizer(f.db.store, f.cache, f.broker, new Map());
    await new LeaseKeeper(f.db.store, f.cache, other, new Map(), 1000, logger).recover(false);
    expect(other.calls.filter((c) => c.messageId === reply.id).map((c) => c.result)).toEqual([true]);
    expect((await rowOf(f.db, reply.id))!.status).toBe('INTERRUPTED');
  });

  it('two instances sweeping at once recover each orphan as INTERRUPTED exactly once', async () => {
    for (let round = 0; round < 3; round++) {
      const orphans = await Promise.all(
        Array.from({ length: 9 }, (_, i) =>
          i % 3 === 0
            ? streamingReply(f.db, f.broker, { deltas: [`orphan ${i} `, 'was ', 'here'], checkpoint: `orphan ${i} `, leaseMs: -1000 })
            : i % 3 === 1
              ? streamingReply(f.db, f.broker, { checkpoint: `checkpoint of orphan ${i}`, leaseMs: -1000 })
              : streamingReply(f.db, f.broker, { leaseMs: -1000 }),
        ),
      );
      // A live reply of someone else's, lease still valid: no sweep may touch it.
      const live = await streamingReply(f.db, f.broker, { deltas: ['alive'], leaseMs: 60_000 });
      const instances = [0, 1].map(() => {
        const running = new Map<string, Generation>();
        const finalizer = new RecordingFinalizer(f.db.store, f.cache, f.broker, running);
        return { finalizer, keeper: new LeaseKeeper(f.db.store, f.cache, finalizer, running, 1000, logger) };
      });
      await Promise.all(instances.flatMap(({ keeper }) => [keeper.recover(false), keeper.recover(false)]));

      for (const [i, orphan] of orphans.entries()) {
        const wins = instances.flatMap(({ finalizer }) => finalizer.calls.filter((c) => c.messageId === orphan.id && c.result));
        expect(wins).toHaveLength(1);
        const row = (await rowOf(f.db, orphan.id))!;
        expect(row).toMatchObject({ status: 'INTERRUPTED', error: INTERRUPTED_ERROR, leaseExpiresAt: null });
        const expected = i % 3 === 0 ? orphan.deltas.join('') : i % 3 === 1 ? `checkpoint of orphan ${i}` : '';
        expect(row.content).toBe(expected);
        const { content, terminal } = wellFormed(await f.broker.read(orphan.id, 0));
        expect(content).toBe(expected);
        expect(terminal).toMatchObject({ status: 'INTERRUPTED', error: INTERRUPTED_ERROR });
      }
      expect((await rowOf(f.db, live.id))!.status).toBe('STREAMING');
      expect(instances.flatMap(({ finalizer }) => finalizer.calls.filter((c) => c.messageId === live.id))).toEqual([]);
      expect(await f.db.store.orphanedReplies(false, 100)).toEqual([]);
      // Clean up the live one for the next round.
      expect(await new ReplyFinalizer(f.db.store, f.cache, f.broker, logger, noEvents).finalize(live.id, { status: 'STOPPED' })).toBe(true);
    }
  });
});

/** The store, with saveReplyEnd failing while `fails(messageId, end)` says so. */
function failingStore(store: Store, fails: (messageId: string, end: Parameters<Store['saveReplyEnd']>[2]) => boolean): { store: Store; attempts: { messageId: string; status: string; content: string }[] } {
  const attempts: { messageId: string; status: string; content: string }[] = [];
  const wrapped = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'saveReplyEnd') {
        return async (messageId: string, conversationId: string, end: Parameters<Store['saveReplyEnd']>[2]) => {
          attempts.push({ messageId, status: end.status, content: end.content });
          if (fails(messageId, end)) throw new Error('invalid byte sequence for encoding "UTF8": 0x00');
          return target.saveReplyEnd(messageId, conversationId, end);
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { store: wrapped, attempts };
}

describe('ReplyFinalizer: an end that cannot be saved never leaves a reply STREAMING', () => {
  const f = useFixture();

  it('a save that fails ends the reply FAILED, its text cut short, and subscribers get that end', async () => {
    const long = 'x'.repeat(20_000);
    const reply = await streamingReply(f.db, f.broker, { deltas: [long, ' and more'] });
    // Only the full end fails, as a row the database refuses would.
    const { store, attempts } = failingStore(f.db.store, (_, end) => end.status !== 'FAILED');
    expect(await new ReplyFinalizer(store, f.cache, f.broker, logger, noEvents).finalize(reply.id, { status: 'COMPLETE', finishReason: 'stop', model: 'm' })).toBe(true);
    expect(attempts.map((a) => a.status)).toEqual(['COMPLETE', 'FAILED']);
    const row = (await rowOf(f.db, reply.id))!;
    expect(row).toMatchObject({ status: 'FAILED', error: 'the reply could not be saved in full', finishReason: null, leaseExpiresAt: null });
    expect(row.content).toBe('x'.repeat(16_384));
    const { terminal } = wellFormed(await f.broker.read(reply.id, 0));
    expect(terminal).toMatchObject({ status: 'FAILED', error: 'the reply could not be saved in full' });
  });

  it('when no save works, finalize throws and lifts its seal: the next ender wins and the log still ends once', async () => {
    const reply = await streamingReply(f.db, f.broker, { deltas: ['half ', 'a reply'] });
    const { store } = failingStore(f.db.store, () => true);
    await expect(new ReplyFinalizer(store, f.cache, f.broker, logger, noEvents).finalize(reply.id, { status: 'COMPLETE' })).rejects.toThrow(/invalid byte sequence/);
    expect((await rowOf(f.db, reply.id))!.status).toBe('STREAMING');
    // Without the release, this seal would be refused and the reply would stay STREAMING.
    expect(await new ReplyFinalizer(f.db.store, f.cache, f.broker, logger, noEvents).finalize(reply.id, { status: 'INTERRUPTED', error: INTERRUPTED_ERROR })).toBe(true);
    expect((await rowOf(f.db, reply.id))!).toMatchObject({ status: 'INTERRUPTED', content: 'half a reply' });
    const { content, terminal } = wellFormed(await f.broker.read(reply.id, 0));
    expect(content).toBe('half a reply');
    expect(terminal.status).toBe('INTERRUPTED');
  });

  it('the log is read back as untrusted text: NUL and lone surrogates are saved as U+FFFD, a non-string delta as nothing', async () => {
    const reply = await streamingReply(f.db, f.broker, { deltas: ['a\u0000b', 'c\ud800', 'd'] });
    await f.broker.append(reply.id, { seq: 3, delta: { not: 'text' } as unknown as string, done: false, status: 'STREAMING' });
    expect(await new ReplyFinalizer(f.db.store, f.cache, f.broker, logger, noEvents).finalize(reply.id, { status: 'COMPLETE', finishReason: 'f'.repeat(500), model: 'm'.repeat(900), promptTokens: 2 ** 40, completionTokens: 1.5 })).toBe(true);
    expect((await rowOf(f.db, reply.id))!).toMatchObject({
      content: 'a\uFFFDbc\uFFFDd',
      finishReason: 'f'.repeat(64),
      model: 'm'.repeat(255),
      promptTokens: null,
      completionTokens: 0,
    });
  });

  it('token counts are kept only as integers in 0…2³¹−1, the bounds included', async () => {
    const cases: [number, number | null][] = [[0, 0], [2 ** 31 - 1, 2 ** 31 - 1], [2 ** 31, null], [-1, null], [-0.5, null], [7.5, null]];
    for (const [given, kept] of cases) {
      const reply = await streamingReply(f.db, f.broker, { deltas: ['t'] });
      expect(await new ReplyFinalizer(f.db.store, f.cache, f.broker, logger, noEvents).finalize(reply.id, { status: 'COMPLETE', promptTokens: given, completionTokens: given })).toBe(true);
      // A completion count that is not kept is saved as 0 (the column is required).
      expect((await rowOf(f.db, reply.id))!, String(given)).toMatchObject({ promptTokens: kept, completionTokens: kept ?? 0 });
    }
  });

  it('a sweep goes on past a reply it cannot end, and ends that one once the store heals', async () => {
    const orphans = await Promise.all([0, 1, 2].map((i) => streamingReply(f.db, f.broker, { deltas: [`orphan ${i}`], leaseMs: -1000 - i })));
    const broken = orphans[1]!.id;
    let healed = false;
    const { store } = failingStore(f.db.store, (id) => id === broken && !healed);
    const running = new Map<string, Generation>();
    const keeper = new LeaseKeeper(store, f.cache, new ReplyFinalizer(store, f.cache, f.broker, logger, noEvents), running, 1000, logger);
    await keeper.recover(false);
    const statuses = async () => Promise.all(orphans.map(async (o) => (await rowOf(f.db, o.id))!.status));
    expect(await statuses()).toEqual(['INTERRUPTED', 'STREAMING', 'INTERRUPTED']);
    healed = true;
    await keeper.recover(false);
    expect(await statuses()).toEqual(['INTERRUPTED', 'INTERRUPTED', 'INTERRUPTED']);
    expect(wellFormed(await f.broker.read(broken, 0)).content).toBe('orphan 1');
  });
});
