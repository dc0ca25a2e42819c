// A chat app on another origin, as its users run it: a page served from http://app.test:<port>
// (a name mapped to loopback) in Debian's Chromium calls Parley on 127.0.0.1 with its default
// fetch and the graphql-ws browser bundle. With auth on it reads every answer; against a
// single-user server the same page is refused, and so is a page reached by a rebound name.
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from './support/browser.ts';
import { startParley, TEST_JWT_SECRET, tokenFor, type TestServer } from './support/parley.ts';

const APP_PAGE = `<!doctype html><html><head><meta charset="utf-8"><script src="/graphql-ws.js"></script></head><body><script>
const query = (url, token, body) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: 'Bearer ' + token } : {}) }, body: JSON.stringify(body) })
    .then((res) => res.json());

function followWs(url, token, messageId) {
  return new Promise((resolve, reject) => {
    const events = [];
    const client = graphqlWs.createClient({ url: url.replace(/^http/, 'ws'), connectionParams: token ? { authorization: 'Bearer ' + token } : {}, retryAttempts: 0, lazy: true });
    client.subscribe(
      { query: 'subscription($id: ID!) { messageStream(messageId: $id) { seq delta done status } }', variables: { id: messageId } },
      { next: (result) => events.push(result), error: (error) => { client.dispose(); reject(new Error('ws: ' + (error.reason ?? error.message ?? JSON.stringify(error)))); }, complete: () => { client.dispose(); resolve(events); } },
    );
  });
}

async function followSse(url, token, messageId) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...(token ? { authorization: 'Bearer ' + token } : {}) },
    body: JSON.stringify({ query: 'subscription($id: ID!) { messageStream(messageId: $id) { seq delta done status } }', variables: { id: messageId } }),
  });
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += value;
  }
  return text.split(/\\n\\n/).filter((block) => /^event: next/m.test(block)).map((block) => JSON.parse(/^data: (.*)$/m.exec(block)[1]));
}

// Every document twice: Parley answers a document it has seen before on its fast path.
window.chat = async (url, token) => {
  const presetsQuery = { query: '{ modelPresets { id } }' };
  const send = (c) => query(url, token, { query: 'mutation($c: String!) { sendMessage(input: { content: $c }) { assistantMessage { id } } }', variables: { c } });
  await query(url, token, presetsQuery);
  const presets = await query(url, token, presetsQuery);
  await send('a first message');
  const sent = await send('from another origin');
  const id = sent.data.sendMessage.assistantMessage.id;
  const [ws, sse] = await Promise.all([followWs(url, token, id), followSse(url, token, id)]);
  return { presets, sent, ws, sse };
};

window.attempt = async (what) => {
  try { return { ok: await what() }; } catch (error) { return { refused: String(error.message ?? error) }; }
};
</script></body></html>`;

describe('a chat app on another origin, in a browser', () => {
  let app: Server;
  let appUrl: string;
  let browser: Browser;
  let page: Page;
  const servers: TestServer[] = [];

  beforeAll(async () => {
    const bundle = await readFile(path.resolve(import.meta.dirname, '../node_modules/graphql-ws/umd/graphql-ws.min.js'));
    app = createServer((req, res) => {
      if (req.url === '/graphql-ws.js') return void res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(APP_PAGE);
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    appUrl = `http://app.test:${(app.address() as AddressInfo).port}/`;
    browser = await launchChromium({ hostRules: 'MAP app.test 127.0.0.1, MAP rebound.test 127.0.0.1' });
    page = await browser.newPage();
    await page.goto(appUrl);
  });
  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => app?.close(resolve));
    for (const server of servers) await server.stop();
  });

  it('with auth on, runs a query, sendMessage, and follows the reply over graphql-ws and SSE, reading every answer', async () => {
    const server = await startParley({ env: { AUTH_JWT_SECRET: TEST_JWT_SECRET } });
    servers.push(server);
    const token = await tokenFor('browser-user');
    const result = await page.evaluate(([url, token]) => (window as unknown as { chat(u: string, t: string): Promise<unknown> }).chat(url!, token!), [server.graphqlUrl, token]);
    const { presets, sent, ws, sse } = result as {
      presets: { data: { modelPresets: { id: string }[] } };
      sent: { data: { sendMessage: { assistantMessage: { id: string } } } };
      ws: { data: { messageStream: { seq: number; delta: string; done: boolean; status: string } } }[];
      sse: { data: { messageStream: { seq: number; delta: string; done: boolean; status: string } } }[];
    };
    expect(presets.data.modelPresets.map((p) => p.id)).toContain('local-echo');
    const id = sent.data.sendMessage.assistantMessage.id;
    const saved = await server.app.db.prisma.message.findUniqueOrThrow({ where: { id } });
    expect(saved.status).toBe('COMPLETE');
    for (const events of [ws, sse]) {
      const stream = events.map((e) => e.data.messageStream);
      expect(stream.map((e) => e.seq)).toEqual(stream.map((_, i) => i));
      expect(stream.at(-1)).toMatchObject({ done: true, status: 'COMPLETE' });
      expect(stream.map((e) => e.delta).join('')).toBe(saved.content);
    }
    expect(saved.content).toContain('You said: from another origin');
    expect(await server.app.db.prisma.conversation.count()).toBe(2);
    // The repeated query and mutation were answered on the fast path, and the page read them.
    expect(server.app.fastPathCounts.answered).toBeGreaterThanOrEqual(2);
  });

  it('in single-user mode, the same page can neither read an answer nor open a WebSocket, and nothing runs', async () => {
    const server = await startParley();
    servers.push(server);
    const outcome = await page.evaluate(async (url) => {
      const w = window as unknown as { attempt(f: () => Promise<unknown>): Promise<{ ok?: unknown; refused?: string }>; chat(u: string, t: string): Promise<unknown> };
      return {
        query: await w.attempt(() => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ modelPresets { id } }' }) }).then((r) => r.json())),
        chat: await w.attempt(() => w.chat(url, '')),
        ws: await w.attempt(
          () =>
            new Promise((resolve, reject) => {
              const socket = new WebSocket(url.replace(/^http/, 'ws'), 'graphql-transport-ws');
              socket.onopen = () => resolve('opened');
              socket.onerror = () => reject(new Error('websocket refused'));
            }),
        ),
      };
    }, server.graphqlUrl);
    expect(outcome.query.refused).toMatch(/Failed to fetch/);
    expect(outcome.chat.refused).toMatch(/Failed to fetch/);
    expect(outcome.ws.refused).toBe('websocket refused');
    // The preflight was refused, so the mutation never reached Yoga.
    expect(await server.app.db.prisma.conversation.count()).toBe(0);
  });

  it('in single-user mode, a page reached through a rebound name is refused by its Host', async () => {
    const server = await startParley();
    servers.push(server);
    const rebound = await browser.newPage();
    try {
      const port = new URL(server.url).port;
      const response = await rebound.goto(`http://rebound.test:${port}/graphql?query=${encodeURIComponent('{ modelPresets { id } }')}`);
      expect(response!.status()).toBe(421);
      expect(await rebound.content()).toContain('ALLOWED_HOSTS');
    } finally {
      await rebound.close();
    }
  });
});
