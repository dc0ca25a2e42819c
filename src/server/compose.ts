// The composition root: opens the database and Redis, and builds the stores, caches, brokers and
// services one Parley instance runs on. Nothing here serves requests.
import { createAuthenticator, type Authenticate } from '../auth.ts';
import { NoHistoryCache, RedisHistoryCache, type HistoryCache } from '../cache/history-cache.ts';
import { ChatService, type ChatOptions } from '../chat/chat-service.ts';
import { encryptionKeyBytes, type Config } from '../config.ts';
import type { Services } from '../graphql/context.ts';
import { modelPresets } from '../llm/presets.ts';
import { UserEndpoints } from '../llm/user-endpoints.ts';
import type { Logger } from '../logger.ts';
import { connectRedis, type RedisConnections } from '../redis.ts';
import { ConversationService } from '../services/conversations.ts';
import { LiveEvents } from '../services/live-events.ts';
import { MessageService } from '../services/messages.ts';
import { SecretBox } from '../services/secrets.ts';
import { UserConfigService } from '../services/user-config.ts';
import { openDatabase, type Database } from '../store/database.ts';
import { applyMigrations, pendingMigrations } from '../store/migrate.ts';
import type { ChangeFeed } from '../streaming/change-feed.ts';
import type { StreamBroker } from '../streaming/events.ts';
import { MemoryFeed } from '../streaming/memory-feed.ts';
import { RedisFeed } from '../streaming/redis-feed.ts';
import { MemoryBroker } from '../streaming/memory-broker.ts';
import { RedisBroker, STREAM_COMMANDS } from '../streaming/redis-broker.ts';

export interface Parts {
  db: Database;
  redis: RedisConnections | undefined;
  cache: HistoryCache;
  broker: StreamBroker;
  feed: ChangeFeed;
  services: Services;
  authenticate: Authenticate;
}

export interface ComposeOptions {
  logger: Logger;
  /** Called for every SQL statement; tests count database round trips with it. */
  onQuery?: (sql: string) => void;
}

/** Builds an instance's parts; the chat service has started (recovery, lease heartbeat). */
export async function compose(config: Config, { logger, onQuery }: ComposeOptions): Promise<Parts> {
  if (config.MIGRATE_ON_START) {
    await applyMigrations(config.DATABASE_URL, (msg) => logger.info(msg));
  } else {
    const pending = await pendingMigrations(config.DATABASE_URL);
    if (pending.length > 0) throw new Error(`the database is missing migrations ${pending.join(', ')}: run npm run db:deploy, or start with MIGRATE_ON_START=true`);
  }
  const db = await openDatabase({ url: config.DATABASE_URL, poolSize: config.DATABASE_POOL_SIZE, onQuery });
  const redis = config.REDIS_URL
    ? await connectRedis(config.REDIS_URL, { commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS, unpipelinedCommands: STREAM_COMMANDS }, logger)
    : undefined;
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
  const feedLimits = { maxEvents: config.EVENT_LOG_MAX_EVENTS, ttlMs: config.EVENT_LOG_TTL_S * 1000 };
  const feed: ChangeFeed = redis
    ? new RedisFeed({ redis: redis.commands, subscriber: redis.subscriber, prefix: config.REDIS_KEY_PREFIX, limits: feedLimits })
    : new MemoryFeed(feedLimits);
  const liveEvents = new LiveEvents(db.store, feed, { ...feedLimits, gapWaitMs: 1000, sweepMs: config.EVENT_SWEEP_MS }, logger);
  const presets = modelPresets(config);
  const userEndpoints = config.ALLOW_CUSTOM_BASE_URL ? new UserEndpoints(config.LLM_ALLOWED_HOSTS) : undefined;
  const encryptionKey = config.CONFIG_ENCRYPTION_KEY ? encryptionKeyBytes(config.CONFIG_ENCRYPTION_KEY) : undefined;
  const userConfigs = new UserConfigService(db.store, {
    presets,
    secrets: encryptionKey ? new SecretBox(encryptionKey) : undefined,
    userEndpoints,
    maxSystemPromptChars: config.MAX_CONTENT_CHARS,
  });
  const chat = new ChatService(
    db.store,
    broker,
    userConfigs,
    cache,
    chatOptions(config, { userEndpoints, singleInstance: !redis }),
    logger,
    liveEvents,
  );
  await chat.start();
  const services: Services = {
    conversations: new ConversationService(db.store, cache, liveEvents),
    messages: new MessageService(db.store, { maxContentChars: config.MAX_CONTENT_CHARS }, cache, liveEvents),
    chat,
    liveEvents,
    userConfigs,
    presets,
  };
  return { db, redis, cache, broker, feed, services, authenticate: createAuthenticator(config.AUTH_JWT_SECRET) };
}

/** The chat domain's options from the configuration. */
export function chatOptions(config: Config, { userEndpoints, singleInstance }: { userEndpoints?: UserEndpoints; singleInstance: boolean }): ChatOptions {
  return {
    flushMs: config.STREAM_FLUSH_MS,
    leaseMs: config.STREAM_LEASE_MS,
    maxEvents: config.STREAM_MAX_EVENTS,
    maxContentChars: config.MAX_CONTENT_CHARS,
    maxReplyChars: config.LLM_MAX_REPLY_CHARS,
    maxConcurrentReplies: config.MAX_CONCURRENT_REPLIES,
    model: {
      timeoutMs: config.LLM_TIMEOUT_MS,
      idleTimeoutMs: config.LLM_IDLE_TIMEOUT_MS,
      maxRetries: config.LLM_MAX_RETRIES,
      userEndpoints,
      // A delta's JSON may escape each character as \uXXXX; the rest of a chunk is small.
      maxEventChars: 6 * config.LLM_MAX_REPLY_CHARS + 65_536,
    },
    singleInstance,
  };
}
