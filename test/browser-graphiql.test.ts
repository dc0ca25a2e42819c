// GraphiQL as a person uses it: Debian's Chromium, driven by playwright-core, with every request
// off loopback refused. The page must render, send a message from its first tab, and follow the
// reply to its end over a subscription, every event of it in the result pane.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from './support/browser.ts';
import { startParley, type TestServer } from './support/parley.ts';

describe('GraphiQL in a browser with no network', () => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  const offMachine: string[] = [];

  beforeAll(async () => {
    server = await startParley();
    browser = await launchChromium();
    // Tall: Monaco draws only the lines in view, and the pane must show a whole reply's events.
    page = await browser.newPage({ viewport: { width: 1280, height: 12_000 } });
    await page.route('**/*', (route) => {
      const url = new URL(route.request().url());
      if (url.hostname === '127.0.0.1' || url.protocol === 'data:') return route.continue();
      offMachine.push(url.href);
      return route.abort();
    });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  const run = async () => {
    await page.locator('.graphiql-execute-button').click();
  };
  // The response pane as text, its soft line wraps undone.
  const response = async () => (await page.locator('.graphiql-response').innerText()).replace(/\s+/g, ' ');

  it('renders from Parley alone and opens on the Send and Follow tabs', async () => {
    await page.goto(server.graphqlUrl);
    await page.waitForSelector('.graphiql-query-editor', { timeout: 30_000 });
    expect(await page.locator('.graphiql-tab').allInnerTexts()).toEqual([expect.stringMatching(/^Send/), expect.stringMatching(/^Follow/)]);
    expect(await page.locator('.graphiql-query-editor').innerText()).toContain('sendMessage(input:');
    expect(offMachine).toEqual([]);
  });

  it('runs sendMessage from its first tab, then follows the reply with messageStream to the end, showing every event', async () => {
    await run();
    await expect.poll(response, { timeout: 15_000 }).toContain('assistantMessage');
    const sent = /"assistantMessage": \{ "id": "([^"]+)", "status": "STREAMING" \}/.exec(await response());
    expect(sent, await response()).not.toBeNull();
    const messageId = sent![1]!;

    const follow = await page.locator('.graphiql-tab').nth(1).innerText();
    expect(follow).toMatch(/^Follow/);
    // The Follow tab's operation, with the id filled in, as a person would paste it.
    const query = `subscription Follow { messageStream(messageId: ${JSON.stringify(messageId)}) { seq delta done status message { content status } } }`;
    await page.goto(`${server.graphqlUrl}?query=${encodeURIComponent(query)}`);
    await page.waitForSelector('.graphiql-query-editor', { timeout: 30_000 });
    await run();
    await expect.poll(response, { timeout: 20_000 }).toContain('"done": true');
    const last = await response();
    expect(last).toMatch(/"done": true, "status": "COMPLETE", "message": \{ "content": "You said: Hello! Who are you\?/);
    const saved = await server.app.db.prisma.message.findUniqueOrThrow({ where: { id: messageId } });
    expect(saved.status).toBe('COMPLETE');
    expect(last).toContain(JSON.stringify(saved.content).replace(/\s+/g, ' ').slice(1, 40));

    // Every event, in order: the same ones Parley replays to a client of its own.
    const replay = await fetch(server.graphqlUrl, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: JSON.stringify({ query }) });
    const events = [...(await replay.text()).matchAll(/^data: (\{.*)$/gm)].map((m) => JSON.parse(m[1]!).data.messageStream as { seq: number; delta: string; done: boolean });
    expect(events.length).toBeGreaterThan(2);
    expect(events.at(-1)!.done).toBe(true);
    expect([...last.matchAll(/"seq": (\d+)/g)].map((m) => Number(m[1]))).toEqual(events.map((event) => event.seq));
    expect(last.match(/"done": true/g)).toHaveLength(1);
    expect(last).toContain(`"seq": 0, "delta": ${JSON.stringify(events[0]!.delta).trim()}, "done": false`);
    // The deltas joined, as the reply's text so far.
    expect(events.map((event) => event.delta).join('')).toBe(saved.content);
    expect(last).toContain(`"text": ${JSON.stringify(saved.content).replace(/\s+/g, ' ')}`);
    expect(offMachine).toEqual([]);
  });
});
