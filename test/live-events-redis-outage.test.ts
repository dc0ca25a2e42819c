// Live events through a Redis outage (issue 12). Two instances on a redis-server of the test's own:
// subscribers on both, Redis killed, writes go on (they never fail for Redis), Redis comes back
// empty, and every subscriber that missed events gets exactly one RESYNC at the current seq, then
// live events again. No answer carries an internal error.
import { randomBytes } from 'node:crypto';
import { parse, type DocumentNode } from 'graphql';
import type { Client as WsClient } from 'graphql-ws';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import { FakeModel } from './support/fake-model.ts';
import { startParley, tokenFor, TEST_JWT_SECRET, type TestServer } from './support/parley.ts';
import { TestRedisServer } from './support/redis-server.ts';
import { finishedMessage } from './support/streams.ts';
import { subscribeSse, subscribeWs, wsClient, type Collected } from './support/subscriptions.ts';

const CONVERSATION_EVENTS = parse(`
  subscription OutageConversationEvents($id: ID!, $afterSeq: Int) {
    conversationEvents(conversationId: $id, afterSeq: $afterSeq) { seq kind conversationId messageId message { id status } conversation { id title } }
  }
`);
const VIEWER_EVENTS = parse(`
  subscription OutageViewerEvents($afterSeq: Int) { viewerEvents(afterSeq: $afterSeq) { seq kind conversationId conversation { id title } } }
`);
const CREATE = `mutation($title: String) { createConversation(input: { title: $title }) { id lastEventSeq } }`;
const ADD = `mutation($input: AddMessageInput!) { addMessage(input: $input) { id } }`;
const SEND = `mutation($input: SendMessageInput!) { sendMessage(input: $input) { userMessage { id } assistantMessage { id } } }`;
const UPDATE = `mutation($input: UpdateConversationInput!) { updateConversation(input: $input) { id title } }`;
const LAST_SEQ = `query($id: ID!) { conversation(id: $id) { lastEventSeq } }`;
const VIEWER_SEQ = `query { viewerEventSeq }`;

type GqlError = { message: string; extensions?: { code?: string } };
type Data = any;
interface Event {
  seq: number;
  kind: string;
  conversationId: string;
  messageId?: string | null;
}

async function post(server: TestServer, token: string, query: string, variables: Record<string, unknown> = {}): Promise<Data> {
  const res = await fetch(server.graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const answer = (await res.json()) as { data?: Data; errors?: GqlError[] };
  expect(answer.errors, `${query.slice(0, 50)}: ${JSON.stringify(answer.errors)}`).toBeUndefined();
  expect(res.status).toBe(200);
  return answer.data;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
async function eventually(check: () => boolean | Promise<boolean>, what: () => string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await sleep(25);
  }
}
const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

describe('live events through a Redis outage', () => {
  let redis: TestRedisServer;
  let model: FakeModel;
  let database: TestDatabase;
  let a: TestServer;
  let b: TestServer;

  beforeAll(async () => {
    redis = await TestRedisServer.start();
    model = await FakeModel.start();
    database = await createTestDatabase('postgresql');
    const env = {
      REDIS_URL: redis.url,
      AUTH_JWT_SECRET: TEST_JWT_SECRET,
      LLM_API_URL: model.url,
      LLM_MODEL: 'fake-model',
      LLM_MAX_RETRIES: '0',
      STREAM_LEASE_MS: '1500',
      EVENT_SWEEP_MS: '500',
    };
    a = await startParley({ database, env });
    b = await startParley({ database, env });
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await model?.close();
    await database?.drop();
    await redis?.stop();
  });

  it('writes succeed while Redis is down; once it is back, every subscriber that missed events gets one RESYNC, then live events', { timeout: 120_000 }, async () => {
    const token = await tokenFor(`outage-${randomBytes(4).toString('hex')}`);
    const conversationId = (await post(a, token, CREATE, { title: 'outage' })).createConversation.id as string;
    const wsA = wsClient(a.graphqlUrl, token);
    const wsB = wsClient(b.graphqlUrl, token);
    const sub = <T>(where: { ws?: WsClient; server: TestServer }, doc: DocumentNode, variables: Record<string, unknown>) =>
      where.ws ? subscribeWs<T>(where.ws, doc, variables) : subscribeSse<T>(where.server.graphqlUrl, doc, variables, token);
    type ConvData = { conversationEvents: Event };
    type ViewerData = { viewerEvents: Event };
    const convs: [string, Collected<ConvData>][] = [
      ['ws@A', sub<ConvData>({ ws: wsA, server: a }, CONVERSATION_EVENTS, { id: conversationId, afterSeq: -1 })],
      ['sse@B', sub<ConvData>({ server: b }, CONVERSATION_EVENTS, { id: conversationId, afterSeq: -1 })],
      ['ws@B', sub<ConvData>({ ws: wsB, server: b }, CONVERSATION_EVENTS, { id: conversationId, afterSeq: -1 })],
      ['sse@A', sub<ConvData>({ server: a }, CONVERSATION_EVENTS, { id: conversationId, afterSeq: -1 })],
    ];
    const viewers: [string, Collected<ViewerData>][] = [
      ['sse@A', sub<ViewerData>({ server: a }, VIEWER_EVENTS, { afterSeq: 0 })],
      ['ws@B', sub<ViewerData>({ ws: wsB, server: b }, VIEWER_EVENTS, { afterSeq: 0 })],
    ];
    const conv = (s: Collected<ConvData>) => s.events.map((e) => e.conversationEvents);
    const view = (s: Collected<ViewerData>) => s.events.map((e) => e.viewerEvents);
    const describeAll = () =>
      [...convs.map(([n, s]) => `${n} ${JSON.stringify(conv(s).map((e) => [e.seq, e.kind]))} ${JSON.stringify(s.errors)}`), ...viewers.map(([n, s]) => `viewer ${n} ${JSON.stringify(view(s).map((e) => [e.seq, e.kind]))} ${JSON.stringify(s.errors)}`)].join('\n');
    try {
      // Live before the outage.
      const first = (await post(b, token, ADD, { input: { conversationId, role: 'USER', content: 'before' } })).addMessage.id as string;
      await eventually(
        () => convs.every(([, s]) => conv(s).length === 1),
        () => `the first event everywhere:\n${describeAll()}`,
      );
      for (const [name, s] of convs) expect(conv(s)[0], name).toMatchObject({ seq: 0, kind: 'MESSAGE_ADDED', messageId: first });

      await redis.kill();
      // Writes on both instances, so that every subscriber misses some.
      const during: string[] = [];
      during.push((await post(a, token, ADD, { input: { conversationId, role: 'USER', content: 'during 1' } })).addMessage.id);
      await post(b, token, UPDATE, { input: { id: conversationId, title: 'renamed in the dark' } });
      during.push((await post(b, token, ADD, { input: { conversationId, role: 'USER', content: 'during 2' } })).addMessage.id);
      const sent = (await post(b, token, SEND, { input: { conversationId, content: 'a question in the dark' } })).sendMessage;
      await finishedMessage(a.app.db.prisma, sent.assistantMessage.id, 15_000);
      during.push((await post(a, token, ADD, { input: { conversationId, role: 'USER', content: 'during 3' } })).addMessage.id);
      await post(a, token, UPDATE, { input: { id: conversationId, archived: true } });
      const missedSeq = (await post(a, token, LAST_SEQ, { id: conversationId })).conversation.lastEventSeq as number;
      const missedViewerSeq = (await post(b, token, VIEWER_SEQ)).viewerEventSeq as number;
      // 3 addMessage, 2 updates, 3 for the reply, after seq 0.
      expect(missedSeq).toBe(8);
      expect(missedViewerSeq).toBe(2);

      await redis.restart();
      await eventually(
        () => convs.every(([, s]) => conv(s).some((e) => e.kind === 'RESYNC')) && viewers.every(([, s]) => view(s).some((e) => e.kind === 'RESYNC')),
        () => `a RESYNC on every subscriber after Redis came back:\n${describeAll()}`,
        30_000,
      );
      // Live again: the next writes arrive as events after the RESYNC.
      const after = (await post(b, token, ADD, { input: { conversationId, role: 'USER', content: 'after' } })).addMessage.id as string;
      await post(a, token, UPDATE, { input: { id: conversationId, title: 'back in the light' } });
      await eventually(
        () => convs.every(([, s]) => conv(s).at(-1)?.seq === missedSeq + 2) && viewers.every(([, s]) => view(s).at(-1)?.seq === missedViewerSeq + 1),
        () => `live events after the RESYNC:\n${describeAll()}`,
        15_000,
      );
      await sleep(500);

      const check = (name: string, events: Event[], errors: unknown[], resyncSeq: number, resyncId: string, tail: Partial<Event>[]) => {
        expect(errors, name).toEqual([]);
        const resyncs = events.filter((e) => e.kind === 'RESYNC');
        expect(resyncs, `${name}: one RESYNC\n${describeAll()}`).toHaveLength(1);
        const at = events.indexOf(resyncs[0]!);
        // Before it: whatever arrived live, in order from the start, each once.
        const before = events.slice(0, at);
        expect(
          before.map((e) => e.seq),
          name,
        ).toEqual(range(before[0]?.seq ?? 0, before[0] ? before[0].seq + before.length - 1 : -1));
        // It tells the client to refetch everything up to now, and live events carry on from there.
        expect(resyncs[0], name).toMatchObject({ seq: resyncSeq, conversationId: resyncId });
        expect(
          events.slice(at + 1).map((e) => e.seq),
          name,
        ).toEqual(range(resyncSeq + 1, resyncSeq + tail.length));
        events.slice(at + 1).forEach((e, i) => expect(e, name).toMatchObject(tail[i]!));
        // A subscriber missed something, or it would need no RESYNC.
        expect(before.length, name).toBeLessThanOrEqual(resyncSeq + 1);
      };
      for (const [name, s] of convs) {
        check(name, conv(s), s.errors, missedSeq, conversationId, [
          { kind: 'MESSAGE_ADDED', messageId: after },
          { kind: 'CONVERSATION_UPDATED', conversationId },
        ]);
        expect(conv(s)[0], name).toMatchObject({ seq: 0, messageId: first });
      }
      for (const [name, s] of viewers) check(`viewer ${name}`, view(s), s.errors, missedViewerSeq, '', [{ kind: 'CONVERSATION_UPDATED', conversationId }]);

      // The database has everything that was written in the dark.
      const messages = await a.app.db.prisma.message.findMany({ where: { conversationId }, orderBy: { seq: 'asc' }, select: { id: true } });
      expect(messages.map((m) => m.id)).toEqual([first, during[0], during[1], sent.userMessage.id, sent.assistantMessage.id, during[2], after]);
      expect((await a.app.db.prisma.conversation.findUniqueOrThrow({ where: { id: conversationId } })).title).toBe('back in the light');
    } finally {
      for (const [, s] of [...convs, ...viewers]) s.stop();
      await wsA.dispose();
      await wsB.dispose();
    }
  });

  it('an idle subscriber learns of events whose publish Redis refused (out of memory) from the sweep: one RESYNC, then live events', { timeout: 60_000 }, async () => {
    const token = await tokenFor(`refused-${randomBytes(4).toString('hex')}`);
    const conversationId = (await post(a, token, CREATE, { title: 'refused' })).createConversation.id as string;
    const startSeq = (await post(a, token, LAST_SEQ, { id: conversationId })).conversation.lastEventSeq as number;
    const startViewerSeq = (await post(a, token, VIEWER_SEQ)).viewerEventSeq as number;
    const wsB = wsClient(b.graphqlUrl, token);
    const conv = subscribeWs<{ conversationEvents: Event }>(wsB, CONVERSATION_EVENTS, { id: conversationId, afterSeq: startSeq });
    const view = subscribeSse<{ viewerEvents: Event }>(b.graphqlUrl, VIEWER_EVENTS, { afterSeq: startViewerSeq }, token);
    const convEvents = () => conv.events.map((e) => e.conversationEvents);
    const viewEvents = () => view.events.map((e) => e.viewerEvents);
    const admin = new Redis(redis.url);
    try {
      // Subscribed and live: the first write arrives as an event.
      await post(a, token, ADD, { input: { conversationId, role: 'USER', content: 'heard' } });
      await eventually(() => convEvents().length === 1, () => JSON.stringify(conv.events));
      // Redis refuses every write now; the subscriber's connection stays up, so nothing tells it.
      await admin.config('SET', 'maxmemory-policy', 'noeviction');
      await admin.config('SET', 'maxmemory', '1');
      await post(a, token, ADD, { input: { conversationId, role: 'USER', content: 'unheard' } });
      await post(a, token, UPDATE, { input: { id: conversationId, title: 'renamed unheard' } });
      const lostSeq = (await post(a, token, LAST_SEQ, { id: conversationId })).conversation.lastEventSeq as number;
      const lostViewerSeq = (await post(a, token, VIEWER_SEQ)).viewerEventSeq as number;
      expect(lostSeq).toBe(startSeq + 3);
      expect(lostViewerSeq).toBe(startViewerSeq + 1);
      await sleep(100);
      await admin.config('SET', 'maxmemory', '0');
      // Idle from here on: only the sweep (every 500 ms) can tell it.
      await eventually(
        () => convEvents().some((e) => e.kind === 'RESYNC') && viewEvents().some((e) => e.kind === 'RESYNC'),
        () => `a RESYNC: ${JSON.stringify(convEvents())} ${JSON.stringify(viewEvents())} ${JSON.stringify([conv.errors, view.errors])}`,
        10_000,
      );
      expect(convEvents().map((e) => [e.seq, e.kind])).toEqual([
        [startSeq + 1, 'MESSAGE_ADDED'],
        [lostSeq, 'RESYNC'],
      ]);
      expect(viewEvents().map((e) => [e.seq, e.kind])).toEqual([[lostViewerSeq, 'RESYNC']]);
      // And live again.
      await post(a, token, UPDATE, { input: { id: conversationId, title: 'heard again' } });
      await eventually(() => convEvents().length === 3 && viewEvents().length === 2, () => `${JSON.stringify(convEvents())} ${JSON.stringify(viewEvents())}`);
      expect(convEvents()[2]).toMatchObject({ seq: lostSeq + 1, kind: 'CONVERSATION_UPDATED' });
      expect(viewEvents()[1]).toMatchObject({ seq: lostViewerSeq + 1, kind: 'CONVERSATION_UPDATED', conversationId });
      expect([conv.errors, view.errors]).toEqual([[], []]);
    } finally {
      await admin.config('SET', 'maxmemory', '0').catch(() => {});
      admin.disconnect();
      conv.stop();
      view.stop();
      await wsB.dispose();
    }
  });
});
