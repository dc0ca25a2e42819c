// Helpers for following replies the way clients do.
import type { Client as WsClient } from 'graphql-ws';
import { expect } from 'vitest';
import { graphql } from '../generated/gql.ts';
import type { Db } from '../../src/store/database.ts';
import { subscribeSse, subscribeWs, type Collected } from './subscriptions.ts';

export const MessageStream = graphql(`
  subscription MessageStream($messageId: ID!, $afterSeq: Int) {
    messageStream(messageId: $messageId, afterSeq: $afterSeq) {
      messageId seq delta done status error
      message { id status content finishReason model promptTokens completionTokens error }
    }
  }
`);

export const SendMessage = graphql(`
  mutation SendMessage($input: SendMessageInput!) {
    sendMessage(input: $input) {
      conversation { id title }
      userMessage { id role content status }
      assistantMessage { id role content status model }
    }
  }
`);

export const StopGeneration = graphql(`
  mutation StopGeneration($messageId: ID!) { stopGeneration(messageId: $messageId) { id status content finishReason error } }
`);

export type StreamEventData = {
  messageStream: {
    messageId: string;
    seq: number;
    delta: string;
    done: boolean;
    status: string;
    error?: string | null;
    message?: { id: string; status: string; content: string; finishReason?: string | null; model?: string | null; promptTokens?: number | null; completionTokens?: number | null; error?: string | null } | null;
  };
};

export function followWs(client: WsClient, messageId: string, afterSeq?: number): Collected<StreamEventData> {
  return subscribeWs<StreamEventData>(client, MessageStream, { messageId, afterSeq });
}

export function followSse(graphqlUrl: string, messageId: string, afterSeq?: number, token?: string): Collected<StreamEventData> {
  return subscribeSse<StreamEventData>(graphqlUrl, MessageStream, { messageId, afterSeq }, token);
}

/** Asserts the events are exactly once, in order from `firstSeq`, and end with one terminal event. */
export function assertWellFormed(events: StreamEventData[], firstSeq = 0): { content: string; terminal: StreamEventData['messageStream'] } {
  const stream = events.map((e) => e.messageStream);
  expect(stream.length).toBeGreaterThan(0);
  expect(stream.map((e) => e.seq)).toEqual(stream.map((_, i) => firstSeq + i));
  const terminal = stream.at(-1)!;
  expect(terminal.done).toBe(true);
  expect(terminal.delta).toBe('');
  expect(stream.slice(0, -1).every((e) => !e.done && e.status === 'STREAMING' && e.delta.length > 0)).toBe(true);
  return { content: stream.map((e) => e.delta).join(''), terminal };
}

export async function waitFor<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export const finishedMessage = (db: Db, id: string, timeoutMs?: number) =>
  waitFor(() => db.message.findUniqueOrThrow({ where: { id } }), (m) => m.status !== 'STREAMING', timeoutMs);
