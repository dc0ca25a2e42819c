// The fast path for known operations must answer byte for byte what Yoga answers, for every user,
// errors included, and leave to Yoga what it does not take (documents Yoga has not run yet, tokens
// that do not verify, other bodies). An operation runs once, whichever path answers.
// Requests here are plain JSON POSTs, as curl or a hand-written client sends them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startParley, tokenFor, TEST_JWT_SECRET, type TestServer } from './support/parley.ts';

// PostgreSQL too: there message pages read only the selected columns, which the fast path's
// compiled execution must report exactly as Yoga's does.
describe.each(['sqlite', 'postgresql'] as const)('the fast path for known queries on %s', (provider) => {
  let server: TestServer;
  let alice: string;
  let bob: string;
  let conversationId: string;

  async function post(body: unknown, headers: Record<string, string> = {}) {
    const res = await fetch(server.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: res.status, contentType: res.headers.get('content-type'), body: await res.text() };
  }
  const asUser = (token: string) => ({ authorization: `Bearer ${token}` });
  /** The same request straight through Yoga's own pipeline (an Accept header the fast path leaves alone). */
  const viaYoga = (body: unknown, headers: Record<string, string> = {}) => post(body, { ...headers, accept: 'application/json, text/plain' });

  /**
   * Each request is sent through Yoga first (which teaches the fast path every document it runs),
   * then as a plain POST: both answers are the same error answer, and the fast path took the
   * plain one only where the case says so.
   */
  async function expectErrorsAsYoga(cases: [body: unknown, headers: Record<string, string>, takenByFastPath: boolean][]) {
    for (const [body, headers, takenByFastPath] of cases) {
      const yoga = await viaYoga(body, headers);
      const answered = server.app.fastPathCounts.answered;
      const plain = await post(body, headers);
      expect(server.app.fastPathCounts.answered, JSON.stringify(body)).toBe(answered + (takenByFastPath ? 1 : 0));
      expect(plain.status, JSON.stringify(body)).toBe(yoga.status);
      expect(plain.body, JSON.stringify(body)).toBe(yoga.body);
      expect(plain.status === 200 ? JSON.parse(plain.body).errors : 'not 200', JSON.stringify(body)).toBeDefined();
    }
  }

  beforeAll(async () => {
    server = await startParley({ provider, env: { AUTH_JWT_SECRET: TEST_JWT_SECRET } });
    [alice, bob] = await Promise.all([tokenFor('alice'), tokenFor('bob')]);
    const added = await post({ query: 'mutation { addMessage(input: { role: USER, content: "first" }) { conversation { id } } }' }, asUser(alice));
    conversationId = JSON.parse(added.body).data.addMessage.conversation.id;
    for (const content of ['second', 'third "quoted" \u{1F600}']) {
      await post({ query: 'mutation($i: AddMessageInput!) { addMessage(input: $i) { id } }', variables: { i: { conversationId, role: 'ASSISTANT', content } } }, asUser(alice));
    }
  });
  afterAll(() => server?.stop());

  const queries = () => [
    { query: 'query($id: ID!) { history(conversationId: $id, limit: 2) { role content } }', variables: { id: conversationId } },
    { query: 'query H($id: ID!, $n: Int) { history(conversationId: $id, limit: $n) { content } }', variables: { id: conversationId, n: 20 }, operationName: 'H' },
    { query: '{ conversations(first: 5) { edges { cursor node { id title messageCount messages(last: 2) { edges { node { id role content status createdAt metadata conversation { id } } } } } } pageInfo { hasNextPage } } }' },
    { query: `{ conversation(id: "${conversationId}") { id archived createdAt messages(first: 1) { pageInfo { hasNextPage endCursor } } } }` },
    { query: 'query A { userConfig { model temperature } } query B { modelPresets { id name } }', operationName: 'B' },
    { query: 'fragment F on Conversation { id title } query { conversations(first: 1) { edges { node { ...F } } } __typename }' },
    {
      query:
        'fragment M on Message { role ...N } fragment N on Message { tokenCount finishReason } { conversations(first: 3) { edges { node { messageCount messages(last: 3) { edges { node { x: content ...M ... on Message { createdAt } } } } } } } }',
    },
  ];

  it('answers known queries exactly as Yoga does, once Yoga has run them', async () => {
    for (const request of queries()) {
      const before = server.app.fastPathCounts.answered;
      // A document the fast path has not seen goes to Yoga, which parses and validates it.
      const yoga = await viaYoga(request, asUser(alice));
      expect(server.app.fastPathCounts.answered, request.query).toBe(before);
      const fast = await post(request, asUser(alice));
      expect(server.app.fastPathCounts.answered, request.query).toBe(before + 1);
      expect(fast, request.query).toEqual({ ...yoga, contentType: 'application/json; charset=utf-8' });
      expect(JSON.parse(fast.body).errors, request.query).toBeUndefined();
    }
  });

  it("answers another user's ids exactly as missing ones, on both paths", async () => {
    const missing = '01a1e9c2-0000-7000-8000-000000000000';
    for (const id of [conversationId, missing]) {
      const conversation = await post({ query: 'query($id: ID!) { conversation(id: $id) { id title } }', variables: { id } }, asUser(bob));
      expect(conversation).toEqual({ status: 200, contentType: 'application/json; charset=utf-8', body: '{"data":{"conversation":null}}' });
      const history = await post({ query: 'query($id: ID!) { history(conversationId: $id) { content } }', variables: { id } }, asUser(bob));
      expect(history).toEqual(await viaYoga({ query: 'query($id: ID!) { history(conversationId: $id) { content } }', variables: { id: missing } }, asUser(bob)));
      expect(JSON.parse(history.body).errors[0].extensions.code).toBe('NOT_FOUND');
    }
    const bobs = await post({ query: '{ conversations(first: 5) { edges { node { id } } } }' }, asUser(bob));
    expect(JSON.parse(bobs.body)).toEqual({ data: { conversations: { edges: [] } } });
  });

  it('answers the errors of known documents as Yoga does, and leaves bad tokens, unknown documents and bad bodies to Yoga', async () => {
    const history = { query: 'query($id: ID!, $n: Int) { history(conversationId: $id, limit: $n) { content } }' };
    // [body, headers, whether the fast path answers it once Yoga has seen it]
    const cases: [unknown, Record<string, string>, boolean][] = [
      [{ ...history, variables: { id: conversationId, n: 'many' } }, asUser(alice), true],
      [{ ...history, variables: { n: 1 } }, asUser(alice), true],
      [{ ...history, variables: { id: conversationId, n: -5 } }, asUser(alice), true],
      [{ ...history, variables: { id: '01a1e9c2-0000-7000-8000-000000000000' } }, asUser(alice), true],
      [{ ...history, variables: { id: conversationId } }, { authorization: 'Bearer not-a-token' }, false],
      [{ ...history, variables: { id: conversationId } }, {}, false],
      [{ ...history, variables: { id: conversationId }, unknown: 1 }, asUser(alice), false],
      [{ query: '{ conversations(first: 1) { edges { node { nope } } } }' }, asUser(alice), false],
      [{ query: 'query A { __typename } query B { __typename }' }, asUser(alice), false],
      ['{"query": "{ __typename }"', asUser(alice), false],
      [{ query: 42 }, asUser(alice), false],
    ];
    // Extensions (persisted operations and the like) are Yoga's to read: never the fast path's.
    const extensions = { ...history, variables: { id: conversationId }, extensions: { persistedQuery: {} } };
    await viaYoga(extensions, asUser(alice));
    const before = server.app.fastPathCounts.answered;
    expect(await post(extensions, asUser(alice))).toEqual({ ...(await viaYoga(extensions, asUser(alice))), contentType: 'application/json; charset=utf-8' });
    expect(server.app.fastPathCounts.answered).toBe(before);
    await expectErrorsAsYoga(cases);
  });

  const historyContents = async () => {
    const history = JSON.parse((await post({ query: 'query($id: ID!) { history(conversationId: $id, limit: 100) { content } }', variables: { id: conversationId } }, asUser(alice))).body);
    return history.data.history.map((m: { content: string }) => m.content) as string[];
  };
  const add = (content: string, id: string = conversationId) => ({ query: 'mutation($i: AddMessageInput!) { addMessage(input: $i) { content role conversation { id } } }', variables: { i: { conversationId: id, role: 'USER', content } } });

  it('answers mutations as Yoga does, and runs each once', async () => {
    const answered = server.app.fastPathCounts.answered;
    const yoga = await viaYoga(add('yoga once'), asUser(alice));
    expect(server.app.fastPathCounts.answered).toBe(answered);
    const fast = await post(add('fast once'), asUser(alice));
    expect(server.app.fastPathCounts.answered).toBe(answered + 1);
    expect(fast).toEqual({ ...yoga, contentType: 'application/json; charset=utf-8', body: yoga.body.replace('yoga once', 'fast once') });
    const contents = await historyContents();
    expect(contents.filter((c) => c === 'fast once')).toHaveLength(1);
    expect(contents.filter((c) => c === 'yoga once')).toHaveLength(1);
  });

  it('answers a mutation that failed midway as Yoga does, and what it wrote is written once per request', async () => {
    const missing = '01a1e9c2-0000-7000-8000-000000000000';
    // The first field writes, the second fails.
    const twoFields = {
      query: 'mutation($a: AddMessageInput!, $b: AddMessageInput!) { a: addMessage(input: $a) { content } b: addMessage(input: $b) { content } }',
      variables: { a: add('written before the failure').variables.i, b: add('never', missing).variables.i },
    };
    const yoga = await viaYoga(twoFields, asUser(alice));
    const answered = server.app.fastPathCounts.answered;
    const fast = await post(twoFields, asUser(alice));
    expect(server.app.fastPathCounts.answered).toBe(answered + 1);
    expect(fast.status).toBe(yoga.status);
    expect(fast.body).toBe(yoga.body);
    // addMessage is non-null, so the failure of `b` nulls the whole answer although `a` wrote.
    expect(JSON.parse(fast.body)).toMatchObject({ data: null, errors: [{ path: ['b'], locations: [{ line: 1 }], extensions: { code: 'NOT_FOUND' } }] });
    for (const request of [add('to a missing conversation', missing), add('from bob')]) {
      const [viaYogaOnly, plain] = [await viaYoga(request, asUser(bob)), await post(request, asUser(bob))];
      expect(plain).toEqual(viaYogaOnly);
      expect(JSON.parse(plain.body).errors[0].extensions.code).toBe('NOT_FOUND');
    }
    expect(server.app.fastPathCounts.answered).toBe(answered + 3);
    // Once by the Yoga request, once by the fast path's: never a third time.
    expect((await historyContents()).filter((c) => c === 'written before the failure')).toHaveLength(2);
  });

  it('answers mutations with bad variables as Yoga does, leaves bad tokens and unchosen operations to Yoga, and writes nothing', async () => {
    // [body, headers, whether the fast path answers it]
    const cases: [unknown, Record<string, string>, boolean][] = [
      [{ ...add('bad variables'), variables: { i: { conversationId, role: 'NOPE', content: 'bad variables' } } }, asUser(alice), true],
      [{ ...add('no variables'), variables: {} }, asUser(alice), true],
      [add('bad token'), { authorization: 'Bearer not-a-token' }, false],
      [{ ...add('mixed'), query: `${add('mixed').query} query Q { __typename }` }, asUser(alice), false],
    ];
    await expectErrorsAsYoga(cases);
    expect((await historyContents()).filter((c) => ['bad variables', 'no variables', 'bad token', 'mixed'].includes(c))).toEqual([]);
  });
});
