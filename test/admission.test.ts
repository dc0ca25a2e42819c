// MAX_CONCURRENT_REPLIES: replies past the limit wait in line for a place, saved and leased, and
// every guarantee of a reply holds for them: exactly once, in order, saved = streamed, stop, shutdown.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { eventLoopGauge, ReplyAdmission } from '../src/chat/admission.ts';
import { openDatabase } from '../src/store/database.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import { FakeModel } from './support/fake-model.ts';
import { startParley, type GraphQLClient, type TestServer } from './support/parley.ts';
import { assertWellFormed, finishedMessage, followWs, SendMessage, StopGeneration, waitFor } from './support/streams.ts';
import { wsClient } from './support/subscriptions.ts';

describe('ReplyAdmission', () => {
  it('admits up to the limit, then first come first served as places are released', async () => {
    const admission = new ReplyAdmission(2, () => false);
    const order: number[] = [];
    const releases: (() => void)[] = [];
    const waits = Array.from({ length: 5 }, (_, i) =>
      admission.admit(new AbortController().signal).then((release) => {
        order.push(i);
        releases[i] = release;
      }),
    );
    await Promise.all(waits.slice(0, 2));
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual([0, 1]);
    expect(admission.load).toEqual({ running: 2, waiting: 3 });
    // A place released twice is one place.
    releases[1]!();
    releases[1]!();
    await waits[2];
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual([0, 1, 2]);
    expect(admission.load).toEqual({ running: 2, waiting: 2 });
    releases[0]!();
    releases[2]!();
    await Promise.all(waits);
    expect(order).toEqual([0, 1, 2, 3, 4]);
    releases[3]!();
    releases[4]!();
    expect(admission.load).toEqual({ running: 0, waiting: 0 });
  });

  it('drops a waiting reply that is aborted, with its reason, without taking a place', async () => {
    const admission = new ReplyAdmission(1, () => false);
    const first = await admission.admit(new AbortController().signal);
    const stopped = new AbortController();
    const waiting = admission.admit(stopped.signal);
    const next = admission.admit(new AbortController().signal);
    stopped.abort('stopped');
    await expect(waiting).rejects.toBe('stopped');
    expect(admission.load).toEqual({ running: 1, waiting: 1 });
    first();
    const release = await next;
    expect(admission.load).toEqual({ running: 1, waiting: 0 });
    release();
    // Aborted before it asks: refused at once.
    const gone = new AbortController();
    gone.abort('shutdown');
    await expect(admission.admit(gone.signal)).rejects.toBe('shutdown');
    expect(admission.load).toEqual({ running: 0, waiting: 0 });
  });

  it('holds waiting replies back while the instance is busy, one always running, and lets them go once it has time', async () => {
    let busy = true;
    const admission = new ReplyAdmission(10, () => busy);
    const signal = new AbortController().signal;
    // Nothing runs: the first goes whatever the load.
    const first = await admission.admit(signal);
    let admitted = 0;
    const rest = Array.from({ length: 3 }, () => admission.admit(signal).then((release) => (admitted++, release)));
    await new Promise((r) => setTimeout(r, 80));
    expect([admitted, admission.load]).toEqual([0, { running: 1, waiting: 3 }]);
    // The one running ends while still busy: the next takes its place, and only it.
    first();
    await new Promise((r) => setTimeout(r, 60));
    expect([admitted, admission.load]).toEqual([1, { running: 1, waiting: 2 }]);
    busy = false;
    const releases = await Promise.all(rest);
    expect(admission.load).toEqual({ running: 3, waiting: 0 });
    for (const release of releases) release();
  });

  it('measures the event loop: a loop blocked for a whole window is busy, an idle one is not', async () => {
    const busy = eventLoopGauge(0.9, 50);
    await new Promise((r) => setTimeout(r, 60));
    expect(busy()).toBe(false);
    const until = performance.now() + 80;
    while (performance.now() < until);
    expect(busy()).toBe(true);
    await new Promise((r) => setTimeout(r, 120));
    expect(busy()).toBe(false);
  });

  it('has no limit at 0, whatever the load', async () => {
    const admission = new ReplyAdmission(0, () => true);
    await Promise.all(Array.from({ length: 1000 }, () => admission.admit(new AbortController().signal)));
    expect(admission.load).toEqual({ running: 1000, waiting: 0 });
  });
});

describe('replies past MAX_CONCURRENT_REPLIES', () => {
  let model: FakeModel;
  let database: TestDatabase;
  let server: TestServer | undefined;
  let api: GraphQLClient;

  beforeAll(async () => {
    model = await FakeModel.start();
    database = await createTestDatabase('sqlite');
  });
  beforeEach(async () => {
    server = await startParley({
      database,
      env: { LLM_API_URL: model.url, LLM_MODEL: 'fake-model', LLM_MAX_RETRIES: '0', MAX_CONCURRENT_REPLIES: '2', STREAM_FLUSH_MS: '10', STREAM_LEASE_MS: '900', SHUTDOWN_TIMEOUT_MS: '3000' },
    });
    api = server.client();
  });
  const stopServer = async () => {
    const running = server;
    server = undefined;
    await running?.stop();
  };
  afterEach(stopServer);
  afterAll(async () => {
    await model?.close();
    await database?.drop();
  });

  const send = async (content: string) => {
    const result = await api.mutate(SendMessage, { input: { content } });
    expect(result.error?.message).toBeUndefined();
    return result.data!.sendMessage.assistantMessage.id;
  };
  /** The chat requests the model has received, by the user message they answer. */
  const asked = () => model.chatRequests.map((r) => r.body.messages.at(-1)!.content);

  it('waits in line: the model is asked for two at a time, and every reply streams whole, once, in order', async () => {
    const ws = wsClient(server!.graphqlUrl);
    try {
      const tokens = (n: number) => Array.from({ length: 12 }, (_, i) => `r${n}-${i} `);
      const before = model.chatRequests.length;
      for (let n = 0; n < 5; n++) model.enqueue({ tokens: tokens(n), delayMs: 20 });
      const ids: string[] = [];
      // Sent at once; each answers at once, with its reply still to run.
      const sentAt = Date.now();
      ids.push(...(await Promise.all(Array.from({ length: 5 }, (_, n) => send(`question ${n}`)))));
      expect(Date.now() - sentAt).toBeLessThan(2000);
      const watchers = ids.map((id) => followWs(ws, id));
      await waitFor(async () => asked().length - before, (n) => n >= 2);
      await new Promise((r) => setTimeout(r, 100));
      // Two running, three waiting: no third model call until one of them ends.
      expect(asked().length - before).toBe(2);
      await Promise.all(watchers.map((watcher) => watcher.done));
      expect(asked().slice(before).sort()).toEqual(['question 0', 'question 1', 'question 2', 'question 3', 'question 4']);
      for (const [k, watcher] of watchers.entries()) {
        const { content, terminal } = assertWellFormed(watcher.events);
        expect(terminal.status).toBe('COMPLETE');
        // Each reply is the one its model call streamed (the scripts went out in call order).
        const n = asked().slice(before).indexOf(`question ${k}`);
        expect(content).toBe(tokens(n).join(''));
        expect((await finishedMessage(server!.app.db.prisma, ids[k]!)).content).toBe(content);
      }
    } finally {
      await ws.dispose();
    }
  });

  it('stops a waiting reply before its model call, which then never happens', async () => {
    const ws = wsClient(server!.graphqlUrl);
    try {
      model.enqueue({ tokens: Array.from({ length: 30 }, (_, i) => `a${i} `), delayMs: 20 }, { tokens: Array.from({ length: 30 }, (_, i) => `b${i} `), delayMs: 20 });
      const running = await Promise.all([send('long one'), send('long two')]);
      const waiting = await send('never asked');
      const watcher = followWs(ws, waiting);
      await waitFor(async () => asked().filter((q) => q.startsWith('long')).length, (n) => n >= 2);
      const stopped = await api.mutate(StopGeneration, { messageId: waiting });
      expect(stopped.data?.stopGeneration.status).toBe('STOPPED');
      await watcher.done;
      const { content, terminal } = assertWellFormed(watcher.events);
      expect([content, terminal.status]).toEqual(['', 'STOPPED']);
      for (const id of running) expect((await finishedMessage(server!.app.db.prisma, id)).status).toBe('COMPLETE');
      // The places it would have taken went to no one: the model never heard of it.
      await new Promise((r) => setTimeout(r, 200));
      expect(asked()).not.toContain('never asked');
      expect((await server!.app.db.prisma.message.findUniqueOrThrow({ where: { id: waiting } })).status).toBe('STOPPED');
    } finally {
      await ws.dispose();
    }
  });

  it('ends a waiting reply as INTERRUPTED when the server shuts down', async () => {
    model.enqueue({ tokens: Array.from({ length: 500 }, (_, i) => `s${i} `), delayMs: 10 }, { tokens: Array.from({ length: 500 }, (_, i) => `t${i} `), delayMs: 10 });
    await Promise.all([send('busy one'), send('busy two')]);
    const waiting = await send('still waiting');
    await waitFor(async () => asked().filter((q) => q.startsWith('busy')).length, (n) => n >= 2);
    await stopServer();
    const db = await openDatabase({ url: database.url, poolSize: 1 });
    try {
      expect(await db.prisma.message.findUniqueOrThrow({ where: { id: waiting } })).toMatchObject({ status: 'INTERRUPTED', content: '', leaseExpiresAt: null });
    } finally {
      await db.close();
    }
    expect(asked()).not.toContain('still waiting');
  });
});
