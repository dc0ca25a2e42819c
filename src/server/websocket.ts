// graphql-ws on the HTTP server's port and path, running every operation through Yoga's
// enveloped pipeline.
import type { Server } from 'node:http';
import { GraphQLError, type ExecutionArgs } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Authenticate, Viewer } from '../auth.ts';
import { refuseUpgrade, type BrowserPolicy } from './cors.ts';
import { authorizationParam, GRAPHQL_PATH, type Yoga } from './yoga.ts';

type Enveloped = { execute: (args: ExecutionArgs) => never; subscribe: (args: ExecutionArgs) => never };

export interface WebSocketLimits {
  maxPayload: number;
  maxSubscriptionsPerConnection: number;
}

// setTimeout's longest delay; a later expiry is checked again then.
const MAX_TIMER_MS = 2 ** 31 - 1;

export function createWebSocketServer(server: Server, yoga: Yoga, authenticate: Authenticate, limits: WebSocketLimits, browser: BrowserPolicy) {
  const wsServer = new WebSocketServer({
    server,
    path: GRAPHQL_PATH,
    maxPayload: limits.maxPayload,
    // The browser policy's Host and Origin checks: a refused upgrade gets its status and no socket.
    verifyClient: ({ req }, done) => {
      const refusal = refuseUpgrade(browser, req.headers);
      if (refusal) done(false, refusal.status, refusal.message, { 'Content-Type': 'text/plain; charset=utf-8' });
      else done(true);
    },
  });
  const ws = useServer<Record<string, unknown>, { viewer: Viewer; socket: WebSocket }>(
    {
      connectionInitWaitTimeout: 3000,
      onConnect: async (ctx) => {
        try {
          ctx.extra.viewer = await authenticate(authorizationParam(ctx.connectionParams));
          const { expiresAt } = ctx.extra.viewer;
          if (expiresAt !== undefined) closeWhenExpired(ctx.extra.socket, expiresAt);
          // The upgrade request (headers, socket references) is not needed after this: an idle
          // connection should not keep it alive.
          (ctx.extra as { request?: unknown }).request = undefined;
          return true;
        } catch {
          return false;
        }
      },
      execute: (args: ExecutionArgs) => (args.rootValue as Enveloped).execute(args),
      subscribe: (args: ExecutionArgs) => (args.rootValue as Enveloped).subscribe(args),
      onSubscribe: async (ctx, _id, payload) => {
        // This operation is counted already.
        if (Object.keys(ctx.subscriptions).length > limits.maxSubscriptionsPerConnection) {
          return [new GraphQLError(`a connection may run at most ${limits.maxSubscriptionsPerConnection} operations at once`, { extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' } })];
        }
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          viewer: ctx.extra.viewer,
          params: payload,
        } as never);
        // Armor's limits throw from parse and validate: they become errors of this operation.
        let document;
        try {
          document = parse(payload.query);
          const errors = validate(schema, document);
          if (errors.length > 0) return errors;
        } catch (error) {
          return [error instanceof GraphQLError ? error : new GraphQLError('the operation could not be parsed')];
        }
        return {
          schema,
          document,
          operationName: payload.operationName,
          variableValues: payload.variables,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe },
        };
      },
    },
    wsServer,
  );
  /** A connection lives no longer than its token: then it closes as an onConnect refusal does (4403). */
  function closeWhenExpired(socket: WebSocket, expiresAt: number): void {
    const delay = expiresAt - Date.now();
    const timer = setTimeout(() => {
      if (Date.now() >= expiresAt) socket.close(4403, 'Forbidden: the token has expired');
      else closeWhenExpired(socket, expiresAt);
    }, Math.max(0, Math.min(delay, MAX_TIMER_MS)));
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  }

  return {
    /** Closes every connection and stops accepting new ones. */
    async close(): Promise<void> {
      for (const client of wsServer.clients) client.close(1001, 'server shutting down');
      await ws.dispose();
      wsServer.close();
    },
  };
}
