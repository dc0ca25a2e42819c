// What operators see: /health, request limits, GraphiQL, masked errors, start-up on the
// embedded defaults, configuration errors, and a graceful shutdown on SIGTERM.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, pgAdmin } from './support/databases.ts';
import { startParley, type TestServer } from './support/parley.ts';
import { runScript, spawnParley, waitUntilHealthy } from './support/process.ts';

const post = (url: string, body: string, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

describe('HTTP endpoints', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startParley({ env: { MAX_BODY_BYTES: '4096' } });
  });
  afterAll(() => server?.stop());

  it('/health answers 200 with the database state', async () => {
    const res = await fetch(`${server.url}/health`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('application/json');
    const body = await res.json();
    expect(body).toMatchObject({ status: 'ok', database: { provider: 'sqlite', status: 'up' } });
    expect(typeof body.database.latencyMs).toBe('number');
  });

  it('refuses a body over MAX_BODY_BYTES with 413, before parsing it', async () => {
    const res = await post(server.graphqlUrl, JSON.stringify({ query: `{ __typename }`, variables: { pad: 'x'.repeat(5000) } }));
    expect(res.status).toBe(413);
    const ok = await post(server.graphqlUrl, JSON.stringify({ query: '{ __typename }' }));
    expect(await ok.json()).toEqual({ data: { __typename: 'Query' } });
  });

  it('refuses a POST without Content-Length (chunked) with 411', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(server.graphqlUrl, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.write('{"query":');
      req.end('"{ __typename }"}');
    });
    expect(status).toBe(411);
  });

  it('answers malformed JSON with a GraphQL error, not a crash', async () => {
    const res = await post(server.graphqlUrl, '{"query": ');
    expect(res.status).toBe(400);
    expect(JSON.stringify(await res.json())).toMatch(/JSON/i);
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });

  it('hides field suggestions and answers unknown fields with a validation error', async () => {
    const body = await (await post(server.graphqlUrl, JSON.stringify({ query: '{ conversatio { id } }' }))).json();
    expect(body.errors[0].message).toContain('Cannot query field');
    expect(body.errors[0].message).not.toContain('Did you mean');
  });

  it('serves GraphiQL at /graphql in development, whole: no script, style or image from another host', async () => {
    const res = await fetch(server.graphqlUrl, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(200);
    const page = await res.text();
    expect(page).toMatch(/graphiql/i);
    // Every tag that loads something names no URL with a host (Yoga's default page loads unpkg).
    const loads = [...page.matchAll(/<(script|link|img)\b[^>]*\b(src|href)\s*=\s*["']([^"']*)["']/gi)].map((m) => m[3]!);
    expect(loads.filter((url) => /^(https?:)?\/\//i.test(url))).toEqual([]);
    expect(page).not.toMatch(/unpkg\.com|jsdelivr|cdn\./i);
    // It opens on the working pair of operations.
    expect(page).toContain('sendMessage(input:');
    expect(page).toContain('messageStream(messageId: $messageId)');
  });
});

describe('GraphiQL switches', () => {
  it.each([
    ['GRAPHIQL=false', { GRAPHIQL: 'false' }],
    ['NODE_ENV=production', { NODE_ENV: 'production' }],
  ])('is off with %s', async (_, env) => {
    const server = await startParley({ env });
    try {
      const res = await fetch(server.graphqlUrl, { headers: { accept: 'text/html' } });
      expect(await res.text()).not.toMatch(/graphiql/i);
    } finally {
      await server.stop();
    }
  });
});

describe('when the database is gone', () => {
  it.each(['test', 'development'])('/health answers 503, and failing operations are masked, with NODE_ENV=%s', async (nodeEnv) => {
    // Yoga reads process.env.NODE_ENV, when it masks an error, for its development mode, which
    // adds the original error's stack to the answer.
    const saved = process.env.NODE_ENV;
    process.env.NODE_ENV = nodeEnv;
    const server = await startParley({ provider: 'postgresql', env: { DATABASE_POOL_SIZE: '2', NODE_ENV: nodeEnv } });
    try {
      const dbName = new URL(server.database.url).pathname.slice(1);
      await pgAdmin((c) => c.query(`DROP DATABASE "${dbName}" WITH (FORCE)`));
      const health = await fetch(`${server.url}/health`);
      expect(health.status).toBe(503);
      expect(await health.json()).toMatchObject({ status: 'unavailable', database: { status: 'down' } });

      const body = await (await post(server.graphqlUrl, JSON.stringify({ query: '{ conversations { edges { node { id } } } }' }))).json();
      expect(body.errors).toHaveLength(1);
      expect(body.errors[0].message).toBe('Unexpected error.');
      expect(JSON.stringify(body)).not.toMatch(/SELECT|database|postgres|prisma|stack|\.ts|originalError/i);
      expect(body.errors[0].extensions).toEqual({ code: 'INTERNAL_SERVER_ERROR' });
    } finally {
      await server.stop();
      await server.database.drop();
      process.env.NODE_ENV = saved;
    }
  });
});

describe('the process', () => {
  it('starts on the embedded defaults, creating the SQLite file, and stops cleanly on SIGTERM', async () => {
    const cwd = await mkdtemp(path.join(os.tmpdir(), 'parley-start-'));
    try {
      const parley = await spawnParley({}, cwd);
      await waitUntilHealthy(parley);
      expect(existsSync(path.join(cwd, 'data/parley.db'))).toBe(true);
      expect(parley.output()).toContain('single-user mode');

      // An SSE subscription is in flight when the signal arrives: it must end, not hold the exit.
      const sse = await fetch(`${parley.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify({ query: 'subscription { serverTime(intervalMs: 50) }' }),
      });
      const reader = sse.body!.getReader();
      let first = '';
      // Yoga may send a keep-alive comment before the first event.
      while (!first.includes('serverTime')) {
        const { done, value } = await reader.read();
        if (done) break;
        first += new TextDecoder().decode(value);
      }
      expect(first).toContain('serverTime');
      const rest = (async () => {
        let text = '';
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return text;
          text += new TextDecoder().decode(value);
        }
      })();

      const started = Date.now();
      parley.child.kill('SIGTERM');
      expect(await parley.exited).toBe(0);
      expect(Date.now() - started).toBeLessThan(5000);
      await expect(rest).resolves.toBeTypeOf('string');
      expect(parley.output()).toContain('Parley stopped');
      await expect(fetch(`${parley.url}/health`)).rejects.toThrow();
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  });

  it('refuses to start with a bad setting, naming every bad variable', async () => {
    const parley = await spawnParley({ PORT: 'eighty', DATABASE_URL: 'redis://nope', AUTH_JWT_SECRET: 'short' });
    expect(await parley.exited).toBe(1);
    expect(parley.output()).toMatch(/PORT/);
    expect(parley.output()).toMatch(/DATABASE_URL/);
    expect(parley.output()).toMatch(/AUTH_JWT_SECRET/);
  });

  it('with MIGRATE_ON_START=false refuses an unmigrated database; npm run db:deploy migrates it', async () => {
    const database = await createTestDatabase('sqlite');
    try {
      const refused = await spawnParley({ DATABASE_URL: database.url, MIGRATE_ON_START: 'false' });
      expect(await refused.exited).toBe(1);
      expect(refused.output()).toMatch(/missing migrations .*db:deploy/);
      expect(refused.output()).not.toContain('applied migration');

      const deploy = await runScript('src/store/deploy.ts', { DATABASE_URL: database.url });
      expect(deploy).toMatchObject({ code: 0 });
      expect(deploy.output).toMatch(/Applied \d+ migration/);
      expect((await runScript('src/store/deploy.ts', { DATABASE_URL: database.url })).output).toContain('No pending migrations.');

      const parley = await spawnParley({ DATABASE_URL: database.url, MIGRATE_ON_START: 'false' });
      await waitUntilHealthy(parley);
      const res = await post(`${parley.url}/graphql`, JSON.stringify({ query: 'mutation { createConversation { id } }' }));
      expect((await res.json()).data.createConversation.id).toBeTypeOf('string');
      parley.child.kill('SIGTERM');
      expect(await parley.exited).toBe(0);
    } finally {
      await database.drop();
    }
  });
});
