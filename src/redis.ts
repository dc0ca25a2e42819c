// Redis connections that fail fast: every command is bounded by REDIS_COMMAND_TIMEOUT_MS and
// nothing queues up while Redis is away. Outages are logged once, when they start and end.
import { Redis } from 'ioredis';
import type { Logger } from './logger.ts';

export interface RedisConnections {
  /** Commands, Lua scripts and publishes. */
  commands: Redis;
  /** Subscriber mode, for stream fan-out. */
  subscriber: Redis;
  close(): Promise<void>;
}

export interface RedisOptions {
  commandTimeoutMs: number;
  /** Commands sent at once rather than pipelined per turn of the event loop (the stream scripts). */
  unpipelinedCommands: string[];
}

export async function connectRedis(url: string, { commandTimeoutMs, unpipelinedCommands }: RedisOptions, logger: Logger): Promise<RedisConnections> {
  const connect = (role: string) => {
    const redis = new Redis(url, {
      commandTimeout: commandTimeoutMs,
      enableOfflineQueue: false,
      // Commands issued in the same turn of the event loop (concurrent requests' cache reads) go
      // out as one write: under load that is the largest saving on the server's side of Redis.
      enableAutoPipelining: true,
      autoPipeliningIgnoredCommands: unpipelinedCommands,
      maxRetriesPerRequest: 0,
      connectTimeout: Math.max(1000, commandTimeoutMs * 5),
      // Reconnect quickly: the cache and the streams come back as soon as Redis does.
      retryStrategy: (attempt) => Math.min(100 * attempt, 1000),
    });
    let down = false;
    redis.on('error', (error) => {
      if (down) return;
      down = true;
      logger.error({ err: error, role }, 'Redis connection lost');
    });
    redis.on('ready', () => {
      if (down) logger.info({ role }, 'Redis connection is back');
      down = false;
    });
    return redis;
  };
  const commands = connect('commands');
  const subscriber = connect('subscriber');
  // Start even when Redis is away: the database serves, and Redis is used once it answers.
  await Promise.all(
    [commands, subscriber].map(
      (redis) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 2000);
          redis.once('ready', () => {
            clearTimeout(timer);
            resolve();
          });
        }),
    ),
  );
  return {
    commands,
    subscriber,
    close: async () => {
      await Promise.all([commands.quit().catch(() => commands.disconnect()), subscriber.quit().catch(() => subscriber.disconnect())]);
    },
  };
}
