// A STREAMING reply as its generating instance left it, for the tests of how replies end.
import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import type { Database } from '../../src/store/database.ts';
import type { StreamBroker } from '../../src/streaming/events.ts';

export interface Reply {
  id: string;
  userId: string;
  conversationId: string;
  deltas: string[];
}

/**
 * `deltas` published to the log, `checkpoint` saved as its text, its lease `leaseMs` from now
 * (negative: already expired), for a user of its own.
 */
export async function streamingReply(db: Database, broker: StreamBroker, { deltas = [] as string[], checkpoint = '', leaseMs = 60_000 } = {}): Promise<Reply> {
  const userId = `user-${randomUUID()}`;
  const { assistantMessage: message } = await db.store.saveExchange({
    userId,
    conversationId: null,
    content: 'a question',
    tokenCount: 2,
    clientMessageId: null,
    settings: Promise.resolve({ model: 'saved-model', presetId: null }),
    leaseMs,
  });
  expect(message.status).toBe('STREAMING');
  for (const [seq, delta] of deltas.entries()) {
    expect(await broker.append(message.id, { seq, delta, done: false, status: 'STREAMING' })).toBe('ok');
  }
  if (checkpoint) await db.store.checkpointReply(message.id, checkpoint);
  return { id: message.id, userId, conversationId: message.conversationId, deltas };
}
