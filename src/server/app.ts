// One Parley server: HTTP (GraphQL over POST/GET, SSE subscriptions, GraphiQL, /health) and
// graphql-ws on the same port and path. Used by main.ts and by the tests.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { PothosValidationError } from '@pothos/core';
import { GraphQLError, type ExecutionArgs } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { createYoga, maskError as yogaMaskError, type YogaInitialContext } from 'graphql-yoga';
import { WebSocketServer } from 'ws';
import { createAuthenticator, type Viewer } from '../auth.ts';
import type { Config } from '../config.ts';
import { openDatabase, type Database } from '../db/client.ts';
import { applyMigrations } from '../db/migrate.ts';
import type { Context, Services } from '../graphql/context.ts';
import { ParleyError } from '../graphql/errors.ts';
import { buildSchema } from '../graphql/index.ts';
import { createLogger, type Logger } from '../logger.ts';
import { ConversationService } from '../services/conversations.ts';
import { MessagePageLoader } from '../services/message-pages.ts';
import { MessageService } from '../services/messages.ts';

export const GRAPHQL_PATH = '/graphql';
const HEALTH_TIMEOUT_MS = 2000;

export interface AppOptions {
  logger?: Logger;
  /** Called for every SQL statement; tests count database round trips with it. */
  onQuery?: (sql: string) => void;
}

export interface App {
  /** Listens on config.PORT/HOST (0 picks a free port) and returns the base URL. */
  start(): Promise<string>;
  /** Stops taking connections, lets in-flight requests finish, closes sockets and the database. */
  stop(): Promise<void>;
  readonly url: string;
  readonly db: Database;
  readonly logger: Logger;
}

type ServerContext = { req?: IncomingMessage; res?: ServerResponse; viewer?: Viewer };

export async function buildApp(config: Config, options: AppOptions = {}): Promise<App> {
  const logger = options.logger ?? createLogger(config.LOG_LEVEL);
  if (!config.AUTH_JWT_SECRET) {
    logger.warn('AUTH_JWT_SECRET is not set: single-user mode, every request acts as the user "local"');
  }
  if (config.MIGRATE_ON_START) {
    await applyMigrations(config.DATABASE_URL, (msg) => logger.info(msg));
  }
  const db = await openDatabase({ url: config.DATABASE_URL, poolSize: config.DATABASE_POOL_SIZE, onQuery: options.onQuery });
  const services: Services = {
    conversations: new ConversationService(db.prisma),
    messages: new MessageService(db.prisma, { maxContentChars: config.MAX_CONTENT_CHARS }),
  };
  const authenticate = createAuthenticator(config.AUTH_JWT_SECRET);
  const shutdown = new AbortController();

  const yoga = createYoga<ServerContext, Context>({
    schema: buildSchema(),
    graphqlEndpoint: GRAPHQL_PATH,
    graphiql: config.GRAPHIQL ? { title: 'Parley' } : false,
    landingPage: false,
    // Yoga's own limit pipes every body through a stream; the HTTP handler checks Content-Length.
    maxRequestBodySize: false,
    logging: {
      debug: (...args) => logger.debug(args.map(String).join(' ')),
      info: (...args) => logger.info(args.map(String).join(' ')),
      warn: (...args) => logger.warn(args.map(String).join(' ')),
      error: (...args) => logger.error(args.map(String).join(' ')),
    },
    maskedErrors: {
      maskError(error, message, isDev) {
        const original = error instanceof GraphQLError ? error.originalError : error;
        if (original instanceof PothosValidationError) {
          return new GraphQLError(original.message, { extensions: { code: 'BAD_USER_INPUT' } });
        }
        if (!(original instanceof ParleyError) && !(error instanceof GraphQLError && !error.originalError)) {
          logger.error({ err: original }, 'unexpected error while executing an operation');
        }
        return yogaMaskError(error, message, isDev);
      },
    },
    plugins: [
      EnvelopArmorPlugin({
        maxDepth: { n: 12 },
        costLimit: { maxCost: 5000 },
        maxAliases: { n: 15 },
        maxTokens: { n: 2000 },
        maxDirectives: { n: 50 },
      }),
    ],
    context: async ({ request, viewer, connectionParams }: YogaInitialContext & ServerContext & { connectionParams?: unknown }) => ({
      viewer: viewer ?? (await authenticate(request?.headers.get('authorization') ?? authorizationParam(connectionParams))),
      db: db.prisma,
      services,
      messagePages: new MessagePageLoader(db.prisma, db.provider),
      shutdown: shutdown.signal,
    }),
  });

  let inFlight = 0;
  let drained: (() => void) | undefined;
  const server = createServer(async (req, res) => {
    inFlight++;
    res.on('close', () => {
      if (--inFlight === 0) drained?.();
    });
    if (req.url === '/health' || req.url?.startsWith('/health?')) return health(res);
    if (req.method === 'POST') {
      const length = req.headers['content-length'];
      if (length === undefined) return plain(res, 411, 'Content-Length is required');
      if (Number(length) > config.MAX_BODY_BYTES) return plain(res, 413, `request body is larger than ${config.MAX_BODY_BYTES} bytes`);
    }
    return yoga(req, res);
  });
  server.keepAliveTimeout = 65_000;

  async function health(res: ServerResponse) {
    const started = performance.now();
    let database: { status: 'up' | 'down'; latencyMs?: number; error?: string };
    try {
      await withTimeout(db.ping(), HEALTH_TIMEOUT_MS);
      database = { status: 'up', latencyMs: Math.round((performance.now() - started) * 10) / 10 };
    } catch (error) {
      database = { status: 'down', error: error instanceof Error ? error.message.split('\n')[0] : 'unreachable' };
    }
    const ok = database.status === 'up';
    res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify({ status: ok ? 'ok' : 'unavailable', database: { provider: db.provider, ...database } }));
  }

  const wsServer = new WebSocketServer({ server, path: GRAPHQL_PATH, maxPayload: config.MAX_BODY_BYTES });
  const ws = useServer<Record<string, unknown>, { viewer: Viewer }>(
    {
      connectionInitWaitTimeout: 3000,
      onConnect: async (ctx) => {
        try {
          ctx.extra.viewer = await authenticate(authorizationParam(ctx.connectionParams));
          return true;
        } catch {
          return false;
        }
      },
      execute: (args: ExecutionArgs) => (args.rootValue as Enveloped).execute(args),
      subscribe: (args: ExecutionArgs) => (args.rootValue as Enveloped).subscribe(args),
      onSubscribe: async (ctx, _id, payload) => {
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          req: ctx.extra.request,
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
  type Enveloped = { execute: (args: ExecutionArgs) => never; subscribe: (args: ExecutionArgs) => never };

  let url = '';
  return {
    get url() {
      return url;
    },
    db,
    logger,
    async start() {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.PORT, config.HOST, () => {
          server.off('error', reject);
          resolve();
        });
      });
      const address = server.address() as AddressInfo;
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      url = `http://${host}:${address.port}`;
      logger.info({ url: `${url}${GRAPHQL_PATH}`, database: db.provider }, 'Parley is listening');
      return url;
    },
    async stop() {
      const deadline = Date.now() + config.SHUTDOWN_TIMEOUT_MS;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // Subscriptions end on this signal, so SSE responses finish like any other request.
      shutdown.abort();
      for (const client of wsServer.clients) client.close(1001, 'server shutting down');
      await ws.dispose();
      wsServer.close();
      if (inFlight > 0) {
        await Promise.race([
          new Promise<void>((resolve) => (drained = resolve)),
          new Promise((resolve) => setTimeout(resolve, Math.max(0, deadline - Date.now())).unref()),
        ]);
      }
      server.closeAllConnections();
      await closed;
      await db.close();
      logger.info('Parley stopped');
    },
  };
}

function authorizationParam(connectionParams: unknown): string | undefined {
  const value = (connectionParams as { authorization?: unknown; Authorization?: unknown } | undefined | null) ?? {};
  const header = value.authorization ?? value.Authorization;
  return typeof header === 'string' ? header : undefined;
}

function plain(res: ServerResponse, status: number, message: string) {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
  res.end(message);
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
