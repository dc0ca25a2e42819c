// sendMessage → model → messageStream on one instance, against the scripted fake model through
// the real openai client: the happy path, coalescing, context, idempotency, every failure mode,
// stopping, settings, titles, and secrecy of the user's API key.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { graphql } from './generated/gql.ts';
import { FakeModel } from './support/fake-model.ts';
import { errorOf, startParley, tokenFor, TEST_JWT_SECRET, type GraphQLClient, type TestServer } from './support/parley.ts';
import { assertWellFormed, finishedMessage, followSse, followWs, SendMessage, StopGeneration, waitFor } from './support/streams.ts';
import { subscribeWs, wsClient } from './support/subscriptions.ts';

const UpdateUserConfig = graphql(`
  mutation UpdateUserConfig($input: UpdateUserConfigInput!) {
    updateUserConfig(input: $input) { presetId model baseUrl hasApiKey maxTokens temperature systemPrompt contextTokens }
  }
`);
const Settings = graphql(`
  query Settings { userConfig { presetId model baseUrl hasApiKey maxTokens temperature systemPrompt contextTokens } modelPresets { id name model baseUrl } }
`);
const MessageDetails = graphql(`
  query MessageDetails($id: ID!) {
    conversation(id: $id) { title messages(last: 10) { edges { node { id role content status model finishReason promptTokens completionTokens error metadata } } } }
  }
`);

const DeleteConversation = graphql(`
  mutation DeleteConversation($id: ID!) { deleteConversation(id: $id) }
`);
const NarrowStream = graphql(`
  subscription NarrowStream($messageId: ID!) { messageStream(messageId: $messageId) { n: seq text: delta done } }
`);

const ENCRYPTION_KEY = 'a'.repeat(64);
const USER_API_KEY = 'sk-user-secret-4c1d0e5f-do-not-leak';

describe('chat on one instance', () => {
  let model: FakeModel;
  let server: TestServer;
  let api: GraphQLClient;
  let token: string;
  const logLines: string[] = [];
  const responses: string[] = [];

  beforeAll(async () => {
    model = await FakeModel.start();
    server = await startParley({
      logLines,
      env: {
        AUTH_JWT_SECRET: TEST_JWT_SECRET,
        LLM_API_URL: model.url,
        LLM_MODEL: 'fake-model',
        LLM_API_KEY: 'sk-server-key',
        LLM_MAX_RETRIES: '0',
        LLM_TIMEOUT_MS: '1500',
        LLM_IDLE_TIMEOUT_MS: '1500', // long enough for a loaded machine's pauses between chunks
        STREAM_FLUSH_MS: '25',
        CONFIG_ENCRYPTION_KEY: ENCRYPTION_KEY,
        LLM_PRESETS: JSON.stringify([{ id: 'other', name: 'Other', baseUrl: model.url, model: 'other-model' }]),
        // The custom endpoint test aims at the fake model, on loopback.
        ALLOW_CUSTOM_BASE_URL: 'true',
        LLM_ALLOWED_HOSTS: '127.0.0.1',
      },
    });
    token = await tokenFor('chatter');
    api = server.client(token);
  });
  afterAll(async () => {
    await server?.stop();
    await model?.close();
  });
  beforeEach(() => model.setDefault({ tokens: ['Hello', ',', ' world', '!'] }));

  async function send(input: { content: string; conversationId?: string; clientMessageId?: string; presetId?: string; model?: string; temperature?: number; maxTokens?: number }) {
    const result = await api.mutate(SendMessage, { input });
    responses.push(JSON.stringify(result.data ?? result.error));
    expect(result.error?.message).toBeUndefined();
    return result.data!.sendMessage;
  }

  it('streams a reply to a graphql-ws subscriber and saves it', async () => {
    model.enqueue({ tokens: ['The', ' answer', ' is', ' 42', '.'], delayMs: 5, usage: { prompt_tokens: 17, completion_tokens: 5 } });
    const sent = await send({ content: 'What is the answer?' });
    expect(sent.userMessage).toMatchObject({ role: 'USER', content: 'What is the answer?', status: 'COMPLETE' });
    expect(sent.assistantMessage).toMatchObject({ role: 'ASSISTANT', content: '', status: 'STREAMING', model: 'fake-model' });

    const client = wsClient(server.graphqlUrl, token);
    const sub = followWs(client, sent.assistantMessage.id);
    await sub.done;
    await client.dispose();
    const { content, terminal } = assertWellFormed(sub.events);
    expect(content).toBe('The answer is 42.');
    expect(terminal).toMatchObject({ status: 'COMPLETE', error: null, message: { status: 'COMPLETE', content, finishReason: 'stop', model: 'fake-model', promptTokens: 17, completionTokens: 5 } });
    expect(sub.events[0]!.messageStream.delta).toBe('The');
    const saved = await server.app.db.prisma.message.findUniqueOrThrow({ where: { id: sent.assistantMessage.id } });
    expect(saved).toMatchObject({ content, status: 'COMPLETE', leaseExpiresAt: null });
    expect(model.chatRequests.at(-1)!.headers.authorization).toBe('Bearer sk-server-key');
  });

  it('subscribers of one message with different selections each get their own shape, from shared events', async () => {
    // Live events are executed once per operation and shared among its subscribers: a sharing
    // bug would hand one selection's result to another, or one variable set's to another.
    model.enqueue({ tokens: ['one', ' two', ' three', ' four'], delayMs: 30 });
    const sent = await send({ content: 'count for us' });
    const id = sent.assistantMessage.id;
    const ws = wsClient(server.graphqlUrl, token);
    const full = [followWs(ws, id), followWs(ws, id), followSse(server.graphqlUrl, id, undefined, token)];
    const narrow = subscribeWs<{ messageStream: Record<string, unknown> }>(ws, NarrowStream, { messageId: id });
    const fromSecond = followWs(ws, id, 0);
    await Promise.all([...full, narrow, fromSecond].map((sub) => sub.done));
    await ws.dispose();
    const { content, terminal } = assertWellFormed(full[0]!.events);
    expect(content).toBe('one two three four');
    expect(terminal.message).toMatchObject({ id, status: 'COMPLETE', content });
    for (const other of full.slice(1)) expect(other.events).toEqual(full[0]!.events);
    expect(narrow.events.map((e) => e.messageStream)).toEqual(full[0]!.events.map(({ messageStream: e }) => ({ n: e.seq, text: e.delta, done: e.done })));
    expect(fromSecond.events).toEqual(full[0]!.events.slice(1));
  });

  it('SSE subscribers get the same events', async () => {
    model.enqueue({ tokens: ['a', 'b', 'c', 'd'], delayMs: 20 });
    const sent = await send({ content: 'letters please' });
    const ws = wsClient(server.graphqlUrl, token);
    const overWs = followWs(ws, sent.assistantMessage.id);
    const overSse = followSse(server.graphqlUrl, sent.assistantMessage.id, undefined, token);
    await Promise.all([overWs.done, overSse.done]);
    await ws.dispose();
    expect(overSse.events).toEqual(overWs.events);
    expect(assertWellFormed(overSse.events).content).toBe('abcd');
  });

  it('coalesces: the first chunk at once, then at most one event per STREAM_FLUSH_MS', async () => {
    const tokens = Array.from({ length: 60 }, (_, i) => `t${i} `);
    model.enqueue({ tokens, delayMs: 2 });
    const sent = await send({ content: 'many small tokens' });
    const client = wsClient(server.graphqlUrl, token);
    const sub = followWs(client, sent.assistantMessage.id);
    await sub.done;
    await client.dispose();
    const { content } = assertWellFormed(sub.events);
    expect(content).toBe(tokens.join(''));
    expect(sub.events[0]!.messageStream.delta).toBe('t0 ');
    // 60 tokens over ~150 ms: a 25 ms window allows about 7 events, far fewer than 60.
    expect(sub.events.length).toBeLessThan(25);
    expect(sub.events.length).toBeGreaterThan(2);
  });

  it('counts tokens itself when the provider sends no usage', async () => {
    model.enqueue({ tokens: ['one', ' two', ' three'], usage: false });
    const sent = await send({ content: 'count for me' });
    const saved = await finishedMessage(server.app.db.prisma, sent.assistantMessage.id);
    expect(saved.completionTokens).toBeGreaterThanOrEqual(3);
    expect(saved.promptTokens).toBeGreaterThan(0);
  });

  it('a subscriber joining after the end gets the whole reply replayed, then the end', async () => {
    model.enqueue({ tokens: ['late', ' but', ' complete'] });
    const sent = await send({ content: 'replay me' });
    await finishedMessage(server.app.db.prisma, sent.assistantMessage.id);
    const sse = followSse(server.graphqlUrl, sent.assistantMessage.id, undefined, token);
    await sse.done;
    expect(assertWellFormed(sse.events).content).toBe('late but complete');
    const resumed = followSse(server.graphqlUrl, sent.assistantMessage.id, 0, token);
    await resumed.done;
    const { content } = assertWellFormed(resumed.events, 1);
    expect(sse.events[0]!.messageStream.delta + content).toBe('late but complete');
  });

  it('builds the context from the system prompt, the newest messages that fit, and the new message', async () => {
    await api.ok(UpdateUserConfig, { input: { systemPrompt: 'Be brief.', contextTokens: 300 } });
    const first = await send({ content: 'x '.repeat(400) });
    await finishedMessage(server.app.db.prisma, first.assistantMessage.id);
    const conversationId = first.conversation.id;
    const second = await send({ conversationId, content: 'second question' });
    await finishedMessage(server.app.db.prisma, second.assistantMessage.id);
    const third = await send({ conversationId, content: 'third question' });
    await finishedMessage(server.app.db.prisma, third.assistantMessage.id);

    const sentToModel = model.chatRequests.at(-1)!.body.messages;
    expect(sentToModel[0]).toEqual({ role: 'system', content: 'Be brief.' });
    expect(sentToModel.at(-1)).toEqual({ role: 'user', content: 'third question' });
    // The long first question does not fit 300 tokens beside the rest; the newer turns do.
    expect(sentToModel.map((m) => m.content)).toEqual(['Be brief.', 'Hello, world!', 'second question', 'Hello, world!', 'third question']);
    const details = (await api.ok(MessageDetails, { id: conversationId })).conversation!.messages.edges.map((e) => e.node);
    const reply = details.at(-1)!;
    expect(reply.metadata).toMatchObject({ context: { includedMessages: 3, omittedMessages: 1, omittedMessageIds: [details[0]!.id] } });
    await api.ok(UpdateUserConfig, { input: { systemPrompt: null, contextTokens: null } });
  });

  it('clientMessageId: concurrent retries return the first call’s messages and call the model once', async () => {
    model.enqueue({ tokens: ['only', ' once'], delayMs: 20 });
    const before = model.chatRequests.length;
    const results = await Promise.all(Array.from({ length: 5 }, () => api.mutate(SendMessage, { input: { content: 'idempotent', clientMessageId: 'retry-1' } })));
    expect(results.map((r) => r.error)).toEqual([undefined, undefined, undefined, undefined, undefined]);
    const ids = new Set(results.map((r) => `${r.data!.sendMessage.userMessage.id}/${r.data!.sendMessage.assistantMessage.id}`));
    expect(ids.size).toBe(1);
    const assistantId = results[0]!.data!.sendMessage.assistantMessage.id;
    await finishedMessage(server.app.db.prisma, assistantId);
    const again = await send({ content: 'idempotent', clientMessageId: 'retry-1' });
    expect(again.assistantMessage.id).toBe(assistantId);
    expect(model.chatRequests.length - before).toBe(1);
    expect(await server.app.db.prisma.message.count({ where: { clientMessageId: 'retry-1' } })).toBe(1);
  });

  describe('model failures end the reply FAILED with the partial content and a clear error', () => {
    it.each([
      ['HTTP 500', { status: 500 }, /HTTP 500/, ''],
      ['HTTP 429', { status: 429 }, /HTTP 429/, ''],
      ['a stall between chunks', { tokens: ['partial', ' text', ' never', ' ends'], stallAfter: 2 }, /stalled/, 'partial text'],
      ['no first byte in time', { headersDelayMs: 3000 }, /did not answer/, ''],
      ['a connection reset mid-stream', { tokens: ['cut', ' off', ' here'], resetAfter: 2, delayMs: 5 }, /connection|terminated|reset|closed/i, 'cut off'],
      ['an error event mid-stream', { tokens: ['half', ' way', ' there'], errorAfter: 2, delayMs: 5 }, /the model reported an error: The server had an error/, 'half way'],
    ] as const)('%s', async (_, script, error, partial) => {
      model.enqueue(script);
      const sent = await send({ content: `fail with ${_}` });
      const client = wsClient(server.graphqlUrl, token);
      const sub = followWs(client, sent.assistantMessage.id);
      await sub.done;
      await client.dispose();
      const { content, terminal } = assertWellFormed(sub.events.length > 1 ? sub.events : sub.events);
      expect(terminal.status).toBe('FAILED');
      expect(terminal.error).toMatch(error);
      expect(content).toBe(partial);
      const saved = await server.app.db.prisma.message.findUniqueOrThrow({ where: { id: sent.assistantMessage.id } });
      expect(saved).toMatchObject({ status: 'FAILED', content: partial });
      expect(saved.error).toMatch(error);
      expect(saved.error).not.toContain('sk-');
      // The prompt was built before the model failed: the reply still records it.
      expect(saved.promptTokens).toBeGreaterThan(0);
      expect(saved.metadata).toMatchObject({ presetId: 'default', context: { includedMessages: expect.any(Number), promptTokens: saved.promptTokens } });
    });
  });

  it('reads a reply to the end of its body after [DONE], reusing the connection, and lets go of a server that holds it open', async () => {
    /** Sends into one conversation and waits for the reply's end. */
    const reply = async (conversationId?: string) => {
      const sent = await send({ content: 'again', conversationId });
      const client = wsClient(server.graphqlUrl, token);
      const sub = followWs(client, sent.assistantMessage.id);
      await sub.done;
      await client.dispose();
      return { conversationId: sent.conversation.id, ...assertWellFormed(sub.events) };
    };
    const { conversationId } = await reply();
    await new Promise((resolve) => setTimeout(resolve, 200)); // the first reply's title request
    const connections = model.connections;
    for (let i = 0; i < 5; i++) {
      model.enqueue({ tokens: ['late', ' end'], endAfterDoneMs: 60 });
      expect((await reply(conversationId)).terminal).toMatchObject({ status: 'COMPLETE' });
    }
    // Ending the request at [DONE] would have cut each of these connections: one new one per reply.
    expect(model.connections - connections).toBeLessThanOrEqual(1);

    model.enqueue({ tokens: ['never', ' ends'], endAfterDoneMs: null });
    const started = Date.now();
    const held = await reply(conversationId);
    expect(held.terminal).toMatchObject({ status: 'COMPLETE', error: null });
    expect(held.content).toBe('never ends');
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it('a reply whose conversation is deleted while it streams ends its subscribers with an error', async () => {
    model.enqueue({ tokens: ['going', ' on', ' and', ' on', ' and', ' on'], delayMs: 60 });
    const sent = await send({ content: 'talk for a while' });
    const ws = wsClient(server.graphqlUrl, token);
    const sub = followWs(ws, sent.assistantMessage.id);
    await waitFor(async () => sub.events.length, (n) => n > 0);
    const deleted = await api.mutate(DeleteConversation, { id: sent.conversation.id });
    expect(deleted.data?.deleteConversation).toBe(sent.conversation.id);
    await sub.done;
    await ws.dispose();
    const { terminal } = assertWellFormed(sub.events);
    expect(terminal).toMatchObject({ done: true, error: 'the message was deleted', message: null });
    expect(await server.app.db.prisma.message.count({ where: { conversationId: sent.conversation.id } })).toBe(0);
  });

  it('stopGeneration aborts the model call and keeps the partial reply; it is idempotent', async () => {
    model.enqueue({ tokens: Array.from({ length: 200 }, (_, i) => `w${i} `), delayMs: 10 });
    const sent = await send({ content: 'talk for a long time' });
    const client = wsClient(server.graphqlUrl, token);
    const sub = followWs(client, sent.assistantMessage.id);
    await waitFor(async () => sub.events.length, (n) => n >= 3);
    const request = model.chatRequests.at(-1)!;
    const stopped = (await api.ok(StopGeneration, { messageId: sent.assistantMessage.id })).stopGeneration;
    expect(stopped.status).toBe('STOPPED');
    await sub.done;
    await client.dispose();
    const { content, terminal } = assertWellFormed(sub.events);
    expect(terminal.status).toBe('STOPPED');
    expect(stopped.content).toBe(content);
    expect(content.length).toBeGreaterThan(0);
    await request.closed;
    expect(request.sent).toBeLessThan(200);
    const again = (await api.ok(StopGeneration, { messageId: sent.assistantMessage.id })).stopGeneration;
    expect(again).toEqual(stopped);
    // The generating side saves the prompt's record after the stop.
    const saved = await waitFor(() => server.app.db.prisma.message.findUniqueOrThrow({ where: { id: sent.assistantMessage.id } }), (m) => m.promptTokens !== null);
    expect(saved).toMatchObject({ status: 'STOPPED', content, metadata: { presetId: 'default', context: { promptTokens: saved.promptTokens } } });
  });

  it('stopGeneration returns a finished message unchanged, and NOT_FOUND for a missing id', async () => {
    const sent = await send({ content: 'quick one' });
    const done = await finishedMessage(server.app.db.prisma, sent.assistantMessage.id);
    const stopped = (await api.ok(StopGeneration, { messageId: sent.assistantMessage.id })).stopGeneration;
    expect(stopped).toMatchObject({ status: 'COMPLETE', content: done.content });
    expect(errorOf(await api.mutate(StopGeneration, { messageId: 'missing' })).code).toBe('NOT_FOUND');
  });

  it('names an untitled conversation after its first completed exchange', async () => {
    const sent = await send({ content: 'Plan a weekend in Lisbon for two people' });
    expect(sent.conversation.title).toBeNull();
    await finishedMessage(server.app.db.prisma, sent.assistantMessage.id);
    const titled = await waitFor(() => server.app.db.prisma.conversation.findUniqueOrThrow({ where: { id: sent.conversation.id } }), (c) => c.title !== null);
    expect(titled.title).toBe('Weekend in Lisbon');
    const titleRequest = model.requests.find((r) => r.body.messages[0]?.content.startsWith('Write a title') && r.body.messages[1]?.content.includes('Lisbon'));
    expect(titleRequest).toBeDefined();
  });

  it('a foreign user subscribing gets NOT_FOUND and no events, on both transports', async () => {
    const sent = await send({ content: 'private' });
    const other = await tokenFor('someone-else');
    const client = wsClient(server.graphqlUrl, other);
    const ws = followWs(client, sent.assistantMessage.id);
    await ws.done.catch(() => {});
    await client.dispose();
    expect(ws.events).toEqual([]);
    expect(JSON.stringify(ws.errors)).toContain('NOT_FOUND');
    const sse = followSse(server.graphqlUrl, sent.assistantMessage.id, undefined, other);
    await sse.done.catch(() => {});
    expect(sse.events).toEqual([]);
    expect(JSON.stringify(sse.errors)).toContain('NOT_FOUND');
    expect(errorOf(await server.client(other).mutate(StopGeneration, { messageId: sent.assistantMessage.id })).code).toBe('NOT_FOUND');
  });

  it('sendMessage rejects bad input without saving anything', async () => {
    const before = await server.app.db.prisma.message.count();
    for (const [input, field] of [
      [{ content: '' }, 'input.content'],
      [{ content: 'x'.repeat(100_001) }, 'input.content'],
      [{ content: 'hi', temperature: 3 }, 'input.temperature'],
      [{ content: 'hi', maxTokens: 0 }, 'input.maxTokens'],
      [{ content: 'hi', presetId: 'nope' }, 'input.presetId'],
      [{ content: 'hi', clientMessageId: 'x'.repeat(129) }, 'input.clientMessageId'],
    ] as const) {
      const error = errorOf(await api.mutate(SendMessage, { input }));
      expect(error.code, field).toBe('BAD_USER_INPUT');
      expect(error.message).toContain(field);
    }
    expect(errorOf(await api.mutate(SendMessage, { input: { content: 'hi', conversationId: 'missing' } })).code).toBe('NOT_FOUND');
    expect(await server.app.db.prisma.message.count()).toBe(before);
  });

  it('userConfig: presets, overrides, validation', async () => {
    const { userConfig, modelPresets } = await api.ok(Settings, {});
    expect(userConfig).toMatchObject({ presetId: 'default', model: 'fake-model', hasApiKey: false, baseUrl: null });
    expect(modelPresets.map((p) => p.id)).toEqual(['default', 'other', 'local-echo']);
    expect(modelPresets.find((p) => p.id === 'local-echo')).toMatchObject({ baseUrl: null, model: 'local-echo' });

    const updated = await api.ok(UpdateUserConfig, { input: { presetId: 'other', maxTokens: 64, temperature: 0.1 } });
    expect(updated.updateUserConfig).toMatchObject({ presetId: 'other', model: 'other-model', maxTokens: 64, temperature: 0.1 });
    const sent = await send({ content: 'which model?' });
    await finishedMessage(server.app.db.prisma, sent.assistantMessage.id);
    expect(model.chatRequests.at(-1)!.body).toMatchObject({ model: 'other-model', max_tokens: 64, temperature: 0.1 });
    const overridden = await send({ content: 'override', model: 'special', temperature: 1.5, maxTokens: 7 });
    await finishedMessage(server.app.db.prisma, overridden.assistantMessage.id);
    expect(model.chatRequests.at(-1)!.body).toMatchObject({ model: 'special', max_tokens: 7, temperature: 1.5 });

    for (const [input, field] of [
      [{ baseUrl: 'ftp://example.com' }, 'input.baseUrl'],
      [{ baseUrl: 'not a url' }, 'input.baseUrl'],
      [{ temperature: -0.1 }, 'input.temperature'],
      [{ maxTokens: 100_001 }, 'input.maxTokens'],
      [{ contextTokens: 10 }, 'input.contextTokens'],
      [{ presetId: 'missing' }, 'input.presetId'],
    ] as const) {
      const error = errorOf(await api.mutate(UpdateUserConfig, { input }));
      expect(error.code, field).toBe('BAD_USER_INPUT');
      expect(error.message).toContain(field);
    }
    await api.ok(UpdateUserConfig, { input: { presetId: null, maxTokens: null, temperature: null } });
  });

  it('uses the user’s own API key and custom endpoint, and never reveals the key', async () => {
    const set = await api.ok(UpdateUserConfig, { input: { apiKey: USER_API_KEY, baseUrl: model.url, model: 'custom-model' } });
    expect(set.updateUserConfig).toMatchObject({ hasApiKey: true, baseUrl: model.url, model: 'custom-model' });
    responses.push(JSON.stringify(set));
    const row = await server.app.db.prisma.userConfig.findUniqueOrThrow({ where: { userId: 'chatter' } });
    expect(row.apiKeyEncrypted).toMatch(/^v1:/);
    expect(row.apiKeyEncrypted).not.toContain(USER_API_KEY);

    model.enqueue({ status: 401 });
    const failed = await send({ content: 'with my key' });
    const saved = await finishedMessage(server.app.db.prisma, failed.assistantMessage.id);
    expect(model.chatRequests.at(-1)!.headers.authorization).toBe(`Bearer ${USER_API_KEY}`);
    expect(model.chatRequests.at(-1)!.body.model).toBe('custom-model');
    expect(saved.error).toMatch(/401/);
    responses.push(JSON.stringify(await api.ok(MessageDetails, { id: failed.conversation.id })));
    responses.push(JSON.stringify(await api.ok(Settings, {})));

    const cleared = await api.ok(UpdateUserConfig, { input: { apiKey: '', baseUrl: '' } });
    expect(cleared.updateUserConfig).toMatchObject({ hasApiKey: false, baseUrl: null, model: 'custom-model' });
    await api.ok(UpdateUserConfig, { input: { model: null } });

    for (const text of [...responses, ...logLines]) expect(text).not.toContain(USER_API_KEY);
    expect(logLines.join('\n')).not.toContain('sk-server-key');
    expect(logLines.length).toBeGreaterThan(0);
  });
});

describe('chat settings without an encryption key', () => {
  it('refuses to store an API key', async () => {
    const server = await startParley();
    try {
      const apiKey = 'sk-live-5ecret-do-not-echo';
      const result = await server.client().mutate(UpdateUserConfig, { input: { apiKey } });
      const error = errorOf(result);
      expect(error).toMatchObject({ code: 'BAD_USER_INPUT' });
      expect(error.message).toContain('CONFIG_ENCRYPTION_KEY');
      // The key is a secret: no part of the answer repeats it.
      expect(JSON.stringify({ errors: result.error?.graphQLErrors, data: result.data })).not.toContain('5ecret');
    } finally {
      await server.stop();
    }
  });

  it('local-echo answers offline when no model is configured', async () => {
    const server = await startParley();
    try {
      const sent = (await server.client().ok(SendMessage, { input: { content: 'ping from the playground' } })).sendMessage;
      expect(sent.assistantMessage.model).toBe('local-echo');
      const sse = followSse(server.graphqlUrl, sent.assistantMessage.id);
      await sse.done;
      const { content, terminal } = assertWellFormed(sse.events);
      expect(content).toMatch(/^You said: ping from the playground/);
      expect(terminal.message).toMatchObject({ status: 'COMPLETE', content, finishReason: 'stop' });
    } finally {
      await server.stop();
    }
  });
});

describe('the replay log bound', () => {
  it('keeps a reply within STREAM_MAX_EVENTS events without losing text', async () => {
    const model = await FakeModel.start();
    const server = await startParley({ env: { LLM_API_URL: model.url, LLM_MODEL: 'fake-model', STREAM_MAX_EVENTS: '5', STREAM_FLUSH_MS: '1' } });
    try {
      const tokens = Array.from({ length: 40 }, (_, i) => `b${i} `);
      model.enqueue({ tokens, delayMs: 3 });
      const sent = (await server.client().ok(SendMessage, { input: { content: 'bounded' } })).sendMessage;
      const sse = followSse(server.graphqlUrl, sent.assistantMessage.id);
      await sse.done;
      const { content } = assertWellFormed(sse.events);
      expect(sse.events).toHaveLength(5);
      expect(content).toBe(tokens.join(''));
    } finally {
      await server.stop();
      await model.close();
    }
  });
});

describe('idle subscribers', () => {
  it('many subscribers waiting on a silent reply cost one database check per interval, not one each', async () => {
    const model = await FakeModel.start();
    const statements: string[] = [];
    const server = await startParley({
      onQuery: (sql) => statements.push(sql),
      env: { LLM_API_URL: model.url, LLM_MODEL: 'fake-model', LLM_IDLE_TIMEOUT_MS: '60000', STREAM_LEASE_MS: '900' },
    });
    const client = wsClient(server.graphqlUrl);
    try {
      model.enqueue({ tokens: ['never'], stallAfter: 0 });
      const sent = (await server.client().ok(SendMessage, { input: { content: 'silence' } })).sendMessage;
      const subscribers = Array.from({ length: 50 }, () => followWs(client, sent.assistantMessage.id));
      await new Promise((r) => setTimeout(r, 300));
      statements.length = 0;
      await new Promise((r) => setTimeout(r, 1500));
      const checks = statements.filter((s) => /SELECT .*status.*FROM .*Message/is.test(s) && !/UPDATE/i.test(s)).length;
      // Checked every 300 ms: about 5 checks in 1.5 s, where one per subscriber would be 250.
      expect(checks).toBeGreaterThan(0);
      expect(checks).toBeLessThanOrEqual(12);
      await server.client().ok(StopGeneration, { messageId: sent.assistantMessage.id });
      await Promise.all(subscribers.map((s) => s.done));
      for (const s of subscribers) expect(assertWellFormed(s.events).terminal.status).toBe('STOPPED');
    } finally {
      await client.dispose();
      await server.stop();
      await model.close();
    }
  });
});

describe('titles over the life of a server', () => {
  it('titling many conversations leaves no abort listener behind on the shutdown signal', async () => {
    // The openai client never removes the listener it adds to the signal it is given. Given the
    // service's shutdown signal, every titled conversation left one there for good: past ten,
    // Node reports a listener leak on that signal.
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
    process.on('warning', onWarning);
    const model = await FakeModel.start();
    const server = await startParley({ env: { LLM_API_URL: model.url, LLM_MODEL: 'fake-model', LLM_MAX_RETRIES: '0' } });
    try {
      model.setDefault({ tokens: ['Short', ' title'] });
      for (let i = 0; i < 14; i++) {
        const sent = (await server.client().ok(SendMessage, { input: { content: `conversation number ${i}` } })).sendMessage;
        await waitFor(() => server.app.db.prisma.conversation.findUniqueOrThrow({ where: { id: sent.conversation.id } }), (c) => c.title !== null);
      }
      expect(model.requests.filter((r) => r.body.messages[0]?.content.startsWith('Write a title'))).toHaveLength(14);
      await new Promise((r) => setTimeout(r, 50));
      expect(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning'))).toEqual([]);
    } finally {
      process.off('warning', onWarning);
      await server.stop();
      await model.close();
    }
  });

  it('replies ending together ask for their titles a few at a time, and every conversation gets one', async () => {
    const model = await FakeModel.start();
    const server = await startParley({ env: { LLM_API_URL: model.url, LLM_MODEL: 'fake-model', LLM_MAX_RETRIES: '0' } });
    try {
      model.titleDelayMs = 150;
      model.setDefault({ tokens: ['ok'] });
      const sent = await Promise.all(Array.from({ length: 12 }, (_, i) => server.client().ok(SendMessage, { input: { content: `burst ${i}` } })));
      const ids = sent.map((s) => s.sendMessage.conversation.id);
      await waitFor(() => server.app.db.prisma.conversation.findMany({ where: { id: { in: ids } } }), (rows) => rows.every((c) => c.title !== null), 10_000);
      expect(model.requests.filter((r) => r.body.messages[0]?.content.startsWith('Write a title'))).toHaveLength(12);
      // Four at a time: more would compete with live streams; one at a time would be needlessly slow.
      expect(model.mostOpenTitleRequests).toBe(4);
    } finally {
      await server.stop();
      await model.close();
    }
  });
});
