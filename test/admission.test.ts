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
  const gauge = (busy: () => boolean) => ({ busy, close: () => {} });
  const never = new AbortController().signal;
  const admission = (limit: number, floor = 0, busy = () => false) => new ReplyAdmission({ limit, floor, gauge: gauge(busy) });
  const settle = () => new Promise((r) => setTimeout(r, 0));

  it('admits up to the limit, then first come first served as places are released', async () => {
    const line = admission(2);
    const order: number[] = [];
    const releases: (() => void)[] = [];
    const waits = Array.from({ length: 5 }, (_, i) =>
      line.admit('u', never).then(({ release, waited }) => {
        order.push(i);
        releases[i] = release;
        expect(waited).toBe(i >= 2);
      }),
    );
    await settle();
    expect(order).toEqual([0, 1]);
    expect(line.load).toEqual({ running: 2, waiting: 3 });
    // A place released twice is one place.
    releases[1]!();
    releases[1]!();
    await settle();
    expect(order).toEqual([0, 1, 2]);
    expect(line.load).toEqual({ running: 2, waiting: 2 });
    releases[0]!();
    releases[2]!();
    await Promise.all(waits);
    expect(order).toEqual([0, 1, 2, 3, 4]);
    releases[3]!();
    releases[4]!();
    expect(line.load).toEqual({ running: 0, waiting: 0 });
  });

  it('lets users take turns: a burst of one user does not put the others behind all of it', async () => {
    const line = admission(1);
    const first = await line.admit('burst', never);
    const order: string[] = [];
    const releases: (() => void)[] = [];
    const wait = (user: string, label: string) => line.admit(user, never).then(({ release }) => (order.push(label), releases.push(release)));
    const waits = [...Array.from({ length: 4 }, (_, i) => wait('burst', `burst-${i}`)), wait('quiet', 'quiet-0'), wait('other', 'other-0'), wait('quiet', 'quiet-1')];
    first.release();
    for (let i = 0; i < waits.length; i++) {
      await settle();
      releases[i]!();
    }
    await Promise.all(waits);
    expect(order).toEqual(['burst-0', 'quiet-0', 'other-0', 'burst-1', 'quiet-1', 'burst-2', 'burst-3']);
  });

  it('drops a waiting reply that is aborted, with its reason, without taking a place', async () => {
    const line = admission(1);
    const first = await line.admit('u', never);
    const stopped = new AbortController();
    const waiting = line.admit('u', stopped.signal);
    const next = line.admit('v', never);
    stopped.abort('stopped');
    await expect(waiting).rejects.toBe('stopped');
    expect(line.load).toEqual({ running: 1, waiting: 1 });
    first.release();
    const { release } = await next;
    expect(line.load).toEqual({ running: 1, waiting: 0 });
    release();
    // Aborted before it asks: refused at once.
    const gone = new AbortController();
    gone.abort('shutdown');
    await expect(line.admit('u', gone.signal)).rejects.toBe('shutdown');
    expect(line.load).toEqual({ running: 0, waiting: 0 });
  });

  it('drains its line in linear time, with half of the waiting replies aborted', async () => {
    const drain = async (n: number) => {
      const line = admission(1);
      const first = await line.admit('u', never);
      const controllers = Array.from({ length: n }, () => new AbortController());
      let admitted = 0;
      const waits = controllers.map((c, i) => line.admit(`user-${i % 1000}`, c.signal).then(({ release }) => (admitted++, release()), () => {}));
      controllers.forEach((c, i) => i % 2 === 1 && c.abort('stopped'));
      const started = performance.now();
      first.release();
      await Promise.all(waits);
      expect([admitted, line.load]).toEqual([n / 2, { running: 0, waiting: 0 }]);
      return performance.now() - started;
    };
    await drain(20_000);
    const [small, large] = [await drain(20_000), await drain(100_000)];
    // Five times the line: about five times the time; a quadratic drain takes about 25 times.
    expect(large / small).toBeLessThan(12);
  });

  it('holds replies past the floor back while the instance is busy, and lets them go once it has time', async () => {
    let busy = true;
    const line = admission(10, 2, () => busy);
    // Up to the floor they run whatever the load.
    const floor = [await line.admit('u', never), await line.admit('u', never)];
    let admitted = 0;
    const rest = Array.from({ length: 3 }, () => line.admit('u', never).then((a) => (admitted++, a)));
    await new Promise((r) => setTimeout(r, 80));
    expect([admitted, line.load]).toEqual([0, { running: 2, waiting: 3 }]);
    // One of the floor ends while still busy: the next takes its place, and only it.
    floor[0]!.release();
    await new Promise((r) => setTimeout(r, 60));
    expect([admitted, line.load]).toEqual([1, { running: 2, waiting: 2 }]);
    busy = false;
    const admittedRest = await Promise.all(rest);
    expect(line.load).toEqual({ running: 4, waiting: 0 });
    for (const { release } of [...admittedRest, floor[1]!]) release();
    expect(line.load).toEqual({ running: 0, waiting: 0 });
  });

  it('measures the event loop: a loop blocked for a whole window is busy, an idle one is not', async () => {
    const gauge = eventLoopGauge(0.9, 50);
    try {
      await new Promise((r) => setTimeout(r, 120));
      expect(gauge.busy()).toBe(false);
      // A burst of 10 ms tasks back to back for 300 ms, as a flood of requests keeps a loop busy.
      const until = performance.now() + 300;
      while (performance.now() < until) {
        const slice = performance.now() + 10;
        while (performance.now() < slice);
        await new Promise((r) => setImmediate(r));
      }
      expect(gauge.busy()).toBe(true);
      await new Promise((r) => setTimeout(r, 150));
      expect(gauge.busy()).toBe(false);
    } finally {
      gauge.close();
    }
  });

  it('has no limit at 0, whatever the load', async () => {
    const line = admission(0, 0, () => true);
    await Promise.all(Array.from({ length: 1000 }, () => line.admit('u', never)));
    expect(line.load).toEqual({ running: 1000, waiting: 0 });
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
  /** Two replies that take both places (`tokens` each, `delayMs` apart), and a third that waits. */
  const fillBothPlaces = async (label: string, tokens: number, delayMs: number) => {
    const script = (k: number) => ({ tokens: Array.from({ length: tokens }, (_, i) => `${label}${k}-${i} `), delayMs });
    model.enqueue(script(1), script(2));
    const running = await Promise.all([send(`${label} one`), send(`${label} two`)]);
    const waiting = await send(`${label} waiting`);
    await waitFor(async () => asked().filter((q) => q === `${label} one` || q === `${label} two`).length, (n) => n >= 2);
    return { running, waiting };
  };

  it('waits in line: the model is asked for two at a time, and every reply streams whole, once, in order', async () => {
    const ws = wsClient(server!.graphqlUrl);
    try {
      const tokens = (n: number) => Array.from({ length: 12 }, (_, i) => `r${n}-${i} `);
      const before = model.chatRequests.length;
      for (let n = 0; n < 5; n++) model.enqueue({ tokens: tokens(n), delayMs: 50 });
      const ids: string[] = [];
      // One after the other, each answered at once with its reply still to run.
      const sentAt = Date.now();
      for (let n = 0; n < 5; n++) ids.push(await send(`question ${n}`));
      expect(Date.now() - sentAt).toBeLessThan(2000);
      const watchers = ids.map((id) => followWs(ws, id));
      await waitFor(async () => asked().length - before, (n) => n >= 2);
      await new Promise((r) => setTimeout(r, 100));
      // Two running, three waiting: no third model call until one of them ends.
      expect(asked().length - before).toBe(2);
      await Promise.all(watchers.map((watcher) => watcher.done));
      // First come, first served.
      expect(asked().slice(before)).toEqual(['question 0', 'question 1', 'question 2', 'question 3', 'question 4']);
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
      const { running, waiting } = await fillBothPlaces('stop', 30, 20);
      const watcher = followWs(ws, waiting);
      const stopped = await api.mutate(StopGeneration, { messageId: waiting });
      expect(stopped.data?.stopGeneration.status).toBe('STOPPED');
      await watcher.done;
      const { content, terminal } = assertWellFormed(watcher.events);
      expect([content, terminal.status]).toEqual(['', 'STOPPED']);
      for (const id of running) expect((await finishedMessage(server!.app.db.prisma, id)).status).toBe('COMPLETE');
      // The places it would have taken went to no one: the model never heard of it.
      await new Promise((r) => setTimeout(r, 200));
      expect(asked()).not.toContain('stop waiting');
      expect((await server!.app.db.prisma.message.findUniqueOrThrow({ where: { id: waiting } })).status).toBe('STOPPED');
    } finally {
      await ws.dispose();
    }
  });

  it('skips the model call of a waiting reply that another instance ended meanwhile', async () => {
    const ws = wsClient(server!.graphqlUrl);
    try {
      const { running, waiting } = await fillBothPlaces('elsewhere', 10, 40);
      const watcher = followWs(ws, waiting);
      // As another instance's stop does when its broadcast is lost: only the row says so.
      await server!.app.db.prisma.message.update({ where: { id: waiting }, data: { status: 'STOPPED', leaseExpiresAt: null } });
      for (const id of running) expect((await finishedMessage(server!.app.db.prisma, id)).status).toBe('COMPLETE');
      await watcher.done;
      expect(assertWellFormed(watcher.events).terminal.status).toBe('STOPPED');
      await new Promise((r) => setTimeout(r, 200));
      expect(asked()).not.toContain('elsewhere waiting');
      expect((await server!.app.db.prisma.message.findUniqueOrThrow({ where: { id: waiting } })).status).toBe('STOPPED');
    } finally {
      await ws.dispose();
    }
  });

  it('ends a waiting reply as INTERRUPTED when the server shuts down', async () => {
    const { waiting } = await fillBothPlaces('shutdown', 500, 10);
    await stopServer();
    const db = await openDatabase({ url: database.url, poolSize: 1 });
    try {
      expect(await db.prisma.message.findUniqueOrThrow({ where: { id: waiting } })).toMatchObject({ status: 'INTERRUPTED', content: '', leaseExpiresAt: null });
    } finally {
      await db.close();
    }
    expect(asked()).not.toContain('shutdown waiting');
  });
});
