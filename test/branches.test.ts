// Branching conversations (issue 13) over HTTP with an independent client, on SQLite, PostgreSQL
// and MariaDB: regenerate, editMessage, switchBranch, forkConversation, deleteMessage and
// sendMessage/addMessage with parentId. Every call is a plain fetch POST of a raw GraphQL string
// (not the codegen'd documents: the schema is the contract's, not a generated one), replies are
// followed over SSE with fetch, and the fake model's recorded requests prove what each prompt was.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALL_PROVIDERS } from './support/databases.ts';
import { FakeModel, type Script } from './support/fake-model.ts';
import { startParley, tokenFor, TEST_JWT_SECRET, type TestServer } from './support/parley.ts';
import { REDIS_URL, redisNamespace } from './support/redis.ts';

type Role = 'USER' | 'ASSISTANT' | 'SYSTEM';
interface Msg {
  id: string;
  role: Role;
  content: string;
  status: string;
  parentId: string | null;
  siblingIds: string[];
  siblingIndex: number;
}
interface Conv {
  id: string;
  title: string | null;
  currentMessageId: string | null;
  messageCount: number;
  messages: { edges: { node: Msg }[] };
}
interface Payload {
  conversation: Conv;
  userMessage: Msg;
  assistantMessage: Msg;
}
interface EditPayload {
  conversation: Conv;
  userMessage: Msg;
  assistantMessage: Msg | null;
}
interface GqlError {
  message: string;
  extensions?: { code?: string; field?: string; [key: string]: unknown };
  path?: unknown[];
}
interface Response<T> {
  status: number;
  text: string;
  data?: T | null;
  errors?: GqlError[];
}
interface Turn {
  role: string;
  content: string;
}

const M = 'id role content status parentId siblingIds siblingIndex';
const C = `id title currentMessageId messageCount messages(last: 50) { edges { node { ${M} } } }`;

const Q = {
  createConversation: `mutation($input: CreateConversationInput) { createConversation(input: $input) { id title } }`,
  conversation: `query($id: ID!) { conversation(id: $id) { ${C} generating { id } } history(conversationId: $id, limit: 50) { role content } }`,
  sendMessage: `mutation($input: SendMessageInput!) { sendMessage(input: $input) { conversation { ${C} } userMessage { ${M} } assistantMessage { ${M} } } }`,
  addMessage: `mutation($input: AddMessageInput!) { addMessage(input: $input) { ${M} conversation { ${C} } } }`,
  regenerate: `mutation($input: RegenerateInput!) { regenerate(input: $input) { conversation { ${C} } userMessage { ${M} } assistantMessage { ${M} } } }`,
  editMessage: `mutation($input: EditMessageInput!) { editMessage(input: $input) { conversation { ${C} } userMessage { ${M} } assistantMessage { ${M} } } }`,
  switchBranch: `mutation($messageId: ID!) { switchBranch(messageId: $messageId) { ${C} } }`,
  forkConversation: `mutation($input: ForkConversationInput!) { forkConversation(input: $input) { ${C} } }`,
  deleteMessage: `mutation($id: ID!) { deleteMessage(id: $id) { deletedIds conversation { ${C} } } }`,
  page: `query($id: ID!, $first: Int, $after: String, $last: Int, $before: String) { conversation(id: $id) { messages(first: $first, after: $after, last: $last, before: $before) { edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }`,
  listed: `query($id: ID!) { conversations(first: 30, archived: null) { edges { node { id currentMessageId messageCount messages(last: 3) { edges { node { id parentId siblingIds siblingIndex } } } } } } recent: history(conversationId: $id, limit: 2) { role content } }`,
  lastEventSeq: `query($id: ID!) { conversation(id: $id) { lastEventSeq } }`,
  conversationEvents: `subscription($id: ID!, $afterSeq: Int) { conversationEvents(conversationId: $id, afterSeq: $afterSeq) { seq kind messageId conversationId } }`,
  messageStream: `subscription($messageId: ID!) { messageStream(messageId: $messageId) { seq delta done status message { id status content } } }`,
};

const MISSING_ID = '01a20000-0000-7000-8000-000000000000';
const ids = (conv: Conv) => conv.messages.edges.map((e) => e.node.id);
const nodes = (conv: Conv) => conv.messages.edges.map((e) => e.node);
const sorted = (list: readonly string[]) => [...list].sort();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A reply as the fake model streams it: one token per word. */
const tokensOf = (reply: string) => reply.split(/(?<= )/);
const user = (content: string): Turn => ({ role: 'user', content });
const assistant = (content: string): Turn => ({ role: 'assistant', content });
const system = (content: string): Turn => ({ role: 'system', content });
const historyOf = (messages: Msg[]) => messages.map((m) => ({ role: m.role, content: m.content }));

/** Every answer any test got, for the check that none is a masked internal error. */
const everyResponse: string[] = [];

// Each database twice: one instance without Redis (every read from the database), and two
// instances on one Redis (history cache, stream broker) that take the requests in turns, so that
// every change made on one is read, prompted and followed on the other.
const CASES = ALL_PROVIDERS.flatMap((provider) => [
  { provider, redis: false, label: `${provider}, one instance` },
  { provider, redis: true, label: `${provider}, two instances on Redis` },
]);

describe.each(CASES)('branching conversations on $label', ({ provider, redis }) => {
  let model: FakeModel;
  let server: TestServer;
  let instances: TestServer[] = [];
  let turn = 0;
  let alice: string;
  let mallory: string;
  const namespace = redisNamespace();

  beforeAll(async () => {
    model = await FakeModel.start();
    const env = {
      AUTH_JWT_SECRET: TEST_JWT_SECRET,
      LLM_API_URL: model.url,
      LLM_MODEL: 'fake-model',
      LLM_API_KEY: 'sk-server-key',
      LLM_MAX_RETRIES: '0',
      LLM_TIMEOUT_MS: '5000',
      LLM_IDLE_TIMEOUT_MS: '5000',
      STREAM_FLUSH_MS: '25',
      ...(redis ? { REDIS_URL, REDIS_KEY_PREFIX: namespace.prefix } : {}),
    };
    server = await startParley({ provider, env });
    instances = [server];
    if (redis) instances.push(await startParley({ database: server.database, env }));
    alice = await tokenFor('alice');
    // Same letters, another case: another user, also on MariaDB's case-insensitive collations.
    mallory = await tokenFor('Alice');
  });
  afterAll(async () => {
    for (const instance of instances.slice(1)) await instance.stop();
    await server?.stop();
    await model?.close();
    await namespace.cleanup();
  });

  /** The next instance in turn. */
  const nextUrl = () => instances[turn++ % instances.length]!.graphqlUrl;

  // ---------------------------------------------------------------- a tiny GraphQL client

  async function request<T>(token: string, query: string, variables: Record<string, unknown> = {}): Promise<Response<T>> {
    const res = await fetch(nextUrl(), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    const text = await res.text();
    everyResponse.push(text);
    expect(text, 'a masked internal error').not.toMatch(/unexpected error/i);
    const body = JSON.parse(text) as { data?: T | null; errors?: GqlError[] };
    return { status: res.status, text, data: body.data, errors: body.errors };
  }

  async function ok<T>(token: string, query: string, variables: Record<string, unknown> = {}): Promise<T> {
    const result = await request<T>(token, query, variables);
    expect(result.errors, `${query.slice(0, 60)} ${JSON.stringify(variables)}`).toBeUndefined();
    return result.data!;
  }

  /** The single error of a failed operation. */
  async function failure(token: string, query: string, variables: Record<string, unknown>): Promise<{ error: GqlError; response: Response<unknown> }> {
    const response = await request<unknown>(token, query, variables);
    expect(response.errors, `expected one error from ${query.slice(0, 60)} ${JSON.stringify(variables)}, got ${response.text}`).toHaveLength(1);
    return { error: response.errors![0]!, response };
  }

  async function badInput(token: string, query: string, variables: Record<string, unknown>, field: string): Promise<Response<unknown>> {
    const { error, response } = await failure(token, query, variables);
    expect(error.extensions?.code, response.text).toBe('BAD_USER_INPUT');
    // extensions.field is the argument path, as the message begins with it.
    expect(error.extensions?.field, `extensions.field of ${response.text}`).toBe(`input.${field}`);
    expect(error.message.startsWith(`input.${field}: `), response.text).toBe(true);
    return response;
  }

  /** Follows a reply over SSE to its terminal event; the saved message it ends with. */
  async function follow(token: string, messageId: string): Promise<{ id: string; status: string; content: string }> {
    const res = await fetch(nextUrl(), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: Q.messageStream, variables: { messageId } }),
      signal: AbortSignal.timeout(20_000),
    });
    expect(res.status).toBe(200);
    const decoder = new TextDecoder();
    const events: { seq: number; delta: string; done: boolean; status: string; message: { id: string; status: string; content: string } | null }[] = [];
    let buffer = '';
    let completed = false;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true }).replace(/\r\n/g, '\n');
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const lines = block.split('\n');
        const event = lines.find((l) => l.startsWith('event:'))?.slice(6).trim();
        const data = lines.filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
        if (event === 'next') {
          const payload = JSON.parse(data) as { data?: { messageStream: (typeof events)[number] }; errors?: unknown };
          expect(payload.errors, data).toBeUndefined();
          events.push(payload.data!.messageStream);
        }
        if (event === 'complete') completed = true;
      }
      if (completed) break;
    }
    expect(completed).toBe(true);
    const terminal = events.at(-1)!;
    expect(terminal.done).toBe(true);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i));
    expect(terminal.message).not.toBeNull();
    expect(events.map((e) => e.delta).join('')).toBe(terminal.message!.content);
    return terminal.message!;
  }

  // ---------------------------------------------------------------- the chat, as a user drives it

  /** The prompts the model got since `before` (title requests left out): exactly one is expected. */
  function onlyPromptSince(before: number): Turn[] {
    const requests = model.chatRequests.slice(before);
    expect(requests.map((r) => r.body.messages), 'exactly one model call').toHaveLength(1);
    return requests[0]!.body.messages.map(({ role, content }) => ({ role, content }));
  }

  async function newConversation(title: string, token = alice): Promise<string> {
    return (await ok<{ createConversation: { id: string } }>(token, Q.createConversation, { input: { title } })).createConversation.id;
  }

  async function read(id: string, token = alice): Promise<{ conversation: Conv & { generating: { id: string }[] }; history: { role: Role; content: string }[] }> {
    const data = await ok<{ conversation: (Conv & { generating: { id: string }[] }) | null; history: { role: Role; content: string }[] }>(token, Q.conversation, { id });
    expect(data.conversation).not.toBeNull();
    return { conversation: data.conversation!, history: data.history };
  }

  /** Asserts the conversation's active path is exactly these messages, by every reading of it. */
  async function expectPath(conversationId: string, path: readonly { id: string }[], token = alice): Promise<Msg[]> {
    const { conversation, history } = await read(conversationId, token);
    expect(ids(conversation)).toEqual(path.map((m) => m.id));
    expect(conversation.currentMessageId).toBe(path.at(-1)?.id ?? null);
    expect(conversation.messageCount).toBe(path.length);
    expect(history).toEqual(historyOf(nodes(conversation)));
    // The path is a chain: each one's parent is the one before it.
    expect(nodes(conversation).map((m) => m.parentId)).toEqual(path.map((_, i) => (i === 0 ? null : path[i - 1]!.id)));
    for (const m of nodes(conversation)) expect(m.siblingIds[m.siblingIndex]).toBe(m.id);
    // The list (its own batched reads) and a short history agree.
    type Listed = { conversations: { edges: { node: { id: string; currentMessageId: string | null; messageCount: number; messages: { edges: { node: Pick<Msg, 'id' | 'parentId' | 'siblingIds' | 'siblingIndex'> }[] } } }[] }; recent: { role: Role; content: string }[] };
    const listed = await ok<Listed>(token, Q.listed, { id: conversationId });
    const inList = listed.conversations.edges.map((e) => e.node).find((c) => c.id === conversationId);
    expect(inList, 'the conversation is in the list').toBeDefined();
    expect(inList).toEqual({
      id: conversationId,
      currentMessageId: conversation.currentMessageId,
      messageCount: path.length,
      messages: { edges: nodes(conversation).slice(-3).map(({ id, parentId, siblingIds, siblingIndex }) => ({ node: { id, parentId, siblingIds, siblingIndex } })) },
    });
    expect(listed.recent).toEqual(history.slice(-2));
    // Paged two at a time, forwards and backwards, the connection walks the same path.
    expect(await paged(conversationId, 'forward', token)).toEqual(path.map((m) => m.id));
    expect(await paged(conversationId, 'backward', token)).toEqual(path.map((m) => m.id));
    return nodes(conversation);
  }

  async function paged(conversationId: string, direction: 'forward' | 'backward', token: string): Promise<string[]> {
    type Page = { conversation: { messages: { edges: { cursor: string; node: { id: string } }[]; pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null } } } };
    const found: string[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 30; pages++) {
      const variables: Record<string, unknown> = direction === 'forward' ? { id: conversationId, first: 2, after: cursor } : { id: conversationId, last: 2, before: cursor };
      const { messages } = (await ok<Page>(token, Q.page, variables)).conversation;
      const pageIds = messages.edges.map((e) => e.node.id);
      if (direction === 'forward') found.push(...pageIds);
      else found.unshift(...pageIds);
      const more = direction === 'forward' ? messages.pageInfo.hasNextPage : messages.pageInfo.hasPreviousPage;
      if (!more) return found;
      expect(pageIds).toHaveLength(2);
      cursor = direction === 'forward' ? messages.pageInfo.endCursor : messages.pageInfo.startCursor;
    }
    throw new Error(`paging ${direction} did not end: ${found.join(', ')}`);
  }

  async function finished(token: string, message: Msg, reply: string): Promise<void> {
    expect(await follow(token, message.id)).toEqual({ id: message.id, status: 'COMPLETE', content: reply });
  }

  async function send(input: Record<string, unknown>, reply: string, token = alice): Promise<Payload & { prompt: Turn[] }> {
    model.enqueue({ tokens: tokensOf(reply) });
    const before = model.chatRequests.length;
    const { sendMessage } = await ok<{ sendMessage: Payload }>(token, Q.sendMessage, { input });
    expect(sendMessage.userMessage).toMatchObject({ role: 'USER', content: input.content, status: 'COMPLETE' });
    expect(sendMessage.assistantMessage).toMatchObject({ role: 'ASSISTANT', status: 'STREAMING', parentId: sendMessage.userMessage.id, siblingIds: [sendMessage.assistantMessage.id], siblingIndex: 0 });
    expect(sendMessage.conversation.currentMessageId).toBe(sendMessage.assistantMessage.id);
    await finished(token, sendMessage.assistantMessage, reply);
    return { ...sendMessage, prompt: onlyPromptSince(before) };
  }

  async function regenerate(input: Record<string, unknown>, reply: string, token = alice): Promise<Payload & { prompt: Turn[] }> {
    model.enqueue({ tokens: tokensOf(reply) });
    const before = model.chatRequests.length;
    const { regenerate } = await ok<{ regenerate: Payload }>(token, Q.regenerate, { input });
    expect(regenerate.assistantMessage).toMatchObject({ role: 'ASSISTANT', status: 'STREAMING', content: '', parentId: regenerate.userMessage.id });
    expect(regenerate.userMessage.role).toBe('USER');
    expect(regenerate.conversation.currentMessageId).toBe(regenerate.assistantMessage.id);
    await finished(token, regenerate.assistantMessage, reply);
    return { ...regenerate, prompt: onlyPromptSince(before) };
  }

  async function editUser(messageId: string, content: string, reply: string): Promise<Payload & { prompt: Turn[] }> {
    model.enqueue({ tokens: tokensOf(reply) });
    const before = model.chatRequests.length;
    const { editMessage } = await ok<{ editMessage: EditPayload }>(alice, Q.editMessage, { input: { messageId, content } });
    expect(editMessage.userMessage).toMatchObject({ role: 'USER', content, status: 'COMPLETE' });
    expect(editMessage.assistantMessage).not.toBeNull();
    const reply_ = editMessage.assistantMessage!;
    expect(reply_).toMatchObject({ role: 'ASSISTANT', status: 'STREAMING', parentId: editMessage.userMessage.id, siblingIds: [reply_.id], siblingIndex: 0 });
    expect(editMessage.conversation.currentMessageId).toBe(reply_.id);
    await finished(alice, reply_, reply);
    return { conversation: editMessage.conversation, userMessage: editMessage.userMessage, assistantMessage: reply_, prompt: onlyPromptSince(before) };
  }

  async function switchBranch(messageId: string, token = alice): Promise<Conv> {
    return (await ok<{ switchBranch: Conv }>(token, Q.switchBranch, { messageId })).switchBranch;
  }

  async function addMessage(input: Record<string, unknown>, token = alice): Promise<Msg & { conversation: Conv }> {
    return (await ok<{ addMessage: Msg & { conversation: Conv } }>(token, Q.addMessage, { input })).addMessage;
  }

  async function deleteMessage(id: string, token = alice): Promise<{ deletedIds: string[]; conversation: Conv }> {
    return (await ok<{ deleteMessage: { deletedIds: string[]; conversation: Conv } }>(token, Q.deleteMessage, { id })).deleteMessage;
  }

  /** A conversation of `n` exchanges U1/A1 … Un/An, created with a title (so no title request). */
  async function conversationOf(n: number, title = 'Branches'): Promise<{ id: string; users: Msg[]; replies: Msg[] }> {
    const id = await newConversation(title);
    const users: Msg[] = [];
    const replies: Msg[] = [];
    for (let i = 1; i <= n; i++) {
      const sent = await send({ conversationId: id, content: `U${i} question` }, `A${i} answer`);
      expect(sent.prompt).toEqual([...users.flatMap((u, j) => [user(u.content), assistant(`A${j + 1} answer`)]), user(`U${i} question`)]);
      users.push(sent.userMessage);
      replies.push({ ...sent.assistantMessage, content: `A${i} answer`, status: 'COMPLETE' });
    }
    return { id, users, replies };
  }

  /** Everything stored for one conversation, straight from the database. */
  async function rows(conversationId: string): Promise<string> {
    const prisma = server.app.db.prisma;
    const conversation = await prisma.conversation.findUnique({ where: { id: conversationId } });
    const messages = await prisma.message.findMany({ where: { conversationId }, orderBy: { seq: 'asc' } });
    return JSON.stringify({ conversation, messages });
  }

  const countRows = () => server.app.db.prisma.message.count();

  // ---------------------------------------------------------------- 1. regenerate and switch

  it('regenerate ×3 gives 4 siblings oldest first; switchBranch moves the path, and prompts carry only the active path', async () => {
    const conversationId = await newConversation('Regenerations');
    const question = 'What is the capital of France?';
    const first = await send({ conversationId, content: question }, 'Paris, first try.');
    expect(first.prompt).toEqual([user(question)]);
    const q = first.userMessage;
    const replies: Msg[] = [first.assistantMessage];
    const texts = ['Paris, first try.', 'Paris, take one.', 'Paris, take two.', 'Paris, take three.'];
    for (let i = 1; i <= 3; i++) {
      // Any sibling can be regenerated: the active one, an inactive older one, the active one again.
      const target = [replies[0]!, replies[0]!, replies[2]!][i - 1]!;
      const r = await regenerate({ messageId: target.id }, texts[i]!);
      expect(r.userMessage.id).toBe(q.id);
      expect(r.assistantMessage.siblingIds).toEqual([...replies.map((m) => m.id), r.assistantMessage.id]);
      expect(r.assistantMessage.siblingIndex).toBe(i);
      // The regenerated reply's prompt is the path up to its user message: never a sibling reply.
      expect(r.prompt).toEqual([user(question)]);
      expect(ids(r.conversation)).toEqual([q.id, r.assistantMessage.id]);
      expect(r.conversation.messageCount).toBe(2);
      replies.push(r.assistantMessage);
    }
    const replyIds = replies.map((m) => m.id);
    expect(new Set(replyIds).size).toBe(4);

    const path = await expectPath(conversationId, [q, replies[3]!]);
    expect(path[0]).toMatchObject({ id: q.id, role: 'USER', content: question, parentId: null, siblingIds: [q.id], siblingIndex: 0 });
    expect(path[1]).toMatchObject({ id: replyIds[3], role: 'ASSISTANT', content: texts[3], status: 'COMPLETE', parentId: q.id, siblingIds: replyIds, siblingIndex: 3 });

    const followUps: { user: Msg; reply: Msg }[] = [];
    for (const k of [0, 1, 2]) {
      const switched = await switchBranch(replyIds[k]!);
      expect(switched).toMatchObject({ id: conversationId, currentMessageId: replyIds[k], messageCount: 2 });
      expect(ids(switched)).toEqual([q.id, replyIds[k]]);
      expect(nodes(switched)[1]).toMatchObject({ content: texts[k], parentId: q.id, siblingIds: replyIds, siblingIndex: k });
      await expectPath(conversationId, [q, replies[k]!]);
      const next = await send({ conversationId, content: `Follow-up ${k}` }, `Answer ${k}.`);
      // The next prompt is the switched-to reply's path: none of its siblings.
      expect(next.prompt).toEqual([user(question), assistant(texts[k]!), user(`Follow-up ${k}`)]);
      expect(next.userMessage.parentId).toBe(replyIds[k]);
      followUps.push({ user: next.userMessage, reply: next.assistantMessage });
      await expectPath(conversationId, [q, replies[k]!, next.userMessage, next.assistantMessage]);
    }

    // A leaf: the path ends there.
    const leaf = await switchBranch(replyIds[3]!);
    expect(ids(leaf)).toEqual([q.id, replyIds[3]]);
    const last = await send({ conversationId, content: 'Follow-up 3' }, 'Answer 3.');
    expect(last.prompt).toEqual([user(question), assistant(texts[3]!), user('Follow-up 3')]);

    // Not a leaf: the tip is the newest message below it.
    const back = await switchBranch(replyIds[1]!);
    expect(back.currentMessageId).toBe(followUps[1]!.reply.id);
    await expectPath(conversationId, [q, replies[1]!, followUps[1]!.user, followUps[1]!.reply]);
    // Regenerating deeper in a branch: the prompt is that branch's path only.
    const deeper = await regenerate({ messageId: followUps[1]!.reply.id }, 'Answer 1, again.');
    expect(deeper.prompt).toEqual([user(question), assistant(texts[1]!), user('Follow-up 1')]);
    expect(deeper.assistantMessage.siblingIds).toEqual([followUps[1]!.reply.id, deeper.assistantMessage.id]);
    await expectPath(conversationId, [q, replies[1]!, followUps[1]!.user, deeper.assistantMessage]);

    // The root: the newest message anywhere below it is the last one sent (under reply 1).
    const fromRoot = await switchBranch(q.id);
    expect(fromRoot.currentMessageId).toBe(deeper.assistantMessage.id);
    await expectPath(conversationId, [q, replies[1]!, followUps[1]!.user, deeper.assistantMessage]);
    // And from the third reply: its newest message below is its follow-up's answer.
    const third = await switchBranch(replyIds[2]!);
    expect(third.currentMessageId).toBe(followUps[2]!.reply.id);
    const after = await send({ conversationId, content: 'And then?' }, 'Then nothing.');
    expect(after.prompt).toEqual([user(question), assistant(texts[2]!), user('Follow-up 2'), assistant('Answer 2.'), user('And then?')]);
  });

  it('a sibling still generating when the user switches away finishes, is saved, stays followable, and leaves the path alone', async () => {
    const { id: conversationId, users, replies } = await conversationOf(1, 'Switch away');
    const [u1] = users as [Msg];
    const [a1] = replies as [Msg];
    const tokens = Array.from({ length: 20 }, (_, i) => `bg${i} `);
    model.enqueue({ tokens, delayMs: 40 });
    const before = model.chatRequests.length;
    const { regenerate: regen } = await ok<{ regenerate: Payload }>(alice, Q.regenerate, { input: { messageId: a1.id } });
    const sibling = regen.assistantMessage;
    // Its model call has started before the next one is scripted.
    const deadline = Date.now() + 10_000;
    while (model.chatRequests.length === before && Date.now() < deadline) await sleep(10);
    const switched = await switchBranch(a1.id);
    expect(switched).toMatchObject({ currentMessageId: a1.id, messageCount: 2 });
    expect(ids(switched)).toEqual([u1.id, a1.id]);
    const meanwhile = await send({ conversationId, content: 'Meanwhile' }, 'Meanwhile answer.');
    expect(meanwhile.prompt).toEqual([user('U1 question'), assistant('A1 answer'), user('Meanwhile')]);
    expect(model.chatRequests[before]!.body.messages.map(({ role, content }) => ({ role, content }))).toEqual([user('U1 question')]);
    expect(await follow(alice, sibling.id)).toEqual({ id: sibling.id, status: 'COMPLETE', content: tokens.join('') });
    await sleep(200);
    // Its end did not take the path back.
    await expectPath(conversationId, [u1, a1, meanwhile.userMessage, meanwhile.assistantMessage]);
    // Followed again after the end: replayed whole.
    expect(await follow(alice, sibling.id)).toEqual({ id: sibling.id, status: 'COMPLETE', content: tokens.join('') });
    const back = await switchBranch(sibling.id);
    expect(nodes(back)[1]).toMatchObject({ id: sibling.id, status: 'COMPLETE', content: tokens.join(''), siblingIds: [a1.id, sibling.id], siblingIndex: 1 });
  });

  it('concurrent regenerates and switches leave exactly one consistent path', async () => {
    const { id: conversationId, users, replies } = await conversationOf(2, 'Races');
    const [u1, u2] = users as [Msg, Msg];
    const [a1, a2] = replies as [Msg, Msg];
    const before = model.chatRequests.length;
    const regens = await Promise.all(Array.from({ length: 5 }, () => ok<{ regenerate: Payload }>(alice, Q.regenerate, { input: { messageId: a2.id } })));
    const siblings = regens.map((r) => r.regenerate.assistantMessage.id);
    expect(new Set(siblings).size).toBe(5);
    for (const id of siblings) expect((await follow(alice, id)).status).toBe('COMPLETE');
    expect(model.chatRequests.length - before).toBe(5);
    for (const request of model.chatRequests.slice(before)) {
      expect(request.body.messages.map(({ role, content }) => ({ role, content }))).toEqual([user('U1 question'), assistant('A1 answer'), user('U2 question')]);
    }
    const all = [a2.id, ...sorted(siblings)];
    const { conversation } = await read(conversationId);
    const tip = nodes(conversation)[3]!;
    expect(siblings).toContain(tip.id);
    expect(sorted(tip.siblingIds)).toEqual(sorted(all));
    expect(tip.siblingIds[0]).toBe(a2.id);
    await expectPath(conversationId, [u1, a1, u2, tip]);

    // Switches to every sibling at once: one of them wins, and every reading agrees on which.
    const switches = await Promise.all(all.map((id) => ok<{ switchBranch: Conv }>(alice, Q.switchBranch, { messageId: id })));
    // Each answer's fields are read after its switch committed, so a later switch may show in its
    // path: what must hold is one whole path through one of the siblings.
    for (const { switchBranch: result } of switches) {
      expect(all).toContain(result.currentMessageId);
      const path = ids(result);
      expect(path.slice(0, 3)).toEqual([u1.id, a1.id, u2.id]);
      expect(path).toHaveLength(4);
      expect(all).toContain(path[3]);
    }
    const after = (await read(conversationId)).conversation;
    const winner = after.currentMessageId!;
    expect(all).toContain(winner);
    const prisma = server.app.db.prisma;
    const onPath = (await prisma.message.findMany({ where: { conversationId, onPath: true }, orderBy: { seq: 'asc' } })).map((m) => m.id);
    const stored = await prisma.conversation.findUniqueOrThrow({ where: { id: conversationId } });
    expect({ onPath, currentMessageId: stored.currentMessageId, pathLength: stored.pathLength }, 'the stored path').toEqual({ onPath: [u1.id, a1.id, u2.id, winner], currentMessageId: winner, pathLength: 4 });
    await expectPath(conversationId, [u1, a1, u2, { id: winner }]);
  });

  // ---------------------------------------------------------------- 2. editMessage

  it('editing an early user message starts a new branch; the old continuation stays reachable and out of the prompt', async () => {
    const { id: conversationId, users, replies } = await conversationOf(3, 'Edits');
    const [u1, u2, u3] = users as [Msg, Msg, Msg];
    const [a1, a2, a3] = replies as [Msg, Msg, Msg];

    const edited = await editUser(u2.id, 'U2 edited', 'A2 after the edit');
    const u2e = edited.userMessage;
    expect(u2e).toMatchObject({ parentId: a1.id, siblingIds: [u2.id, u2e.id], siblingIndex: 1 });
    expect(edited.prompt).toEqual([user('U1 question'), assistant('A1 answer'), user('U2 edited')]);
    expect(ids(edited.conversation)).toEqual([u1.id, a1.id, u2e.id, edited.assistantMessage.id]);
    await expectPath(conversationId, [u1, a1, u2e, edited.assistantMessage]);

    // The old continuation, through the sibling: the whole of it, to its newest leaf.
    const old = await switchBranch(u2.id);
    expect(old.currentMessageId).toBe(a3.id);
    const oldPath = await expectPath(conversationId, [u1, a1, u2, a2, u3, a3]);
    expect(oldPath[2]).toMatchObject({ id: u2.id, content: 'U2 question', siblingIds: [u2.id, u2e.id], siblingIndex: 0 });
    expect(oldPath.map((m) => m.content)).toEqual(['U1 question', 'A1 answer', 'U2 question', 'A2 answer', 'U3 question', 'A3 answer']);

    // And back: the edited branch's prompt still has nothing of the old continuation.
    await switchBranch(u2e.id);
    await expectPath(conversationId, [u1, a1, u2e, edited.assistantMessage]);
    const next = await send({ conversationId, content: 'U4 question' }, 'A4 answer');
    expect(next.prompt).toEqual([user('U1 question'), assistant('A1 answer'), user('U2 edited'), assistant('A2 after the edit'), user('U4 question')]);

    // The very first message: a new root.
    const root = await editUser(u1.id, 'U1 edited', 'A1 after the edit');
    expect(root.userMessage).toMatchObject({ parentId: null, siblingIds: [u1.id, root.userMessage.id], siblingIndex: 1 });
    expect(root.prompt).toEqual([user('U1 edited')]);
    await expectPath(conversationId, [root.userMessage, root.assistantMessage]);
    const whole = await switchBranch(u1.id);
    expect(whole.currentMessageId).toBe(next.assistantMessage.id);
  });

  it('editing a SYSTEM or an ASSISTANT message adds a sibling, generates nothing, and makes it active', async () => {
    const conversationId = await newConversation('System edits');
    const sys = await addMessage({ conversationId, role: 'SYSTEM', content: 'Be terse.' });
    expect(sys).toMatchObject({ role: 'SYSTEM', parentId: null, siblingIds: [sys.id], siblingIndex: 0 });
    expect(sys.conversation).toMatchObject({ currentMessageId: sys.id, messageCount: 1 });
    const hi = await send({ conversationId, content: 'Hi' }, 'Hello there.');
    expect(hi.prompt).toEqual([system('Be terse.'), user('Hi')]);
    expect(hi.userMessage.parentId).toBe(sys.id);

    const before = model.chatRequests.length;
    const rowsBefore = await countRows();
    const { editMessage: sysEdit } = await ok<{ editMessage: EditPayload }>(alice, Q.editMessage, { input: { messageId: sys.id, content: 'Be verbose.' } });
    expect(sysEdit.assistantMessage).toBeNull();
    expect(sysEdit.userMessage).toMatchObject({ role: 'SYSTEM', content: 'Be verbose.', status: 'COMPLETE', parentId: null, siblingIds: [sys.id, sysEdit.userMessage.id], siblingIndex: 1 });
    expect(sysEdit.conversation).toMatchObject({ id: conversationId, currentMessageId: sysEdit.userMessage.id, messageCount: 1 });
    await expectPath(conversationId, [sysEdit.userMessage]);

    const { editMessage: aEdit } = await ok<{ editMessage: EditPayload }>(alice, Q.editMessage, { input: { messageId: hi.assistantMessage.id, content: 'Edited hello.' } });
    expect(aEdit.assistantMessage).toBeNull();
    expect(aEdit.userMessage).toMatchObject({
      role: 'ASSISTANT',
      content: 'Edited hello.',
      status: 'COMPLETE',
      parentId: hi.userMessage.id,
      siblingIds: [hi.assistantMessage.id, aEdit.userMessage.id],
      siblingIndex: 1,
    });
    expect(aEdit.conversation.currentMessageId).toBe(aEdit.userMessage.id);
    await expectPath(conversationId, [sys, hi.userMessage, aEdit.userMessage]);
    expect(await countRows()).toBe(rowsBefore + 2);
    await sleep(300);
    expect(model.chatRequests.length, 'no model call for a SYSTEM or ASSISTANT edit').toBe(before);
    const { conversation } = await read(conversationId);
    expect(conversation.generating).toEqual([]);

    const next = await send({ conversationId, content: 'Next' }, 'Fine.');
    expect(next.prompt).toEqual([system('Be terse.'), user('Hi'), assistant('Edited hello.'), user('Next')]);
  });

  // ---------------------------------------------------------------- 3. forkConversation

  it('forkConversation copies the path up to a message with new ids, and leaves the original alone', async () => {
    const { id: conversationId, users, replies } = await conversationOf(3, 'Original title');
    const [u1, u2, u3] = users as [Msg, Msg, Msg];
    const [a1, a2, a3] = replies as [Msg, Msg, Msg];
    const a2b = (await regenerate({ messageId: a2.id }, 'A2 again')).assistantMessage;
    const originalIds = [u1, a1, u2, a2, u3, a3, a2b].map((m) => m.id);
    const original = await read(conversationId);
    const originalRows = await rows(conversationId);
    expect(ids(original.conversation)).toEqual([u1.id, a1.id, u2.id, a2b.id]);

    const checkFork = (fork: Conv, expected: { role: Role; content: string }[]) => {
      expect(fork.id).not.toBe(conversationId);
      const copied = nodes(fork);
      expect(copied.map((m) => ({ role: m.role, content: m.content }))).toEqual(expected);
      for (const id of ids(fork)) expect(originalIds).not.toContain(id);
      expect(new Set(ids(fork)).size).toBe(expected.length);
      expect(copied.map((m) => m.parentId)).toEqual([null, ...ids(fork).slice(0, -1)]);
      for (const m of copied) expect(m).toMatchObject({ siblingIds: [m.id], siblingIndex: 0, status: 'COMPLETE' });
      expect(fork.currentMessageId).toBe(ids(fork).at(-1));
      expect(fork.messageCount).toBe(expected.length);
    };

    // At a middle message of the active path, with the default title.
    const { forkConversation: fork } = await ok<{ forkConversation: Conv }>(alice, Q.forkConversation, { input: { messageId: u2.id } });
    checkFork(fork, [
      { role: 'USER', content: 'U1 question' },
      { role: 'ASSISTANT', content: 'A1 answer' },
      { role: 'USER', content: 'U2 question' },
    ]);
    expect(fork.title).toBe('Original title');
    await expectPath(fork.id, nodes(fork));

    // At a message off the active path (the first A2, whose U3/A3 stay behind), with a title.
    const { forkConversation: titled } = await ok<{ forkConversation: Conv }>(alice, Q.forkConversation, { input: { messageId: a2.id, title: 'Forked here' } });
    checkFork(titled, [
      { role: 'USER', content: 'U1 question' },
      { role: 'ASSISTANT', content: 'A1 answer' },
      { role: 'USER', content: 'U2 question' },
      { role: 'ASSISTANT', content: 'A2 answer' },
    ]);
    expect(titled.title).toBe('Forked here');
    expect(titled.id).not.toBe(fork.id);
    const more = await send({ conversationId: titled.id, content: 'More' }, 'More, in the fork.');
    expect(more.prompt).toEqual([user('U1 question'), assistant('A1 answer'), user('U2 question'), assistant('A2 answer'), user('More')]);
    expect(more.userMessage.parentId).toBe(ids(titled).at(-1));

    // The original: the same path, tip, count, and rows.
    expect(await read(conversationId)).toEqual(original);
    expect(await rows(conversationId)).toBe(originalRows);
    const again = await send({ conversationId, content: 'Original continues' }, 'Original reply.');
    expect(again.prompt).toEqual([user('U1 question'), assistant('A1 answer'), user('U2 question'), assistant('A2 again'), user('Original continues')]);
  });

  // ---------------------------------------------------------------- 4. deleteMessage

  it('deleteMessage removes a subtree and moves the tip to the newest leaf below the parent, or to the parent', async () => {
    const { id: conversationId, users, replies } = await conversationOf(2, 'Deletions');
    const [u1, u2] = users as [Msg, Msg];
    const [a1, a2] = replies as [Msg, Msg];
    const a2b = (await regenerate({ messageId: a2.id }, 'A2 b')).assistantMessage;
    const a2c = (await regenerate({ messageId: a2.id }, 'A2 c')).assistantMessage;
    await switchBranch(a2b.id);
    const underB = await send({ conversationId, content: 'U3 under b' }, 'A3 under b');
    await switchBranch(a2.id);
    const underA = await send({ conversationId, content: 'U3 under a' }, 'A3 under a');
    // U2 → A2 [U3a → A3a], A2b [U3b → A3b], A2c; the active path runs through A2.
    await expectPath(conversationId, [u1, a1, u2, a2, underA.userMessage, underA.assistantMessage]);

    // A middle message with the tip in its subtree: the tip moves to the newest leaf left below U2 (A3b, newer than A2c).
    const first = await deleteMessage(a2.id);
    expect(sorted(first.deletedIds)).toEqual(sorted([a2.id, underA.userMessage.id, underA.assistantMessage.id]));
    expect(first.conversation).toMatchObject({ id: conversationId, currentMessageId: underB.assistantMessage.id, messageCount: 6 });
    expect(ids(first.conversation)).toEqual([u1.id, a1.id, u2.id, a2b.id, underB.userMessage.id, underB.assistantMessage.id]);
    const path = await expectPath(conversationId, [u1, a1, u2, a2b, underB.userMessage, underB.assistantMessage]);
    expect(path[3]).toMatchObject({ siblingIds: [a2b.id, a2c.id], siblingIndex: 0 });

    // A message off the path: the tip stays.
    const offPath = await deleteMessage(a2c.id);
    expect(offPath.deletedIds).toEqual([a2c.id]);
    expect(offPath.conversation).toMatchObject({ currentMessageId: underB.assistantMessage.id, messageCount: 6 });
    const path2 = await expectPath(conversationId, [u1, a1, u2, a2b, underB.userMessage, underB.assistantMessage]);
    expect(path2[3]).toMatchObject({ siblingIds: [a2b.id], siblingIndex: 0 });

    // A middle message whose parent has nothing else: the tip moves to the parent.
    const third = await deleteMessage(underB.userMessage.id);
    expect(sorted(third.deletedIds)).toEqual(sorted([underB.userMessage.id, underB.assistantMessage.id]));
    expect(third.conversation).toMatchObject({ currentMessageId: a2b.id, messageCount: 4 });
    await expectPath(conversationId, [u1, a1, u2, a2b]);

    // Gone: deleting again, or switching to it, is NOT_FOUND.
    for (const [query, variables] of [
      [Q.deleteMessage, { id: a2.id }],
      [Q.switchBranch, { messageId: underA.assistantMessage.id }],
    ] as const) {
      const { error } = await failure(alice, query, variables);
      expect(error.extensions?.code).toBe('NOT_FOUND');
    }

    const next = await send({ conversationId, content: 'After the deletes' }, 'Still here.');
    expect(next.prompt).toEqual([user('U1 question'), assistant('A1 answer'), user('U2 question'), assistant('A2 b'), user('After the deletes')]);
    expect(await server.app.db.prisma.message.count({ where: { conversationId } })).toBe(6);
  });

  it('deleteMessage stops a reply that is still streaming, itself or under a deleted message, and the result holds', async () => {
    const slow: Script = { tokens: Array.from({ length: 60 }, (_, i) => `slow${i} `), delayMs: 50 };
    const startSlow = async (conversationId: string, content: string) => {
      model.enqueue(slow);
      const before = model.chatRequests.length;
      const { sendMessage } = await ok<{ sendMessage: Payload }>(alice, Q.sendMessage, { input: { conversationId, content } });
      const deadline = Date.now() + 10_000;
      while ((model.chatRequests[before]?.sent ?? 0) < 3 && Date.now() < deadline) await sleep(20);
      const call = model.chatRequests[before]!;
      expect(call.sent).toBeGreaterThanOrEqual(3);
      return { sent: sendMessage, call };
    };
    const closedWithin = (closed: Promise<void>, ms: number) => Promise.race([closed.then(() => true), sleep(ms).then(() => false)]);

    // The streaming reply itself.
    const { id: conversationId, users, replies } = await conversationOf(1, 'Streaming delete');
    const { sent, call } = await startSlow(conversationId, 'Take your time');
    const streaming = sent.assistantMessage;
    const deleted = await deleteMessage(streaming.id);
    expect(deleted.deletedIds).toEqual([streaming.id]);
    expect(deleted.conversation).toMatchObject({ currentMessageId: sent.userMessage.id, messageCount: 3 });
    expect(await closedWithin(call.closed, 3_000), 'the model call is aborted').toBe(true);
    expect(call.sent).toBeLessThan(60);
    await sleep(400);
    await expectPath(conversationId, [users[0]!, replies[0]!, sent.userMessage]);
    expect((await read(conversationId)).conversation.generating).toEqual([]);
    expect(await server.app.db.prisma.message.findUnique({ where: { id: streaming.id } })).toBeNull();
    expect(await server.app.db.prisma.message.count({ where: { conversationId } })).toBe(3);

    // Its user message: both go, the reply is stopped.
    const second = await conversationOf(1, 'Streaming delete 2');
    const slow2 = await startSlow(second.id, 'Slowly please');
    const gone = await deleteMessage(slow2.sent.userMessage.id);
    expect(sorted(gone.deletedIds)).toEqual(sorted([slow2.sent.userMessage.id, slow2.sent.assistantMessage.id]));
    expect(gone.conversation).toMatchObject({ currentMessageId: second.replies[0]!.id, messageCount: 2 });
    expect(await closedWithin(slow2.call.closed, 3_000), 'the model call is aborted').toBe(true);
    await sleep(400);
    await expectPath(second.id, [second.users[0]!, second.replies[0]!]);
    expect((await read(second.id)).conversation.generating).toEqual([]);
    expect(await server.app.db.prisma.message.count({ where: { conversationId: second.id } })).toBe(2);
    const next = await send({ conversationId: second.id, content: 'Quick one' }, 'Quick.');
    expect(next.prompt).toEqual([user('U1 question'), assistant('A1 answer'), user('Quick one')]);
  });

  it('deleting a root: the tip moves to the other root’s branch; deleting the only root empties the conversation', async () => {
    const { id: conversationId, users, replies } = await conversationOf(2, 'Roots');
    const root2 = await editUser(users[0]!.id, 'Another start', 'Another answer');
    await expectPath(conversationId, [root2.userMessage, root2.assistantMessage]);

    const first = await deleteMessage(root2.userMessage.id);
    expect(sorted(first.deletedIds)).toEqual(sorted([root2.userMessage.id, root2.assistantMessage.id]));
    expect(first.conversation).toMatchObject({ currentMessageId: replies[1]!.id, messageCount: 4 });
    await expectPath(conversationId, [users[0]!, replies[0]!, users[1]!, replies[1]!]);

    const all = await deleteMessage(users[0]!.id);
    expect(sorted(all.deletedIds)).toEqual(sorted([users[0]!.id, replies[0]!.id, users[1]!.id, replies[1]!.id]));
    expect(all.conversation).toMatchObject({ id: conversationId, currentMessageId: null, messageCount: 0, messages: { edges: [] } });
    await expectPath(conversationId, []);
    expect(await server.app.db.prisma.message.count({ where: { conversationId } })).toBe(0);

    const fresh = await send({ conversationId, content: 'Fresh start' }, 'Fresh answer.');
    expect(fresh.prompt).toEqual([user('Fresh start')]);
    expect(fresh.userMessage).toMatchObject({ parentId: null, siblingIds: [fresh.userMessage.id], siblingIndex: 0 });
    await expectPath(conversationId, [fresh.userMessage, fresh.assistantMessage]);
  });

  // ---------------------------------------------------------------- 5. parentId

  it('sendMessage/addMessage with parentId answer under an older message: a new active branch, its prompt the path to that parent', async () => {
    const { id: conversationId, users, replies } = await conversationOf(3, 'Parents');
    const [u1, u2, u3] = users as [Msg, Msg, Msg];
    const [a1, a2] = replies as [Msg, Msg, Msg];

    const alt = await send({ conversationId, parentId: a1.id, content: 'Alt question' }, 'Alt answer.');
    expect(alt.userMessage).toMatchObject({ parentId: a1.id, siblingIds: [u2.id, alt.userMessage.id], siblingIndex: 1 });
    expect(alt.prompt).toEqual([user('U1 question'), assistant('A1 answer'), user('Alt question')]);
    expect(ids(alt.conversation)).toEqual([u1.id, a1.id, alt.userMessage.id, alt.assistantMessage.id]);
    await expectPath(conversationId, [u1, a1, alt.userMessage, alt.assistantMessage]);

    // conversationId left out: the parent names the conversation.
    const alt2 = await send({ parentId: a2.id, content: 'Alt 2' }, 'Alt 2 answer.');
    expect(alt2.conversation.id).toBe(conversationId);
    expect(alt2.userMessage).toMatchObject({ parentId: a2.id, siblingIds: [u3.id, alt2.userMessage.id], siblingIndex: 1 });
    expect(alt2.prompt).toEqual([user('U1 question'), assistant('A1 answer'), user('U2 question'), assistant('A2 answer'), user('Alt 2')]);
    await expectPath(conversationId, [u1, a1, u2, a2, alt2.userMessage, alt2.assistantMessage]);

    const added = await addMessage({ conversationId, role: 'SYSTEM', content: 'Mind the budget.', parentId: u1.id });
    expect(added).toMatchObject({ role: 'SYSTEM', parentId: u1.id, siblingIds: [a1.id, added.id], siblingIndex: 1 });
    expect(added.conversation).toMatchObject({ currentMessageId: added.id, messageCount: 2 });
    await expectPath(conversationId, [u1, added]);
    const next = await send({ conversationId, content: 'Next' }, 'Noted.');
    expect(next.userMessage.parentId).toBe(added.id);
    expect(next.prompt).toEqual([user('U1 question'), system('Mind the budget.'), user('Next')]);
  });

  // ---------------------------------------------------------------- 6. isolation and refusals

  it('another user’s message ids are NOT_FOUND, exactly as missing ones, and change nothing', async () => {
    const { id: aliceConversation, users, replies } = await conversationOf(2, 'Alice private');
    await regenerate({ messageId: replies[1]!.id }, 'A2 regenerated');
    const aliceIds = [users[0]!.id, replies[0]!.id, users[1]!.id, replies[1]!.id];
    const other = await conversationOf(1, 'Alice other');
    const malloryConversation = await newConversation('Mallory', mallory);
    const malloryMessage = await send({ conversationId: malloryConversation, content: 'Mallory asks' }, 'Mallory gets', mallory);

    const snapshot = async () => ({
      alice: await rows(aliceConversation),
      other: await rows(other.id),
      mallory: await rows(malloryConversation),
      total: await countRows(),
      conversations: await server.app.db.prisma.conversation.count(),
      aliceView: await read(aliceConversation),
    });
    const before = await snapshot();
    const calls = model.chatRequests.length;

    const probes: [string, (id: string) => [string, Record<string, unknown>]][] = [
      ['regenerate', (id) => [Q.regenerate, { input: { messageId: id } }]],
      ['regenerate with a key', (id) => [Q.regenerate, { input: { messageId: id, clientMessageId: 'probe-regen' } }]],
      ['editMessage', (id) => [Q.editMessage, { input: { messageId: id, content: 'pwned' } }]],
      ['editMessage with a key', (id) => [Q.editMessage, { input: { messageId: id, content: 'pwned', clientMessageId: 'probe-edit' } }]],
      ['switchBranch', (id) => [Q.switchBranch, { messageId: id }]],
      ['forkConversation', (id) => [Q.forkConversation, { input: { messageId: id } }]],
      ['forkConversation with a title', (id) => [Q.forkConversation, { input: { messageId: id, title: 'stolen' } }]],
      ['deleteMessage', (id) => [Q.deleteMessage, { id }]],
    ];
    const same = (response: Response<unknown>, id: string) => ({ status: response.status, body: response.text.split(id).join('<id>') });
    for (const [name, probe] of probes) {
      const [query, missingVars] = probe(MISSING_ID);
      const missing = await failure(mallory, query, missingVars);
      expect(missing.error.extensions?.code, name).toBe('NOT_FOUND');
      // The owner asking for a missing id gets the same answer too.
      expect(same((await failure(alice, query, missingVars)).response, MISSING_ID), name).toEqual(same(missing.response, MISSING_ID));
      for (const id of aliceIds) {
        const [q, vars] = probe(id);
        const foreign = await failure(mallory, q, vars);
        expect(same(foreign.response, id), `${name} of alice's ${id}`).toEqual(same(missing.response, MISSING_ID));
      }
    }

    // parentId outside the conversation: missing, another user's, another conversation's.
    const parentProbes: [string, string, (parentId: string) => Record<string, unknown>][] = [
      ['sendMessage', Q.sendMessage, (parentId) => ({ input: { conversationId: aliceConversation, parentId, content: 'branch?' } })],
      ['sendMessage with a key', Q.sendMessage, (parentId) => ({ input: { conversationId: aliceConversation, parentId, content: 'branch?', clientMessageId: `probe-${parentId}` } })],
      ['addMessage', Q.addMessage, (parentId) => ({ input: { conversationId: aliceConversation, parentId, role: 'USER', content: 'branch?' } })],
    ];
    for (const [name, query, vars] of parentProbes) {
      const missing = await badInput(alice, query, vars(MISSING_ID), 'parentId');
      for (const parentId of [malloryMessage.userMessage.id, malloryMessage.assistantMessage.id, other.users[0]!.id, other.replies[0]!.id]) {
        const response = await badInput(alice, query, vars(parentId), 'parentId');
        expect(same(response, parentId), `${name} under ${parentId}`).toEqual(same(missing, MISSING_ID));
      }
    }
    // Mallory answering under Alice's messages, in her own conversation or with none named.
    for (const conversationId of [malloryConversation, undefined]) {
      const missing = await badInput(mallory, Q.sendMessage, { input: { conversationId, parentId: MISSING_ID, content: 'x' } }, 'parentId');
      for (const id of aliceIds) {
        const response = await badInput(mallory, Q.sendMessage, { input: { conversationId, parentId: id, content: 'x' } }, 'parentId');
        expect(same(response, id)).toEqual(same(missing, MISSING_ID));
      }
    }
    const missingAdd = await badInput(mallory, Q.addMessage, { input: { conversationId: malloryConversation, parentId: MISSING_ID, role: 'SYSTEM', content: 'x' } }, 'parentId');
    for (const id of aliceIds) {
      const response = await badInput(mallory, Q.addMessage, { input: { conversationId: malloryConversation, parentId: id, role: 'SYSTEM', content: 'x' } }, 'parentId');
      expect(same(response, id)).toEqual(same(missingAdd, MISSING_ID));
    }

    await sleep(300);
    expect(model.chatRequests.length, 'no model call from any refused request').toBe(calls);
    expect(await snapshot()).toEqual(before);
  });

  it('regenerate of anything but an assistant reply to a user message is BAD_USER_INPUT on messageId; content rules hold for edits', async () => {
    const { id: conversationId, users, replies } = await conversationOf(1, 'Refusals');
    const sys = await addMessage({ conversationId, role: 'SYSTEM', content: 'A system note.' });
    const assistantAfterSystem = await addMessage({ conversationId, role: 'ASSISTANT', content: 'Said after a system note.' });
    const rootAssistant = await addMessage({ role: 'ASSISTANT', content: 'An assistant root.' });
    const before = await rows(conversationId);
    const calls = model.chatRequests.length;

    for (const id of [users[0]!.id, sys.id, assistantAfterSystem.id, rootAssistant.id]) {
      await badInput(alice, Q.regenerate, { input: { messageId: id } }, 'messageId');
    }
    for (const content of ['', '   ']) {
      await badInput(alice, Q.editMessage, { input: { messageId: users[0]!.id, content } }, 'content');
      await badInput(alice, Q.editMessage, { input: { messageId: replies[0]!.id, content } }, 'content');
    }
    await sleep(200);
    expect(model.chatRequests.length).toBe(calls);
    expect(await rows(conversationId)).toBe(before);
  });

  // ---------------------------------------------------------------- live events

  /** conversationEvents over SSE, collected until `stop`. */
  async function watchEvents(token: string, conversationId: string, afterSeq: number) {
    type Event = { seq: number; kind: string; messageId: string | null; conversationId: string };
    const events: Event[] = [];
    const abort = new AbortController();
    const res = await fetch(nextUrl(), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: Q.conversationEvents, variables: { id: conversationId, afterSeq } }),
      signal: abort.signal,
    });
    expect(res.status).toBe(200);
    const reading = (async () => {
      const decoder = new TextDecoder();
      let buffer = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true }).replace(/\r\n/g, '\n');
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const lines = buffer.slice(0, end).split('\n');
          buffer = buffer.slice(end + 2);
          if (lines.find((l) => l.startsWith('event:'))?.slice(6).trim() !== 'next') continue;
          const payload = JSON.parse(lines.filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n')) as { data?: { conversationEvents: Event }; errors?: unknown };
          expect(payload.errors).toBeUndefined();
          events.push(payload.data!.conversationEvents);
        }
      }
    })().catch(() => {});
    return {
      events,
      /** Waits until `count` events have come. */
      async until(count: number): Promise<Event[]> {
        const deadline = Date.now() + 10_000;
        while (events.length < count && Date.now() < deadline) await sleep(10);
        expect(events.length, JSON.stringify(events)).toBeGreaterThanOrEqual(count);
        return events;
      },
      async stop() {
        abort.abort();
        await reading;
      },
    };
  }

  it('live events: MESSAGE_ADDED per new message, BRANCH_SWITCHED, one MESSAGE_DELETED naming the subtree root', async () => {
    const { id: conversationId, users, replies } = await conversationOf(1, 'Events');
    const [u1] = users as [Msg];
    const [a1] = replies as [Msg];
    await sleep(100);
    const { conversation } = await ok<{ conversation: { lastEventSeq: number } }>(alice, Q.lastEventSeq, { id: conversationId });
    const first = conversation.lastEventSeq + 1;
    const watch = await watchEvents(alice, conversationId, conversation.lastEventSeq);
    try {
      const regen = await regenerate({ messageId: a1.id }, 'Regenerated, with events.');
      const sibling = regen.assistantMessage.id;
      await watch.until(2);
      await switchBranch(a1.id);
      await watch.until(3);
      const edited = await editUser(u1.id, 'U1, edited with events', 'Edited reply, with events.');
      await watch.until(6);
      const sys = await addMessage({ conversationId, role: 'SYSTEM', content: 'An event note.' });
      await watch.until(7);
      const { editMessage: sysEdit } = await ok<{ editMessage: EditPayload }>(alice, Q.editMessage, { input: { messageId: sys.id, content: 'An edited note.' } });
      await watch.until(8);
      const deleted = await deleteMessage(edited.userMessage.id);
      expect(sorted(deleted.deletedIds)).toEqual(sorted([edited.userMessage.id, edited.assistantMessage.id, sys.id, sysEdit.userMessage.id]));
      await watch.until(9);
      await sleep(300);
      const seen = watch.events.map(({ seq, kind, messageId, conversationId: c }) => ({ seq, kind, ...(kind === 'BRANCH_SWITCHED' ? {} : { messageId }), c }));
      const expected = [
        { kind: 'MESSAGE_ADDED', messageId: sibling },
        { kind: 'MESSAGE_UPDATED', messageId: sibling },
        { kind: 'BRANCH_SWITCHED' },
        { kind: 'MESSAGE_ADDED', messageId: edited.userMessage.id },
        { kind: 'MESSAGE_ADDED', messageId: edited.assistantMessage.id },
        { kind: 'MESSAGE_UPDATED', messageId: edited.assistantMessage.id },
        { kind: 'MESSAGE_ADDED', messageId: sys.id },
        { kind: 'MESSAGE_ADDED', messageId: sysEdit.userMessage.id },
        { kind: 'MESSAGE_DELETED', messageId: edited.userMessage.id },
      ].map((e, i) => ({ seq: first + i, ...e, c: conversationId }));
      expect(seen).toEqual(expected);
    } finally {
      await watch.stop();
    }
  });

  // ---------------------------------------------------------------- 7. idempotency

  it('regenerate and editMessage with one clientMessageId: 5 concurrent calls give one sibling and one model call', async () => {
    const { id: conversationId, users, replies } = await conversationOf(1, 'Retries');
    const [u1] = users as [Msg];
    const [a1] = replies as [Msg];

    model.enqueue({ tokens: ['once', ' only'], delayMs: 20 });
    let calls = model.chatRequests.length;
    const regenerated = await Promise.all(Array.from({ length: 5 }, () => request<{ regenerate: Payload }>(alice, Q.regenerate, { input: { messageId: a1.id, clientMessageId: 'regen-key' } })));
    expect(regenerated.map((r) => r.errors)).toEqual([undefined, undefined, undefined, undefined, undefined]);
    const pairs = regenerated.map((r) => [r.data!.regenerate.userMessage.id, r.data!.regenerate.assistantMessage.id]);
    expect(new Set(pairs.map((p) => p.join('/'))).size).toBe(1);
    const [userId, siblingId] = pairs[0] as [string, string];
    expect(userId).toBe(u1.id);
    expect(siblingId).not.toBe(a1.id);
    expect(await follow(alice, siblingId)).toMatchObject({ status: 'COMPLETE', content: 'once only' });
    await sleep(300);
    expect(onlyPromptSince(calls)).toEqual([user('U1 question')]);
    const again = await ok<{ regenerate: Payload }>(alice, Q.regenerate, { input: { messageId: a1.id, clientMessageId: 'regen-key' } });
    expect([again.regenerate.userMessage.id, again.regenerate.assistantMessage.id]).toEqual([u1.id, siblingId]);
    expect(model.chatRequests.length - calls).toBe(1);
    const path = await expectPath(conversationId, [u1, { id: siblingId }]);
    expect(path[1]!.siblingIds).toEqual([a1.id, siblingId]);
    expect(await server.app.db.prisma.message.count({ where: { conversationId } })).toBe(3);

    model.enqueue({ tokens: ['edited', ' once'], delayMs: 20 });
    calls = model.chatRequests.length;
    const edits = await Promise.all(Array.from({ length: 5 }, () => request<{ editMessage: EditPayload }>(alice, Q.editMessage, { input: { messageId: u1.id, content: 'U1 once more', clientMessageId: 'edit-key' } })));
    expect(edits.map((r) => r.errors)).toEqual([undefined, undefined, undefined, undefined, undefined]);
    const editPairs = edits.map((r) => [r.data!.editMessage.userMessage.id, r.data!.editMessage.assistantMessage?.id]);
    expect(new Set(editPairs.map((p) => p.join('/'))).size).toBe(1);
    const [editedId, editReplyId] = editPairs[0] as [string, string];
    expect(editReplyId).toBeTruthy();
    expect(await follow(alice, editReplyId)).toMatchObject({ status: 'COMPLETE', content: 'edited once' });
    await sleep(300);
    expect(onlyPromptSince(calls)).toEqual([user('U1 once more')]);
    const editAgain = await ok<{ editMessage: EditPayload }>(alice, Q.editMessage, { input: { messageId: u1.id, content: 'U1 once more', clientMessageId: 'edit-key' } });
    expect([editAgain.editMessage.userMessage.id, editAgain.editMessage.assistantMessage?.id]).toEqual([editedId, editReplyId]);
    expect(model.chatRequests.length - calls).toBe(1);
    const editedPath = await expectPath(conversationId, [{ id: editedId }, { id: editReplyId }]);
    expect(editedPath[0]!.siblingIds).toEqual([u1.id, editedId]);
    expect(await server.app.db.prisma.message.count({ where: { conversationId } })).toBe(5);

    // A SYSTEM edit with a key: one sibling, no model call.
    const sys = await addMessage({ conversationId, role: 'SYSTEM', content: 'Note.' });
    calls = model.chatRequests.length;
    const sysEdits = await Promise.all(Array.from({ length: 5 }, () => request<{ editMessage: EditPayload }>(alice, Q.editMessage, { input: { messageId: sys.id, content: 'Note, edited.', clientMessageId: 'sys-edit-key' } })));
    expect(sysEdits.map((r) => r.errors)).toEqual([undefined, undefined, undefined, undefined, undefined]);
    expect(new Set(sysEdits.map((r) => r.data!.editMessage.userMessage.id)).size).toBe(1);
    expect(sysEdits.map((r) => r.data!.editMessage.assistantMessage)).toEqual([null, null, null, null, null]);
    const sysPath = await expectPath(conversationId, [{ id: editedId }, { id: editReplyId }, { id: sysEdits[0]!.data!.editMessage.userMessage.id }]);
    expect(sysPath[2]!.siblingIds).toEqual([sys.id, sysPath[2]!.id]);
    await sleep(200);
    expect(model.chatRequests.length).toBe(calls);
    expect(await server.app.db.prisma.message.count({ where: { conversationId } })).toBe(7);
  });

  it('no answer was a masked internal error', () => {
    expect(everyResponse.length).toBeGreaterThan(100);
    expect(everyResponse.filter((text) => /unexpected error/i.test(text))).toEqual([]);
  });
});
