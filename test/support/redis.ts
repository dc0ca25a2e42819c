import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A key prefix no other run uses; `cleanup` deletes its keys. */
export function redisNamespace(): { prefix: string; cleanup(): Promise<void>; redis(): Redis } {
  const prefix = `parley-test:${process.pid}:${randomBytes(4).toString('hex')}:`;
  const clients: Redis[] = [];
  return {
    prefix,
    redis: () => {
      const client = new Redis(REDIS_URL);
      clients.push(client);
      return client;
    },
    cleanup: async () => {
      const redis = new Redis(REDIS_URL);
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) await redis.del(...keys);
      } while (cursor !== '0');
      await redis.quit();
      await Promise.all(clients.map((c) => c.quit().catch(() => {})));
    },
  };
}
