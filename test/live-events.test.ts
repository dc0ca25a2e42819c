// Live conversations on every device (issue 12): conversationEvents and viewerEvents, followed by
// real clients (graphql-ws and SSE) on two instances sharing one Redis, and on one instance
// without Redis. Every event arrives exactly once, in seq order without gaps, on every client, and
// the events agree with the database afterwards. Late joiners replay from afterSeq; a log that no
// longer holds what a client asks for answers RESYNC; foreign and hostile ids are refused exactly
// like missing ones. The Redis outage has its own file (live-events-redis-outage.test.ts).
//
// The random-operations test prints its seed; LIVE_EVENTS_SEED=<seed> replays the same choices.
import { randomBytes, randomInt } from 'node:crypto';
import { parse, type DocumentNode } from 'graphql';
import type { Client as WsClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import { FakeModel } from './support/fake-model.ts';
import { startParley, tokenFor, TEST_JWT_SECRET, type TestServer } from './support/parley.ts';
import { REDIS_URL, redisNamespace } from './support/redis.ts';
import { assertWellFormed, finishedMessage, followWs } from './support/streams.ts';
import { subscribeSse, subscribeWs, wsClient, type Collected } from './support/subscriptions.ts';

// ---------------------------------------------------------------------------------------------
// Documents (parsed here, not through codegen: they are this suite's own).

const CONVERSATION_EVENTS = parse(`
  subscription LiveConversationEvents($id: ID!, $afterSeq: Int) {
    conversationEvents(conversationId: $id, afterSeq: $afterSeq) {
      seq kind conversationId messageId
      message { id role status content }
      conversation { id title archived }
    }
  }
`);
const VIEWER_EVENTS = parse(`
  subscription LiveViewerEvents($afterSeq: Int) {
    viewerEvents(afterSeq: $afterSeq) { seq kind conversationId conversation { id title archived } }
  }
`);

const CREATE = `mutation($title: String) { createConversation(input: { title: $title }) { id title lastEventSeq } }`;
const ADD = `mutation($input: AddMessageInput!) { addMessage(input: $input) { id role conversation { id } } }`;
const SEND = `mutation($input: SendMessageInput!) { sendMessage(input: $input) { conversation { id title } userMessage { id } assistantMessage { id status } } }`;
const UPDATE = `mutation($input: UpdateConversationInput!) { updateConversation(input: $input) { id title archived } }`;
const STOP = `mutation($id: ID!) { stopGeneration(messageId: $id) { id status content } }`;
const DELETE = `mutation($id: ID!) { deleteConversation(id: $id) }`;
const CLEAR = `mutation($id: ID!) { clearMessages(conversationId: $id) }`;
const LAST_SEQ = `query($id: ID!) { conversation(id: $id) { id lastEventSeq } }`;
const VIEWER_SEQ = `query { viewerEventSeq }`;
const OPEN = `query($id: ID!) { conversation(id: $id) { id lastEventSeq generating { id role status } } }`;

// ---------------------------------------------------------------------------------------------
// Types and clients.

type GqlError = { message: string; path?: unknown; locations?: unknown; extensions?: { code?: string } & Record<string, unknown> };
type Data = any;
type Answer = { status: number; data?: Data; errors?: GqlError[] };

interface EventMessage {
  id: string;
  role: string;
  status: string;
  content: string;
}
interface EventConversation {
  id: string;
  title: string | null;
  archived: boolean;
}
interface ConvEvent {
  seq: number;
  kind: string;
  conversationId: string;
  messageId: string | null;
  message: EventMessage | null;
  conversation: EventConversation | null;
}
interface ViewerEvent {
  seq: number;
  kind: string;
  conversationId: string;
  conversation: EventConversation | null;
}
type ConvData = { conversationEvents: ConvEvent };
type ViewerData = { viewerEvents: ViewerEvent };

/** Where a subscription goes: graphql-ws on a client's connection, or SSE (a connection of its own). */
interface Transport {
  name: string;
  url: string;
  token: string;
  ws?: WsClient;
}

/** Where an operation goes: POST over HTTP, or an operation on a graphql-ws connection. */
interface Executor {
  name: string;
  run(query: string, variables?: Record<string, unknown>): Promise<Answer>;
}

async function post(server: { graphqlUrl: string }, token: string, query: string, variables: Record<string, unknown> = {}): Promise<Answer> {
  const res = await fetch(server.graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const text = await res.text();
  try {
    return { status: res.status, ...(JSON.parse(text) as object) };
  } catch {
    return { status: res.status, errors: [{ message: `not JSON: ${text.slice(0, 200)}` }] };
  }
}

function wsRun(client: WsClient, query: string, variables: Record<string, unknown> = {}): Promise<Answer> {
  return new Promise((resolve) => {
    let result: Answer = { status: 0, errors: [{ message: 'completed without a result' }] };
    client.subscribe(
      { query, variables },
      {
        next: (value) => {
          result = { status: 200, data: value.data, ...(value.errors ? { errors: value.errors as unknown as GqlError[] } : {}) };
        },
        error: (error) => resolve({ status: 0, errors: Array.isArray(error) ? (error as GqlError[]) : [{ message: String(error) }] }),
        complete: () => resolve(result),
      },
    );
  });
}

const httpExec = (name: string, server: { graphqlUrl: string }, token: string): Executor => ({ name, run: (q, v) => post(server, token, q, v) });
const wsExec = (name: string, client: WsClient): Executor => ({ name, run: (q, v) => wsRun(client, q, v) });

/** The data of an operation that must succeed: any error (above all an internal one) fails the test. */
async function must(exec: Executor, query: string, variables: Record<string, unknown> = {}): Promise<Data> {
  const answer = await exec.run(query, variables);
  expect(answer.errors, `${exec.name} ${query.slice(0, 60)}: ${JSON.stringify(answer.errors)}`).toBeUndefined();
  expect(answer.data, exec.name).toBeTruthy();
  return answer.data;
}

function subscribe<T>(t: Transport, doc: DocumentNode, variables: Record<string, unknown>): Collected<T> {
  return t.ws ? subscribeWs<T>(t.ws, doc, variables) : subscribeSse<T>(t.url, doc, variables, t.token);
}
const convSub = (t: Transport, id: string, afterSeq?: number) => subscribe<ConvData>(t, CONVERSATION_EVENTS, { id, afterSeq });
const viewerSub = (t: Transport, afterSeq?: number) => subscribe<ViewerData>(t, VIEWER_EVENTS, { afterSeq });
const convEvents = (s: Collected<ConvData>) => s.events.map((e) => e.conversationEvents);
const viewerEvents = (s: Collected<ViewerData>) => s.events.map((e) => e.viewerEvents);
const lastSeq = (events: { seq: number }[]) => events.at(-1)?.seq ?? null;

/** What every client must agree on (the loaded message and conversation are read at delivery). */
const projectConv = (events: ConvEvent[]) => events.map((e) => ({ seq: e.seq, kind: e.kind, conversationId: e.conversationId, messageId: e.messageId ?? null }));
const projectViewer = (events: ViewerEvent[]) => events.map((e) => ({ seq: e.seq, kind: e.kind, conversationId: e.conversationId }));

const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually(check: () => boolean | Promise<boolean>, what: () => string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await sleep(25);
  }
}

async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const flatErrors = (errors: unknown[]): GqlError[] => errors.flat(3) as GqlError[];

/** A subscription that must be refused: waits for its end, returns its events and errors. */
async function refused(sub: Collected<unknown>): Promise<{ events: unknown[]; errors: GqlError[] }> {
  await within(
    sub.done.catch(() => {}),
    10_000,
    'a refused subscription to end',
  ).catch((error) => {
    sub.stop();
    throw error;
  });
  return { events: sub.events, errors: flatErrors(sub.errors) };
}

function expectRefusal(result: { events: unknown[]; errors: GqlError[] }, code: string, label: string): GqlError {
  expect(result.events, label).toEqual([]);
  expect(result.errors, `${label}: ${JSON.stringify(result.errors)}`).toHaveLength(1);
  const [error] = result.errors;
  expect(error!.extensions?.code, `${label}: ${JSON.stringify(error)}`).toBe(code);
  expect(error!.message, label).not.toMatch(/Unexpected error/);
  return error!;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const newUser = (label: string) => tokenFor(`${label}-${randomBytes(4).toString('hex')}`);
const FINAL = ['COMPLETE', 'STOPPED', 'FAILED', 'INTERRUPTED'];
const MISSING_ID = '01a20000-0000-7000-8000-000000000000';

async function convLast(exec: Executor, id: string): Promise<number> {
  const data = await must(exec, LAST_SEQ, { id });
  expect(data.conversation, `conversation ${id}`).not.toBeNull();
  return data.conversation.lastEventSeq as number;
}
const viewerLast = async (exec: Executor): Promise<number> => (await must(exec, VIEWER_SEQ)).viewerEventSeq as number;

// ---------------------------------------------------------------------------------------------

describe('live events on two instances sharing one Redis', () => {
  let model: FakeModel;
  let database: TestDatabase;
  let a: TestServer;
  let b: TestServer;
  const namespace = redisNamespace();
  const env = () => ({
    REDIS_URL,
    REDIS_KEY_PREFIX: namespace.prefix,
    AUTH_JWT_SECRET: TEST_JWT_SECRET,
    LLM_API_URL: model.url,
    LLM_MODEL: 'fake-model',
    LLM_MAX_RETRIES: '0',
    LLM_IDLE_TIMEOUT_MS: '2000',
    STREAM_LEASE_MS: '3000',
    DATABASE_POOL_SIZE: '10',
  });

  beforeAll(async () => {
    model = await FakeModel.start();
    database = await createTestDatabase('postgresql');
    a = await startParley({ database, env: env() });
    b = await startParley({ database, env: env() });
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await model?.close();
    await database?.drop();
    await namespace.cleanup();
  });

  const prisma = () => a.app.db.prisma;

  it('four clients (graphql-ws and SSE on each instance) see the same gapless sequence of 30 random operations, and it matches the database', { timeout: 180_000 }, async () => {
    const seed = process.env.LIVE_EVENTS_SEED ? Number(process.env.LIVE_EVENTS_SEED) : randomInt(2 ** 31);
    console.log(`live-events: random operations with seed ${seed} (LIVE_EVENTS_SEED=${seed} replays them)`);
    const rand = mulberry32(seed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
    const token = await newUser('four-clients');
    model.setDefault({ tokens: ['Sure', ', ', 'here', ' it', ' is', '.'], delayMs: 25 });
    const wsA = wsClient(a.graphqlUrl, token);
    const wsB = wsClient(b.graphqlUrl, token);
    const executors: Executor[] = [wsExec('ws@A', wsA), httpExec('http@A', a, token), wsExec('ws@B', wsB), httpExec('http@B', b, token)];
    const httpA = executors[1]!;
    const subs: { name: string; conv: Collected<ConvData>; viewer: Collected<ViewerData> }[] = [];
    try {
      expect(await viewerLast(httpA)).toBe(-1);
      const followed = (await must(httpA, CREATE, { title: 'followed' })).createConversation as { id: string; lastEventSeq: number };
      expect(followed.lastEventSeq).toBe(-1);
      const start = await convLast(executors[3]!, followed.id);
      expect(start).toBe(-1);
      const viewerStart = await viewerLast(executors[3]!);
      expect(viewerStart).toBe(0);

      const transports: Transport[] = [
        { name: 'ws@A', url: a.graphqlUrl, token, ws: wsA },
        { name: 'sse@A', url: a.graphqlUrl, token },
        { name: 'ws@B', url: b.graphqlUrl, token, ws: wsB },
        { name: 'sse@B', url: b.graphqlUrl, token },
      ];
      for (const t of transports) subs.push({ name: t.name, conv: convSub(t, followed.id, start), viewer: viewerSub(t, viewerStart) });

      // What the operations did, for the expectations.
      const added: string[] = [];
      const sends: { user: string; assistant: string }[] = [];
      let updates = 0;
      const created: string[] = [];
      const deleted: string[] = [];
      const others: string[] = [];
      const journal: string[] = [];

      let done = 0;
      let n = 0;
      while (done < 30) {
        const size = Math.min(30 - done, 1 + Math.floor(rand() * 3));
        const deletable = [...others];
        const batch: Promise<void>[] = [];
        for (let i = 0; i < size; i++) {
          const exec = pick(executors);
          const r = rand();
          const k = n++;
          if (r < 0.3) {
            const role = rand() < 0.7 ? 'USER' : 'ASSISTANT';
            journal.push(`${k} ${exec.name} addMessage ${role}`);
            batch.push(
              (async () => {
                const message = (await must(exec, ADD, { input: { conversationId: followed.id, role, content: `note ${k}` } })).addMessage;
                expect(message.conversation.id).toBe(followed.id);
                added.push(message.id);
              })(),
            );
          } else if (r < 0.55 || (r < 0.65 && sends.length === 0)) {
            const retry = rand() < 0.3 ? pick(executors) : null;
            const key = `send-${seed}-${k}`;
            journal.push(`${k} ${exec.name} sendMessage${retry ? ` (retried on ${retry.name})` : ''}`);
            batch.push(
              (async () => {
                const sent = (await must(exec, SEND, { input: { conversationId: followed.id, content: `question ${k}`, clientMessageId: key } })).sendMessage;
                sends.push({ user: sent.userMessage.id, assistant: sent.assistantMessage.id });
                if (retry) {
                  const again = (await must(retry, SEND, { input: { conversationId: followed.id, content: `question ${k}`, clientMessageId: key } })).sendMessage;
                  expect([again.userMessage.id, again.assistantMessage.id]).toEqual([sent.userMessage.id, sent.assistantMessage.id]);
                }
              })(),
            );
          } else if (r < 0.65) {
            const target = sends.at(-1)!.assistant;
            journal.push(`${k} ${exec.name} stopGeneration ${target}`);
            batch.push(
              (async () => {
                const stopped = (await must(exec, STOP, { id: target })).stopGeneration;
                expect(FINAL).toContain(stopped.status);
              })(),
            );
          } else if (r < 0.8) {
            const changes = rand() < 0.5 ? { title: `title ${k}` } : { archived: rand() < 0.5 };
            journal.push(`${k} ${exec.name} updateConversation ${JSON.stringify(changes)}`);
            updates++;
            batch.push(
              (async () => {
                await must(exec, UPDATE, { input: { id: followed.id, ...changes } });
              })(),
            );
          } else if (r < 0.9 || deletable.length === 0) {
            journal.push(`${k} ${exec.name} createConversation (another)`);
            batch.push(
              (async () => {
                const other = (await must(exec, CREATE, { title: `other ${k}` })).createConversation;
                created.push(other.id);
                others.push(other.id);
              })(),
            );
          } else {
            const victim = deletable.splice(Math.floor(rand() * deletable.length), 1)[0]!;
            others.splice(others.indexOf(victim), 1);
            journal.push(`${k} ${exec.name} deleteConversation (another) ${victim}`);
            batch.push(
              (async () => {
                expect((await must(exec, DELETE, { id: victim })).deleteConversation).toBe(victim);
                deleted.push(victim);
              })(),
            );
          }
        }
        done += size;
        await Promise.all(batch);
        await sleep(Math.floor(rand() * 40));
      }

      // Quiet: every reply ended, and every client has everything up to the last seqs.
      await eventually(
        async () => (await prisma().message.count({ where: { conversationId: followed.id, status: 'STREAMING' } })) === 0,
        () => 'every reply to end',
        30_000,
      );
      const last = await convLast(httpA, followed.id);
      const viewerEnd = await viewerLast(httpA);
      await eventually(
        () => subs.every((s) => lastSeq(convEvents(s.conv)) === last && lastSeq(viewerEvents(s.viewer)) === viewerEnd),
        () =>
          `every client to reach conversation seq ${last} and viewer seq ${viewerEnd}: ${subs
            .map((s) => `${s.name} ${lastSeq(convEvents(s.conv))}/${lastSeq(viewerEvents(s.viewer))} errors ${JSON.stringify([...s.conv.errors, ...s.viewer.errors])}`)
            .join('; ')}\n${journal.join('\n')}`,
        20_000,
      );
      await sleep(500);
      expect(await convLast(httpA, followed.id)).toBe(last);
      expect(await viewerLast(httpA)).toBe(viewerEnd);

      const context = `seed ${seed}\n${journal.join('\n')}\nevents: ${JSON.stringify(projectConv(convEvents(subs[0]!.conv)).map((e) => [e.seq, e.kind, e.messageId]))}`;
      // Each write made its events exactly once.
      expect(last - start, context).toBe(added.length + 3 * sends.length + updates);
      expect(viewerEnd - viewerStart, context).toBe(created.length + deleted.length + updates);

      const messages = await prisma().message.findMany({ where: { conversationId: followed.id }, orderBy: { seq: 'asc' } });
      const byId = new Map(messages.map((m) => [m.id, m]));
      const reference = projectConv(convEvents(subs[0]!.conv));
      const viewerReference = projectViewer(viewerEvents(subs[0]!.viewer));
      for (const s of subs) {
        expect(s.conv.errors, s.name).toEqual([]);
        expect(s.viewer.errors, s.name).toEqual([]);
        const events = convEvents(s.conv);
        expect(
          events.map((e) => e.seq),
          `${s.name}: conversation seqs, ${context}`,
        ).toEqual(range(start + 1, last));
        expect(projectConv(events), s.name).toEqual(reference);
        const vEvents = viewerEvents(s.viewer);
        expect(
          vEvents.map((e) => e.seq),
          `${s.name}: viewer seqs`,
        ).toEqual(range(viewerStart + 1, viewerEnd));
        expect(projectViewer(vEvents), s.name).toEqual(viewerReference);
        for (const e of events) {
          const label = `${s.name} seq ${e.seq} ${e.kind}`;
          expect(e.conversationId, label).toBe(followed.id);
          expect(['MESSAGE_ADDED', 'MESSAGE_UPDATED', 'CONVERSATION_UPDATED'], label).toContain(e.kind);
          if (e.kind === 'MESSAGE_ADDED' || e.kind === 'MESSAGE_UPDATED') {
            // Nothing was deleted: the message is there, loaded when the event was delivered.
            expect(e.message?.id, label).toBe(e.messageId);
            expect(byId.has(e.messageId!), label).toBe(true);
          }
          if (e.kind === 'MESSAGE_UPDATED') {
            expect(FINAL, label).toContain(e.message!.status);
            expect(e.message!.content, label).toBe(byId.get(e.messageId!)!.content);
          }
          if (e.kind === 'CONVERSATION_UPDATED') expect(e.conversation?.id, label).toBe(followed.id);
        }
        for (const e of vEvents) {
          const label = `${s.name} viewer seq ${e.seq} ${e.kind}`;
          expect(['CONVERSATION_CREATED', 'CONVERSATION_UPDATED', 'CONVERSATION_DELETED'], label).toContain(e.kind);
          if (e.kind === 'CONVERSATION_DELETED') expect(e.conversation, label).toBeNull();
          else if (e.conversation !== null || !deleted.includes(e.conversationId)) expect(e.conversation?.id, label).toBe(e.conversationId);
        }
      }

      const events = convEvents(subs[0]!.conv);
      const seqOf = (kind: string, id: string) => {
        const found = events.filter((e) => e.kind === kind && e.messageId === id);
        expect(found, `${kind} of ${id}`).toHaveLength(1);
        return found[0]!.seq;
      };
      // The set (and order) of MESSAGE_ADDED is the conversation's messages.
      expect(
        events.filter((e) => e.kind === 'MESSAGE_ADDED').map((e) => e.messageId),
        context,
      ).toEqual(messages.map((m) => m.id));
      expect(messages).toHaveLength(added.length + 2 * sends.length);
      // Every reply: user at n, assistant at n+1, one MESSAGE_UPDATED after that.
      expect(
        events
          .filter((e) => e.kind === 'MESSAGE_UPDATED')
          .map((e) => e.messageId)
          .sort(),
      ).toEqual(sends.map((s) => s.assistant).sort());
      for (const send of sends) {
        const user = seqOf('MESSAGE_ADDED', send.user);
        const assistant = seqOf('MESSAGE_ADDED', send.assistant);
        expect(assistant, `${send.assistant} right after its user message`).toBe(user + 1);
        expect(seqOf('MESSAGE_UPDATED', send.assistant)).toBeGreaterThan(assistant);
        expect(FINAL).toContain(byId.get(send.assistant)!.status);
      }
      expect(events.filter((e) => e.kind === 'CONVERSATION_UPDATED')).toHaveLength(updates);

      const vEvents = viewerEvents(subs[0]!.viewer);
      expect(
        vEvents
          .filter((e) => e.kind === 'CONVERSATION_CREATED')
          .map((e) => e.conversationId)
          .sort(),
      ).toEqual([...created].sort());
      expect(
        vEvents
          .filter((e) => e.kind === 'CONVERSATION_DELETED')
          .map((e) => e.conversationId)
          .sort(),
      ).toEqual([...deleted].sort());
      expect(vEvents.filter((e) => e.kind === 'CONVERSATION_UPDATED').map((e) => e.conversationId)).toEqual(Array(updates).fill(followed.id));
      // The final title and archived flag are what the last CONVERSATION_UPDATED delivered... the row agrees.
      const row = await prisma().conversation.findUniqueOrThrow({ where: { id: followed.id } });
      const lastUpdate = events.filter((e) => e.kind === 'CONVERSATION_UPDATED').at(-1);
      if (lastUpdate) expect({ title: lastUpdate.conversation!.title, archived: lastUpdate.conversation!.archived }).toEqual({ title: row.title, archived: row.archived });

      // The end: deleting the followed conversation reaches every client, and ends its subscription.
      await must(pick(executors), DELETE, { id: followed.id });
      for (const s of subs) {
        await within(s.conv.done, 10_000, `${s.name}: conversationEvents to complete after DELETED`);
        const ended = convEvents(s.conv);
        expect(ended.at(-1), s.name).toMatchObject({ seq: last + 1, kind: 'DELETED', conversationId: followed.id });
        expect(ended, s.name).toHaveLength(last - start + 1);
        expect(s.conv.errors, s.name).toEqual([]);
      }
      await eventually(
        () => subs.every((s) => lastSeq(viewerEvents(s.viewer)) === viewerEnd + 1),
        () => `every viewer stream to get CONVERSATION_DELETED: ${subs.map((s) => lastSeq(viewerEvents(s.viewer))).join(', ')}`,
      );
      for (const s of subs) {
        expect(viewerEvents(s.viewer).at(-1), s.name).toEqual({ seq: viewerEnd + 1, kind: 'CONVERSATION_DELETED', conversationId: followed.id, conversation: null });
      }
      // A deleted conversation is a missing one.
      expectRefusal(await refused(convSub({ name: 'sse@B', url: b.graphqlUrl, token }, followed.id, -1)), 'NOT_FOUND', 'after delete');
    } finally {
      for (const s of subs) {
        s.conv.stop();
        s.viewer.stop();
      }
      await wsA.dispose();
      await wsB.dispose();
      model.setDefault({ tokens: ['Hello', ',', ' world', '!'] });
    }
  });

  it('message and conversation are read when the event is delivered: a replay after clearMessages and a rename carries no message and the new title', { timeout: 60_000 }, async () => {
    const token = await newUser('read-at-delivery');
    const httpA = httpExec('http@A', a, token);
    const conversationId = (await must(httpA, CREATE, { title: 'before' })).createConversation.id as string;
    const ws = wsClient(a.graphqlUrl, token);
    const transports: Transport[] = [
      { name: 'ws@A', url: a.graphqlUrl, token, ws },
      { name: 'sse@A', url: a.graphqlUrl, token },
      { name: 'sse@B', url: b.graphqlUrl, token },
    ];
    const subs: Collected<ConvData>[] = [];
    try {
      // Live subscribers on both instances, with the very variables the later replays use.
      subs.push(convSub(transports[0]!, conversationId, -1), convSub(transports[2]!, conversationId, -1));
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push((await must(httpA, ADD, { input: { conversationId, role: 'USER', content: `soon gone ${i}` } })).addMessage.id);
      await must(httpA, UPDATE, { input: { id: conversationId, title: 'first rename' } });
      await eventually(
        () => subs.every((s) => lastSeq(convEvents(s)) === 3),
        () => 'the live events',
      );
      for (const s of subs) expect(convEvents(s).slice(0, 3).map((e) => e.message?.content)).toEqual(['soon gone 0', 'soon gone 1', 'soon gone 2']);
      await must(httpA, UPDATE, { input: { id: conversationId, title: 'second rename' } });
      expect((await must(httpA, CLEAR, { id: conversationId })).clearMessages).toBe(3);
      await eventually(
        () => subs.every((s) => lastSeq(convEvents(s)) === 5),
        () => 'the clear',
      );
      for (const t of transports) {
        const replay = convSub(t, conversationId, -1);
        subs.push(replay);
        await eventually(
          () => lastSeq(convEvents(replay)) === 5,
          () => `${t.name}: the replay: ${JSON.stringify(replay.events)} ${JSON.stringify(replay.errors)}`,
        );
        const events = convEvents(replay);
        expect(events.map((e) => [e.seq, e.kind]), t.name).toEqual([
          [0, 'MESSAGE_ADDED'],
          [1, 'MESSAGE_ADDED'],
          [2, 'MESSAGE_ADDED'],
          [3, 'CONVERSATION_UPDATED'],
          [4, 'CONVERSATION_UPDATED'],
          [5, 'CLEARED'],
        ]);
        for (const e of events.slice(0, 3)) expect(e.message, `${t.name} seq ${e.seq}: ${JSON.stringify(e.message)}`).toBeNull();
        expect(events[3]!.conversation?.title, t.name).toBe('second rename');
      }
    } finally {
      for (const s of subs) s.stop();
      await ws.dispose();
    }
  });

  it('stopGeneration from the other instance: exactly one MESSAGE_UPDATED (STOPPED) on every client, and none for a second stop', { timeout: 60_000 }, async () => {
    const token = await newUser('stop');
    const wsB = wsClient(b.graphqlUrl, token);
    try {
      await stopMakesOneUpdate(model, httpExec('http@A', a, token), wsExec('ws@B', wsB), [
        { name: 'ws@B', url: b.graphqlUrl, token, ws: wsB },
        { name: 'sse@A', url: a.graphqlUrl, token },
      ]);
    } finally {
      await wsB.dispose();
    }
  });

  it('race: subscribing with afterSeq = lastEventSeq while writes are in flight on the other instance misses nothing and repeats nothing (20 rounds)', { timeout: 180_000 }, async () => {
    const token = await newUser('race');
    const rand = mulberry32(Number(process.env.LIVE_EVENTS_SEED ?? 12));
    const conversationId = (await must(httpExec('http@A', a, token), CREATE, { title: 'race' })).createConversation.id as string;
    let midFlight = 0;
    for (let round = 0; round < 20; round++) {
      const [reader, writer] = round % 2 === 0 ? [a, b] : [b, a];
      const readerExec = httpExec('reader', reader, token);
      const writerExec = httpExec('writer', writer, token);
      const roundStart = await convLast(readerExec, conversationId);
      const chain = async (label: string) => {
        for (let i = 0; i < 5; i++) await must(writerExec, ADD, { input: { conversationId, role: 'USER', content: `round ${round} ${label} ${i}` } });
      };
      const writing = Promise.all([chain('x'), chain('y')]);
      await sleep(Math.floor(rand() * 30));
      const afterSeq = await convLast(readerExec, conversationId);
      const ws = round % 4 < 2 ? wsClient(reader.graphqlUrl, token) : undefined;
      const sub = convSub({ name: ws ? 'ws' : 'sse', url: reader.graphqlUrl, token, ws }, conversationId, afterSeq);
      try {
        await writing;
        const final = await convLast(readerExec, conversationId);
        if (afterSeq > roundStart && afterSeq < final) midFlight++;
        await eventually(
          () => lastSeq(convEvents(sub)) === final,
          () => `round ${round}: events up to ${final} after ${afterSeq}, have ${JSON.stringify(convEvents(sub).map((e) => e.seq))} ${JSON.stringify(sub.errors)}`,
        );
        await sleep(150);
        const events = convEvents(sub);
        expect(sub.errors).toEqual([]);
        expect(
          events.map((e) => e.seq),
          `round ${round} after ${afterSeq}`,
        ).toEqual(range(afterSeq + 1, final));
        expect(events.every((e) => e.kind === 'MESSAGE_ADDED')).toBe(true);
        // Only addMessage wrote to it: event k is the conversation's (k+1)th message.
        const messages = await prisma().message.findMany({ where: { conversationId }, orderBy: { seq: 'asc' }, select: { id: true } });
        expect(messages).toHaveLength(final + 1);
        expect(events.map((e) => e.messageId)).toEqual(messages.slice(afterSeq + 1).map((m) => m.id));
      } finally {
        sub.stop();
        await ws?.dispose();
      }
    }
    // The race was run: at least one subscription started with writes of its round before and after it.
    expect(midFlight).toBeGreaterThan(0);
  });

  it('a client disconnected during 10 events reconnects to the other instance with afterSeq and gets exactly those 10, then live events', { timeout: 60_000 }, async () => {
    const token = await newUser('reconnect');
    const httpA = httpExec('http@A', a, token);
    const httpB = httpExec('http@B', b, token);
    const conversationId = (await must(httpA, CREATE, { title: 'reconnect' })).createConversation.id as string;
    const client = wsClient(a.graphqlUrl, token);
    const first = convSub({ name: 'ws@A', url: a.graphqlUrl, token, ws: client }, conversationId, -1);
    const firstId = (await must(httpB, ADD, { input: { conversationId, role: 'USER', content: 'before' } })).addMessage.id;
    await eventually(
      () => convEvents(first).length === 1,
      () => `the first event: ${JSON.stringify(first.events)} ${JSON.stringify(first.errors)}`,
    );
    first.stop();
    await client.dispose();
    const seen = convEvents(first);
    expect(projectConv(seen)).toEqual([{ seq: 0, kind: 'MESSAGE_ADDED', conversationId, messageId: firstId }]);

    const missed: string[] = [];
    for (let i = 0; i < 10; i++) missed.push((await must(i % 2 ? httpA : httpB, ADD, { input: { conversationId, role: 'USER', content: `missed ${i}` } })).addMessage.id);
    const second = convSub({ name: 'sse@B', url: b.graphqlUrl, token }, conversationId, lastSeq(seen)!);
    try {
      await eventually(
        () => convEvents(second).length >= 10,
        () => `the 10 missed events: ${JSON.stringify(second.events)} ${JSON.stringify(second.errors)}`,
      );
      await sleep(200);
      expect(projectConv(convEvents(second))).toEqual(missed.map((messageId, i) => ({ seq: i + 1, kind: 'MESSAGE_ADDED', conversationId, messageId })));
      const live = (await must(httpA, ADD, { input: { conversationId, role: 'USER', content: 'live' } })).addMessage.id;
      await eventually(
        () => convEvents(second).length >= 11,
        () => 'the live event',
      );
      await sleep(200);
      expect(projectConv(convEvents(second)).slice(10)).toEqual([{ seq: 11, kind: 'MESSAGE_ADDED', conversationId, messageId: live }]);
      expect(second.errors).toEqual([]);
    } finally {
      second.stop();
    }
  });

  it('a tab opening a conversation mid-reply finds the reply in generating, follows it with messageStream, and gets it exactly once', { timeout: 60_000 }, async () => {
    const token = await newUser('tab');
    const httpA = httpExec('http@A', a, token);
    const httpB = httpExec('http@B', b, token);
    const conversationId = (await must(httpA, CREATE, { title: 'slow one' })).createConversation.id as string;
    expect((await must(httpB, OPEN, { id: conversationId })).conversation.generating).toEqual([]);
    const tokens = Array.from({ length: 40 }, (_, i) => `g${i} `);
    model.enqueue({ tokens, delayMs: 30 });
    const requestsBefore = model.chatRequests.length;
    const sent = (await must(httpA, SEND, { input: { conversationId, content: 'take your time' } })).sendMessage;
    const assistantId = sent.assistantMessage.id as string;
    await eventually(
      () => (model.chatRequests[requestsBefore]?.sent ?? 0) >= 5,
      () => 'the reply to be under way',
    );

    // The new tab, on the other instance.
    const opened = (await must(httpB, OPEN, { id: conversationId })).conversation;
    expect(opened.generating).toEqual([{ id: assistantId, role: 'ASSISTANT', status: 'STREAMING' }]);
    expect(opened.lastEventSeq).toBe(1);
    const tab = wsClient(b.graphqlUrl, token);
    const events = convSub({ name: 'ws@B', url: b.graphqlUrl, token, ws: tab }, conversationId, opened.lastEventSeq);
    const stream = followWs(tab, assistantId);
    try {
      await within(stream.done, 20_000, 'the reply to end');
      expect(stream.errors).toEqual([]);
      const { content, terminal } = assertWellFormed(stream.events);
      const saved = await finishedMessage(a.app.db.prisma, assistantId);
      expect(saved.status).toBe('COMPLETE');
      expect(saved.content).toBe(tokens.join(''));
      expect(content).toBe(saved.content);
      expect(terminal.message?.content).toBe(saved.content);
      await eventually(
        () => convEvents(events).length >= 1,
        () => `MESSAGE_UPDATED: ${JSON.stringify(events.events)} ${JSON.stringify(events.errors)}`,
      );
      await sleep(300);
      expect(projectConv(convEvents(events))).toEqual([{ seq: 2, kind: 'MESSAGE_UPDATED', conversationId, messageId: assistantId }]);
      expect(convEvents(events)[0]!.message).toMatchObject({ id: assistantId, status: 'COMPLETE', content: saved.content });
      expect((await must(httpA, OPEN, { id: conversationId })).conversation).toMatchObject({ lastEventSeq: 2, generating: [] });
    } finally {
      events.stop();
      stream.stop();
      await tab.dispose();
    }
  });

  it('another user’s conversationEvents on someone’s conversation is refused exactly like a missing id, and her viewerEvents get none of his writes', { timeout: 90_000 }, async () => {
    const alice = await newUser('alice');
    const mallory = await newUser('mallory');
    const aliceA = httpExec('alice@A', a, alice);
    const malloryB = httpExec('mallory@B', b, mallory);
    const aliceConversation = (await must(aliceA, CREATE, { title: 'secret' })).createConversation.id as string;
    for (let i = 0; i < 3; i++) await must(aliceA, ADD, { input: { conversationId: aliceConversation, role: 'USER', content: `secret ${i}` } });
    const aliceLast = await convLast(aliceA, aliceConversation);
    expect(aliceLast).toBe(2);

    const clients: WsClient[] = [];
    const transportsFor = (token: string): Transport[] => {
      const wsA = wsClient(a.graphqlUrl, token);
      const wsB = wsClient(b.graphqlUrl, token);
      clients.push(wsA, wsB);
      return [
        { name: 'ws@A', url: a.graphqlUrl, token, ws: wsA },
        { name: 'sse@A', url: a.graphqlUrl, token },
        { name: 'ws@B', url: b.graphqlUrl, token, ws: wsB },
        { name: 'sse@B', url: b.graphqlUrl, token },
      ];
    };
    const malloryTransports = transportsFor(mallory);
    const aliceTransports = transportsFor(alice);
    const followers: Collected<unknown>[] = [];
    try {
      for (const t of malloryTransports) {
        for (const afterSeq of [undefined, -1, 0, aliceLast, aliceLast + 1, 1000]) {
          const label = `${t.name} afterSeq ${afterSeq}`;
          const foreign = await refused(convSub(t, aliceConversation, afterSeq));
          const missing = await refused(convSub(t, MISSING_ID, afterSeq));
          expectRefusal(foreign, 'NOT_FOUND', `foreign, ${label}`);
          expectRefusal(missing, 'NOT_FOUND', `missing, ${label}`);
          expect(JSON.stringify(foreign.errors), label).toBe(JSON.stringify(missing.errors));
        }
        // A refusal that is not about the id (afterSeq below -1) is the same for both too.
        const foreign = await refused(convSub(t, aliceConversation, -2));
        const missing = await refused(convSub(t, MISSING_ID, -2));
        expect(foreign.events).toEqual([]);
        expect(JSON.stringify(foreign.errors), t.name).toBe(JSON.stringify(missing.errors));
      }
      // The owner asking for a missing id gets the very same answer as the intruder.
      const own = await refused(convSub(aliceTransports[1]!, MISSING_ID, -1));
      const intruder = await refused(convSub(malloryTransports[1]!, aliceConversation, -1));
      expect(JSON.stringify(own.errors)).toBe(JSON.stringify(intruder.errors));

      // Her viewer events: seqs are hers alone.
      expect(await viewerLast(malloryB)).toBe(-1);
      expectRefusal(await refused(viewerSub(malloryTransports[0]!, 0)), 'BAD_USER_INPUT', 'mallory viewerEvents afterSeq 0');
      const hers = malloryTransports.map((t) => viewerSub(t, -1));
      const aliceFollows = convSub(aliceTransports[2]!, aliceConversation, aliceLast);
      followers.push(...hers, aliceFollows);

      // His (alice's) writes of every kind.
      const aliceB = httpExec('alice@B', b, alice);
      const aliceViewerBefore = await viewerLast(aliceA);
      const extra = (await must(aliceB, CREATE, { title: 'extra' })).createConversation.id as string;
      await must(aliceA, UPDATE, { input: { id: aliceConversation, title: 'renamed', archived: true } });
      await must(aliceB, DELETE, { id: extra });
      await must(aliceA, ADD, { input: { role: 'USER', content: 'new conversation' } });
      const sent = (await must(aliceB, SEND, { input: { content: 'Plan a weekend in Lisbon' } })).sendMessage;
      await finishedMessage(a.app.db.prisma, sent.assistantMessage.id);
      await eventually(
        async () => (await prisma().conversation.findUniqueOrThrow({ where: { id: sent.conversation.id } })).title !== null,
        () => 'the automatic title',
      );
      // created, updated, deleted, created, created, updated (title)
      await eventually(
        async () => (await viewerLast(aliceA)) === aliceViewerBefore + 6,
        () => 'alice’s six viewer events',
      );
      // Her attempt on his conversation changes nothing.
      const probe = await malloryB.run(ADD, { input: { conversationId: aliceConversation, role: 'USER', content: 'injected' } });
      expect(probe.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');

      // Her own write arrives, on every client of hers: the subscriptions work.
      const mine = (await must(malloryB, CREATE, { title: 'mine' })).createConversation.id as string;
      await eventually(
        () => hers.every((s) => viewerEvents(s).length >= 1),
        () => `her own event on every client: ${hers.map((s) => JSON.stringify(s.events) + JSON.stringify(s.errors)).join(' | ')}`,
      );
      await sleep(500);
      for (const [i, s] of hers.entries()) {
        expect(s.errors, malloryTransports[i]!.name).toEqual([]);
        expect(viewerEvents(s), malloryTransports[i]!.name).toEqual([{ seq: 0, kind: 'CONVERSATION_CREATED', conversationId: mine, conversation: { id: mine, title: 'mine', archived: false } }]);
      }
      // His stream got his own update only, none of her attempt.
      expect(projectConv(convEvents(aliceFollows))).toEqual([{ seq: aliceLast + 1, kind: 'CONVERSATION_UPDATED', conversationId: aliceConversation, messageId: null }]);
      expect(await convLast(aliceA, aliceConversation)).toBe(aliceLast + 1);
    } finally {
      for (const f of followers) f.stop();
      await Promise.all(clients.map((c) => c.dispose()));
    }
  });

  it('hostile afterSeq values are BAD_USER_INPUT or a client error, never an internal one; hostile ids are NOT_FOUND exactly like a missing id', { timeout: 90_000 }, async () => {
    const token = await newUser('hostile');
    const httpA = httpExec('http@A', a, token);
    const conversationId = (await must(httpA, CREATE, { title: 'hostile' })).createConversation.id as string;
    await must(httpA, ADD, { input: { conversationId, role: 'USER', content: 'one' } });
    await must(httpA, ADD, { input: { conversationId, role: 'USER', content: 'two' } });
    const last = await convLast(httpA, conversationId);
    const viewer = await viewerLast(httpA);
    expect([last, viewer]).toEqual([1, 0]);
    const ws = wsClient(a.graphqlUrl, token);
    const transports: Transport[] = [
      { name: 'ws@A', url: a.graphqlUrl, token, ws },
      { name: 'sse@B', url: b.graphqlUrl, token },
    ];
    try {
      await hostileChecks(transports, conversationId, last, viewer);
      // After all that, the streams still work.
      const sub = convSub(transports[1]!, conversationId, last);
      const id = (await must(httpA, ADD, { input: { conversationId, role: 'USER', content: 'three' } })).addMessage.id;
      await eventually(
        () => convEvents(sub).length === 1,
        () => 'the event after the hostile requests',
      );
      expect(projectConv(convEvents(sub))).toEqual([{ seq: last + 1, kind: 'MESSAGE_ADDED', conversationId, messageId: id }]);
      sub.stop();
    } finally {
      await ws.dispose();
    }
  });
});

/** afterSeq out of range, on both streams, and hostile conversation ids; `last`/`viewer` are the current seqs. */
async function hostileChecks(transports: Transport[], conversationId: string, last: number, viewer: number): Promise<void> {
  for (const t of transports) {
    for (const afterSeq of [2147483647, 1_000_000_000, last + 1, -2, -1000, -2147483648]) {
      const label = `${t.name} conversationEvents afterSeq ${afterSeq}`;
      const error = expectRefusal(await refused(convSub(t, conversationId, afterSeq)), 'BAD_USER_INPUT', label);
      expect(error.message.startsWith('afterSeq'), `${label}: ${error.message}`).toBe(true);
    }
    for (const afterSeq of [2147483647, 1_000_000_000, viewer + 1, -2, -2147483648]) {
      const label = `${t.name} viewerEvents afterSeq ${afterSeq}`;
      const error = expectRefusal(await refused(viewerSub(t, afterSeq)), 'BAD_USER_INPUT', label);
      expect(error.message.startsWith('afterSeq'), `${label}: ${error.message}`).toBe(true);
    }
    // Past the 32-bit Int range GraphQL itself refuses the variable: a client error naming it.
    for (const afterSeq of [2 ** 31, -(2 ** 31) - 1, 1e20, 2 ** 53 + 2]) {
      for (const sub of [convSub(t, conversationId, afterSeq), viewerSub(t, afterSeq)]) {
        const result = await refused(sub);
        const label = `${t.name} afterSeq ${afterSeq}`;
        expect(result.events, label).toEqual([]);
        expect(result.errors.length, label).toBeGreaterThan(0);
        expect(JSON.stringify(result.errors), label).toContain('$afterSeq');
        expect(JSON.stringify(result.errors), label).not.toMatch(/INTERNAL_SERVER_ERROR|Unexpected error/);
      }
    }
    const missing = await refused(convSub(t, MISSING_ID, -1));
    expectRefusal(missing, 'NOT_FOUND', `${t.name} missing id`);
    const hostileIds = [
      'a\u0000b',
      `${conversationId}\u0000`,
      '\ud800',
      'x\udc00',
      `${conversationId.slice(0, -1)}\ud800`,
      'x'.repeat(10_240),
      `${conversationId}${'\u0000'.repeat(5000)}`,
      '',
      ' ',
      `${conversationId} `,
      conversationId.toUpperCase(),
    ];
    for (const id of hostileIds) {
      for (const afterSeq of [undefined, -1]) {
        const label = `${t.name} id ${JSON.stringify(id.slice(0, 40))} (${id.length} chars) afterSeq ${afterSeq}`;
        const result = await refused(convSub(t, id, afterSeq));
        expectRefusal(result, 'NOT_FOUND', label);
        expect(JSON.stringify(result.errors), label).toBe(JSON.stringify(missing.errors));
      }
    }
  }
}

/**
 * A reply stopped mid-stream (from `stop`, which may be another instance than `send`) ends with
 * exactly one MESSAGE_UPDATED (STOPPED, the saved text), and a second stop adds nothing.
 */
async function stopMakesOneUpdate(model: FakeModel, send: Executor, stop: Executor, transports: Transport[]): Promise<void> {
  const conversationId = (await must(send, CREATE, { title: 'to be stopped' })).createConversation.id as string;
  const subs = transports.map((t) => convSub(t, conversationId, -1));
  try {
    model.enqueue({ tokens: Array.from({ length: 300 }, (_, i) => `s${i} `), delayMs: 10 });
    const requestsBefore = model.chatRequests.length;
    const sent = (await must(send, SEND, { input: { conversationId, content: 'a long story' } })).sendMessage;
    const assistantId = sent.assistantMessage.id as string;
    await eventually(
      () => (model.chatRequests[requestsBefore]?.sent ?? 0) >= 3,
      () => 'the long reply to be under way',
    );
    expect((await must(stop, OPEN, { id: conversationId })).conversation.generating).toEqual([{ id: assistantId, role: 'ASSISTANT', status: 'STREAMING' }]);
    const stopped = (await must(stop, STOP, { id: assistantId })).stopGeneration;
    expect(stopped.status).toBe('STOPPED');
    await within(model.chatRequests[requestsBefore]!.closed, 5000, 'the model call to be aborted');
    expect((await must(send, STOP, { id: assistantId })).stopGeneration).toEqual(stopped);
    // Time for everything the stop sets off (the generating loop's own wrap-up included).
    await sleep(1000);
    await eventually(
      () => subs.every((s) => (lastSeq(convEvents(s)) ?? -1) >= 2),
      () => `the MESSAGE_UPDATED on every client: ${subs.map((s) => JSON.stringify(projectConv(convEvents(s))) + JSON.stringify(s.errors)).join(' | ')}`,
    );
    await sleep(300);
    for (const [i, s] of subs.entries()) {
      const label = `${transports[i]!.name}: ${JSON.stringify(projectConv(convEvents(s)))}`;
      expect(s.errors, label).toEqual([]);
      expect(convEvents(s).map((e) => [e.seq, e.kind, e.messageId ?? null]), label).toEqual([
        [0, 'MESSAGE_ADDED', sent.userMessage.id],
        [1, 'MESSAGE_ADDED', assistantId],
        [2, 'MESSAGE_UPDATED', assistantId],
      ]);
      expect(convEvents(s)[2]!.message, label).toMatchObject({ id: assistantId, status: 'STOPPED', content: stopped.content });
    }
    expect(await convLast(send, conversationId)).toBe(2);
    expect((await must(send, OPEN, { id: conversationId })).conversation.generating).toEqual([]);
  } finally {
    for (const s of subs) s.stop();
  }
}

// ---------------------------------------------------------------------------------------------

describe('a replay log bounded by EVENT_LOG_MAX_EVENTS and EVENT_LOG_TTL_S', () => {
  let database: TestDatabase;
  let c: TestServer;
  let d: TestServer;
  let e: TestServer;
  const small = redisNamespace();
  const shortLived = redisNamespace();
  const env = (prefix: string, extra: Record<string, string>) => ({ REDIS_URL, REDIS_KEY_PREFIX: prefix, AUTH_JWT_SECRET: TEST_JWT_SECRET, ...extra });

  beforeAll(async () => {
    database = await createTestDatabase('postgresql');
    c = await startParley({ database, env: env(small.prefix, { EVENT_LOG_MAX_EVENTS: '5' }) });
    d = await startParley({ database, env: env(small.prefix, { EVENT_LOG_MAX_EVENTS: '5' }) });
    // On the same database, under a Redis prefix of its own: only this instance touches its conversations.
    e = await startParley({ database, env: env(shortLived.prefix, { EVENT_LOG_TTL_S: '2' }) });
  });
  afterAll(async () => {
    await c?.stop();
    await d?.stop();
    await e?.stop();
    await database?.drop();
    await small.cleanup();
    await shortLived.cleanup();
  });

  it('a client asking for more than the log holds gets one RESYNC at the current lastEventSeq, then live events', { timeout: 60_000 }, async () => {
    const token = await newUser('small-log');
    const httpC = httpExec('http@C', c, token);
    const httpD = httpExec('http@D', d, token);
    const conversationId = (await must(httpC, CREATE, { title: 'small' })).createConversation.id as string;
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push((await must(i % 2 ? httpC : httpD, ADD, { input: { conversationId, role: 'USER', content: `m${i}` } })).addMessage.id);
    const last = await convLast(httpD, conversationId);
    expect(last).toBe(11);
    const ws = wsClient(c.graphqlUrl, token);
    const transports: Transport[] = [
      { name: 'ws@C', url: c.graphqlUrl, token, ws },
      { name: 'sse@D', url: d.graphqlUrl, token },
    ];
    const subs: Collected<ConvData>[] = [];
    try {
      // Within the log: exactly the events asked for, no RESYNC.
      const recent = convSub(transports[1]!, conversationId, last - 3);
      subs.push(recent);
      await eventually(
        () => convEvents(recent).length >= 3,
        () => `the last 3 events: ${JSON.stringify(recent.events)} ${JSON.stringify(recent.errors)}`,
      );
      await sleep(200);
      expect(projectConv(convEvents(recent))).toEqual(ids.slice(-3).map((messageId, i) => ({ seq: last - 2 + i, kind: 'MESSAGE_ADDED', conversationId, messageId })));

      // Older than the log: one RESYNC, seq = lastEventSeq, then live events.
      const stale = [convSub(transports[0]!, conversationId, 1), convSub(transports[1]!, conversationId, -1), convSub(transports[0]!, conversationId, last - 9)];
      subs.push(...stale);
      await eventually(
        () => stale.every((s) => convEvents(s).length >= 1),
        () => `a RESYNC on every stale client: ${stale.map((s) => JSON.stringify(s.events) + JSON.stringify(s.errors)).join(' | ')}`,
      );
      await sleep(200);
      for (const s of stale) {
        expect(s.errors).toEqual([]);
        expect(convEvents(s)).toHaveLength(1);
        expect(convEvents(s)[0]).toMatchObject({ seq: last, kind: 'RESYNC', conversationId });
      }
      const live = (await must(httpD, ADD, { input: { conversationId, role: 'USER', content: 'live' } })).addMessage.id;
      await eventually(
        () => [recent, ...stale].every((s) => convEvents(s).length >= (s === recent ? 4 : 2)),
        () => 'the live event on every client',
      );
      await sleep(200);
      for (const s of stale) expect(projectConv(convEvents(s))).toEqual([
        { seq: last, kind: 'RESYNC', conversationId, messageId: null },
        { seq: last + 1, kind: 'MESSAGE_ADDED', conversationId, messageId: live },
      ]);
      expect(projectConv(convEvents(recent)).at(-1)).toEqual({ seq: last + 1, kind: 'MESSAGE_ADDED', conversationId, messageId: live });
      expect(convEvents(recent)).toHaveLength(4);
    } finally {
      for (const s of subs) s.stop();
      await ws.dispose();
    }
  });

  it('viewerEvents: asking for more than the log holds gets one RESYNC (conversationId "") at viewerEventSeq, then live events', { timeout: 60_000 }, async () => {
    const token = await newUser('small-viewer');
    const httpC = httpExec('http@C', c, token);
    for (let i = 0; i < 8; i++) await must(httpC, CREATE, { title: `c${i}` });
    const last = await viewerLast(httpC);
    expect(last).toBe(7);
    const ws = wsClient(d.graphqlUrl, token);
    const subs = [viewerSub({ name: 'ws@D', url: d.graphqlUrl, token, ws }, 0), viewerSub({ name: 'sse@C', url: c.graphqlUrl, token }, -1)];
    try {
      await eventually(
        () => subs.every((s) => viewerEvents(s).length >= 1),
        () => `RESYNC: ${subs.map((s) => JSON.stringify(s.events) + JSON.stringify(s.errors)).join(' | ')}`,
      );
      const created = (await must(httpExec('http@D', d, token), CREATE, { title: 'after' })).createConversation.id as string;
      await eventually(
        () => subs.every((s) => viewerEvents(s).length >= 2),
        () => 'the live event',
      );
      await sleep(200);
      for (const s of subs) {
        expect(s.errors).toEqual([]);
        expect(projectViewer(viewerEvents(s))).toEqual([
          { seq: last, kind: 'RESYNC', conversationId: '' },
          { seq: last + 1, kind: 'CONVERSATION_CREATED', conversationId: created },
        ]);
      }
    } finally {
      for (const s of subs) s.stop();
      await ws.dispose();
    }
  });

  it('events older than EVENT_LOG_TTL_S are gone from the log: RESYNC, then live events', { timeout: 60_000 }, async () => {
    const token = await newUser('ttl');
    const httpE = httpExec('http@E', e, token);
    const conversationId = (await must(httpE, CREATE, { title: 'ttl' })).createConversation.id as string;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await must(httpE, ADD, { input: { conversationId, role: 'USER', content: `t${i}` } })).addMessage.id);
    // Fresh: replayed.
    const fresh = convSub({ name: 'sse@E', url: e.graphqlUrl, token }, conversationId, 0);
    await eventually(
      () => convEvents(fresh).length >= 2,
      () => `replay within the TTL: ${JSON.stringify(fresh.events)} ${JSON.stringify(fresh.errors)}`,
    );
    fresh.stop();
    expect(projectConv(convEvents(fresh))).toEqual(ids.slice(1).map((messageId, i) => ({ seq: i + 1, kind: 'MESSAGE_ADDED', conversationId, messageId })));
    await sleep(3500);
    const stale = convSub({ name: 'sse@E', url: e.graphqlUrl, token }, conversationId, 0);
    try {
      await eventually(
        () => convEvents(stale).length >= 1,
        () => `RESYNC after the TTL: ${JSON.stringify(stale.events)} ${JSON.stringify(stale.errors)}`,
      );
      const live = (await must(httpE, ADD, { input: { conversationId, role: 'USER', content: 'live' } })).addMessage.id;
      await eventually(
        () => convEvents(stale).length >= 2,
        () => 'the live event',
      );
      await sleep(200);
      expect(stale.errors).toEqual([]);
      expect(projectConv(convEvents(stale))).toEqual([
        { seq: 2, kind: 'RESYNC', conversationId, messageId: null },
        { seq: 3, kind: 'MESSAGE_ADDED', conversationId, messageId: live },
      ]);
    } finally {
      stale.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe.each(['sqlite', 'mysql'] as const)('live events on one instance without Redis (%s)', (provider) => {
  let model: FakeModel;
  let server: TestServer;

  beforeAll(async () => {
    model = await FakeModel.start();
    server = await startParley({ provider, env: { AUTH_JWT_SECRET: TEST_JWT_SECRET, LLM_API_URL: model.url, LLM_MODEL: 'fake-model', LLM_MAX_RETRIES: '0', LLM_IDLE_TIMEOUT_MS: '2000' } });
  });
  afterAll(async () => {
    await server?.stop();
    await model?.close();
  });

  it('every write makes its events exactly once, in order, in-process', { timeout: 120_000 }, async () => {
    const token = await newUser('in-process');
    const http = httpExec('http', server, token);
    const ws = wsClient(server.graphqlUrl, token);
    const wsT: Transport = { name: 'ws', url: server.graphqlUrl, token, ws };
    const sseT: Transport = { name: 'sse', url: server.graphqlUrl, token };
    const followers: Collected<unknown>[] = [];
    const prisma = server.app.db.prisma;
    const waitConv = (subs: Collected<ConvData>[], seq: number, what: string) =>
      eventually(
        () => subs.every((s) => (lastSeq(convEvents(s)) ?? -1) >= seq),
        () => `${what}: conversation seq ${seq} on every client: ${subs.map((s) => JSON.stringify(projectConv(convEvents(s))) + JSON.stringify(s.errors)).join(' | ')}`,
        15_000,
      );
    const waitViewer = (subs: Collected<ViewerData>[], seq: number, what: string) =>
      eventually(
        () => subs.every((s) => (lastSeq(viewerEvents(s)) ?? -1) >= seq),
        () => `${what}: viewer seq ${seq} on every client: ${subs.map((s) => JSON.stringify(projectViewer(viewerEvents(s))) + JSON.stringify(s.errors)).join(' | ')}`,
        15_000,
      );
    try {
      expect(await viewerLast(http)).toBe(-1);
      // afterSeq above the current one, even -1 + 1, is refused.
      expectRefusal(await refused(viewerSub(sseT, 0)), 'BAD_USER_INPUT', 'viewerEvents afterSeq 0 with none');
      const viewers = [viewerSub(wsT, -1), viewerSub(sseT, -1)];
      followers.push(...viewers);
      const conversation = (await must(http, CREATE, {})).createConversation;
      const id = conversation.id as string;
      expect(conversation.lastEventSeq).toBe(-1);
      expect(await viewerLast(http)).toBe(0);
      expectRefusal(await refused(convSub(wsT, id, 0)), 'BAD_USER_INPUT', 'conversationEvents afterSeq 0 with none');
      const convs = [convSub(wsT, id, -1), convSub(sseT, id, -1)];
      followers.push(...convs);

      const note = (await must(http, ADD, { input: { conversationId: id, role: 'USER', content: 'hello' } })).addMessage.id as string;
      await waitConv(convs, 0, 'addMessage');

      // A reply in an untitled conversation: two messages, its end, then the automatic title.
      const sent = (await must(http, SEND, { input: { conversationId: id, content: 'Plan a weekend in Lisbon', clientMessageId: 'once' } })).sendMessage;
      await waitConv(convs, 4, 'sendMessage and its title');
      await waitViewer(viewers, 1, 'the title');
      const again = (await must(http, SEND, { input: { conversationId: id, content: 'Plan a weekend in Lisbon', clientMessageId: 'once' } })).sendMessage;
      expect(again.assistantMessage.id).toBe(sent.assistantMessage.id);
      await sleep(300);
      expect(await convLast(http, id)).toBe(4);

      await must(http, UPDATE, { input: { id, archived: true } });
      await waitConv(convs, 5, 'updateConversation');
      await waitViewer(viewers, 2, 'updateConversation');

      // Failed: one MESSAGE_UPDATED.
      model.enqueue({ status: 500 });
      const failing = (await must(http, SEND, { input: { conversationId: id, content: 'this one fails' } })).sendMessage;
      await finishedMessage(prisma, failing.assistantMessage.id);
      await waitConv(convs, 8, 'a failed reply');
      await sleep(300);
      expect(await convLast(http, id), JSON.stringify(projectConv(convEvents(convs[0]!)))).toBe(8);

      expect((await must(http, CLEAR, { id })).clearMessages).toBe(5);
      await waitConv(convs, 9, 'clearMessages');

      // New conversations from addMessage and sendMessage: created on the viewer stream, seq 0 on theirs.
      const viaAdd = (await must(http, ADD, { input: { role: 'USER', content: 'fresh start' } })).addMessage;
      const addConversation = viaAdd.conversation.id as string;
      await waitViewer(viewers, 3, 'addMessage without conversationId');
      const viaSend = (await must(http, SEND, { input: { content: 'Plan a weekend in Lisbon again' } })).sendMessage;
      const sendConversation = viaSend.conversation.id as string;
      await finishedMessage(prisma, viaSend.assistantMessage.id);
      await waitViewer(viewers, 5, 'sendMessage without conversationId and its title');
      expect(await convLast(http, addConversation)).toBe(0);
      expect(await convLast(http, sendConversation)).toBe(3);
      const fromAdd = convSub(sseT, addConversation, -1);
      const fromSend = convSub(wsT, sendConversation, -1);
      followers.push(fromAdd, fromSend);
      await waitConv([fromAdd], 0, 'the conversation addMessage created');
      await waitConv([fromSend], 3, 'the conversation sendMessage created');
      expect(projectConv(convEvents(fromAdd))).toEqual([{ seq: 0, kind: 'MESSAGE_ADDED', conversationId: addConversation, messageId: viaAdd.id }]);
      expect(convEvents(fromSend).map((e) => [e.seq, e.kind, e.messageId ?? null])).toEqual([
        [0, 'MESSAGE_ADDED', viaSend.userMessage.id],
        [1, 'MESSAGE_ADDED', viaSend.assistantMessage.id],
        [2, 'MESSAGE_UPDATED', viaSend.assistantMessage.id],
        [3, 'CONVERSATION_UPDATED', null],
      ]);
      expect(convEvents(fromSend)[3]!.conversation).toEqual({ id: sendConversation, title: 'Weekend in Lisbon', archived: false });

      // Replayed after the clear: the messages are gone, so the events carry no message.
      const replay = convSub(sseT, id, -1);
      followers.push(replay);
      await waitConv([replay], 9, 'the replay');
      await sleep(200);
      expect(projectConv(convEvents(replay))).toEqual(projectConv(convEvents(convs[0]!)));
      for (const event of convEvents(replay).filter((e) => e.kind.startsWith("MESSAGE_"))) expect(event.message, `replayed seq ${event.seq}: ${JSON.stringify(event.message)}; rows left: ${await prisma.message.count({ where: { conversationId: id } })}`).toBeNull();

      // Omitted afterSeq: only what comes after the subscription started.
      const before = await convLast(http, id);
      const fromNow = convSub(wsT, id);
      followers.push(fromNow);
      const probes: string[] = [];
      await eventually(
        async () => {
          if (convEvents(fromNow).length > 0) return true;
          probes.push((await must(http, ADD, { input: { conversationId: id, role: 'USER', content: `probe ${probes.length}` } })).addMessage.id);
          await sleep(100);
          return convEvents(fromNow).length > 0;
        },
        () => `an event on the subscription without afterSeq: ${JSON.stringify(fromNow.errors)}`,
      );
      const probeEnd = await convLast(http, id);
      await waitConv([fromNow], probeEnd, 'the probes');
      await sleep(200);
      const seen = convEvents(fromNow);
      expect(seen[0]!.seq).toBeGreaterThan(before);
      expect(seen.map((e) => e.seq)).toEqual(range(seen[0]!.seq, probeEnd));
      expect(seen.map((e) => e.messageId)).toEqual(probes.slice(probes.length - seen.length));

      // Deleted: DELETED ends every subscription of the conversation; the viewer stream says so.
      await must(http, DELETE, { id });
      for (const s of [...convs, replay, fromNow]) await within(s.done, 10_000, 'conversationEvents to complete after DELETED');
      await waitViewer(viewers, 6, 'deleteConversation');
      await sleep(200);

      const expected = [
        [0, 'MESSAGE_ADDED', note],
        [1, 'MESSAGE_ADDED', sent.userMessage.id],
        [2, 'MESSAGE_ADDED', sent.assistantMessage.id],
        [3, 'MESSAGE_UPDATED', sent.assistantMessage.id],
        [4, 'CONVERSATION_UPDATED', null],
        [5, 'CONVERSATION_UPDATED', null],
        [6, 'MESSAGE_ADDED', failing.userMessage.id],
        [7, 'MESSAGE_ADDED', failing.assistantMessage.id],
        [8, 'MESSAGE_UPDATED', failing.assistantMessage.id],
        [9, 'CLEARED', null],
        ...probes.map((p, i) => [10 + i, 'MESSAGE_ADDED', p]),
        [10 + probes.length, 'DELETED', null],
      ];
      for (const [i, s] of convs.entries()) {
        const label = i === 0 ? 'ws' : 'sse';
        expect(s.errors, label).toEqual([]);
        const events = convEvents(s);
        expect(
          events.map((e) => [e.seq, e.kind, e.messageId ?? null]),
          label,
        ).toEqual(expected);
        expect(events.every((e) => e.conversationId === id)).toBe(true);
        expect(events[3]!.message).toMatchObject({ id: sent.assistantMessage.id, status: 'COMPLETE' });
        expect(events[4]!.conversation).toMatchObject({ id, title: 'Weekend in Lisbon' });
        expect(events[5]!.conversation).toMatchObject({ id, archived: true });
        expect(events[8]!.message).toMatchObject({ status: 'FAILED' });
      }
      for (const [i, s] of viewers.entries()) {
        const label = i === 0 ? 'ws' : 'sse';
        expect(s.errors, label).toEqual([]);
        const events = viewerEvents(s);
        expect(projectViewer(events), label).toEqual([
          { seq: 0, kind: 'CONVERSATION_CREATED', conversationId: id },
          { seq: 1, kind: 'CONVERSATION_UPDATED', conversationId: id },
          { seq: 2, kind: 'CONVERSATION_UPDATED', conversationId: id },
          { seq: 3, kind: 'CONVERSATION_CREATED', conversationId: addConversation },
          { seq: 4, kind: 'CONVERSATION_CREATED', conversationId: sendConversation },
          { seq: 5, kind: 'CONVERSATION_UPDATED', conversationId: sendConversation },
          { seq: 6, kind: 'CONVERSATION_DELETED', conversationId: id },
        ]);
        expect(events[1]!.conversation?.title, label).toBe('Weekend in Lisbon');
        expect(events[5]!.conversation?.title, label).toBe('Weekend in Lisbon');
        expect(events[6]!.conversation, label).toBeNull();
      }
    } finally {
      for (const f of followers) f.stop();
      await ws.dispose();
    }
  });

  it('stopGeneration: exactly one MESSAGE_UPDATED (STOPPED), and none for a second stop', { timeout: 60_000 }, async () => {
    const token = await newUser('stop-in-process');
    const ws = wsClient(server.graphqlUrl, token);
    try {
      await stopMakesOneUpdate(model, httpExec('http', server, token), wsExec('ws', ws), [
        { name: 'ws', url: server.graphqlUrl, token, ws },
        { name: 'sse', url: server.graphqlUrl, token },
      ]);
    } finally {
      await ws.dispose();
    }
  });

  it('hostile afterSeq values and ids are refused with a code, never an internal error', { timeout: 90_000 }, async () => {
    const token = await newUser('hostile-in-process');
    const http = httpExec('http', server, token);
    const conversationId = (await must(http, CREATE, { title: 'hostile' })).createConversation.id as string;
    await must(http, ADD, { input: { conversationId, role: 'USER', content: 'one' } });
    const ws = wsClient(server.graphqlUrl, token);
    try {
      await hostileChecks(
        [
          { name: 'ws', url: server.graphqlUrl, token, ws },
          { name: 'sse', url: server.graphqlUrl, token },
        ],
        conversationId,
        0,
        0,
      );
    } finally {
      await ws.dispose();
    }
  });
});
