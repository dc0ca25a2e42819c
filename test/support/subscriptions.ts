// Real subscription clients: graphql-ws over WebSocket, and graphql-sse (distinct connections) over SSE.
import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';
import { print, type DocumentNode } from 'graphql';
import WebSocket from 'ws';

export interface Collected<T> {
  events: T[];
  errors: unknown[];
  /** Resolves when the server completes the subscription, rejects on error. */
  done: Promise<void>;
  stop(): void;
}

type Sink = { next(value: { data?: unknown; errors?: unknown }): void; error(error: unknown): void; complete(): void };

function collect<T>(start: (sink: Sink) => () => void): Collected<T> {
  const events: T[] = [];
  const errors: unknown[] = [];
  let stop = () => {};
  const done = new Promise<void>((resolve, reject) => {
    stop = start({
      next: (value) => {
        if (value.errors) errors.push(...(value.errors as unknown[]));
        else events.push(value.data as T);
      },
      error: (error) => {
        errors.push(error);
        reject(error);
      },
      complete: resolve,
    });
  });
  done.catch(() => {});
  return { events, errors, done, stop: () => stop() };
}

export function wsClient(graphqlUrl: string, token?: string): WsClient {
  return createWsClient({
    url: graphqlUrl.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
    lazy: true,
  });
}

export function subscribeWs<T>(client: WsClient, query: DocumentNode, variables: Record<string, unknown> = {}): Collected<T> {
  return collect<T>((sink) => client.subscribe({ query: print(query), variables }, sink));
}

export function subscribeSse<T>(graphqlUrl: string, query: DocumentNode, variables: Record<string, unknown> = {}, token?: string): Collected<T> {
  const client = createSseClient({
    url: graphqlUrl,
    singleConnection: false,
    retryAttempts: 0,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return collect<T>((sink) => {
    const unsubscribe = client.subscribe({ query: print(query), variables }, sink);
    return () => {
      unsubscribe();
      client.dispose();
    };
  });
}
