// graphql-ws on the HTTP server's port and path, running every operation through Yoga's
// enveloped pipeline.
import type { Server } from 'node:http';
import { GraphQLError, type ExecutionArgs } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import type { Authenticate, Viewer } from '../auth.ts';
import { authorizationParam, GRAPHQL_PATH, type Yoga } from './yoga.ts';

type Enveloped = { execute: (args: ExecutionArgs) => never; subscribe: (args: ExecutionArgs) => never };

export function createWebSocketServer(server: Server, yoga: Yoga, authenticate: Authenticate, maxPayload: number) {
  const wsServer = new WebSocketServer({ server, path: GRAPHQL_PATH, maxPayload });
  const ws = useServer<Record<string, unknown>, { viewer: Viewer }>(
    {
      connectionInitWaitTimeout: 3000,
      onConnect: async (ctx) => {
        try {
          ctx.extra.viewer = await authenticate(authorizationParam(ctx.connectionParams));
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
  return {
    /** Closes every connection and stops accepting new ones. */
    async close(): Promise<void> {
      for (const client of wsServer.clients) client.close(1001, 'server shutting down');
      await ws.dispose();
      wsServer.close();
    },
  };
}
