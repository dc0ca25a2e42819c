// Users never see, change or learn of each other's data. Every id-taking field answers a foreign
// id exactly as a missing one, on every database, and the owner's data stays untouched.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { graphql } from './generated/gql.ts';
import { ALL_PROVIDERS } from './support/databases.ts';
import { errorOf, startParley, tokenFor, TEST_JWT_SECRET, type GraphQLClient, type TestServer } from './support/parley.ts';

const Seed = graphql(`
  mutation Seed($input: AddMessageInput!) { addMessage(input: $input) { id conversation { id } } }
`);
const Owned = graphql(`
  query Owned($id: ID!) {
    conversation(id: $id) { id title archived messageCount messages(first: 100) { edges { cursor node { content } } } }
  }
`);
const Mine = graphql(`
  query Mine { conversations(first: 100, archived: null) { edges { node { id title } } } }
`);
const ProbeHistory = graphql(`query ProbeHistory($id: ID!) { history(conversationId: $id) { content } }`);
const ProbeUpdate = graphql(`mutation ProbeUpdate($id: ID!) { updateConversation(input: { id: $id, title: "pwned", archived: true }) { id } }`);
const ProbeDelete = graphql(`mutation ProbeDelete($id: ID!) { deleteConversation(id: $id) }`);
const ProbeAdd = graphql(`mutation ProbeAdd($id: ID!) { addMessage(input: { conversationId: $id, role: USER, content: "injected" }) { id } }`);
const ProbeClear = graphql(`mutation ProbeClear($id: ID!) { clearMessages(conversationId: $id) }`);
const ProbeMessagesAfter = graphql(`
  query ProbeMessagesAfter($id: ID!, $after: String) { conversation(id: $id) { messages(first: 10, after: $after) { edges { node { content } } } } }
`);
const Whoami = graphql(`query Whoami { conversations(first: 1) { edges { node { id } } } }`);

describe.each(ALL_PROVIDERS)('isolation between users on %s', (provider) => {
  let server: TestServer;
  let alice: GraphQLClient;
  let mallory: GraphQLClient;
  let aliceConversation: string;

  beforeAll(async () => {
    server = await startParley({ provider, env: { AUTH_JWT_SECRET: TEST_JWT_SECRET } });
    alice = server.client(await tokenFor('alice'));
    // Same letters, another case: a different user, also on MySQL's case-insensitive collations.
    mallory = server.client(await tokenFor('Alice'));
    const seeded = await alice.ok(Seed, { input: { role: 'USER', content: 'secret plan' } });
    aliceConversation = seeded.addMessage.conversation.id;
    await alice.ok(Seed, { input: { conversationId: aliceConversation, role: 'ASSISTANT', content: 'secret answer' } });
  });
  afterAll(() => server?.stop());

  const missingId = '01a20000-0000-7000-8000-000000000000';

  it('conversation(id) is null for a foreign id, as for a missing one', async () => {
    expect((await mallory.ok(Owned, { id: aliceConversation })).conversation).toBeNull();
    expect((await mallory.ok(Owned, { id: missingId })).conversation).toBeNull();
  });

  it('conversations lists only the viewer’s own', async () => {
    await mallory.ok(Seed, { input: { role: 'USER', content: 'mallory was here' } });
    const ids = (await mallory.ok(Mine, {})).conversations.edges.map((e) => e.node.id);
    expect(ids).toHaveLength(1);
    expect(ids).not.toContain(aliceConversation);
    expect((await alice.ok(Mine, {})).conversations.edges.map((e) => e.node.id)).toEqual([aliceConversation]);
  });

  it.each([
    ['history', ProbeHistory],
    ['updateConversation', ProbeUpdate],
    ['deleteConversation', ProbeDelete],
    ['addMessage', ProbeAdd],
    ['clearMessages', ProbeClear],
  ] as const)('%s answers a foreign id exactly as a missing one', async (_, doc) => {
    const foreign = await (doc.definitions[0]!.kind === 'OperationDefinition' && doc.definitions[0]!.operation === 'query'
      ? mallory.query(doc as typeof ProbeHistory, { id: aliceConversation })
      : mallory.mutate(doc as typeof ProbeUpdate, { id: aliceConversation }));
    const missing = await (doc.definitions[0]!.kind === 'OperationDefinition' && doc.definitions[0]!.operation === 'query'
      ? mallory.query(doc as typeof ProbeHistory, { id: missingId })
      : mallory.mutate(doc as typeof ProbeUpdate, { id: missingId }));
    expect(errorOf(foreign)).toEqual({ code: 'NOT_FOUND', message: 'conversation not found' });
    expect(JSON.stringify(foreign.error?.graphQLErrors)).toBe(JSON.stringify(missing.error?.graphQLErrors));
    expect(foreign.data).toEqual(missing.data);
  });

  it('a cursor from another user’s conversation only positions a page of the viewer’s own', async () => {
    const aliceCursor = (await alice.ok(Owned, { id: aliceConversation })).conversation!.messages.edges[0]!.cursor;
    const own = (await mallory.ok(Mine, {})).conversations.edges[0]!.node.id;
    const page = (await mallory.ok(ProbeMessagesAfter, { id: own, after: aliceCursor })).conversation!.messages.edges.map((e) => e.node.content);
    expect(page.join()).not.toMatch(/secret/);
    expect((await mallory.ok(ProbeMessagesAfter, { id: aliceConversation, after: aliceCursor })).conversation).toBeNull();
  });

  it('leaves the owner’s data exactly as it was', async () => {
    const { conversation } = await alice.ok(Owned, { id: aliceConversation });
    expect(conversation).toMatchObject({ title: null, archived: false, messageCount: 2 });
    expect(conversation!.messages.edges.map((e) => e.node.content)).toEqual(['secret plan', 'secret answer']);
  });

  describe('authentication', () => {
    it.each([
      ['no token', undefined],
      ['a malformed token', 'not-a-jwt'],
      ['a token signed with another secret', tokenFor('alice', { secret: 'another-secret-that-is-at-least-32-chars!!' })],
      ['an expired token', tokenFor('alice', { expiresIn: '-1m' })],
      ['a token of another algorithm', tokenFor('alice', { alg: 'HS512' })],
      ['a sub with a trailing space', tokenFor('alice ')],
      ['an empty sub', tokenFor('')],
    ] as const)('%s gets UNAUTHENTICATED', async (_, token) => {
      const client = server.client(await token);
      const result = await client.query(Whoami, {});
      expect(errorOf(result).code).toBe('UNAUTHENTICATED');
      expect(result.data ?? null).toBeNull();
    });

    it('a token without sub gets UNAUTHENTICATED', async () => {
      const { SignJWT } = await import('jose');
      const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(TEST_JWT_SECRET));
      expect(errorOf(await server.client(token).query(Whoami, {})).code).toBe('UNAUTHENTICATED');
    });

    it('an unsigned token (alg none) gets UNAUTHENTICATED', async () => {
      const encode = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url');
      const token = `${encode({ alg: 'none', typ: 'JWT' })}.${encode({ sub: 'alice' })}.`;
      expect(errorOf(await server.client(token).query(Whoami, {})).code).toBe('UNAUTHENTICATED');
    });
  });
});
