// Subscriptions work over both transports on the same port and path, authentication holds on
// both, and the GraphQL limits apply over WebSocket and SSE as over plain HTTP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { graphql } from './generated/gql.ts';
import { startParley, tokenFor, TEST_JWT_SECRET, type TestServer } from './support/parley.ts';
import { subscribeSse, subscribeWs, wsClient } from './support/subscriptions.ts';

const Ticks = graphql(`subscription Ticks($count: Int, $intervalMs: Int) { serverTime(count: $count, intervalMs: $intervalMs) }`);
const BadInterval = graphql(`subscription BadInterval { serverTime(intervalMs: 1) }`);

const nest = (depth: number): string => (depth === 0 ? 'id' : `messages { edges { node { conversation { ${nest(depth - 1)} } } } }`);
// 3 + 4 × 3 + 1 = 16 levels, past the limit of 12.
const deepQuery = `query Deep { conversations { edges { node { ${nest(3)} } } } }`;

describe('subscription transports', () => {
  let server: TestServer;
  let token: string;

  beforeAll(async () => {
    server = await startParley({ env: { AUTH_JWT_SECRET: TEST_JWT_SECRET } });
    token = await tokenFor('subscriber');
  });
  afterAll(() => server?.stop());

  it('graphql-ws delivers serverTime events in order, then completes', async () => {
    const client = wsClient(server.graphqlUrl, token);
    const sub = subscribeWs<{ serverTime: string }>(client, Ticks, { count: 3, intervalMs: 20 });
    await sub.done;
    await client.dispose();
    expect(sub.errors).toEqual([]);
    expect(sub.events).toHaveLength(3);
    const times = sub.events.map((e) => Date.parse(e.serverTime));
    expect(times.every((t, i) => i === 0 || t >= times[i - 1]!)).toBe(true);
    expect(Math.abs(times[0]! - Date.now())).toBeLessThan(5000);
  });

  it('SSE delivers the same events, then completes', async () => {
    const sub = subscribeSse<{ serverTime: string }>(server.graphqlUrl, Ticks, { count: 3, intervalMs: 20 }, token);
    await sub.done;
    expect(sub.errors).toEqual([]);
    expect(sub.events).toHaveLength(3);
    expect(sub.events.every((e) => !Number.isNaN(Date.parse(e.serverTime)))).toBe(true);
  });

  it('refuses a WebSocket without a valid token', async () => {
    for (const params of [{}, { authorization: 'Bearer nonsense' }, { authorization: `Bearer ${await tokenFor('x', { secret: 'y'.repeat(40) })}` }]) {
      const socket = new WebSocket(server.graphqlUrl.replace(/^http/, 'ws'), 'graphql-transport-ws');
      const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
      socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: params })));
      const messages: string[] = [];
      socket.on('message', (data) => messages.push(String(data)));
      expect(await closed).toBe(4403);
      expect(messages.some((m) => m.includes('connection_ack'))).toBe(false);
    }
  });

  it('closes a WebSocket that never sends connection_init', async () => {
    const socket = new WebSocket(server.graphqlUrl.replace(/^http/, 'ws'), 'graphql-transport-ws');
    const code = await new Promise<number>((resolve) => socket.on('close', (c) => resolve(c)));
    expect(code).toBe(4408);
  });

  it('SSE without a token gets UNAUTHENTICATED and no events', async () => {
    const sub = subscribeSse<{ serverTime: string }>(server.graphqlUrl, Ticks, { count: 2, intervalMs: 20 });
    await sub.done.catch(() => {});
    expect(sub.events).toEqual([]);
    expect(JSON.stringify(sub.errors)).toContain('UNAUTHENTICATED');
  });

  it('bad subscription arguments get BAD_USER_INPUT on both transports', async () => {
    const client = wsClient(server.graphqlUrl, token);
    const ws = subscribeWs(client, BadInterval);
    await ws.done.catch(() => {});
    await client.dispose();
    expect(JSON.stringify(ws.errors)).toContain('BAD_USER_INPUT');
    const sse = subscribeSse(server.graphqlUrl, BadInterval, {}, token);
    await sse.done.catch(() => {});
    expect(JSON.stringify(sse.errors)).toContain('BAD_USER_INPUT');
  });

  it('the depth limit applies over HTTP, WebSocket and SSE alike', async () => {
    const http = await fetch(server.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: deepQuery }),
    }).then((r) => r.json());
    expect(JSON.stringify(http.errors)).toMatch(/depth/i);

    const client = wsClient(server.graphqlUrl, token);
    const { parse } = await import('graphql');
    const ws = subscribeWs(client, parse(deepQuery));
    await ws.done.catch(() => {});
    await client.dispose();
    expect(JSON.stringify(ws.errors)).toMatch(/depth/i);

    const sse = subscribeSse(server.graphqlUrl, parse(deepQuery), {}, token);
    await sse.done.catch(() => {});
    expect(JSON.stringify(sse.errors)).toMatch(/depth/i);
  });

  it('ending a subscription early stops its source', async () => {
    const client = wsClient(server.graphqlUrl, token);
    const sub = subscribeWs<{ serverTime: string }>(client, Ticks, { intervalMs: 10 });
    await new Promise((r) => setTimeout(r, 100));
    sub.stop();
    const seen = sub.events.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(seen).toBeGreaterThan(0);
    expect(sub.events.length).toBe(seen);
    await client.dispose();
  });
});
