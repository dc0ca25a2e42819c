// One Parley server: HTTP (GraphQL over POST/GET, SSE subscriptions, GraphiQL, /health) and
// graphql-ws on the same port and path. Used by main.ts, the tests and the bench.
import type { AddressInfo } from 'node:net';
import type { Plugin } from 'graphql-yoga';
import type { Config } from '../config.ts';
import { createLogger, type Logger } from '../logger.ts';
import type { Database } from '../store/database.ts';
import { compose } from './compose.ts';
import { browserPolicy } from './cors.ts';
import { healthCheck } from './health.ts';
import { createHttpServer } from './http.ts';
import { createWebSocketServer } from './websocket.ts';
import { createPipeline, GRAPHQL_PATH } from './yoga.ts';

export { GRAPHQL_PATH };

export interface AppOptions {
  logger?: Logger;
  /** Called for every SQL statement; tests count database round trips with it. */
  onQuery?: (sql: string) => void;
  /** Envelop or Yoga plugins after Parley's own (metrics, tracing…): they see every operation on every path. */
  plugins?: Plugin<any>[];
}

export interface App {
  /** Listens on config.PORT/HOST (0 picks a free port) and returns the base URL. */
  start(): Promise<string>;
  /** Stops taking connections, lets in-flight requests finish, closes sockets and the database. */
  stop(): Promise<void>;
  readonly url: string;
  readonly db: Database;
  readonly logger: Logger;
  /** How many JSON POSTs the fast path answered, and how many it left to Yoga. */
  readonly fastPathCounts: { readonly answered: number; readonly declined: number };
}

export async function buildApp(config: Config, options: AppOptions = {}): Promise<App> {
  const logger = options.logger ?? createLogger(config.LOG_LEVEL);
  if (!config.AUTH_JWT_SECRET) {
    logger.warn('AUTH_JWT_SECRET is not set: single-user mode, every request acts as the user "local"');
    // Any page the user visits could then read and write their conversations.
    if (config.CORS_ORIGINS === '*') logger.warn('CORS_ORIGINS=* in single-user mode: every web page the user opens may call this server as them');
  }
  const { db, redis, cache, broker, feed, services, authenticate } = await compose(config, { logger, onQuery: options.onQuery });
  const shutdown = new AbortController();
  const { yoga, fastPath } = createPipeline(config, { db, cache, services, authenticate, logger, shutdown: shutdown.signal, plugins: options.plugins });
  const browser = browserPolicy(config);
  const http = createHttpServer({ yoga, fastPath, health: healthCheck(db, redis, cache), maxBodyBytes: config.MAX_BODY_BYTES, browser });
  const { server } = http;
  const ws = createWebSocketServer(server, yoga, authenticate, { maxPayload: config.MAX_BODY_BYTES, maxSubscriptionsPerConnection: config.MAX_SUBSCRIPTIONS_PER_CONNECTION }, browser);

  let url = '';
  return {
    get url() {
      return url;
    },
    db,
    logger,
    fastPathCounts: fastPath.counts,
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
      await services.chat.shutdown();
      await new Promise((resolve) => setTimeout(resolve, 100));
      // Other subscriptions end on this signal, so SSE responses finish like any other request.
      shutdown.abort();
      await ws.close();
      await http.drain(Math.max(0, deadline - Date.now()));
      server.closeAllConnections();
      await closed;
      await broker.close();
      await feed.close();
      await redis?.close();
      await db.close();
      logger.info('Parley stopped');
    },
  };
}
