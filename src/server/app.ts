// One Parley server: HTTP (GraphQL over POST/GET, SSE subscriptions, GraphiQL, /health) and
// graphql-ws on the same port and path. Used by main.ts and by the tests.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { PothosValidationError } from '@pothos/core';
import { GraphQLError, type ExecutionArgs, type ExecutionResult } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { createYoga, maskError as yogaMaskError, type YogaInitialContext } from 'graphql-yoga';
import { WebSocketServer } from 'ws';
import { createAuthenticator, type Viewer } from '../auth.ts';
import { NoHistoryCache, RedisHistoryCache, type HistoryCache } from '../cache/history-cache.ts';
import { encryptionKeyBytes, type Config } from '../config.ts';
import { openDatabase, type Database } from '../db/client.ts';
import { applyMigrations, pendingMigrations } from '../db/migrate.ts';
import type { Context, Services } from '../graphql/context.ts';
import { ParleyError } from '../graphql/errors.ts';
import { buildSchema } from '../graphql/index.ts';
import { modelPresets } from '../llm/presets.ts';
import { createLogger, type Logger } from '../logger.ts';
import { connectRedis } from '../redis.ts';
import { ChatService } from '../services/chat.ts';
import { ConversationService } from '../services/conversations.ts';
import { MessagePageLoader } from '../services/message-pages.ts';
import { MessageService } from '../services/messages.ts';
import { SecretBox } from '../services/secrets.ts';
import { UserConfigService } from '../services/user-config.ts';
import type { StreamBroker } from '../streaming/events.ts';
import { MemoryBroker } from '../streaming/memory-broker.ts';
import { RedisBroker } from '../streaming/redis-broker.ts';
import { acceptsPlainJson, FastQueries, useExecutedResult } from './fast-queries.ts';
import { useSharedSubscriptionEvents } from './shared-subscription-events.ts';

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
  /** How many JSON POSTs the fast path for known queries answered, and how many it left to Yoga. */
  readonly fastQueryCounts: { readonly answered: number; readonly declined: number };
}

/** `executedResult`: a mutation the fast path already ran (see `useExecutedResult`). */
type ServerContext = { req?: IncomingMessage; res?: ServerResponse; viewer?: Viewer; executedResult?: ExecutionResult };

export async function buildApp(config: Config, options: AppOptions = {}): Promise<App> {
  const logger = options.logger ?? createLogger(config.LOG_LEVEL);
  if (!config.AUTH_JWT_SECRET) {
    logger.warn('AUTH_JWT_SECRET is not set: single-user mode, every request acts as the user "local"');
  }
  if (config.MIGRATE_ON_START) {
    await applyMigrations(config.DATABASE_URL, (msg) => logger.info(msg));
  } else {
    const pending = await pendingMigrations(config.DATABASE_URL);
    if (pending.length > 0) throw new Error(`the database is missing migrations ${pending.join(', ')}: run npm run db:deploy, or start with MIGRATE_ON_START=true`);
  }
  const db = await openDatabase({ url: config.DATABASE_URL, poolSize: config.DATABASE_POOL_SIZE, onQuery: options.onQuery });
  const redis = config.REDIS_URL ? await connectRedis(config.REDIS_URL, config.REDIS_COMMAND_TIMEOUT_MS, logger) : undefined;
  const cache: HistoryCache = redis
    ? new RedisHistoryCache({ redis: redis.commands, prefix: config.REDIS_KEY_PREFIX, size: config.HISTORY_CACHE_SIZE, ttlMs: config.HISTORY_CACHE_TTL_S * 1000, logger })
    : new NoHistoryCache(config.HISTORY_CACHE_SIZE);
  const broker: StreamBroker = redis
    ? new RedisBroker({
        redis: redis.commands,
        subscriber: redis.subscriber,
        prefix: config.REDIS_KEY_PREFIX,
        replayTtlMs: config.STREAM_REPLAY_TTL_S * 1000,
        sealTtlMs: Math.max(config.STREAM_LEASE_MS, 30_000),
      })
    : new MemoryBroker(config.STREAM_REPLAY_TTL_S * 1000);
  const presets = modelPresets(config);
  const encryptionKey = config.CONFIG_ENCRYPTION_KEY ? encryptionKeyBytes(config.CONFIG_ENCRYPTION_KEY) : undefined;
  const userConfigs = new UserConfigService(db.prisma, db.sql, {
    presets,
    secrets: encryptionKey ? new SecretBox(encryptionKey) : undefined,
    allowCustomBaseUrl: config.ALLOW_CUSTOM_BASE_URL,
    maxSystemPromptChars: config.MAX_CONTENT_CHARS,
  });
  const chat = new ChatService(
    db.prisma,
    db.sql,
    broker,
    userConfigs,
    cache,
    {
      flushMs: config.STREAM_FLUSH_MS,
      leaseMs: config.STREAM_LEASE_MS,
      maxEvents: config.STREAM_MAX_EVENTS,
      maxContentChars: config.MAX_CONTENT_CHARS,
      model: { timeoutMs: config.LLM_TIMEOUT_MS, idleTimeoutMs: config.LLM_IDLE_TIMEOUT_MS, maxRetries: config.LLM_MAX_RETRIES },
      singleInstance: !redis,
    },
    logger,
  );
  await chat.start();
  const services: Services = {
    conversations: new ConversationService(db.prisma, cache),
    messages: new MessageService(db.prisma, { maxContentChars: config.MAX_CONTENT_CHARS }, cache),
    chat,
    userConfigs,
    presets,
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
    logging: yogaLogger(logger),
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
      useSharedSubscriptionEvents(),
      useExecutedResult(),
      EnvelopArmorPlugin({
        maxDepth: { n: 12 },
        costLimit: { maxCost: 20_000 },
        maxAliases: { n: 15 },
        maxTokens: { n: 2000 },
        maxDirectives: { n: 50 },
      }),
    ],
    context: async ({ request, viewer: connectedViewer, connectionParams }: YogaInitialContext & ServerContext & { connectionParams?: unknown }) =>
      contextFor(connectedViewer ?? (await authenticate(request?.headers.get('authorization') ?? authorizationParam(connectionParams)))),
  });
  function contextFor(viewer: Viewer): Context {
    return {
      viewer,
      db: db.prisma,
      services,
      messagePages: new MessagePageLoader(db.prisma, db.provider, cache, viewer.userId),
      shutdown: shutdown.signal,
    };
  }
  const fastQueries = new FastQueries({
    schema: yoga.getEnveloped({}).schema,
    prepare(query) {
      const { schema, parse, validate } = yoga.getEnveloped({});
      try {
        const document = parse(query);
        return validate(schema, document).length === 0 ? document : null;
      } catch {
        return null;
      }
    },
    authenticate,
    contextFor,
  });

  /** Hands a request whose body was already read to Yoga, with the result if it already ran. */
  async function answerWithYoga(req: IncomingMessage, res: ServerResponse, body: string, executedResult?: ExecutionResult): Promise<void> {
    const headers = new yoga.fetchAPI.Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined && name !== 'content-length') headers.set(name, Array.isArray(value) ? value.join(', ') : value);
    }
    const request = new yoga.fetchAPI.Request(`http://${req.headers.host ?? 'localhost'}${req.url}`, { method: 'POST', headers, body });
    const response = await yoga.handleRequest(request, { req, res, executedResult } as ServerContext & YogaInitialContext);
    const answer = Buffer.from(await response.arrayBuffer());
    const out: Record<string, string> = {};
    response.headers.forEach((value, name) => (out[name] = value));
    out['content-length'] = String(answer.length);
    res.writeHead(response.status, out);
    res.end(answer);
  }

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
      if (req.url === GRAPHQL_PATH && req.headers['content-type']?.startsWith('application/json') && acceptsPlainJson(req)) {
        const body = await readBody(req);
        if (body === null) return;
        const fast = await fastQueries.answer(req, res, body);
        if (fast.answered) return;
        return answerWithYoga(req, res, body, fast.executed);
      }
    }
    return yoga(req, res);
  });
  server.keepAliveTimeout = 65_000;

  async function health(res: ServerResponse) {
    const [database, redisState] = await Promise.all([probe(() => db.ping()), redis ? probe(() => redis.commands.ping()) : undefined]);
    const ok = database.status === 'up';
    const body: Record<string, unknown> = { status: ok ? (redisState?.status === 'down' ? 'degraded' : 'ok') : 'unavailable', database: { provider: db.provider, ...database } };
    // Redis down degrades streaming across instances; the database still serves everything else.
    if (redisState) body.redis = { ...(redisState.status === 'up' ? redisState : { ...redisState, status: 'degraded' }), historyCache: cache.stats() };
    res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  }

  const wsServer = new WebSocketServer({ server, path: GRAPHQL_PATH, maxPayload: config.MAX_BODY_BYTES });
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
  type Enveloped = { execute: (args: ExecutionArgs) => never; subscribe: (args: ExecutionArgs) => never };

  let url = '';
  return {
    get url() {
      return url;
    },
    db,
    logger,
    fastQueryCounts: fastQueries.counts,
    async start() {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        // Node's default accept queue (511) overflows when thousands of clients connect at once,
        // as they do when an instance restarts and its clients reconnect: the kernel then drops
        // connections. The kernel caps this at net.core.somaxconn.
        server.listen({ port: config.PORT, host: config.HOST, backlog: 4096 }, () => {
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
      // Replies being generated here end INTERRUPTED, and their subscribers get the terminal event.
      await chat.shutdown();
      await new Promise((resolve) => setTimeout(resolve, 100));
      // Other subscriptions end on this signal, so SSE responses finish like any other request.
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
      await broker.close();
      await redis?.close();
      await db.close();
      logger.info('Parley stopped');
    },
  };
}

async function probe(check: () => Promise<unknown>): Promise<{ status: 'up' | 'down'; latencyMs?: number; error?: string }> {
  const started = performance.now();
  try {
    await withTimeout(check(), HEALTH_TIMEOUT_MS);
    return { status: 'up', latencyMs: Math.round((performance.now() - started) * 10) / 10 };
  } catch (error) {
    return { status: 'down', error: error instanceof Error ? error.message.split('\n')[0] : 'unreachable' };
  }
}

/** Yoga logs a few debug lines per request: they must cost nothing unless debug is on. */
function yogaLogger(logger: Logger) {
  const level = (name: 'debug' | 'info' | 'warn' | 'error') =>
    logger.isLevelEnabled(name) ? (...args: unknown[]) => logger[name](args.map(String).join(' ')) : () => {};
  return { debug: level('debug'), info: level('info'), warn: level('warn'), error: level('error') };
}

function authorizationParam(connectionParams: unknown): string | undefined {
  const value = (connectionParams as { authorization?: unknown; Authorization?: unknown } | undefined | null) ?? {};
  const header = value.authorization ?? value.Authorization;
  return typeof header === 'string' ? header : undefined;
}

/** The whole request body as text, or null when the client went away first. */
function readBody(req: IncomingMessage): Promise<string | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const text = () => Buffer.concat(chunks).toString('utf8');
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(text()));
    req.on('error', () => resolve(null));
    req.on('close', () => resolve(req.complete ? text() : null));
  });
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
