// A document nested a thousand deep overflowed graphql-js' recursive parser ("Maximum call stack
// size exceeded", an internal error; found by test/fuzz.test.ts, seed 1646802390). Such a
// document is now refused before parsing, with a code, on every transport.
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { documentNesting, MAX_DOCUMENT_NESTING } from '../src/server/nesting-limit.ts';
import { startParley, type TestServer } from './support/parley.ts';
import { wsClient } from './support/subscriptions.ts';

describe('documentNesting', () => {
  it('counts brackets of every kind, outside strings, block strings and comments', () => {
    expect(documentNesting('{ a }')).toBe(1);
    expect(documentNesting('query($v: [[Int]]) { a(x: [[1]], y: { z: [2] }) { b { c } } }')).toBe(4);
    expect(documentNesting('{ a(s: "[[[[[[{{{{(((", t: """ [[[[ \\""" [[[[ """) }')).toBe(2);
    expect(documentNesting('# [[[[[[[[\n{ a }')).toBe(1);
    expect(documentNesting('{ a(s: "esc \\" [[[[[[") }')).toBe(2);
    // Unbalanced text is the parser's to refuse; the scan just never goes negative.
    expect(documentNesting(']]]] {')).toBe(1);
    expect(documentNesting('['.repeat(100_000))).toBe(100_000);
  });
});

describe('a deeply nested document', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startParley({ provider: 'postgresql' });
  });
  afterAll(async () => {
    await server?.stop();
  });

  const nested = (depth: number) => `mutation { addMessage(input: { content: "x", role: USER, metadata: ${'['.repeat(depth)}${']'.repeat(depth)} }) { id } }`;
  const post = async (query: string, accept = 'application/json') => {
    const res = await fetch(server.graphqlUrl, { method: 'POST', headers: { 'content-type': 'application/json', accept }, body: JSON.stringify({ query }) });
    return { status: res.status, body: (await res.json()) as { errors?: { message: string; extensions?: { code?: string } }[] } };
  };

  it('is refused with a code over HTTP, at any depth past the limit, twice (the fast path too)', async () => {
    for (const depth of [MAX_DOCUMENT_NESTING + 1, 995, 5000, 50_000]) {
      for (const round of [1, 2]) {
        const { status, body } = await post(nested(depth));
        expect(status, `${depth}, round ${round}`).toBe(200);
        expect(body.errors, `${depth}`).toEqual([{ message: `the document nests brackets more than ${MAX_DOCUMENT_NESTING} deep`, extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } }]);
      }
      expect((await post(nested(depth), 'application/graphql-response+json')).status).toBe(400);
    }
    expect(await server.app.db.prisma.message.count()).toBe(0);
  });

  it('just within the limit, it reaches the resolver and its own refusal', async () => {
    const { body } = await post(nested(MAX_DOCUMENT_NESTING - 3));
    expect(body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('is refused with a code over graphql-ws, and the socket stays usable', async () => {
    const client = wsClient(server.graphqlUrl);
    try {
      const run = (query: string) =>
        new Promise<unknown>((resolve, reject) => {
          let result: unknown;
          client.subscribe({ query }, { next: (r) => (result = r), error: reject, complete: () => resolve(result) });
        });
      const refused = await run(nested(5000)).catch((errors: unknown) => ({ errors }));
      expect(JSON.stringify(refused)).toContain(`the document nests brackets more than ${MAX_DOCUMENT_NESTING} deep`);
      expect(JSON.stringify(refused)).not.toMatch(/Unexpected error|call stack/);
      expect(await run('{ modelPresets { id } }')).toMatchObject({ data: { modelPresets: expect.any(Array) } });
    } finally {
      await client.dispose();
    }
  });
});
