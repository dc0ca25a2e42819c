// What one graphql-ws connection may cost: at most MAX_SUBSCRIPTIONS_PER_CONNECTION operations at
// once, and no life past its token's expiry.
import { parse } from 'graphql';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startParley, TEST_JWT_SECRET, tokenFor, type TestServer } from './support/parley.ts';
import { subscribeWs, wsClient } from './support/subscriptions.ts';

const TICKS = parse('subscription { serverTime(intervalMs: 60000) }');

let server: TestServer;
beforeAll(async () => {
  server = await startParley({ env: { AUTH_JWT_SECRET: TEST_JWT_SECRET, MAX_SUBSCRIPTIONS_PER_CONNECTION: '20' } });
});
afterAll(() => server.stop());

const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('subscriptions per connection', () => {
  it('runs the limit at once, refuses one more with a coded error, and takes one again after one ends', async () => {
    const client = wsClient(server.graphqlUrl, await tokenFor('ann'));
    try {
      const running = Array.from({ length: 20 }, () => subscribeWs<{ serverTime: string }>(client, TICKS));
      // Every one of them delivers its first tick.
      for (let i = 0; i < 100 && running.some((s) => s.events.length === 0); i++) await settle(20);
      expect(running.map((s) => s.events.length)).toEqual(Array(20).fill(1));
      expect(running.flatMap((s) => s.errors)).toEqual([]);

      const refused = subscribeWs(client, TICKS);
      await refused.done.catch(() => {});
      expect(refused.events).toEqual([]);
      expect(JSON.stringify(refused.errors)).toContain('TOO_MANY_SUBSCRIPTIONS');

      running[0]!.stop();
      await settle(50);
      const again = subscribeWs<{ serverTime: string }>(client, TICKS);
      for (let i = 0; i < 100 && again.events.length === 0 && again.errors.length === 0; i++) await settle(20);
      expect(again.errors).toEqual([]);
      expect(again.events).toHaveLength(1);
    } finally {
      await client.dispose();
    }
  });
});

describe('a connection whose token expires', () => {
  it('works until its expiry, then is closed with 4403', async () => {
    const token = await tokenFor('bob', { expiresIn: '2s' });
    const socket = new WebSocket(server.graphqlUrl.replace(/^http/, 'ws'), 'graphql-transport-ws');
    const messages: { type: string; id?: string; payload?: unknown }[] = [];
    socket.on('message', (data) => messages.push(JSON.parse(String(data))));
    const closed = new Promise<{ code: number; at: number }>((resolve) => socket.on('close', (code) => resolve({ code, at: Date.now() })));
    await new Promise((resolve) => socket.once('open', resolve));
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
    for (let i = 0; i < 100 && !messages.some((m) => m.type === 'connection_ack'); i++) await settle(10);
    expect(messages.map((m) => m.type)).toContain('connection_ack');
    // Before the expiry, it works.
    socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: 'mutation { createConversation { id } }' } }));
    for (let i = 0; i < 100 && !messages.some((m) => m.id === '1' && m.type === 'next'); i++) await settle(10);
    expect(messages.some((m) => m.id === '1' && m.type === 'next')).toBe(true);

    const expiresAt = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).exp * 1000;
    const { code, at } = await closed;
    expect(code).toBe(4403);
    expect(at).toBeGreaterThanOrEqual(expiresAt);
    expect(at).toBeLessThan(expiresAt + 1500);
  });

  it('is refused at connect once expired', async () => {
    const token = await tokenFor('carol', { expiresIn: '1s' });
    await settle(2100);
    const socket = new WebSocket(server.graphqlUrl.replace(/^http/, 'ws'), 'graphql-transport-ws');
    const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
    await new Promise((resolve) => socket.once('open', resolve));
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
    expect(await closed).toBe(4403);
  });
});
