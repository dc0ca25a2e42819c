// MessageStreamEvent.message is null on every event but the terminal one, which carries the saved
// message; selecting it never produces an error on the events before (Pothos' unused-query check
// is on outside production).
import { parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startParley, type TestServer } from './support/parley.ts';
import { subscribeSse, subscribeWs, wsClient } from './support/subscriptions.ts';

let server: TestServer;
beforeAll(async () => {
  server = await startParley();
});
afterAll(() => server.stop());

// A relation under message makes Pothos plan an include.
const STREAM = parse('subscription($id: ID!) { messageStream(messageId: $id) { seq delta done message { id content status conversation { id } } } }');
// Only the type name under message: nothing for Pothos to plan.
const TYPENAME_ONLY = parse('subscription($id: ID!) { messageStream(messageId: $id) { seq done message { __typename } } }');
type Event = { messageStream: { seq: number; delta: string; done: boolean; message: { id: string; content: string; status: string; conversation: { id: string } } | null } };

async function send(): Promise<string> {
  const response = await fetch(server.graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: 'mutation { sendMessage(input: { content: "three words here" }) { assistantMessage { id } } }' }),
  });
  const body = (await response.json()) as { data: { sendMessage: { assistantMessage: { id: string } } } };
  return body.data.sendMessage.assistantMessage.id;
}

describe.each(['graphql-ws', 'SSE'])('messageStream selecting message, over %s', (transport) => {
  it.each([
    ['live', 0],
    ['replayed after the end', 1500],
  ])('gets null on every delta and the saved message on the terminal event, with no error (%s)', async (_, after) => {
    const id = await send();
    await new Promise((resolve) => setTimeout(resolve, after));
    const client = transport === 'graphql-ws' ? wsClient(server.graphqlUrl) : undefined;
    const sub = client ? subscribeWs<Event>(client, STREAM, { id }) : subscribeSse<Event>(server.graphqlUrl, STREAM, { id });
    try {
      await sub.done;
      expect(sub.errors).toEqual([]);
      const events = sub.events.map((e) => e.messageStream);
      expect(events.length).toBeGreaterThan(2);
      for (const event of events.slice(0, -1)) expect(event.message).toBeNull();
      const terminal = events.at(-1)!;
      expect(terminal.done).toBe(true);
      expect(terminal.message).toEqual({ id, content: events.map((e) => e.delta).join(''), status: 'COMPLETE', conversation: { id: expect.any(String) } });
    } finally {
      sub.stop();
      await client?.dispose();
    }
  });
});

describe('messageStream selecting only message { __typename }', () => {
  it('gets null on every delta and the type name on the terminal event, with no error', async () => {
    const id = await send();
    const client = wsClient(server.graphqlUrl);
    const sub = subscribeWs<{ messageStream: { seq: number; done: boolean; message: { __typename: string } | null } }>(client, TYPENAME_ONLY, { id });
    try {
      await sub.done;
      expect(sub.errors).toEqual([]);
      const events = sub.events.map((e) => e.messageStream);
      expect(events.length).toBeGreaterThan(2);
      for (const event of events.slice(0, -1)) expect(event.message).toBeNull();
      expect(events.at(-1)).toMatchObject({ done: true, message: { __typename: 'Message' } });
    } finally {
      sub.stop();
      await client.dispose();
    }
  });
});
