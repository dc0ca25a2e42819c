// The cache's guards against races, driven step by step against a real Redis: the interleavings
// that concurrent requests hit only by chance.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisHistoryCache, type CacheRead } from '../src/cache/history-cache.ts';
import type { Message } from '../src/generated/prisma/sqlite/client.ts';
import { createLogger } from '../src/logger.ts';
import { REDIS_URL, redisNamespace } from './support/redis.ts';

const message = (seq: number, content: string): Message =>
  ({ id: `m${seq}`, conversationId: 'c1', userId: 'u1', seq, role: 'USER', content, status: 'COMPLETE', createdAt: new Date(0), updatedAt: new Date(0) }) as Message;

const versionOf = (read: CacheRead | undefined) => {
  expect(read && 'version' in read).toBe(true);
  return (read as { version: string | null }).version;
};

describe('history cache guards', () => {
  const namespace = redisNamespace();
  let redis: Redis;
  let cache: RedisHistoryCache;

  beforeAll(() => {
    redis = new Redis(REDIS_URL);
    cache = new RedisHistoryCache({ redis, prefix: namespace.prefix, size: 10, ttlMs: 60_000, logger: createLogger('silent') });
  });
  afterAll(async () => {
    redis.disconnect();
    await namespace.cleanup();
  });

  const settle = () => new Promise((r) => setTimeout(r, 50));

  it('fills a miss, and serves it as a hit', async () => {
    const version = versionOf((await cache.read('u1', ['c1'])).get('c1'));
    expect(version).not.toBeNull();
    cache.fill('u1', 'c1', version!, [message(1, 'one')]);
    await settle();
    const hit = (await cache.read('u1', ['c1'])).get('c1');
    expect(hit).toEqual({ messages: [message(1, 'one')] });
    expect((await cache.read('u2', ['c1'])).get('c1')).not.toHaveProperty('messages');
  });

  it('refuses a fill of what was read before a write that has since completed', async () => {
    await cache.writing('u1', 'c2', async () => {});
    const seen = versionOf((await cache.read('u1', ['c2'])).get('c2'));
    // ... the reader's database read happens here, then a writer commits and cleans up ...
    await cache.writing('u1', 'c2', async () => {});
    cache.fill('u1', 'c2', seen!, [message(1, 'stale')]);
    await settle();
    expect((await cache.read('u1', ['c2'])).get('c2')).not.toHaveProperty('messages');
  });

  it('gives no fill permission while a write is in flight, and refuses fills until it ends', async () => {
    let finish!: () => void;
    const inFlight = cache.writing('u1', 'c3', () => new Promise<void>((resolve) => (finish = resolve)));
    await settle();
    expect(versionOf((await cache.read('u1', ['c3'])).get('c3'))).toBeNull();
    cache.fill('u1', 'c3', '1', [message(1, 'during the write')]);
    await settle();
    expect((await cache.read('u1', ['c3'])).get('c3')).not.toHaveProperty('messages');
    finish();
    await inFlight;
    const version = versionOf((await cache.read('u1', ['c3'])).get('c3'));
    expect(version).not.toBeNull();
    cache.fill('u1', 'c3', version!, [message(1, 'after')]);
    await settle();
    expect((await cache.read('u1', ['c3'])).get('c3')).toEqual({ messages: [message(1, 'after')] });
  });

  it('a writer that died mid-write blocks fills until its mark expires', async () => {
    const writers = `${namespace.prefix}history:{u1:c4}:writers`;
    await redis.set(writers, '1', 'PX', 300);
    expect(versionOf((await cache.read('u1', ['c4'])).get('c4'))).toBeNull();
    await new Promise((r) => setTimeout(r, 350));
    expect(versionOf((await cache.read('u1', ['c4'])).get('c4'))).not.toBeNull();
  });

  it('entries of an older epoch are never served', async () => {
    const version = versionOf((await cache.read('u1', ['c5'])).get('c5'));
    cache.fill('u1', 'c5', version!, [message(1, 'old epoch')]);
    await settle();
    expect((await cache.read('u1', ['c5'])).get('c5')).toHaveProperty('messages');
    await redis.incr(`${namespace.prefix}history-epoch`);
    expect((await cache.read('u1', ['c5'])).get('c5')).not.toHaveProperty('messages');
  });
});
