// The Redis history cache: reads through it equal the database, every write keeps it in step
// even with two instances writing at once, and Redis dying, freezing and coming back never
// fails a request, never loses a write, and never lets a stale entry be served.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { historyKeys } from '../src/cache/history-cache.ts';
import type { Message } from '../src/generated/prisma/sqlite/client.ts';
import { graphql } from './generated/gql.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import { FakeModel } from './support/fake-model.ts';
import { startParley, type GraphQLClient, type TestServer } from './support/parley.ts';
import { TestRedisServer } from './support/redis-server.ts';
import { assertWellFormed, finishedMessage, followSse, SendMessage, StopGeneration, waitFor } from './support/streams.ts';
import { Redis } from 'ioredis';

const CACHE_SIZE = 10;
const TIMEOUT_MS = 200;

const Add = graphql(`mutation CacheAdd($input: AddMessageInput!) { addMessage(input: $input) { id conversation { id } } }`);
const Clear = graphql(`mutation CacheClear($id: ID!) { clearMessages(conversationId: $id) }`);
const Remove = graphql(`mutation CacheRemove($id: ID!) { deleteConversation(id: $id) }`);
const Recent = graphql(`query CacheHistory($id: ID!, $limit: Int) { history(conversationId: $id, limit: $limit) { role content } }`);
const Page = graphql(`
  query CachePage($id: ID!, $last: Int) {
    conversation(id: $id) {
      messages(last: $last) {
        edges { cursor node { id role content status tokenCount metadata createdAt model error } }
        pageInfo { hasPreviousPage hasNextPage startCursor endCursor }
      }
    }
  }
`);
const ListPages = graphql(`
  query CacheList($last: Int) {
    conversations(first: 50) { edges { node { id messageCount messages(last: $last) { edges { node { id content seq: content status } } pageInfo { hasPreviousPage } } } } }
  }
`);

describe('Redis history cache', () => {
  let redisServer: TestRedisServer;
  let model: FakeModel;
  let database: TestDatabase;
  let a: TestServer;
  let b: TestServer;
  /** Same database, no Redis: the oracle every cached read is compared with. */
  let plain: TestServer;
  let apiA: GraphQLClient;
  let apiB: GraphQLClient;
  let apiPlain: GraphQLClient;
  let probe: Redis;
  const logsA: string[] = [];
  const prefix = `cache-test-${process.pid}:`;

  beforeAll(async () => {
    redisServer = await TestRedisServer.start();
    model = await FakeModel.start();
    database = await createTestDatabase('postgresql');
    const env = {
      LLM_API_URL: model.url,
      LLM_MODEL: 'fake-model',
      LLM_MAX_RETRIES: '0',
      STREAM_LEASE_MS: '1500',
      HISTORY_CACHE_SIZE: String(CACHE_SIZE),
      DATABASE_POOL_SIZE: '10',
    };
    const cached = { ...env, REDIS_URL: redisServer.url, REDIS_KEY_PREFIX: prefix, REDIS_COMMAND_TIMEOUT_MS: String(TIMEOUT_MS) };
    a = await startParley({ database, env: cached, logLines: logsA });
    b = await startParley({ database, env: cached });
    plain = await startParley({ database, env });
    [apiA, apiB, apiPlain] = [a.client(), b.client(), plain.client()];
    probe = new Redis(redisServer.url, { maxRetriesPerRequest: 0, enableOfflineQueue: false, lazyConnect: true, retryStrategy: () => 100 });
    probe.on('error', () => {});
    await probe.connect();
  });
  afterAll(async () => {
    probe?.disconnect();
    await Promise.all([a?.stop(), b?.stop(), plain?.stop()]);
    await redisServer?.stop();
    await model?.close();
    await database?.drop();
  });

  const db = () => plain.app.db.prisma;

  /** Waits until the test's own Redis client is connected again after a restart. */
  async function probeReady(): Promise<void> {
    await probe.connect().catch(() => {});
    await waitFor(() => probe.ping().then(() => true, () => false), Boolean, 5000);
  }

  async function conversationWith(count: number, api = apiA): Promise<string> {
    const first = await api.ok(Add, { input: { role: 'SYSTEM', content: 'm0', metadata: { n: 0 }, tokenCount: 1 } });
    const id = first.addMessage.conversation.id;
    for (let i = 1; i < count; i++) await api.ok(Add, { input: { conversationId: id, role: i % 2 ? 'USER' : 'ASSISTANT', content: `m${i}` } });
    return id;
  }

  /** The entry as Redis holds it for the current epoch, or null. */
  async function cachedEntry(conversationId: string): Promise<Message[] | null> {
    const keys = historyKeys(prefix, 'local', conversationId);
    const raw = await probe.get(keys.entry);
    if (!raw) return null;
    const epoch = (await probe.get(keys.epoch)) ?? '0';
    if (!raw.startsWith(`${epoch}|`)) return null;
    const entry = JSON.parse(raw.slice(epoch.length + 1));
    expect(entry).toMatchObject({ userId: 'local', conversationId });
    return entry.messages;
  }

  async function newestInDatabase(conversationId: string): Promise<Message[]> {
    return JSON.parse(JSON.stringify((await db().message.findMany({ where: { conversationId }, orderBy: { seq: 'desc' }, take: CACHE_SIZE })).reverse()));
  }

  /**
   * Every entry present equals the database's newest messages, field for field. A background
   * write (a streaming reply's checkpoint) may land between the two reads, so the entry is
   * compared with a database state that held before and after it was read.
   */
  async function expectCacheInStep(conversationIds: string[]): Promise<void> {
    for (const id of conversationIds) {
      for (let attempt = 0; ; attempt++) {
        const before = await newestInDatabase(id);
        const entry = await cachedEntry(id);
        const after = await newestInDatabase(id);
        if (JSON.stringify(before) !== JSON.stringify(after) && attempt < 20) continue;
        if (entry !== null) expect(entry, id).toEqual(after);
        break;
      }
    }
  }

  const health = async (server: TestServer) => {
    const res = await fetch(`${server.url}/health`);
    return { code: res.status, body: await res.json() };
  };

  it('history: cache misses and hits answer exactly as the database does', async () => {
    const id = await conversationWith(15);
    const hitsBefore = (await health(a)).body.redis.historyCache.hits;
    for (const limit of [1, 5, CACHE_SIZE, CACHE_SIZE + 1, 20, 100]) {
      const expected = await apiPlain.ok(Recent, { id, limit });
      expect((await apiA.ok(Recent, { id, limit })).history, `miss, limit ${limit}`).toEqual(expected.history);
      expect((await apiA.ok(Recent, { id, limit })).history, `hit, limit ${limit}`).toEqual(expected.history);
      expect((await apiB.ok(Recent, { id, limit })).history, `other instance, limit ${limit}`).toEqual(expected.history);
    }
    expect(await cachedEntry(id)).toEqual(await newestInDatabase(id));
    const stats = (await health(a)).body.redis.historyCache;
    expect(stats.hits).toBeGreaterThan(hitsBefore);
    expect(stats.misses).toBeGreaterThan(0);
  });

  it('the newest page of Conversation.messages, alone and for a list, equals the database', async () => {
    const ids = [await conversationWith(3), await conversationWith(12), await conversationWith(CACHE_SIZE)];
    for (const last of [1, 3, CACHE_SIZE - 1, CACHE_SIZE, 20]) {
      for (const id of ids) {
        const expected = await apiPlain.ok(Page, { id, last });
        expect(await apiA.ok(Page, { id, last }), `miss ${id} last ${last}`).toEqual(expected);
        expect(await apiA.ok(Page, { id, last }), `hit ${id} last ${last}`).toEqual(expected);
      }
      const list = await apiPlain.ok(ListPages, { last });
      expect(await apiB.ok(ListPages, { last }), `list, last ${last}`).toEqual(list);
      expect(await apiB.ok(ListPages, { last }), `list again, last ${last}`).toEqual(list);
    }
    await expectCacheInStep(ids);
  });

  it('sendMessage builds the same model context from the cache as from the database', async () => {
    const [viaCache, viaDatabase] = [await conversationWith(14), await conversationWith(14)];
    await apiA.ok(Recent, { id: viaCache, limit: 5 }); // warm
    expect(await cachedEntry(viaCache)).not.toBeNull();
    const sentA = await apiA.ok(SendMessage, { input: { conversationId: viaCache, content: 'next?' } });
    await finishedMessage(db(), sentA.sendMessage.assistantMessage.id);
    const fromCache = model.chatRequests.at(-1)!.body.messages;
    const sentPlain = await apiPlain.ok(SendMessage, { input: { conversationId: viaDatabase, content: 'next?' } });
    await finishedMessage(db(), sentPlain.sendMessage.assistantMessage.id);
    expect(fromCache).toEqual(model.chatRequests.at(-1)!.body.messages);
    expect(fromCache.length).toBe(15);
  });

  it('every path that changes messages keeps the cache in step', async () => {
    const id = await conversationWith(4);
    // A read fills the entry unless a write is in flight; after a stop, the generating side still
    // saves the prompt's metadata in the background, so the fill may take another read.
    const warm = async () => {
      for (let attempt = 0; attempt < 20; attempt++) {
        await apiA.ok(Recent, { id, limit: 5 });
        if ((await cachedEntry(id)) !== null) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(await cachedEntry(id)).not.toBeNull();
    };
    // The cached answer must equal the database's. A streaming reply's checkpoints change the
    // database meanwhile, so the comparison counts only when the database held still across it.
    const check = async (what: string) => {
      for (let attempt = 0; ; attempt++) {
        const before = (await apiPlain.ok(Recent, { id, limit: CACHE_SIZE })).history;
        const cached = (await apiA.ok(Recent, { id, limit: CACHE_SIZE })).history;
        const after = (await apiPlain.ok(Recent, { id, limit: CACHE_SIZE })).history;
        if (JSON.stringify(before) !== JSON.stringify(after) && attempt < 10) continue;
        expect(cached, what).toEqual(after);
        break;
      }
      await expectCacheInStep([id]);
    };
    await warm();
    await apiB.ok(Add, { input: { conversationId: id, role: 'USER', content: 'added on B' } });
    await check('addMessage');

    await warm();
    model.enqueue({ tokens: Array.from({ length: 80 }, (_, i) => `g${i} `), delayMs: 10 });
    const sent = (await apiB.ok(SendMessage, { input: { conversationId: id, content: 'stream it' } })).sendMessage;
    await check('sendMessage');
    await warm();
    // A lease heartbeat checkpoints the streaming text while readers read.
    await new Promise((r) => setTimeout(r, 700));
    await check('checkpoint');
    await warm();
    await apiA.ok(StopGeneration, { messageId: sent.assistantMessage.id });
    await check('stopGeneration');

    await warm();
    const finished = (await apiB.ok(SendMessage, { input: { conversationId: id, content: 'finish it' } })).sendMessage;
    await apiA.ok(Recent, { id, limit: 5 });
    await finishedMessage(db(), finished.assistantMessage.id);
    await check('finished generation');

    await warm();
    expect((await apiB.ok(Clear, { id })).clearMessages).toBeGreaterThan(0);
    await check('clearMessages');
    expect((await apiA.ok(Recent, { id })).history).toEqual([]);

    await apiA.ok(Add, { input: { conversationId: id, role: 'USER', content: 'after clear' } });
    await warm();
    await apiB.ok(Remove, { id });
    expect(await cachedEntry(id)).toBeNull();
    const gone = await apiA.query(Recent, { id });
    expect(gone.error?.graphQLErrors[0]?.extensions.code).toBe('NOT_FOUND');
  });

  it('the lease renewals of a silent reply do not leave its cached row behind the database', async () => {
    // No text arrives, so no checkpoint writes: only the lease heartbeat (every 500 ms here)
    // changes the row, and the cached copy must not keep the old lease.
    const id = await conversationWith(3);
    model.enqueue({ tokens: ['never'], stallAfter: 0 });
    const sent = (await apiA.ok(SendMessage, { input: { conversationId: id, content: 'wait' } })).sendMessage;
    const leaseAtSend = (await db().message.findUniqueOrThrow({ where: { id: sent.assistantMessage.id } })).leaseExpiresAt!;
    await apiA.ok(Recent, { id, limit: 5 });
    await waitFor(() => db().message.findUniqueOrThrow({ where: { id: sent.assistantMessage.id } }), (m) => m.leaseExpiresAt!.getTime() > leaseAtSend.getTime(), 3000);
    await apiA.ok(Recent, { id, limit: 5 });
    await new Promise((r) => setTimeout(r, 50));
    await expectCacheInStep([id]);
    await apiA.ok(StopGeneration, { messageId: sent.assistantMessage.id });
  });

  it('two instances writing and reading the same conversations at once: every entry equals the database after every step', async () => {
    const ids = await Promise.all([conversationWith(2), conversationWith(2), conversationWith(2), conversationWith(2)]);
    for (let step = 0; step < 12; step++) {
      const work: Promise<unknown>[] = [];
      for (const [i, id] of ids.entries()) {
        const writer = (step + i) % 2 ? apiA : apiB;
        const reader = (step + i) % 2 ? apiB : apiA;
        work.push(writer.ok(Add, { input: { conversationId: id, role: 'USER', content: `s${step}-${i}-1` } }));
        work.push(reader.ok(Recent, { id, limit: 5 }));
        work.push(writer.ok(Add, { input: { conversationId: id, role: 'ASSISTANT', content: `s${step}-${i}-2` } }));
        work.push(reader.ok(Page, { id, last: 4 }));
        work.push(writer === apiA ? apiB.ok(Recent, { id, limit: CACHE_SIZE }) : apiA.ok(Recent, { id, limit: CACHE_SIZE }));
        if (step % 5 === 4 && i === 0) work.push(reader.ok(Clear, { id }));
      }
      await Promise.all(work);
      await expectCacheInStep(ids);
      for (const id of ids) {
        const truth = (await apiPlain.ok(Recent, { id, limit: CACHE_SIZE })).history;
        expect((await apiA.ok(Recent, { id, limit: CACHE_SIZE })).history, `A step ${step}`).toEqual(truth);
        expect((await apiB.ok(Recent, { id, limit: CACHE_SIZE })).history, `B step ${step}`).toEqual(truth);
      }
    }
  });

  describe('when Redis fails', () => {
    it('killed: requests keep succeeding within the timeout bound and nothing written is lost; health says degraded', async () => {
      const id = await conversationWith(3);
      await apiA.ok(Recent, { id, limit: 5 });
      expect(await cachedEntry(id)).not.toBeNull();
      const logLinesBefore = logsA.length;
      await redisServer.kill();

      const written: string[] = [];
      for (let i = 0; i < 20; i++) {
        const started = performance.now();
        await apiA.ok(Add, { input: { conversationId: id, role: 'USER', content: `while down ${i}` } });
        written.push(`while down ${i}`);
        const recent = (await apiA.ok(Recent, { id, limit: 5 })).history.map((m) => m.content);
        expect(performance.now() - started).toBeLessThan(2 * TIMEOUT_MS);
        expect(recent).toEqual(written.length >= 5 ? written.slice(-5) : (await apiPlain.ok(Recent, { id, limit: 5 })).history.map((m) => m.content));
        const everything = (await apiB.ok(Recent, { id, limit: 50 })).history.map((m) => m.content);
        expect(everything.slice(-written.length)).toEqual(written);
      }
      const state = await health(a);
      expect(state.code).toBe(200);
      expect(state.body).toMatchObject({ status: 'degraded', database: { status: 'up' }, redis: { status: 'degraded', historyCache: { status: 'down' } } });
      expect(state.body.redis.historyCache.bypassed).toBeGreaterThan(0);
      const outageLines = logsA.slice(logLinesBefore).filter((l) => l.includes('history cache unavailable'));
      expect(outageLines).toHaveLength(1);

      await redisServer.restart();
      await probeReady();
      await waitFor(() => health(a), (h) => h.body.redis.status === 'up', 5000);
      await waitFor(async () => (await apiA.ok(Recent, { id, limit: 5 }), (await health(a)).body.redis.historyCache.status), (s) => s === 'up', 5000);
      expect((await apiA.ok(Recent, { id, limit: 50 })).history).toEqual((await apiPlain.ok(Recent, { id, limit: 50 })).history);
      expect(await db().message.count({ where: { conversationId: id, content: { startsWith: 'while down' } } })).toBe(20);
      await expectCacheInStep([id]);
    });

    it('frozen: reads fall back within the timeout bound, p99 under twice the timeout, and no request errors', async () => {
      const ids = [await conversationWith(4), await conversationWith(4)];
      for (const id of ids) await apiA.ok(Recent, { id, limit: 5 });
      expect(await cachedEntry(ids[0]!)).not.toBeNull();
      redisServer.freeze();
      try {
        const latencies: number[] = [];
        for (let i = 0; i < 60; i++) {
          const id = ids[i % 2]!;
          if (i % 10 === 0) await apiB.ok(Add, { input: { conversationId: id, role: 'USER', content: `frozen write ${i}` } });
          const started = performance.now();
          const result = await apiA.query(Recent, { id, limit: 5 });
          latencies.push(performance.now() - started);
          expect(result.error?.message).toBeUndefined();
          expect(result.data!.history).toEqual((await apiPlain.ok(Recent, { id, limit: 5 })).history);
        }
        latencies.sort((x, y) => x - y);
        const p99 = latencies[Math.ceil(latencies.length * 0.99) - 1]!;
        expect(p99).toBeLessThan(2 * TIMEOUT_MS);
        const state = await health(a);
        expect(state.code).toBe(200);
        expect(state.body.redis.status).toBe('degraded');
      } finally {
        redisServer.thaw();
      }
      // Back: the entries filled before the freeze missed the frozen writes and must never be served.
      await waitFor(async () => (await apiA.ok(Recent, { id: ids[0]!, limit: 5 }), (await health(a)).body.redis.historyCache.status), (s) => s === 'up', 5000);
      for (const id of ids) {
        for (const api of [apiA, apiB]) expect((await api.ok(Recent, { id, limit: 5 })).history).toEqual((await apiPlain.ok(Recent, { id, limit: 5 })).history);
      }
      await expectCacheInStep(ids);
    });

    it('restarted from a snapshot that missed writes: the old entries are never served', async () => {
      const id = await conversationWith(4);
      await apiA.ok(Recent, { id, limit: 5 });
      const before = await cachedEntry(id);
      expect(before).not.toBeNull();
      await redisServer.snapshot();
      await redisServer.kill();
      await apiA.ok(Add, { input: { conversationId: id, role: 'USER', content: 'written while Redis was down' } });
      await redisServer.restartFromSnapshot();
      await probeReady();
      // The snapshot brought back the entry from before the write.
      expect((await probe.get(historyKeys(prefix, 'local', id).entry)) ?? '').toContain('"m3"');
      await waitFor(() => health(b), (h) => h.body.redis.status === 'up', 5000);
      await waitFor(() => health(a), (h) => h.body.redis.status === 'up', 5000);
      for (const api of [apiB, apiA, apiB]) {
        const recent = (await api.ok(Recent, { id, limit: 5 })).history.map((m) => m.content);
        expect(recent.at(-1)).toBe('written while Redis was down');
      }
      await expectCacheInStep([id]);
    });

    it('sendMessage and messageStream neither hang nor lose the saved reply', async () => {
      const id = await conversationWith(2);
      await redisServer.kill();
      try {
        model.enqueue({ tokens: ['while', ' Redis', ' is', ' down'], delayMs: 20 });
        const sent = (await apiA.ok(SendMessage, { input: { conversationId: id, content: 'are you there?' } })).sendMessage;
        const onA = followSse(a.graphqlUrl, sent.assistantMessage.id);
        const onB = followSse(b.graphqlUrl, sent.assistantMessage.id);
        await Promise.all([onA.done, onB.done]);
        const saved = await finishedMessage(db(), sent.assistantMessage.id);
        expect(saved).toMatchObject({ status: 'COMPLETE', content: 'while Redis is down' });
        for (const watcher of [onA, onB]) {
          const { content, terminal } = assertWellFormed(watcher.events);
          expect(content).toBe(saved.content);
          expect(terminal.message?.content).toBe(saved.content);
        }
        const stopped = (await apiB.ok(SendMessage, { input: { conversationId: id, content: 'and stop' } })).sendMessage;
        expect((await apiB.ok(StopGeneration, { messageId: stopped.assistantMessage.id })).stopGeneration.status).toMatch(/STOPPED|COMPLETE/);
      } finally {
        await redisServer.restart();
        await probeReady();
      }
      await waitFor(() => health(a), (h) => h.body.redis.status === 'up', 5000);
      await waitFor(() => health(b), (h) => h.body.redis.status === 'up', 5000);
      // Streams fan out through Redis again.
      model.enqueue({ tokens: ['back', ' again'], delayMs: 20 });
      const after = (await apiA.ok(SendMessage, { input: { conversationId: id, content: 'and now?' } })).sendMessage;
      const watcher = followSse(b.graphqlUrl, after.assistantMessage.id);
      await watcher.done;
      expect(assertWellFormed(watcher.events).content).toBe('back again');
    });
  });
});
