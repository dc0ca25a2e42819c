// conversations { viewerEventSeq }: the viewer's seq is read before the page, so a client that
// subscribes to viewerEvents after it misses no change the page lacks (issue 12).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startParley, tokenFor, TEST_JWT_SECRET, type TestServer } from './support/parley.ts';

describe('conversations { viewerEventSeq }', () => {
  let server: TestServer;
  const statements: string[] = [];
  beforeAll(async () => {
    server = await startParley({ provider: 'postgresql', env: { AUTH_JWT_SECRET: TEST_JWT_SECRET }, onQuery: (sql) => void statements.push(sql) });
  });
  afterAll(() => server?.stop());

  const post = async (token: string, query: string) => {
    const res = await fetch(server.graphqlUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query }) });
    const answer = (await res.json()) as { data?: any; errors?: unknown };
    expect(answer.errors).toBeUndefined();
    return answer.data;
  };

  it('is read before the page, equals Query.viewerEventSeq when nothing moves, and costs nothing when not asked for', async () => {
    const token = await tokenFor('list-seq');
    const other = await tokenFor('list-seq-other');
    expect((await post(token, '{ conversations(first: 5) { viewerEventSeq edges { node { id } } } }')).conversations).toEqual({ viewerEventSeq: -1, edges: [] });
    for (let i = 0; i < 3; i++) await post(token, 'mutation { createConversation { id } }');
    await post(other, 'mutation { createConversation { id } }');
    statements.length = 0;
    const listed = (await post(token, '{ viewerEventSeq conversations(first: 5) { viewerEventSeq edges { node { id } } } }')) as { viewerEventSeq: number; conversations: { viewerEventSeq: number; edges: unknown[] } };
    expect(listed.conversations.viewerEventSeq).toBe(2);
    expect(listed.viewerEventSeq).toBe(2);
    expect(listed.conversations.edges).toHaveLength(3);
    // The seq's read comes before the list's (asked alone: the root field's read would blur it).
    statements.length = 0;
    await post(token, '{ conversations(first: 5) { viewerEventSeq edges { node { id } } } }');
    expect(statements.filter((s) => /"ViewerState"/.test(s))).toHaveLength(1);
    const seqRead = statements.findIndex((s) => /"ViewerState"/.test(s));
    const listRead = statements.findIndex((s) => /FROM "public"\."Conversation"/.test(s));
    expect(seqRead).toBeGreaterThanOrEqual(0);
    expect(listRead).toBeGreaterThan(seqRead);
    // Not selected: not read.
    statements.length = 0;
    await post(token, '{ conversations(first: 5) { edges { node { id } } } }');
    expect(statements.filter((s) => /"ViewerState"/.test(s))).toEqual([]);
  });
});
