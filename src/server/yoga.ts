// The GraphQL pipeline: Yoga with every cross-cutting concern as an envelop plugin, the context
// each operation runs with, and the fast path, which runs known operations through the same
// enveloped functions without Yoga's Fetch-API layer.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { GraphQLError } from 'graphql';
import { createYoga, type Plugin, type YogaInitialContext } from 'graphql-yoga';
import type { Authenticate, Viewer } from '../auth.ts';
import type { HistoryCache } from '../cache/history-cache.ts';
import type { Config } from '../config.ts';
import type { Context, Services } from '../graphql/context.ts';
import { errorMasker } from '../graphql/errors.ts';
import { buildSchema } from '../graphql/index.ts';
import type { Logger } from '../logger.ts';
import { MessagePageLoader } from '../services/message-pages.ts';
import { SiblingLoader } from '../services/siblings.ts';
import type { Database } from '../store/database.ts';
import { useCompiledQueries } from './compiled-queries.ts';
import { FastPath, hooksHttpLayer, useFastPathLearning } from './fast-path.ts';
import { graphiqlOptions, renderGraphiQL } from './graphiql.ts';
import { MAX_DOCUMENT_NESTING, useNestingLimit } from './nesting-limit.ts';
import { useSharedSubscriptionEvents } from './shared-subscription-events.ts';

export const GRAPHQL_PATH = '/graphql';

export type ServerContext = { req?: IncomingMessage; res?: ServerResponse; viewer?: Viewer };

export interface PipelineParts {
  db: Database;
  cache: HistoryCache;
  services: Services;
  authenticate: Authenticate;
  logger: Logger;
  /** Aborted when the server shuts down: subscriptions end on it. */
  shutdown: AbortSignal;
  /** More plugins, after Parley's own: they see every operation on every path. */
  plugins?: Plugin<any>[];
}

export function createPipeline(config: Config, { db, cache, services, authenticate, logger, shutdown, plugins: extraPlugins = [] }: PipelineParts) {
  function contextFor(viewer: Viewer): Context {
    return {
      viewer,
      db: db.prisma,
      services,
      messagePages: new MessagePageLoader(db.store, cache, viewer.userId),
      siblings: new SiblingLoader(db.store, viewer.userId),
      shutdown,
    };
  }
  const maskError = errorMasker(logger);
  // Typed loosely: each plugin knows the context it reads.
  const plugins: Plugin<any>[] = [
    useSharedSubscriptionEvents(),
    useCompiledQueries(),
    useNestingLimit(MAX_DOCUMENT_NESTING, LIMIT_REFUSAL_CODE),
    useFastPathLearning(() => fastPath),
    EnvelopArmorPlugin({
      maxDepth: { n: 12, onReject: [refuseWithCode] },
      costLimit: { maxCost: 20_000, onReject: [refuseWithCode] },
      maxAliases: { n: 15, onReject: [refuseWithCode] },
      maxTokens: { n: 2000, onReject: [refuseWithCode] },
      maxDirectives: { n: 50, onReject: [refuseWithCode] },
    }),
    ...extraPlugins,
  ];
  const yoga = createYoga<ServerContext, Context>({
    schema: buildSchema(),
    graphqlEndpoint: GRAPHQL_PATH,
    graphiql: config.GRAPHIQL ? graphiqlOptions({ auth: config.AUTH_JWT_SECRET !== undefined }) : false,
    renderGraphiQL,
    landingPage: false,
    // Off: http.ts applies Parley's browser policy (src/server/cors.ts) to every answer, the fast
    // path's and /health's too. Yoga's would echo any Origin with credentials.
    cors: false,
    // Yoga's own limit pipes every body through a stream; the HTTP handler checks Content-Length.
    maxRequestBodySize: false,
    logging: yogaLogger(logger),
    // isDev off in every NODE_ENV: Yoga's development mode puts the original error's stack in the
    // answer. The log has it.
    maskedErrors: { maskError, isDev: false },
    plugins,
    // The token: the HTTP request's header (node's request on every HTTP path, the fast path's
    // included), or the SSE connection's parameters; graphql-ws authenticates once per connection.
    context: async ({ req, request, viewer: connectedViewer, connectionParams }: YogaInitialContext & ServerContext & { connectionParams?: unknown }) =>
      contextFor(connectedViewer ?? (await authenticate(req?.headers.authorization ?? request?.headers.get('authorization') ?? authorizationParam(connectionParams)))),
  });
  const fastPath = new FastPath(yoga, {
    enabled: !plugins.some((plugin) => hooksHttpLayer(plugin)),
    maskError: (error) => maskError(error, 'Unexpected error.') as GraphQLError,
  });
  return { yoga, fastPath };
}

export type Yoga = ReturnType<typeof createPipeline>['yoga'];

/** The token of a graphql-ws or SSE connection's parameters. */
export function authorizationParam(connectionParams: unknown): string | undefined {
  const value = (connectionParams as { authorization?: unknown; Authorization?: unknown } | undefined | null) ?? {};
  const header = value.authorization ?? value.Authorization;
  return typeof header === 'string' ? header : undefined;
}

/** What an operation refused by an armor limit gets in `extensions.code`, on every transport. */
export const LIMIT_REFUSAL_CODE = 'GRAPHQL_VALIDATION_FAILED';

/** Armor throws its refusal after its callbacks: throwing first gives the refusal a code. */
function refuseWithCode(_context: unknown, refusal: GraphQLError): never {
  throw new GraphQLError(refusal.message, { extensions: { code: LIMIT_REFUSAL_CODE } });
}

/**
 * Yoga logs a few debug lines per request: they must cost nothing unless debug is on. Yoga logs
 * at error level only the errors it masked: errorMasker has logged the unexpected ones with their
 * stack, and the others are refusals of a client's input, so those lines go to debug.
 */
function yogaLogger(logger: Logger) {
  const level = (name: 'debug' | 'info' | 'warn') =>
    logger.isLevelEnabled(name) ? (...args: unknown[]) => logger[name](args.map(String).join(' ')) : () => {};
  return { debug: level('debug'), info: level('info'), warn: level('warn'), error: level('debug') };
}
