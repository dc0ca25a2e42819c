// Two Parley instances share one PostgreSQL database and one Redis. Subscribers on either
// instance, joining at any moment, get every event exactly once and in order; stopping works
// from either side; a killed instance's reply is recovered by the other.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import { FakeModel } from './support/fake-model.ts';
import { errorOf, startParley, tokenFor, TEST_JWT_SECRET, type TestServer } from './support/parley.ts';
import { spawnParley, waitUntilHealthy } from './support/process.ts';
import { REDIS_URL, redisNamespace } from './support/redis.ts';
import { assertWellFormed, finishedMessage, followSse, followWs, SendMessage, StopGeneration, waitFor, type StreamEventData } from './support/streams.ts';
import { wsClient } from './support/subscriptions.ts';
import type { Client as WsClient } from 'graphql-ws';

describe('two instances on one Redis', () => {
  let model: FakeModel;
  let database: TestDatabase;
  let a: TestServer;
  let b: TestServer;
  let token: string;
  const namespace = redisNamespace();
  const env = () => ({
    REDIS_URL,
    REDIS_KEY_PREFIX: namespace.prefix,
    AUTH_JWT_SECRET: TEST_JWT_SECRET,
    LLM_API_URL: model.url,
    LLM_MODEL: 'fake-model',
    LLM_MAX_RETRIES: '0',
    LLM_IDLE_TIMEOUT_MS: '1000',
    STREAM_LEASE_MS: '1500',
    DATABASE_POOL_SIZE: '20',
  });

  beforeAll(async () => {
    model = await FakeModel.start();
    database = await createTestDatabase('postgresql');
    a = await startParley({ database, env: env() });
    b = await startParley({ database, env: env() });
    token = await tokenFor('multi');
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await model?.close();
    await database?.drop();
    await namespace.cleanup();
  });

  const send = async (server: TestServer, content: string, extra: { clientMessageId?: string } = {}) =>
    (await server.client(token).ok(SendMessage, { input: { content, ...extra } })).sendMessage;

  it('50 concurrent generations, each watched on both instances, deliver every chunk exactly once and in order', async () => {
    model.setDefault({ tokens: Array.from({ length: 30 }, (_, i) => `tok${i} `), delayMs: 8 });
    const clientsA: WsClient[] = [wsClient(a.graphqlUrl, token), wsClient(a.graphqlUrl, token)];
    const clientsB: WsClient[] = [wsClient(b.graphqlUrl, token), wsClient(b.graphqlUrl, token)];
    const runs = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const origin = i % 2 === 0 ? a : b;
        const sent = await send(origin, `question ${i}`);
        // One watcher on each instance; half over graphql-ws, half over SSE.
        const watchers =
          i % 4 < 2
            ? [followWs(clientsA[i % 2]!, sent.assistantMessage.id), followWs(clientsB[i % 2]!, sent.assistantMessage.id)]
            : [followSse(a.graphqlUrl, sent.assistantMessage.id, undefined, token), followSse(b.graphqlUrl, sent.assistantMessage.id, undefined, token)];
        await Promise.all(watchers.map((w) => w.done));
        return { id: sent.assistantMessage.id, watchers };
      }),
    );
    await Promise.all([...clientsA, ...clientsB].map((c) => c.dispose()));
    const expected = Array.from({ length: 30 }, (_, i) => `tok${i} `).join('');
    for (const run of runs) {
      const saved = await a.app.db.prisma.message.findUniqueOrThrow({ where: { id: run.id } });
      expect(saved.status).toBe('COMPLETE');
      expect(saved.content).toBe(expected);
      for (const watcher of run.watchers) {
        expect(watcher.errors).toEqual([]);
        const { content, terminal } = assertWellFormed(watcher.events);
        expect(content).toBe(saved.content);
        expect(terminal.message?.content).toBe(saved.content);
      }
    }
    model.setDefault({ tokens: ['Hello', ',', ' world', '!'] });
  });

  it('a subscriber joining halfway on the other instance gets the start replayed, then the rest live', async () => {
    model.enqueue({ tokens: Array.from({ length: 40 }, (_, i) => `p${i} `), delayMs: 10 });
    const sent = await send(a, 'long answer please');
    const early = followSse(a.graphqlUrl, sent.assistantMessage.id, undefined, token);
    await waitFor(async () => early.events.length, (n) => n >= 5);
    const late = followSse(b.graphqlUrl, sent.assistantMessage.id, undefined, token);
    await Promise.all([early.done, late.done]);
    expect(late.events).toEqual(early.events);
    expect(assertWellFormed(late.events).content).toBe(Array.from({ length: 40 }, (_, i) => `p${i} `).join(''));
  });

  it('reconnecting with afterSeq on the other instance continues without gap or repeat', async () => {
    model.enqueue({ tokens: Array.from({ length: 40 }, (_, i) => `r${i} `), delayMs: 10 });
    const sent = await send(b, 'reconnect test');
    const client = wsClient(a.graphqlUrl, token);
    const first = followWs(client, sent.assistantMessage.id);
    await waitFor(async () => first.events.length, (n) => n >= 4);
    first.stop();
    await client.dispose();
    const seen = first.events.map((e) => e.messageStream);
    const lastSeq = seen.at(-1)!.seq;
    const second = followSse(b.graphqlUrl, sent.assistantMessage.id, lastSeq, token);
    await second.done;
    const rest = assertWellFormed(second.events, lastSeq + 1);
    const saved = await finishedMessage(a.app.db.prisma, sent.assistantMessage.id);
    expect(seen.map((e) => e.delta).join('') + rest.content).toBe(saved.content);
    expect(saved.content).toBe(Array.from({ length: 40 }, (_, i) => `r${i} `).join(''));
  });

  it('a subscriber joining after the end, on either instance, gets the whole reply and the end', async () => {
    const sent = await send(a, 'short one');
    const saved = await finishedMessage(a.app.db.prisma, sent.assistantMessage.id);
    for (const server of [a, b]) {
      const sub = followSse(server.graphqlUrl, sent.assistantMessage.id, undefined, token);
      await sub.done;
      const { content, terminal } = assertWellFormed(sub.events);
      expect(content).toBe(saved.content);
      expect(terminal.status).toBe('COMPLETE');
    }
  });

  it('stopGeneration sent to the other instance stops the model call and keeps the partial reply', async () => {
    model.enqueue({ tokens: Array.from({ length: 300 }, (_, i) => `s${i} `), delayMs: 10 });
    const sent = await send(a, 'never-ending story');
    const watcher = followSse(a.graphqlUrl, sent.assistantMessage.id, undefined, token);
    await waitFor(async () => watcher.events.length, (n) => n >= 3);
    const request = model.chatRequests.at(-1)!;
    const stopped = (await b.client(token).ok(StopGeneration, { messageId: sent.assistantMessage.id })).stopGeneration;
    expect(stopped.status).toBe('STOPPED');
    await watcher.done;
    const { content, terminal } = assertWellFormed(watcher.events);
    expect(terminal.status).toBe('STOPPED');
    expect(content).toBe(stopped.content);
    await Promise.race([request.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('model call not aborted')), 3000))]);
    expect(request.sent).toBeLessThan(300);
    expect((await a.client(token).ok(StopGeneration, { messageId: sent.assistantMessage.id })).stopGeneration).toEqual(stopped);
  });

  it('concurrent duplicate sendMessage on both instances calls the model once', async () => {
    model.enqueue({ tokens: ['just', ' once'], delayMs: 20 });
    const before = model.chatRequests.length;
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) => (i % 2 ? a : b).client(token).mutate(SendMessage, { input: { content: 'dup', clientMessageId: 'same-key' } })),
    );
    expect(results.every((r) => !r.error)).toBe(true);
    expect(new Set(results.map((r) => r.data!.sendMessage.assistantMessage.id)).size).toBe(1);
    await finishedMessage(a.app.db.prisma, results[0]!.data!.sendMessage.assistantMessage.id);
    expect(model.chatRequests.length - before).toBe(1);
  });

  it.each([
    ['HTTP 500', { status: 500 }, /HTTP 500/],
    ['a stall', { tokens: ['half', ' a', ' reply', ' then', ' nothing'], stallAfter: 3, delayMs: 5 }, /stalled/],
    ['a connection reset', { tokens: ['cut', ' here', ' and', ' gone'], resetAfter: 2, delayMs: 5 }, /connection|terminated|reset|closed/i],
  ] as const)('a model failure (%s) on one instance reaches subscribers on the other as FAILED', async (_, script, error) => {
    model.enqueue(script);
    const sent = await send(a, `failure: ${_}`);
    const watcher = followSse(b.graphqlUrl, sent.assistantMessage.id, undefined, token);
    await watcher.done;
    const { content, terminal } = assertWellFormed(watcher.events);
    expect(terminal.status).toBe('FAILED');
    expect(terminal.error).toMatch(error);
    const saved = await b.app.db.prisma.message.findUniqueOrThrow({ where: { id: sent.assistantMessage.id } });
    expect(saved).toMatchObject({ status: 'FAILED', content });
  });

  it('a foreign user subscribing on either instance gets NOT_FOUND and no events', async () => {
    const sent = await send(a, 'mine');
    const other = await tokenFor('intruder');
    for (const server of [a, b]) {
      const sub = followSse(server.graphqlUrl, sent.assistantMessage.id, undefined, other);
      await sub.done.catch(() => {});
      expect(sub.events).toEqual([]);
      expect(JSON.stringify(sub.errors)).toContain('NOT_FOUND');
      expect(errorOf(await server.client(other).mutate(StopGeneration, { messageId: sent.assistantMessage.id })).code).toBe('NOT_FOUND');
    }
  });

  it('leaves no Redis subscription behind when clients leave early', async () => {
    model.enqueue({ tokens: Array.from({ length: 100 }, (_, i) => `l${i} `), delayMs: 10 });
    const sent = await send(a, 'leave early');
    const redis = namespace.redis();
    const channel = `${namespace.prefix}stream:{${sent.assistantMessage.id}}:events`;
    const clients = [wsClient(a.graphqlUrl, token), wsClient(b.graphqlUrl, token)];
    const subs = clients.map((c) => followWs(c, sent.assistantMessage.id));
    await waitFor(async () => Math.min(...subs.map((s) => s.events.length)), (n) => n >= 2);
    expect(Number((await redis.pubsub('NUMSUB', channel))[1])).toBe(2);
    for (const sub of subs) sub.stop();
    await waitFor(async () => Number((await redis.pubsub('NUMSUB', channel))[1]), (n) => n === 0, 3000);
    await Promise.all(clients.map((c) => c.dispose()));
    await b.client(token).ok(StopGeneration, { messageId: sent.assistantMessage.id });
  });

  it('when the generating instance is killed, the other marks the reply INTERRUPTED within the lease', async () => {
    const doomed = await spawnParley({ ...env(), DATABASE_URL: database.url, LOG_LEVEL: 'warn' });
    try {
      await waitUntilHealthy(doomed);
      model.enqueue({ tokens: Array.from({ length: 500 }, (_, i) => `k${i} `), delayMs: 10 });
      const res = await fetch(`${doomed.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query: 'mutation { sendMessage(input: { content: "doomed" }) { assistantMessage { id } } }' }),
      });
      const messageId = (await res.json()).data.sendMessage.assistantMessage.id as string;
      const watcher = followSse(b.graphqlUrl, messageId, undefined, token);
      await waitFor(async () => watcher.events.length, (n) => n >= 3);
      const killedAt = Date.now();
      doomed.child.kill('SIGKILL');
      await doomed.exited;
      await watcher.done;
      const recoveredIn = Date.now() - killedAt;
      const { content, terminal } = assertWellFormed(watcher.events as StreamEventData[]);
      expect(terminal.status).toBe('INTERRUPTED');
      expect(terminal.error).toMatch(/stopped before it finished/);
      // Lease 1.5 s, checked every 0.5 s, plus the subscriber's own check.
      expect(recoveredIn).toBeLessThan(5000);
      const saved = await a.app.db.prisma.message.findUniqueOrThrow({ where: { id: messageId } });
      expect(saved).toMatchObject({ status: 'INTERRUPTED', content });
      expect(content.length).toBeGreaterThan(0);
    } finally {
      doomed.child.kill('SIGKILL');
    }
  });
});
