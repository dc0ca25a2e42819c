import type { MessageStatus } from '../model.ts';

export type { MessageStatus };

/** One event of a message's stream. seq runs 0, 1, 2, ...; the terminal event has done = true. */
export interface StreamEvent {
  seq: number;
  delta: string;
  done: boolean;
  status: MessageStatus;
  error?: string | null;
}

export type AppendResult = 'ok' | 'sealed' | 'out-of-order';

export interface SealResult {
  /** false: another party sealed the log first and finalizes the message. */
  won: boolean;
  /** The winner's view of the log: every event appended before the seal. */
  events: StreamEvent[];
}

/**
 * Where a message's events live: an append-only replay log plus live fan-out.
 * Appends are ordered and checked: an event is accepted only with the next seq, and once a log
 * is sealed only its sealer may append (the terminal event). That makes one party the finaliser,
 * whichever instance it runs on.
 */
export interface StreamBroker {
  append(messageId: string, event: StreamEvent, sealToken?: string): Promise<AppendResult>;
  seal(messageId: string, token: string): Promise<SealResult>;
  /** Lifts the seal `token` holds, when its holder could not end the reply: the next ender may try. */
  release(messageId: string, token: string): Promise<void>;
  /** Logged events with seq >= fromSeq, in order. */
  read(messageId: string, fromSeq: number): Promise<StreamEvent[]>;
  /** Live events of the message, from the moment the returned promise resolves. */
  listen(messageId: string, onEvent: (event: StreamEvent) => void): Promise<() => void>;
  /** Asks every instance to abort the message's model call. */
  requestStop(messageId: string): Promise<void>;
  onStopRequest(handler: (messageId: string) => void): void;
  close(): Promise<void>;
}

export const encodeEvent = (event: StreamEvent): string => JSON.stringify(event);
export const decodeEvent = (text: string): StreamEvent => JSON.parse(text) as StreamEvent;
