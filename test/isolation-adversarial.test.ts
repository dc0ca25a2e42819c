// Isolation against user ids and ids chosen by an attacker: `:`, `{`, `}`, case variants,
// trailing spaces, zero-width and confusable characters, over every field that takes an id, with
// the history cache cold and warm, on every database. Every attempt answers byte for byte what a
// missing id answers, calls no model, leaves the owner's data as it was, and puts nothing in the
// cache but the owners' own entries.
import { randomUUID } from 'node:crypto';
import { print, type DocumentNode } from 'graphql';
import type { Client as WsClient } from 'graphql-ws';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { historyKeys } from '../src/cache/history-cache.ts';
import { graphql } from './generated/gql.ts';
import { ALL_PROVIDERS } from './support/databases.ts';
import { FakeModel } from './support/fake-model.ts';
import { startParley, tokenFor, TEST_JWT_SECRET, type TestServer } from './support/parley.ts';
import { REDIS_URL, redisNamespace } from './support/redis.ts';
import { followWs, SendMessage } from './support/streams.ts';
import { subscribeWs, wsClient } from './support/subscriptions.ts';

const AdvSeed = graphql(`mutation AdvSeed($input: AddMessageInput!) { addMessage(input: $input) { id conversation { id } } }`);
const AdvTitle = graphql(`mutation AdvTitle($id: ID!, $title: String) { updateConversation(input: { id: $id, title: $title }) { id } }`);
const AdvConfigure = graphql(`mutation AdvConfigure($input: UpdateUserConfigInput!) { updateUserConfig(input: $input) { systemPrompt } }`);
const AdvOwnView = graphql(`
  query AdvOwnView($id: ID!) {
    conversation(id: $id) {
      id title archived messageCount
      messages(first: 50) { edges { cursor node { id role content status } } }
      newest: messages(last: 5) { edges { node { id content } } }
    }
    history(conversationId: $id, limit: 20) { role content }
  }
`);
const AdvMine = graphql(`query AdvMine { conversations(first: 100, archived: null) { edges { node { id } } } }`);
const AdvConfig = graphql(`query AdvConfig { userConfig { presetId model baseUrl hasApiKey maxTokens temperature systemPrompt contextTokens } }`);

// One probe per field that takes an id. `$id` is the id under attack; the rest comes from the owner.
const AdvConversation = graphql(`
  query AdvConversation($id: ID!) { conversation(id: $id) { id title messageCount messages(last: 5) { edges { cursor node { id content } } } } }
`);
const AdvPageAfter = graphql(`
  query AdvPageAfter($id: ID!, $cursor: String) { conversation(id: $id) { messages(first: 2, after: $cursor) { edges { node { content } } pageInfo { hasNextPage } } } }
`);
const AdvPageBefore = graphql(`
  query AdvPageBefore($id: ID!, $cursor: String) { conversation(id: $id) { messages(last: 2, before: $cursor) { edges { node { content } } pageInfo { hasPreviousPage } } } }
`);
const AdvHistory = graphql(`query AdvHistory($id: ID!) { history(conversationId: $id, limit: 5) { role content } }`);
const AdvAdd = graphql(`mutation AdvAdd($id: ID!) { addMessage(input: { conversationId: $id, role: USER, content: "injected" }) { id content } }`);
const AdvSend = graphql(`mutation AdvSend($id: ID!) { sendMessage(input: { conversationId: $id, content: "injected" }) { assistantMessage { id } } }`);
const AdvUpdate = graphql(`mutation AdvUpdate($id: ID!) { updateConversation(input: { id: $id, title: "pwned", archived: true }) { id title } }`);
const AdvClear = graphql(`mutation AdvClear($id: ID!) { clearMessages(conversationId: $id) }`);
const AdvDelete = graphql(`mutation AdvDelete($id: ID!) { deleteConversation(id: $id) }`);
const AdvStop = graphql(`mutation AdvStop($id: ID!) { stopGeneration(messageId: $id) { id status content } }`);
const AdvStream = graphql(`
  subscription AdvStream($id: ID!, $afterSeq: Int) { messageStream(messageId: $id, afterSeq: $afterSeq) { seq delta done message { content } } }
`);

const CONVERSATION_PROBES: [string, DocumentNode][] = [
  ['conversation', AdvConversation],
  ['messages after', AdvPageAfter],
  ['messages before', AdvPageBefore],
  ['history', AdvHistory],
  ['addMessage', AdvAdd],
  ['sendMessage', AdvSend],
  ['updateConversation', AdvUpdate],
  // Destructive ones last: should one succeed, the probes before it still saw the owner's rows.
  ['clearMessages', AdvClear],
  ['deleteConversation', AdvDelete],
];

/** Users who own a conversation each: ids that run together with others under a naive cache key. */
const OWNERS = ['acme:alice', 'ann', '{acme}'];
/** Valid user ids that are not the owners, however much they look like them. */
const OTHERS = [
  'acme',
  '{acme',
  'acme}',
  'ANN',
  // Cyrillic а: another letter, another user.
  '\u0430nn',
];
/** More look-alikes, for the fields that take no id. */
const MORE_OTHERS = ['acme:', 'Ann', '\uff41\uff4e\uff4e', '\u00e1nn'];
/** Subs refused outright: each would be a second spelling of a user, or hide a character. */
const REFUSED_SUBS: [string, string][] = [
  ['a trailing space', 'ann '],
  ['a leading space', ' ann'],
  ['a trailing no-break space', 'ann\u00a0'],
  ['a trailing zero-width space', 'ann\u200b'],
  ['a zero-width joiner', 'a\u200dnn'],
  ['a word joiner', 'ann\u2060'],
  ['a byte order mark', '\ufeffann'],
  ['a right-to-left override', '\u202eann'],
  ['a soft hyphen', 'an\u00adn'],
  ['a decomposed á (not NFC)', 'a\u0301nn'],
  ['a lone surrogate', 'ann\ud800'],
  ['a control character', 'ann\u0007'],
];

const MISSING_ID = '01a20000-0000-7000-8000-00000000dead';

interface Owned {
  owner: string;
  conversationId: string;
  replyId: string;
  cursor: string;
}

/** What a naive `{user:conversation}` key of `owner`'s conversation looks like from `user`'s side. */
function splice(user: string, owned: Owned): string | undefined {
  const naive = `${owned.owner}:${owned.conversationId}`;
  return naive.startsWith(`${user}:`) && user !== owned.owner ? naive.slice(user.length + 1) : undefined;
}

/** The ids `user` tries against `owned`: the id itself (for others), its case and padding variants, and the splice. */
function attempts(user: string, owned: Owned, id: string): string[] {
  const spliced = id === owned.conversationId ? splice(user, owned) : undefined;
  const variants = user === owned.owner ? [id.toUpperCase(), `${id} `, `${id}\u200b`] : [id, id.toUpperCase(), `${id} `];
  return [...variants, ...(spliced ? [spliced] : [])];
}

describe.each(ALL_PROVIDERS)('adversarial isolation on %s', (provider) => {
  // SQLite compares ids exactly, as PostgreSQL does, and the cache is the same on every database:
  // there, fewer attackers keep the suite quick.
  const attackers = provider === 'sqlite' ? [...OWNERS, 'acme', 'ANN'] : [...OWNERS, ...OTHERS];
  const namespace = redisNamespace();
  let model: FakeModel;
  let server: TestServer;
  let probe: Redis;
  const tokens = new Map<string, string>();
  const ws = new Map<string, WsClient>();
  const owned: Owned[] = [];
  /** Each owner's view of their conversation, and their settings, before any attack. */
  const before = new Map<string, unknown>();
  /** Per user and probe: the answer to a missing id. */
  const missing = new Map<string, string>();

  const token = (user: string) => tokens.get(user)!;

  async function post(user: string, doc: DocumentNode, variables: Record<string, unknown>): Promise<string> {
    const response = await fetch(server.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${token(user)}` },
      body: JSON.stringify({ query: print(doc), variables }),
    });
    return `${response.status} ${await response.text()}`;
  }

  async function stream(user: string, id: string): Promise<string> {
    let client = ws.get(user);
    if (!client) ws.set(user, (client = wsClient(server.graphqlUrl, token(user))));
    const sub = subscribeWs(client, AdvStream, { id, afterSeq: 0 });
    await sub.done.catch(() => {});
    return JSON.stringify({ events: sub.events, errors: sub.errors });
  }

  /** Every probe of `user` against `target`, each compared with the same probe of a missing id. */
  async function attack(user: string, target: Owned): Promise<void> {
    const expectAsMissing = async (name: string, id: string, answer: (id: string) => Promise<string>) => {
      const key = `${user}\0${name}`;
      if (!missing.has(key)) missing.set(key, await answer(MISSING_ID));
      const got = await answer(id);
      expect(got, `${JSON.stringify(user)} ${name}(${JSON.stringify(id)}) of ${JSON.stringify(target.owner)}`).toBe(missing.get(key));
    };
    for (const [name, doc] of CONVERSATION_PROBES) {
      await Promise.all(attempts(user, target, target.conversationId).map((id) => expectAsMissing(name, id, (v) => post(user, doc, { id: v, cursor: target.cursor }))));
    }
    await Promise.all(attempts(user, target, target.replyId).map((id) => expectAsMissing('stopGeneration', id, (v) => post(user, AdvStop, { id: v }))));
    await Promise.all(attempts(user, target, target.replyId).map((id) => expectAsMissing('messageStream', id, (v) => stream(user, v))));
  }

  const ownView = async (o: Owned) => [await post(o.owner, AdvOwnView, { id: o.conversationId }), await post(o.owner, AdvConfig, {})];

  /** Entries in Redis: whose conversation each one holds, by the key it sits under. */
  async function cachedEntries(): Promise<{ key: string; userId: string; conversationId: string }[]> {
    const found: { key: string; userId: string; conversationId: string }[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await probe.scan(cursor, 'MATCH', `${namespace.prefix}history:*:path`, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) {
        const raw = (await probe.get(key)) ?? '';
        const entry = JSON.parse(raw.slice(raw.indexOf('|') + 1));
        found.push({ key, userId: entry.userId, conversationId: entry.conversationId });
      }
    } while (cursor !== '0');
    return found;
  }

  async function dropCachedEntries(): Promise<void> {
    for (const { key } of await cachedEntries()) await probe.del(key);
  }

  /** The owners' data is as it was, and the cache holds nothing but owners' own entries, each under its own key. */
  async function expectUntouched(): Promise<void> {
    for (const o of owned) expect(await ownView(o), o.owner).toEqual(before.get(o.owner));
    for (const entry of await cachedEntries()) {
      expect(owned.map((o) => `${o.owner}\0${o.conversationId}`)).toContain(`${entry.userId}\0${entry.conversationId}`);
      expect(entry.key).toBe(historyKeys(namespace.prefix, entry.userId, entry.conversationId).entry);
    }
  }

  beforeAll(async () => {
    model = await FakeModel.start();
    server = await startParley({
      provider,
      env: {
        AUTH_JWT_SECRET: TEST_JWT_SECRET,
        REDIS_URL,
        REDIS_KEY_PREFIX: namespace.prefix,
        LLM_API_URL: model.url,
        LLM_MODEL: 'fake-model',
        LLM_MAX_RETRIES: '0',
      },
    });
    probe = namespace.redis();
    for (const user of [...OWNERS, ...OTHERS, ...MORE_OTHERS]) tokens.set(user, await tokenFor(user));
    for (const owner of OWNERS) {
      const api = server.client(token(owner));
      const first = await api.ok(AdvSeed, { input: { role: 'USER', content: `secret plan of ${owner}` } });
      const conversationId = first.addMessage.conversation.id;
      // A title of its own, so that no title generation changes the conversation later.
      await api.ok(AdvTitle, { id: conversationId, title: `Secret ${owner}` });
      await api.ok(AdvSeed, { input: { conversationId, role: 'ASSISTANT', content: `secret answer for ${owner}` } });
      model.enqueue({ tokens: ['secret', ' reply'] });
      const sent = await api.ok(SendMessage, { input: { conversationId, content: `secret question of ${owner}` } });
      const replyId = sent.sendMessage.assistantMessage.id;
      const client = wsClient(server.graphqlUrl, token(owner));
      const followed = followWs(client, replyId);
      await followed.done;
      await client.dispose();
      expect(followed.events.at(-1)?.messageStream.message?.content).toBe('secret reply');
      const view = await api.ok(AdvOwnView, { id: conversationId });
      expect(view.conversation!.messages.edges.map((e) => e.node.content)).toEqual([
        `secret plan of ${owner}`,
        `secret answer for ${owner}`,
        `secret question of ${owner}`,
        'secret reply',
      ]);
      await api.ok(AdvConfigure, { input: { systemPrompt: `be secret, ${owner}`, temperature: 0.25, maxTokens: 321 } });
      owned.push({ owner, conversationId, replyId, cursor: view.conversation!.messages.edges[1]!.cursor });
    }
    for (const o of owned) before.set(o.owner, await ownView(o));
  });

  afterAll(async () => {
    await Promise.all([...ws.values()].map((client) => client.dispose()));
    await server?.stop();
    await model?.close();
    await namespace.cleanup();
  });

  it('the issue’s reproduction: user acme asking for history("alice:<id>") does not read user acme:alice’s history', async () => {
    const victim = owned.find((o) => o.owner === 'acme:alice')!;
    // Warm: the owner has just read it.
    await post(victim.owner, AdvHistory, { id: victim.conversationId });
    expect(await cachedEntries()).toContainEqual(expect.objectContaining({ userId: 'acme:alice', conversationId: victim.conversationId }));
    const spliced = `alice:${victim.conversationId}`;
    expect(splice('acme', victim)).toBe(spliced);
    const answer = await post('acme', AdvHistory, { id: spliced });
    expect(answer).not.toMatch(/secret/);
    expect(answer).toBe(await post('acme', AdvHistory, { id: MISSING_ID }));
    expect(JSON.parse(answer.slice(4)).errors[0].extensions.code).toBe('NOT_FOUND');
  });

  it('cold cache: every id-taking field answers every attempt exactly as a missing id', async () => {
    await dropCachedEntries();
    const modelCalls = model.requests.length;
    await Promise.all(owned.map(async (target) => {
      for (const user of attackers) await attack(user, target);
    }));
    expect(model.requests.length, 'no attempt reached the model').toBe(modelCalls);
    await expectUntouched();
  });

  it('warm cache: the same, after each owner has read their history and pages through the cache', async () => {
    for (const o of owned) await ownView(o);
    const entries = await cachedEntries();
    for (const o of owned) expect(entries).toContainEqual(expect.objectContaining({ userId: o.owner, conversationId: o.conversationId }));
    const modelCalls = model.requests.length;
    await Promise.all(owned.map(async (target) => {
      for (const user of attackers) await attack(user, target);
    }));
    expect(model.requests.length, 'no attempt reached the model').toBe(modelCalls);
    await expectUntouched();
  });

  it('conversations and userConfig show each user only their own; look-alike users start empty', async () => {
    const fresh = `fresh-${randomUUID()}`;
    tokens.set(fresh, await tokenFor(fresh));
    const defaults = await post(fresh, AdvConfig, {});
    expect(defaults).not.toMatch(/secret/);
    for (const user of [...OTHERS, ...MORE_OTHERS]) {
      expect(await post(user, AdvConfig, {}), user).toBe(defaults);
      expect(await post(user, AdvMine, {}), user).toBe(await post(fresh, AdvMine, {}));
    }
    for (const o of owned) {
      const mine = JSON.parse((await post(o.owner, AdvMine, {})).slice(4)).data.conversations.edges.map((e: { node: { id: string } }) => e.node.id);
      expect(mine, o.owner).toEqual([o.conversationId]);
      expect(JSON.parse((await post(o.owner, AdvConfig, {})).slice(4)).data.userConfig).toMatchObject({ systemPrompt: `be secret, ${o.owner}`, temperature: 0.25, maxTokens: 321 });
    }
  });

  it('a system prompt of 100,000 three-byte characters is kept whole, and only for its owner', async () => {
    const prompt = '中'.repeat(100_000);
    const owner = server.client(token('ann'));
    expect((await owner.ok(AdvConfigure, { input: { systemPrompt: prompt } })).updateUserConfig.systemPrompt).toBe(prompt);
    expect((await owner.ok(AdvConfig, {})).userConfig.systemPrompt).toBe(prompt);
    for (const user of ['ANN', 'Ann', '\u0430nn']) expect((await server.client(token(user)).ok(AdvConfig, {})).userConfig.systemPrompt, user).toBeNull();
    await owner.ok(AdvConfigure, { input: { systemPrompt: 'be secret, ann' } });
  });

  it('the issue’s reproduction: an id in another case, read before deleteConversation, is not served after it', async () => {
    const api = server.client(token('ann'));
    const id = (await api.ok(AdvSeed, { input: { role: 'USER', content: 'to be deleted' } })).addMessage.conversation.id;
    const upper = id.toUpperCase();
    const missingHistory = await post('ann', AdvHistory, { id: MISSING_ID });
    const missingConversation = await post('ann', AdvConversation, { id: MISSING_ID });
    for (const variant of [upper, `${id} `]) {
      expect(await post('ann', AdvHistory, { id: variant }), variant).toBe(missingHistory);
      expect(await post('ann', AdvConversation, { id: variant }), variant).toBe(missingConversation);
    }
    expect(await post('ann', AdvHistory, { id })).toMatch(/to be deleted/);
    expect(JSON.parse((await post('ann', AdvDelete, { id })).slice(4)).data.deleteConversation).toBe(id);
    for (const variant of [id, upper, `${id} `]) {
      expect(await post('ann', AdvHistory, { id: variant }), variant).toBe(missingHistory);
      expect(await post('ann', AdvConversation, { id: variant }), variant).toBe(missingConversation);
    }
    expect((await cachedEntries()).map((e) => e.conversationId)).not.toContain(id);
  });

  it('a clientMessageId is the user’s own and exact: another user, case or padding is another key', async () => {
    const key = `retry-${randomUUID()}`;
    const send = async (user: string, clientMessageId: string) => {
      model.enqueue({ tokens: [`reply to ${user}`] });
      return (await server.client(token(user)).ok(SendMessage, { input: { content: `asked by ${user}`, clientMessageId } })).sendMessage;
    };
    const first = await send('ann', key);
    expect((await send('ann', key)).assistantMessage.id).toBe(first.assistantMessage.id);
    const others = [await send('ANN', key), await send('Ann', key), await send('ann', key.toUpperCase()), await send('ann', `${key} `)];
    const ids = new Set([first, ...others].map((s) => s.assistantMessage.id));
    expect(ids.size).toBe(5);
    expect(others.map((s) => s.userMessage.content)).toEqual(['asked by ANN', 'asked by Ann', 'asked by ann', 'asked by ann']);
    expect(new Set([first, ...others].map((s) => s.conversation.id)).size).toBe(5);
  });

  describe('refused subs', () => {
    it.each(REFUSED_SUBS)('a sub with %s gets UNAUTHENTICATED over HTTP, and its WebSocket is closed with 4403', async (_, sub) => {
      const refused = await tokenFor(sub);
      const response = await fetch(server.graphqlUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${refused}` },
        body: JSON.stringify({ query: print(AdvMine) }),
      });
      const body = await response.json();
      expect(body.data ?? null).toBeNull();
      expect(body.errors.map((e: { extensions: { code: string } }) => e.extensions.code)).toEqual(['UNAUTHENTICATED']);
      expect(JSON.stringify(body)).not.toMatch(/secret/);

      const socket = new WebSocket(server.graphqlUrl.replace(/^http/, 'ws'), 'graphql-transport-ws');
      const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
      const messages: string[] = [];
      socket.on('message', (data) => messages.push(String(data)));
      socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${refused}` } })));
      expect(await closed).toBe(4403);
      expect(messages.some((m) => m.includes('connection_ack'))).toBe(false);
    });
  });
});
