// Replies survive the life of the process that generates them: SIGTERM saves the partial reply
// and ends every stream; a crash is recovered on the next start.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/store/database.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import { FakeModel } from './support/fake-model.ts';
import { spawnParley, waitUntilHealthy, type ParleyProcess } from './support/process.ts';
import { assertWellFormed, followSse, waitFor } from './support/streams.ts';

async function sendOver(parley: ParleyProcess, content: string): Promise<string> {
  const res = await fetch(`${parley.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: 'mutation($c: String!) { sendMessage(input: { content: $c }) { assistantMessage { id } } }', variables: { c: content } }),
  });
  return (await res.json()).data.sendMessage.assistantMessage.id;
}

describe('process lifecycle during a generation', () => {
  let model: FakeModel;
  let database: TestDatabase;
  beforeAll(async () => {
    model = await FakeModel.start();
    database = await createTestDatabase('sqlite');
  });
  afterAll(async () => {
    await model?.close();
    await database?.drop();
  });
  const env = () => ({ DATABASE_URL: database.url, LLM_API_URL: model.url, LLM_MODEL: 'fake-model', STREAM_LEASE_MS: '900', SHUTDOWN_TIMEOUT_MS: '3000' });

  it('SIGTERM saves the partial reply, sends subscribers the terminal event, and exits within the deadline', async () => {
    const parley = await spawnParley(env());
    await waitUntilHealthy(parley);
    model.enqueue({ tokens: Array.from({ length: 500 }, (_, i) => `q${i} `), delayMs: 10 });
    const messageId = await sendOver(parley, 'keep talking');
    const watcher = followSse(`${parley.url}/graphql`, messageId);
    await waitFor(async () => watcher.events.length, (n) => n >= 3);
    const signalledAt = Date.now();
    parley.child.kill('SIGTERM');
    expect(await parley.exited).toBe(0);
    expect(Date.now() - signalledAt).toBeLessThan(3000);
    await watcher.done;
    const { content, terminal } = assertWellFormed(watcher.events);
    expect(terminal.status).toBe('INTERRUPTED');
    expect(terminal.error).toMatch(/shut down/);
    const db = await openDatabase({ url: database.url, poolSize: 1 });
    try {
      expect(await db.prisma.message.findUniqueOrThrow({ where: { id: messageId } })).toMatchObject({ status: 'INTERRUPTED', content });
    } finally {
      await db.close();
    }
  });

  it('a reply left STREAMING by a crash is marked INTERRUPTED on the next start, keeping its checkpoint', async () => {
    const first = await spawnParley(env());
    await waitUntilHealthy(first);
    model.enqueue({ tokens: Array.from({ length: 500 }, (_, i) => `c${i} `), delayMs: 10 });
    const messageId = await sendOver(first, 'crash during this');
    const watcher = followSse(`${first.url}/graphql`, messageId);
    // Long enough for a lease heartbeat to checkpoint the text.
    await waitFor(async () => watcher.events.length, (n) => n >= 30);
    await new Promise((r) => setTimeout(r, 400));
    first.child.kill('SIGKILL');
    await first.exited;
    watcher.stop();

    const db = await openDatabase({ url: database.url, poolSize: 1 });
    try {
      const left = await db.prisma.message.findUniqueOrThrow({ where: { id: messageId } });
      expect(left.status).toBe('STREAMING');
      expect(left.content.length).toBeGreaterThan(0);

      const second = await spawnParley(env());
      await waitUntilHealthy(second);
      const recovered = await db.prisma.message.findUniqueOrThrow({ where: { id: messageId } });
      expect(recovered).toMatchObject({ status: 'INTERRUPTED', content: left.content, leaseExpiresAt: null });
      // Its stream is gone with the old process; a subscriber still gets the saved text and the end.
      const late = followSse(`${second.url}/graphql`, messageId);
      await late.done;
      const replay = assertWellFormed(late.events);
      expect(replay.content).toBe(left.content);
      expect(replay.terminal.status).toBe('INTERRUPTED');
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);
    } finally {
      await db.close();
    }
  });
});
