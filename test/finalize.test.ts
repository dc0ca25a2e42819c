// ReplyFinalizer's edges one at a time, on a fresh SQLite database and the in-memory broker:
// what it saves from an outcome, what it appends (and that the broker accepts every append), what
// it logs when the broker fails, and a conversation deleted at each moment of the end.
// (test/reply-end.test.ts races many enders against each other.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NoHistoryCache } from '../src/cache/history-cache.ts';
import { ReplyFinalizer, type LocalReply, type Outcome } from '../src/chat/finalize.ts';
import { countTokens } from '../src/llm/tokens.ts';
import { createLogger } from '../src/logger.ts';
import { noEvents } from '../src/services/live-events.ts';
import { openDatabase, type Database } from '../src/store/database.ts';
import { applyMigrations } from '../src/store/migrate.ts';
import type { Store } from '../src/store/store.ts';
import type { AppendResult, SealResult, StreamBroker, StreamEvent } from '../src/streaming/events.ts';
import { MemoryBroker } from '../src/streaming/memory-broker.ts';
import { streamingReply as savedReply } from './support/replies.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';

let database: TestDatabase;
let db: Database;
let memory: MemoryBroker;
const cache = new NoHistoryCache(50);

beforeAll(async () => {
  database = await createTestDatabase('sqlite');
  await applyMigrations(database.url);
  db = await openDatabase({ url: database.url, poolSize: 1 });
  memory = new MemoryBroker(60 * 60_000);
});
afterAll(async () => {
  await memory?.close();
  await db?.close();
  await database?.drop();
});

/** The in-memory broker, recording every append and its answer; seal and append can be made to fail. */
class Broker implements StreamBroker {
  readonly appends: { event: StreamEvent; result: AppendResult | 'threw' }[] = [];
  constructor(private readonly fail: { seal?: boolean; append?: boolean } = {}) {}
  async append(messageId: string, event: StreamEvent, sealToken?: string): Promise<AppendResult> {
    if (this.fail.append) {
      this.appends.push({ event, result: 'threw' });
      throw new Error('append: connection lost');
    }
    const result = await memory.append(messageId, event, sealToken);
    this.appends.push({ event, result });
    return result;
  }
  seal(messageId: string, token: string): Promise<SealResult> {
    if (this.fail.seal) return Promise.reject(new Error('seal: connect ECONNREFUSED'));
    return memory.seal(messageId, token);
  }
  release = (messageId: string, token: string) => memory.release(messageId, token);
  read = (messageId: string, fromSeq: number) => memory.read(messageId, fromSeq);
  listen = (messageId: string, onEvent: (event: StreamEvent) => void) => memory.listen(messageId, onEvent);
  requestStop = (messageId: string) => memory.requestStop(messageId);
  onStopRequest = (handler: (messageId: string) => void) => memory.onStopRequest(handler);
  close = () => Promise.resolve();
}

/** A STREAMING reply, with what its generating instance would know of it. */
async function streamingReply(deltas: string[] = [], checkpoint = '') {
  const reply = await savedReply(db, memory, { deltas, checkpoint });
  const local: LocalReply = { content: deltas.join(''), userId: reply.userId, conversationId: reply.conversationId };
  return { ...reply, local };
}

const rowOf = (id: string) => db.prisma.message.findUnique({ where: { id } });

function finalizer(broker: StreamBroker, store: Store = db.store, lines?: string[]) {
  const logger = lines ? createLogger('warn', { write: (line: string) => void lines.push(line) }) : createLogger('silent');
  return new ReplyFinalizer(store, cache, broker, logger, noEvents);
}

/** The store, with a step run just before saveReplyEnd (another party acting in that moment). */
function storeWith(before: (messageId: string) => Promise<unknown>): Store {
  return new Proxy(db.store, {
    get(target, prop, receiver) {
      if (prop === 'saveReplyEnd') {
        return async (...args: Parameters<Store['saveReplyEnd']>) => {
          await before(args[0]);
          return target.saveReplyEnd(...args);
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

describe('ReplyFinalizer', () => {
  it('saves every field of the outcome as given, and the logged text', async () => {
    const reply = await streamingReply(['full ', 'outcome']);
    const outcome: Outcome = { status: 'COMPLETE', finishReason: 'stop', model: 'end-model', promptTokens: 11, completionTokens: 5, error: null };
    const broker = new Broker();
    expect(await finalizer(broker).finalize(reply.id, outcome, { ...reply.local, metadata: { tool: 'x' } })).toBe(true);
    expect(await rowOf(reply.id)).toMatchObject({
      status: 'COMPLETE',
      content: 'full outcome',
      finishReason: 'stop',
      model: 'end-model',
      promptTokens: 11,
      completionTokens: 5,
      error: null,
      metadata: { tool: 'x' },
      leaseExpiresAt: null,
    });
    expect(broker.appends).toEqual([{ event: { seq: 2, delta: '', done: true, status: 'COMPLETE', error: null }, result: 'ok' }]);
  });

  it('without counts in the outcome: no prompt tokens, the completion counted from the saved text, the model kept', async () => {
    const reply = await streamingReply(['counted ', 'from ', 'the text']);
    expect(await finalizer(new Broker()).finalize(reply.id, { status: 'STOPPED' })).toBe(true);
    const row = (await rowOf(reply.id))!;
    expect(row).toMatchObject({ status: 'STOPPED', finishReason: null, promptTokens: null, error: null, model: 'saved-model', content: 'counted from the text' });
    expect(row.completionTokens).toBe(countTokens('counted from the text'));
    expect(row.completionTokens).toBeGreaterThan(0);
  });

  it('without a log, appends the saved text then the terminal event, and the broker accepts both', async () => {
    const reply = await streamingReply([], 'checkpointed');
    const broker = new Broker();
    expect(await finalizer(broker).finalize(reply.id, { status: 'INTERRUPTED', error: 'gone' })).toBe(true);
    expect(broker.appends).toEqual([
      { event: { seq: 0, delta: 'checkpointed', done: false, status: 'STREAMING' }, result: 'ok' },
      { event: { seq: 1, delta: '', done: true, status: 'INTERRUPTED', error: 'gone' }, result: 'ok' },
    ]);
  });

  it('when the seal fails: saves by the database alone, appends nothing, and logs a warning naming the message', async () => {
    const reply = await streamingReply(['a ', 'b'], 'a b');
    const broker = new Broker({ seal: true });
    const lines: string[] = [];
    expect(await finalizer(broker, db.store, lines).finalize(reply.id, { status: 'STOPPED' }, reply.local)).toBe(true);
    expect((await rowOf(reply.id))!.status).toBe('STOPPED');
    expect(broker.appends).toEqual([]);
    const warnings = lines.map((line) => JSON.parse(line) as { level: number; msg: string; messageId: string; err?: { message: string } });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 40, msg: 'could not seal the stream log; saving the reply without it', messageId: reply.id, err: { message: 'seal: connect ECONNREFUSED' } });
  });

  it('when the terminal append fails: the end is still saved and won, and a warning names the message', async () => {
    const reply = await streamingReply(['x']);
    const broker = new Broker({ append: true });
    const lines: string[] = [];
    expect(await finalizer(broker, db.store, lines).finalize(reply.id, { status: 'FAILED', error: 'model error' }, reply.local)).toBe(true);
    expect(await rowOf(reply.id)).toMatchObject({ status: 'FAILED', error: 'model error', content: 'x' });
    expect(broker.appends.map((a) => a.result)).toEqual(['threw']);
    const warnings = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 40, msg: 'could not publish the end of a reply', messageId: reply.id, err: { message: 'append: connection lost' } });
  });

  it('a deleted reply whose seal fails: nothing to append, no throw, and a win only for the caller without its text', async () => {
    const reply = await streamingReply(['gone']);
    await db.store.deleteConversation(reply.userId, reply.conversationId);
    const broker = new Broker({ seal: true });
    // Without its text: the owner is read, is gone, and the streams are ended (unsealed: no append).
    expect(await finalizer(broker).finalize(reply.id, { status: 'STOPPED' })).toBe(true);
    // With its text, unsealed: the database alone decides, and nothing was updated.
    expect(await finalizer(broker).finalize(reply.id, { status: 'COMPLETE' }, reply.local)).toBe(false);
    expect(broker.appends).toEqual([]);
    expect(await memory.read(reply.id, 0)).toEqual([{ seq: 0, delta: 'gone', done: false, status: 'STREAMING' }]);
  });

  it('the generating instance ending a reply deleted mid-stream: the log ends with "the message was deleted"', async () => {
    const reply = await streamingReply(['soon ', 'deleted']);
    await db.store.deleteConversation(reply.userId, reply.conversationId);
    const broker = new Broker();
    expect(await finalizer(broker).finalize(reply.id, { status: 'COMPLETE', finishReason: 'stop' }, reply.local)).toBe(true);
    expect(broker.appends).toEqual([{ event: { seq: 2, delta: '', done: true, status: 'COMPLETE', error: 'the message was deleted' }, result: 'ok' }]);
  });

  it('a reply deleted between reading its owner and saving its end: no throw, and the log still ends once', async () => {
    const reply = await streamingReply(['deleted ', 'in between']);
    const store = storeWith(() => db.store.deleteConversation(reply.userId, reply.conversationId));
    const broker = new Broker();
    expect(await finalizer(broker, store).finalize(reply.id, { status: 'STOPPED' })).toBe(false);
    expect(await rowOf(reply.id)).toBeNull();
    expect(broker.appends).toEqual([{ event: { seq: 2, delta: '', done: true, status: 'STOPPED', error: null }, result: 'ok' }]);
  });
});
