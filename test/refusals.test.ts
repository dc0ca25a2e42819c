// A client's bad input is refused with a coded error naming what was wrong, on every database
// and transport; it is never an internal error, and nothing is silently changed on the way to
// the database and back.
import { randomBytes } from 'node:crypto';
import { parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALL_PROVIDERS } from './support/databases.ts';
import { startParley, tokenFor, TEST_JWT_SECRET, type TestServer } from './support/parley.ts';
import { REDIS_URL, redisNamespace } from './support/redis.ts';
import { subscribeSse, subscribeWs, wsClient } from './support/subscriptions.ts';

type GraphQLErrorJson = { message: string; extensions?: { code?: string } };
type Answer = { status: number; data?: Record<string, unknown> | null; errors?: GraphQLErrorJson[] };

/** POSTs `body` (JSON text, so that it can hold what JSON.stringify cannot write, e.g. `1e999`). */
async function postRaw(server: TestServer, token: string, body: string): Promise<Answer> {
  const res = await fetch(server.graphqlUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body });
  return { status: res.status, ...((await res.json()) as object) };
}

// JSON.stringify writes a lone surrogate as a `\ud800` escape, so it reaches the server intact.
const post = (server: TestServer, token: string, query: string, variables: Record<string, unknown> = {}) => postRaw(server, token, JSON.stringify({ query, variables }));

/** The single error of an answer, which must be a coded refusal naming `field`. */
function expectRefusal(answer: Answer, code: string, field?: string): void {
  expect(answer.status, JSON.stringify(answer)).toBeLessThan(500);
  expect(answer.errors, JSON.stringify(answer)).toHaveLength(1);
  const [error] = answer.errors!;
  expect(error!.extensions?.code, error!.message).toBe(code);
  if (field) expect(error!.message.startsWith(`${field}:`), error!.message).toBe(true);
}

const NUL = 'a\u0000b';
const LONE_HIGH = 'a\ud800b';
const LONE_LOW = 'a\udc00b';
const UNSTORABLE = [NUL, LONE_HIGH, LONE_LOW, '\ud83d', 'x\ude00'];

const CreateConversation = `mutation($title: String) { createConversation(input: { title: $title }) { id title } }`;
const UpdateConversation = `mutation($input: UpdateConversationInput!) { updateConversation(input: $input) { id title } }`;
const AddMessage = `mutation($input: AddMessageInput!) { addMessage(input: $input) { id content metadata tokenCount } }`;
const SendMessage = `mutation($input: SendMessageInput!) { sendMessage(input: $input) { conversation { id } userMessage { id } assistantMessage { id } } }`;
const UpdateUserConfig = `mutation($input: UpdateUserConfigInput!) { updateUserConfig(input: $input) { model baseUrl systemPrompt presetId hasApiKey } }`;
const Messages = `query($id: ID!, $after: String, $before: String, $first: Int, $last: Int) {
  conversation(id: $id) { messages(after: $after, before: $before, first: $first, last: $last) { edges { cursor node { id content metadata } } } } }`;
const Conversations = `query($after: String) { conversations(after: $after) { edges { cursor node { id } } } }`;
const MessageStream = `subscription($messageId: ID!, $afterSeq: Int) { messageStream(messageId: $messageId, afterSeq: $afterSeq) { seq done status } }`;

describe.each(ALL_PROVIDERS)('refusals on %s', (provider) => {
  let server: TestServer;
  let token: string;
  let conversationId: string;
  const redis = redisNamespace();

  beforeAll(async () => {
    server = await startParley({
      provider,
      env: {
        AUTH_JWT_SECRET: TEST_JWT_SECRET,
        REDIS_URL,
        REDIS_KEY_PREFIX: redis.prefix,
        CONFIG_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
        ALLOW_CUSTOM_BASE_URL: 'true',
      },
    });
    token = await tokenFor(`refusals-${provider}`);
    const created = await post(server, token, CreateConversation, { title: 'refusals' });
    conversationId = (created.data!.createConversation as { id: string }).id;
    await post(server, token, AddMessage, { input: { conversationId, role: 'USER', content: 'first' } });
  });
  afterAll(async () => {
    await server?.stop();
    await redis.cleanup();
  });

  const rowCounts = async () => ({
    conversations: await server.app.db.prisma.conversation.count(),
    messages: await server.app.db.prisma.message.count(),
  });

  it('a message cursor past the 32-bit seq range is BAD_USER_INPUT naming the argument', async () => {
    for (const [argument, seq] of [['after', '9999999999'], ['before', '2147483648'], ['after', '4294967295']] as const) {
      const cursor = Buffer.from(`message:${seq}`).toString('base64url');
      expectRefusal(await post(server, token, Messages, { id: conversationId, [argument]: cursor }), 'BAD_USER_INPUT', argument);
    }
    // The largest seq still positions a page.
    const last = await post(server, token, Messages, { id: conversationId, before: Buffer.from('message:2147483647').toString('base64url') });
    expect(last.errors).toBeUndefined();
    expect((last.data!.conversation as { messages: { edges: unknown[] } }).messages.edges).toHaveLength(1);
  });

  it('a conversation cursor past the dates databases hold, or with an unstorable id, is BAD_USER_INPUT', async () => {
    for (const text of ['conversation:999999999999999:x', 'conversation:253402300800000:x', `conversation:1:${NUL}`]) {
      expectRefusal(await post(server, token, Conversations, { after: Buffer.from(text).toString('base64url') }), 'BAD_USER_INPUT', 'after');
    }
    // The last millisecond of year 9999 is a cursor like any other: every conversation is before it.
    const latest = await post(server, token, Conversations, { after: Buffer.from('conversation:253402300799999:x').toString('base64url') });
    expect(latest.errors).toBeUndefined();
    expect((latest.data!.conversations as { edges: { node: { id: string } }[] }).edges.map((e) => e.node.id)).toContain(conversationId);
  });

  it('metadata nested past 31 levels is BAD_USER_INPUT, however deep, and 31 levels are stored exactly', async () => {
    const before = await rowCounts();
    // { a: [{ a: [ … ] }] }: objects and arrays in turn, an object outermost.
    const nested = (depth: number) => {
      let value: unknown = 'leaf';
      for (let level = depth - 1; level >= 0; level--) value = level % 2 === 0 ? { a: value } : [value];
      return value;
    };
    const pathAt31 = Array.from({ length: 31 }, (_, level) => (level % 2 === 0 ? 'a' : '0')).join('.');
    for (const depth of [32, 33, 3000]) {
      expectRefusal(await post(server, token, AddMessage, { input: { conversationId, role: 'USER', content: 'deep', metadata: nested(depth) } }), 'BAD_USER_INPUT', `input.metadata.${pathAt31}`);
    }
    // Deeper than JSON.stringify can recurse: the body parser accepts it, the check must not blow up.
    const arrays = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
    const body = `{"query":${JSON.stringify(AddMessage)},"variables":{"input":{"conversationId":"${conversationId}","role":"USER","content":"deep","metadata":${arrays}}}}`;
    expectRefusal(await postRaw(server, token, body), 'BAD_USER_INPUT', `input.metadata${'.0'.repeat(31)}`);
    expect(await rowCounts()).toEqual(before);

    const deepest = nested(31);
    const stored = await post(server, token, AddMessage, { input: { conversationId, role: 'USER', content: 'deep', metadata: deepest } });
    expect(stored.errors).toBeUndefined();
    expect((stored.data!.addMessage as { metadata: unknown }).metadata).toEqual(deepest);
  });

  it('U+0000 and lone surrogates in every text input are BAD_USER_INPUT naming the field, and nothing is written', async () => {
    const before = await rowCounts();
    const configBefore = await post(server, token, `{ userConfig { model baseUrl systemPrompt presetId hasApiKey } }`);
    const cases: [string, string, (text: string) => Record<string, unknown>][] = [
      ['input.content', AddMessage, (text) => ({ input: { conversationId, role: 'USER', content: text } })],
      ['input.content', AddMessage, (text) => ({ input: { role: 'USER', content: text } })],
      ['input.metadata.note', AddMessage, (text) => ({ input: { conversationId, role: 'USER', content: 'hi', metadata: { note: text } } })],
      ['input.metadata.list.1', AddMessage, (text) => ({ input: { conversationId, role: 'USER', content: 'hi', metadata: { list: ['ok', text] } } })],
      ['input.metadata.nested', AddMessage, (text) => ({ input: { conversationId, role: 'USER', content: 'hi', metadata: { nested: { [text]: 1 } } } })],
      ['input.metadata', AddMessage, (text) => ({ input: { conversationId, role: 'USER', content: 'hi', metadata: { [text]: 'value' } } })],
      ['input.title', CreateConversation, (text) => ({ title: text })],
      ['input.title', UpdateConversation, (text) => ({ input: { id: conversationId, title: text } })],
      ['input.content', SendMessage, (text) => ({ input: { conversationId, content: text } })],
      ['input.clientMessageId', SendMessage, (text) => ({ input: { conversationId, content: 'hi', clientMessageId: text } })],
      ['input.presetId', SendMessage, (text) => ({ input: { conversationId, content: 'hi', presetId: text } })],
      ['input.model', SendMessage, (text) => ({ input: { conversationId, content: 'hi', model: text } })],
      ['input.model', UpdateUserConfig, (text) => ({ input: { model: text } })],
      ['input.presetId', UpdateUserConfig, (text) => ({ input: { presetId: text } })],
      ['input.baseUrl', UpdateUserConfig, (text) => ({ input: { baseUrl: `https://api.example.com/v1/${text}` } })],
      ['input.apiKey', UpdateUserConfig, (text) => ({ input: { apiKey: `sk-${text}` } })],
      ['input.systemPrompt', UpdateUserConfig, (text) => ({ input: { systemPrompt: text } })],
    ];
    for (const [field, query, variables] of cases) {
      for (const text of UNSTORABLE) {
        const answer = await post(server, token, query, variables(text));
        expectRefusal(answer, 'BAD_USER_INPUT', field);
      }
    }
    expect(await rowCounts()).toEqual(before);
    expect(await post(server, token, `{ userConfig { model baseUrl systemPrompt presetId hasApiKey } }`)).toEqual(configBefore);
  });

  it('an id holding U+0000 or a lone surrogate matches nothing, exactly like a missing id', async () => {
    const before = await rowCounts();
    const reads: [string, Record<string, unknown>, (answer: Answer) => void][] = [
      [`query($id: ID!) { conversation(id: $id) { id } }`, {}, (a) => expect(a).toEqual({ status: 200, data: { conversation: null } })],
      [`query($id: ID!) { history(conversationId: $id) { content } }`, {}, (a) => expectRefusal(a, 'NOT_FOUND')],
      [`mutation($id: ID!) { deleteConversation(id: $id) }`, {}, (a) => expectRefusal(a, 'NOT_FOUND')],
      [`mutation($id: ID!) { clearMessages(conversationId: $id) }`, {}, (a) => expectRefusal(a, 'NOT_FOUND')],
      [`mutation($id: ID!) { stopGeneration(messageId: $id) { id } }`, {}, (a) => expectRefusal(a, 'NOT_FOUND')],
      [`mutation($id: ID!) { updateConversation(input: { id: $id, title: "x" }) { id } }`, {}, (a) => expectRefusal(a, 'NOT_FOUND')],
      [`mutation($id: ID!) { addMessage(input: { conversationId: $id, role: USER, content: "x" }) { id } }`, {}, (a) => expectRefusal(a, 'NOT_FOUND')],
      [`mutation($id: ID!) { sendMessage(input: { conversationId: $id, content: "x" }) { userMessage { id } } }`, {}, (a) => expectRefusal(a, 'NOT_FOUND')],
    ];
    for (const id of [...UNSTORABLE, `${conversationId}\u0000`, `${conversationId.slice(0, -1)}\ud800`]) {
      for (const [query, extra, check] of reads) check(await post(server, token, query, { id, ...extra }));
      for (const transport of ['ws', 'sse'] as const) {
        const client = transport === 'ws' ? wsClient(server.graphqlUrl, token) : undefined;
        const sub = client ? subscribeWs(client, parse(MessageStream), { messageId: id }) : subscribeSse(server.graphqlUrl, parse(MessageStream), { messageId: id }, token);
        await sub.done.catch(() => {});
        await client?.dispose();
        expect(sub.events, transport).toEqual([]);
        expect(JSON.stringify(sub.errors), transport).toContain('NOT_FOUND');
      }
    }
    expect(await rowCounts()).toEqual(before);
  });

  it('out-of-range integers are BAD_USER_INPUT or answered correctly, never an internal error', async () => {
    const max = 2 ** 31 - 1;
    expectRefusal(await post(server, token, `query($id: ID!) { history(conversationId: $id, limit: ${max}) { content } }`, { id: conversationId }), 'BAD_USER_INPUT', 'limit');
    expectRefusal(await post(server, token, UpdateUserConfig, { input: { maxTokens: max } }), 'BAD_USER_INPUT', 'input.maxTokens');
    expectRefusal(await post(server, token, UpdateUserConfig, { input: { contextTokens: max } }), 'BAD_USER_INPUT', 'input.contextTokens');
    expectRefusal(await post(server, token, SendMessage, { input: { conversationId, content: 'hi', maxTokens: max } }), 'BAD_USER_INPUT', 'input.maxTokens');
    expectRefusal(await post(server, token, Messages, { id: conversationId, last: max }), 'BAD_USER_INPUT', 'last');
    const stored = await post(server, token, AddMessage, { input: { conversationId, role: 'USER', content: 'counted', tokenCount: max } });
    expect(stored.errors).toBeUndefined();
    expect((stored.data!.addMessage as { tokenCount: number }).tokenCount).toBe(max);
    // Past the Int range GraphQL itself refuses the variable: a client error, not a server one.
    for (const variables of [{ id: conversationId, first: max + 1 }, { id: conversationId, last: -(2 ** 31) - 1 }]) {
      const answer = await post(server, token, Messages, variables);
      expect(answer.status).toBe(400);
      expect(JSON.stringify(answer)).not.toMatch(/INTERNAL_SERVER_ERROR|Unexpected error/);
    }
  });

  it('messageStream: afterSeq past any seq a reply can have is BAD_USER_INPUT over both transports', async () => {
    const sent = await post(server, token, SendMessage, { input: { conversationId, content: 'hi', maxTokens: 1 } });
    const messageId = (sent.data!.sendMessage as { assistantMessage: { id: string } }).assistantMessage.id;
    for (const afterSeq of [2 ** 31 - 1, 10_000, -2]) {
      for (const transport of ['ws', 'sse'] as const) {
        const client = transport === 'ws' ? wsClient(server.graphqlUrl, token) : undefined;
        const variables = { messageId, afterSeq };
        const sub = client ? subscribeWs(client, parse(MessageStream), variables) : subscribeSse(server.graphqlUrl, parse(MessageStream), variables, token);
        await sub.done.catch(() => {});
        await client?.dispose();
        expect(sub.events, `${transport} ${afterSeq}`).toEqual([]);
        const errors = JSON.stringify(sub.errors);
        expect(errors, `${transport} ${afterSeq}`).toContain('BAD_USER_INPUT');
        expect(errors).toContain('afterSeq: must be between -1 and 9999');
      }
    }
    // The last seq a reply can have still follows to the end.
    const client = wsClient(server.graphqlUrl, token);
    const sub = subscribeWs<{ messageStream: { done: boolean } }>(client, parse(MessageStream), { messageId, afterSeq: 9999 });
    await sub.done;
    await client.dispose();
    expect(sub.errors).toEqual([]);
    expect(sub.events.at(-1)?.messageStream.done).toBe(true);
  });

  it('an own __proto__ key in metadata is kept exactly, from the database and from the warm cache', async () => {
    const created = await post(server, token, CreateConversation, { title: 'proto' });
    const id = (created.data!.createConversation as { id: string }).id;
    const text = '{"__proto__":{"polluted":true},"list":[{"__proto__":null},{"__proto__":[1,"two"]}],"plain":{"constructor":"c","toString":"t"}}';
    const expected = JSON.parse(text) as unknown;
    const body = `{"query":${JSON.stringify(AddMessage)},"variables":{"input":{"conversationId":"${id}","role":"USER","content":"proto","metadata":${text}}}}`;
    const added = await postRaw(server, token, body);
    expect(added.errors).toBeUndefined();
    expect(Object.keys((added.data!.addMessage as { metadata: object }).metadata)).toContain('__proto__');
    expect((added.data!.addMessage as { metadata: unknown }).metadata).toEqual(expected);
    const messageId = (added.data!.addMessage as { id: string }).id;

    const row = await server.app.db.prisma.message.findUniqueOrThrow({ where: { id: messageId } });
    expect(row.metadata).toEqual(expected);
    expect(Object.hasOwn(row.metadata as object, '__proto__')).toBe(true);

    const hits = async () => ((await (await fetch(`${server.url}/health`)).json()) as { redis: { historyCache: { hits: number } } }).redis.historyCache.hits;
    const hitsBefore = await hits();
    // Newest pages come from the cache once a read filled it (the fill is not awaited).
    for (let i = 0; i < 20 && (await hits()) < hitsBefore + 2; i++) {
      const read = await post(server, token, Messages, { id, last: 5 });
      const [edge] = (read.data!.conversation as { messages: { edges: { node: { metadata: unknown } }[] } }).messages.edges;
      expect(edge!.node.metadata).toEqual(expected);
      expect(Object.keys(edge!.node.metadata as object)).toContain('__proto__');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(await hits()).toBeGreaterThanOrEqual(hitsBefore + 2);

    // Written as a literal in the document, the key is kept too.
    const literal = await post(server, token, `mutation { addMessage(input: { conversationId: "${id}", role: USER, content: "literal", metadata: { __proto__: { polluted: true }, n: [1] } }) { id } }`);
    expect(literal.errors).toBeUndefined();
    const literalRow = await server.app.db.prisma.message.findUniqueOrThrow({ where: { id: (literal.data!.addMessage as { id: string }).id } });
    expect(Object.hasOwn(literalRow.metadata as object, '__proto__')).toBe(true);
    expect(literalRow.metadata).toEqual(JSON.parse('{"__proto__":{"polluted":true},"n":[1]}'));
  });

  it('a title cut from the first words never splits a character in two', async () => {
    // One word of 90 units with an emoji across the cut at 79: the cut moves before it.
    const content = `${'x'.repeat(78)}😀${'x'.repeat(10)}`;
    const sent = await post(server, token, SendMessage, { input: { content, maxTokens: 1 } });
    const id = (sent.data!.sendMessage as { conversation: { id: string } }).conversation.id;
    let title: string | null = null;
    for (let i = 0; i < 100 && title === null; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      title = ((await post(server, token, `query($id: ID!) { conversation(id: $id) { title } }`, { id })).data!.conversation as { title: string | null }).title;
    }
    expect(title).toBe(`${'x'.repeat(78)}…`);
  });

  it('a number JSON cannot carry (1e999 overflows to Infinity) is BAD_USER_INPUT, not null', async () => {
    const before = await rowCounts();
    const body = `{"query":${JSON.stringify(AddMessage)},"variables":{"input":{"conversationId":"${conversationId}","role":"USER","content":"big","metadata":{"ok":1,"big":[0,-1e999]}}}}`;
    expectRefusal(await postRaw(server, token, body), 'BAD_USER_INPUT', 'input.metadata.big.1');
    const literal = `mutation { addMessage(input: { conversationId: "${conversationId}", role: USER, content: "big", metadata: { big: 1e999 } }) { id } }`;
    expectRefusal(await post(server, token, literal), 'BAD_USER_INPUT', 'input.metadata.big');
    expect(await rowCounts()).toEqual(before);
  });
});

// What the README promises for a document past an armor limit.
const LIMIT_REFUSAL_CODE = 'GRAPHQL_VALIDATION_FAILED';

describe('refusals of the GraphQL layer', () => {
  let server: TestServer;
  let token: string;
  const logLines: string[] = [];

  beforeAll(async () => {
    server = await startParley({ env: { AUTH_JWT_SECRET: TEST_JWT_SECRET }, logLines });
    token = await tokenFor('layer');
  });
  afterAll(() => server?.stop());

  const nest = (depth: number): string => (depth === 0 ? 'id' : `messages { edges { node { conversation { ${nest(depth - 1)} } } } }`);
  const refusedDocuments: [string, string][] = [
    ['depth', `subscription { messageStream(messageId: "x") { message { conversation { ${nest(3)} } } } }`],
    ['aliases', `subscription { messageStream(messageId: "x") { ${Array.from({ length: 16 }, (_, i) => `a${i}: seq`).join(' ')} } }`],
    ['tokens', `subscription { messageStream(messageId: "x") { ${Array.from({ length: 2100 }, () => 'seq').join(' ')} } }`],
    ['directives', `subscription { messageStream(messageId: "x") { seq ${Array.from({ length: 51 }, () => '@include(if: true)').join(' ')} } }`],
    ['cost', `subscription { messageStream(messageId: "x") { message { conversation { messages(first: 100) { edges { node { conversation { messages(first: 100) { edges { node { id } } } } } } } } } } }`],
  ];

  it.each(refusedDocuments)('an armor refusal (%s) carries its code over HTTP, SSE and graphql-ws', async (_, document) => {
    const http = await post(server, token, document);
    expectRefusal(http, LIMIT_REFUSAL_CODE);

    const sse = subscribeSse(server.graphqlUrl, parse(document, { noLocation: true }), {}, token);
    await sse.done.catch(() => {});
    expect(sse.events).toEqual([]);
    expect(JSON.stringify(sse.errors)).toContain(LIMIT_REFUSAL_CODE);

    const client = wsClient(server.graphqlUrl, token);
    const ws = subscribeWs(client, parse(document, { noLocation: true }), {});
    await ws.done.catch(() => {});
    await client.dispose();
    expect(ws.events).toEqual([]);
    expect(JSON.stringify(ws.errors)).toContain(LIMIT_REFUSAL_CODE);
  });

  it('variables of the wrong type and refused input are not logged as errors', async () => {
    logLines.length = 0;
    const wrongType = await post(server, token, `query($id: ID!, $limit: Int) { history(conversationId: $id, limit: $limit) { content } }`, { id: 'x', limit: 'x' });
    expect(wrongType.status).toBe(400);
    expect(JSON.stringify(wrongType)).not.toMatch(/INTERNAL_SERVER_ERROR|Unexpected error/);
    expectRefusal(await post(server, token, `{ history(conversationId: "x", limit: 0) { content } }`), 'BAD_USER_INPUT', 'limit');
    expectRefusal(await post(server, token, `{ history(conversationId: "x") { content } }`), 'NOT_FOUND');
    const errorLines = logLines.map((line) => JSON.parse(line) as { level: number; msg: string }).filter((line) => line.level >= 50);
    expect(errorLines).toEqual([]);
  });
});
