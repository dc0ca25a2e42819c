// The conversation and message API through real HTTP with urql, on SQLite, PostgreSQL and
// MariaDB, each in a fresh database built from the committed migrations.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { graphql } from './generated/gql.ts';
import { ALL_PROVIDERS } from './support/databases.ts';
import { errorOf, startParley, type GraphQLClient, type TestServer } from './support/parley.ts';

const CreateConversation = graphql(`
  mutation CreateConversation($input: CreateConversationInput) {
    createConversation(input: $input) { id title archived createdAt updatedAt messageCount }
  }
`);
const UpdateConversation = graphql(`
  mutation UpdateConversation($input: UpdateConversationInput!) {
    updateConversation(input: $input) { id title archived updatedAt }
  }
`);
const DeleteConversation = graphql(`
  mutation DeleteConversation($id: ID!) { deleteConversation(id: $id) }
`);
const AddMessage = graphql(`
  mutation AddMessage($input: AddMessageInput!) {
    addMessage(input: $input) {
      id role content tokenCount metadata createdAt
      conversation { id messageCount updatedAt }
    }
  }
`);
const ClearMessages = graphql(`
  mutation ClearMessages($conversationId: ID!) { clearMessages(conversationId: $conversationId) }
`);
const GetConversation = graphql(`
  query GetConversation($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
    conversation(id: $id) {
      id title archived messageCount createdAt updatedAt
      messages(first: $first, after: $after, last: $last, before: $before) {
        edges { cursor node { id role content conversation { id } } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      }
    }
  }
`);
const ListConversations = graphql(`
  query ListConversations($first: Int, $after: String, $archived: Boolean) {
    conversations(first: $first, after: $after, archived: $archived) {
      edges { cursor node { id title archived } }
      pageInfo { hasNextPage hasPreviousPage endCursor }
    }
  }
`);
const ListConversationsBackwards = graphql(`
  query ListConversationsBackwards($last: Int, $before: String) {
    conversations(last: $last, before: $before) {
      edges { node { id } }
      pageInfo { hasNextPage hasPreviousPage startCursor }
    }
  }
`);
const History = graphql(`
  query History($conversationId: ID!, $limit: Int) { history(conversationId: $conversationId, limit: $limit) { role content } }
`);
const ListWithRecentMessages = graphql(`
  query ListWithRecentMessages($first: Int) {
    conversations(first: $first) {
      edges { node { id title messageCount messages(last: 5) { edges { node { id content conversation { id } } } } } }
    }
  }
`);

const ListWithMessageFields = graphql(`
  query ListWithMessageFields($first: Int) {
    conversations(first: $first) {
      edges {
        node {
          id
          messages(last: 3) {
            edges {
              node {
                __typename
                ... on Message { id role content tokenCount metadata createdAt status model finishReason promptTokens completionTokens error conversation { id } }
              }
            }
          }
        }
      }
    }
  }
`);
const ListWithContentOnly = graphql(`
  query ListWithContentOnly($first: Int) {
    conversations(first: $first) { edges { node { id messages(last: 3) { edges { node { text: content } } } } } }
  }
`);

describe.each(ALL_PROVIDERS)('conversations and messages on %s', (provider) => {
  let server: TestServer;
  let api: GraphQLClient;
  const sqlStatements: string[] = [];

  beforeAll(async () => {
    server = await startParley({ provider, onQuery: (sql) => sqlStatements.push(sql) });
    api = server.client();
  });
  afterAll(() => server?.stop());

  async function conversationWith(contents: string[], title?: string): Promise<string> {
    const { createConversation } = await api.ok(CreateConversation, { input: { title } });
    for (const content of contents) {
      await api.ok(AddMessage, { input: { conversationId: createConversation.id, role: 'USER', content } });
    }
    return createConversation.id;
  }

  it('creates, reads, renames, archives and deletes a conversation', async () => {
    const { createConversation: created } = await api.ok(CreateConversation, { input: { title: '  Trip to Lisbon ' } });
    expect(created).toMatchObject({ title: 'Trip to Lisbon', archived: false, messageCount: 0 });
    expect(new Date(created.createdAt).toISOString()).toBe(created.createdAt);

    const { conversation } = await api.ok(GetConversation, { id: created.id });
    expect(conversation).toMatchObject({ id: created.id, title: 'Trip to Lisbon', messageCount: 0, messages: { edges: [] } });

    const renamed = await api.ok(UpdateConversation, { input: { id: created.id, title: 'Lisbon' } });
    expect(renamed.updateConversation).toMatchObject({ title: 'Lisbon', archived: false });
    const archived = await api.ok(UpdateConversation, { input: { id: created.id, archived: true } });
    expect(archived.updateConversation).toMatchObject({ title: 'Lisbon', archived: true });
    const cleared = await api.ok(UpdateConversation, { input: { id: created.id, title: null } });
    expect(cleared.updateConversation.title).toBeNull();

    expect((await api.ok(DeleteConversation, { id: created.id })).deleteConversation).toBe(created.id);
    expect((await api.ok(GetConversation, { id: created.id })).conversation).toBeNull();
    expect(errorOf(await api.mutate(DeleteConversation, { id: created.id })).code).toBe('NOT_FOUND');
  });

  it('createConversation works without input', async () => {
    const { createConversation } = await api.ok(CreateConversation, {});
    expect(createConversation.title).toBeNull();
  });

  it('addMessage without conversationId starts a conversation; with one it appends and bumps updatedAt', async () => {
    const first = (await api.ok(AddMessage, { input: { role: 'SYSTEM', content: 'You are terse.', metadata: { source: 'test', n: [1, 2] }, tokenCount: 4 } })).addMessage;
    expect(first).toMatchObject({ role: 'SYSTEM', content: 'You are terse.', tokenCount: 4, metadata: { source: 'test', n: [1, 2] } });
    expect(first.conversation.messageCount).toBe(1);
    const conversationId = first.conversation.id;
    await new Promise((r) => setTimeout(r, 15));
    const second = (await api.ok(AddMessage, { input: { conversationId, role: 'ASSISTANT', content: 'Ok.' } })).addMessage;
    expect(second.conversation).toMatchObject({ id: conversationId, messageCount: 2 });
    expect(Date.parse(second.conversation.updatedAt)).toBeGreaterThan(Date.parse(first.conversation.updatedAt));
    expect(second.metadata).toBeNull();
    expect(second.tokenCount).toBeNull();
  });

  it('keeps content exactly, including unicode, newlines and a body at the size limit', async () => {
    const content = `emoji 👩‍💻 "quotes" \\ back\nslash\ttab ${'é'.repeat(50)} ${'x'.repeat(99_000)}`;
    const id = (await api.ok(AddMessage, { input: { role: 'USER', content } })).addMessage.conversation.id;
    const { history } = await api.ok(History, { conversationId: id });
    expect(history).toEqual([{ role: 'USER', content }]);
  });

  it('pages messages oldest first, forwards and backwards, without gaps or repeats', async () => {
    const contents = Array.from({ length: 12 }, (_, i) => `m${i + 1}`);
    const id = await conversationWith(contents);
    const seen: string[] = [];
    let after: string | null | undefined;
    for (;;) {
      const page = (await api.ok(GetConversation, { id, first: 5, after })).conversation!.messages;
      seen.push(...page.edges.map((e) => e.node.content));
      expect(page.pageInfo.hasPreviousPage).toBe(after != null);
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
    expect(seen).toEqual(contents);

    const backwards: string[] = [];
    let before: string | null | undefined;
    for (;;) {
      const page = (await api.ok(GetConversation, { id, last: 5, before })).conversation!.messages;
      backwards.unshift(...page.edges.map((e) => e.node.content));
      if (!page.pageInfo.hasPreviousPage) break;
      before = page.pageInfo.startCursor;
    }
    expect(backwards).toEqual(contents);

    const newest = (await api.ok(GetConversation, { id, last: 3 })).conversation!.messages;
    expect(newest.edges.map((e) => e.node.content)).toEqual(['m10', 'm11', 'm12']);
    expect(newest.edges.every((e) => e.node.conversation.id === id)).toBe(true);
    expect(newest.pageInfo).toMatchObject({ hasPreviousPage: true, hasNextPage: false });
  });

  it('lists conversations most recently updated first, pages them, and filters archived', async () => {
    // A fresh user keeps this list independent of the other cases.
    const ids = [await conversationWith([], 'a'), await conversationWith([], 'b'), await conversationWith([], 'c')];
    await new Promise((r) => setTimeout(r, 15));
    await api.ok(AddMessage, { input: { conversationId: ids[0]!, role: 'USER', content: 'bump' } });
    await api.ok(UpdateConversation, { input: { id: ids[1]!, archived: true } });

    const all = (await api.ok(ListConversations, { first: 100, archived: null })).conversations;
    const order = all.edges.map((e) => e.node.id);
    expect(order.slice(0, 3)).toEqual([ids[1], ids[0], ids[2]]);

    const active = (await api.ok(ListConversations, { first: 100 })).conversations.edges.map((e) => e.node);
    expect(active.some((c) => c.id === ids[1])).toBe(false);
    expect(active.every((c) => !c.archived)).toBe(true);
    const archivedOnly = (await api.ok(ListConversations, { first: 100, archived: true })).conversations.edges.map((e) => e.node.id);
    expect(archivedOnly).toContain(ids[1]);
    expect(archivedOnly).not.toContain(ids[0]);

    const paged: string[] = [];
    let after: string | null | undefined;
    for (;;) {
      const page = (await api.ok(ListConversations, { first: 2, after, archived: null })).conversations;
      paged.push(...page.edges.map((e) => e.node.id));
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
    expect(paged).toEqual(order);

    const lastTwo = (await api.ok(ListConversationsBackwards, { last: 2 })).conversations;
    const activeIds = active.map((c) => c.id);
    expect(lastTwo.edges.map((e) => e.node.id)).toEqual(activeIds.slice(-2));
  });

  it('history returns the newest messages oldest first, within the limit', async () => {
    const id = await conversationWith(['one', 'two', 'three', 'four']);
    expect((await api.ok(History, { conversationId: id, limit: 2 })).history).toEqual([
      { role: 'USER', content: 'three' },
      { role: 'USER', content: 'four' },
    ]);
    expect((await api.ok(History, { conversationId: id })).history.map((m) => m.content)).toEqual(['one', 'two', 'three', 'four']);
    const empty = await conversationWith([]);
    expect((await api.ok(History, { conversationId: empty })).history).toEqual([]);
  });

  it('clearMessages deletes the messages, keeps the conversation, and new messages follow', async () => {
    const id = await conversationWith(['a', 'b', 'c']);
    expect((await api.ok(ClearMessages, { conversationId: id })).clearMessages).toBe(3);
    expect((await api.ok(GetConversation, { id })).conversation).toMatchObject({ messageCount: 0, messages: { edges: [] } });
    expect((await api.ok(ClearMessages, { conversationId: id })).clearMessages).toBe(0);
    await api.ok(AddMessage, { input: { conversationId: id, role: 'USER', content: 'again' } });
    expect((await api.ok(History, { conversationId: id })).history).toEqual([{ role: 'USER', content: 'again' }]);
  });

  it('deleteConversation removes its messages too', async () => {
    const id = await conversationWith(['x', 'y']);
    await api.ok(DeleteConversation, { id });
    expect(errorOf(await api.query(History, { conversationId: id })).code).toBe('NOT_FOUND');
    expect(await server.app.db.prisma.message.count({ where: { conversationId: id } })).toBe(0);
  });

  it('keeps every message and a strict order under concurrent appends', async () => {
    const id = await conversationWith([]);
    const contents = Array.from({ length: 20 }, (_, i) => `c${i}`);
    const results = await Promise.all(contents.map((content) => api.mutate(AddMessage, { input: { conversationId: id, role: 'USER', content } })));
    expect(results.filter((r) => r.error)).toEqual([]);
    const stored = await server.app.db.prisma.message.findMany({ where: { conversationId: id }, orderBy: { seq: 'asc' } });
    expect(stored.map((m) => m.seq)).toEqual(contents.map((_, i) => i + 1));
    expect(new Set(stored.map((m) => m.content))).toEqual(new Set(contents));
    expect((await api.ok(GetConversation, { id })).conversation!.messageCount).toBe(20);
  });

  it('lists 50 conversations with counts and last messages in a bounded number of queries', async () => {
    for (let i = 0; i < 50; i++) await conversationWith([`a${i}`, `b${i}`, `c${i}`, `d${i}`, `e${i}`, `f${i}`], `n${i}`);
    const statementsFor = async (first: number) => {
      // Query events of the seeding writes may still be on their way.
      await new Promise((r) => setTimeout(r, 100));
      sqlStatements.length = 0;
      const { conversations } = await api.ok(ListWithRecentMessages, { first });
      // The lease keeper's sweep (expired leases: `leaseExpiresAt" < ?`) runs on its own timer, and
      // a seeding write's events may arrive late under load: a list reads, it never writes.
      const ours = sqlStatements.filter((s) => !/^(BEGIN|COMMIT|SELECT 1|INSERT|UPDATE|DELETE)/i.test(s.trim()) && !/leaseExpiresAt"?\s*</.test(s));
      return { conversations, count: ours.length };
    };
    const { conversations, count } = await statementsFor(50);
    expect(conversations.edges).toHaveLength(50);
    for (const { node } of conversations.edges) {
      const n = node.title!.slice(1);
      expect(node.messageCount).toBe(6);
      expect(node.messages.edges.map((e) => e.node.content)).toEqual([`b${n}`, `c${n}`, `d${n}`, `e${n}`, `f${n}`]);
      expect(node.messages.edges.every((e) => e.node.conversation.id === node.id)).toBe(true);
    }
    // Conversations with counts, the window query, the messages, and their conversations (which
    // Prisma batches per tick, so that one may come in two parts): a few statements, the same
    // bound for 5 conversations as for 50.
    expect(count).toBeGreaterThanOrEqual(2);
    expect(count).toBeLessThanOrEqual(6);
    const few = (await statementsFor(5)).count;
    expect(few).toBeGreaterThanOrEqual(2);
    expect(Math.abs(count - few)).toBeLessThanOrEqual(1);
  });

  it('message pages of a list carry every field the operation selects, through inline fragments, and only those are read', async () => {
    const ids = [await conversationWith(['p1', 'p2', 'p3', 'p4']), await conversationWith(['q1', 'q2'])];
    await api.ok(AddMessage, { input: { conversationId: ids[0]!, role: 'ASSISTANT', content: 'p5', metadata: { tool: 'x', list: [1, null] }, tokenCount: 7 } });
    sqlStatements.length = 0;
    const { conversations } = await api.ok(ListWithMessageFields, { first: 2 });
    const windowQuery = sqlStatements.find((sql) => /LATERAL/i.test(sql));
    expect(conversations.edges.map((e) => e.node.id).sort()).toEqual([...ids].sort());
    for (const { node } of conversations.edges) {
      const rows = await server.app.db.prisma.message.findMany({ where: { conversationId: node.id }, orderBy: { seq: 'asc' } });
      const expected = rows.slice(-3).map((m) => ({
        __typename: 'Message',
        id: m.id,
        role: m.role,
        content: m.content,
        tokenCount: m.tokenCount,
        metadata: m.metadata,
        createdAt: m.createdAt.toISOString(),
        status: m.status,
        model: m.model,
        finishReason: m.finishReason,
        promptTokens: m.promptTokens,
        completionTokens: m.completionTokens,
        error: m.error,
        conversation: { id: node.id },
      }));
      expect(node.messages.edges.map((e) => e.node)).toEqual(expected);
    }
    if (provider === 'postgresql') expect(windowQuery).toMatch(/"metadata".*"createdAt"/s);

    sqlStatements.length = 0;
    const narrow = await api.ok(ListWithContentOnly, { first: 2 });
    const byId = new Map(narrow.conversations.edges.map((e) => [e.node.id, e.node.messages.edges.map((m) => m.node.text)]));
    expect(byId.get(ids[0]!)).toEqual(['p3', 'p4', 'p5']);
    expect(byId.get(ids[1]!)).toEqual(['q1', 'q2']);
    if (provider === 'postgresql') {
      const narrowWindow = sqlStatements.find((sql) => /LATERAL/i.test(sql))!;
      expect(narrowWindow).toContain('"content"');
      expect(narrowWindow).not.toMatch(/"metadata"|"createdAt"|"error"/);
    }
  });

  describe('bad input', () => {
    it.each([
      ['title over 200 characters', CreateConversation, { input: { title: 'x'.repeat(201) } }, 'input.title'],
    ] as const)('createConversation: %s', async (_, doc, variables, field) => {
      const error = errorOf(await api.mutate(doc, variables));
      expect(error.code).toBe('BAD_USER_INPUT');
      expect(error.message).toContain(field);
    });

    it('keeps a title of exactly 200 characters, on create and on update', async () => {
      const longest = 'x'.repeat(200);
      const created = await api.ok(CreateConversation, { input: { title: longest } });
      expect(created.createConversation.title).toBe(longest);
      const id = await conversationWith([]);
      const updated = await api.ok(UpdateConversation, { input: { id, title: 'y'.repeat(200) } });
      expect(updated.updateConversation.title).toBe('y'.repeat(200));
    });

    it('updateConversation rejects a long title, and NOT_FOUND for a missing id', async () => {
      const id = await conversationWith([]);
      const long = errorOf(await api.mutate(UpdateConversation, { input: { id, title: 'y'.repeat(201) } }));
      expect(long).toMatchObject({ code: 'BAD_USER_INPUT' });
      expect(long.message).toContain('input.title');
      expect(errorOf(await api.mutate(UpdateConversation, { input: { id: 'missing', title: 'z' } })).code).toBe('NOT_FOUND');
      expect((await api.ok(GetConversation, { id })).conversation!.title).toBeNull();
    });

    it.each([
      ['empty content', { role: 'USER', content: '' }, 'input.content'],
      ['blank content', { role: 'USER', content: '  \n ' }, 'input.content'],
      ['content over the limit', { role: 'USER', content: 'x'.repeat(100_001) }, 'input.content'],
      ['negative tokenCount', { role: 'USER', content: 'hi', tokenCount: -1 }, 'input.tokenCount'],
      ['oversized metadata', { role: 'USER', content: 'hi', metadata: { blob: 'x'.repeat(70_000) } }, 'input.metadata'],
    ] as const)('addMessage: %s', async (_, input, field) => {
      const before = await server.app.db.prisma.message.count();
      const error = errorOf(await api.mutate(AddMessage, { input: input as never }));
      expect(error.code).toBe('BAD_USER_INPUT');
      expect(error.message).toContain(field);
      expect(await server.app.db.prisma.message.count()).toBe(before);
    });

    it('addMessage: an unknown role is refused before anything runs', async () => {
      const result = await api.mutate(AddMessage, { input: { role: 'ROBOT' as never, content: 'hi' } });
      expect(result.error?.graphQLErrors[0]?.message).toMatch(/Role/);
    });

    it('addMessage and clearMessages: NOT_FOUND for a missing conversation, nothing written', async () => {
      const before = await server.app.db.prisma.message.count();
      expect(errorOf(await api.mutate(AddMessage, { input: { conversationId: 'missing', role: 'USER', content: 'hi' } })).code).toBe('NOT_FOUND');
      expect(errorOf(await api.mutate(ClearMessages, { conversationId: 'missing' })).code).toBe('NOT_FOUND');
      expect(await server.app.db.prisma.message.count()).toBe(before);
    });

    it.each([
      ['first: 0', { first: 0 }, 'first'],
      ['first: 101', { first: 101 }, 'first'],
      ['last: 0', { last: 0 }, 'last'],
      ['last: 101', { last: 101 }, 'last'],
      ['first and last', { first: 2, last: 2 }, 'last'],
      ['a made-up cursor', { after: 'bm90IGEgY3Vyc29y' }, 'after'],
      ['a cursor of another kind', { before: Buffer.from('conversation:1:abc').toString('base64url') }, 'before'],
    ] as const)('Conversation.messages: %s', async (_, args, field) => {
      const id = await conversationWith(['a']);
      const error = errorOf(await api.query(GetConversation, { id, ...args }));
      expect(error).toMatchObject({ code: 'BAD_USER_INPUT' });
      expect(error.message).toContain(field);
    });

    it.each([
      ['first: 0', { first: 0 }, 'first'],
      ['first: 101', { first: 101 }, 'first'],
      ['garbage cursor', { after: '%%%' }, 'after'],
    ] as const)('conversations: %s', async (_, args, field) => {
      const error = errorOf(await api.query(ListConversations, args));
      expect(error).toMatchObject({ code: 'BAD_USER_INPUT' });
      expect(error.message).toContain(field);
    });

    it.each([0, 101, -5])('history: limit %i', async (limit) => {
      const id = await conversationWith(['a']);
      const error = errorOf(await api.query(History, { conversationId: id, limit }));
      expect(error).toMatchObject({ code: 'BAD_USER_INPUT' });
      expect(error.message).toContain('limit');
    });
  });
});
