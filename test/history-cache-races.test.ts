// The cache's guards against races, driven step by step against a real Redis: the interleavings
// that concurrent requests hit only by chance.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { historyKeys, RedisHistoryCache, type CacheRead } from '../src/cache/history-cache.ts';
import type { Message } from '../src/generated/prisma/sqlite/client.ts';
import { createLogger } from '../src/logger.ts';
import { REDIS_URL, redisNamespace } from './support/redis.ts';

const message = (seq: number, content: string, conversationId = 'c1'): Message =>
  ({ id: `m${seq}`, conversationId, userId: 'u1', seq, role: 'USER', content, status: 'COMPLETE', createdAt: new Date(0), updatedAt: new Date(0) }) as Message;

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
    cache.fill('u1', 'c2', seen!, [message(1, 'stale', 'c2')]);
    await settle();
    expect((await cache.read('u1', ['c2'])).get('c2')).not.toHaveProperty('messages');
  });

  it('gives no fill permission while a write is in flight, and refuses fills until it ends', async () => {
    let finish!: () => void;
    const inFlight = cache.writing('u1', 'c3', () => new Promise<void>((resolve) => (finish = resolve)));
    await settle();
    expect(versionOf((await cache.read('u1', ['c3'])).get('c3'))).toBeNull();
    cache.fill('u1', 'c3', '1', [message(1, 'during the write', 'c3')]);
    await settle();
    expect((await cache.read('u1', ['c3'])).get('c3')).not.toHaveProperty('messages');
    finish();
    await inFlight;
    const version = versionOf((await cache.read('u1', ['c3'])).get('c3'));
    expect(version).not.toBeNull();
    cache.fill('u1', 'c3', version!, [message(1, 'after', 'c3')]);
    await settle();
    expect((await cache.read('u1', ['c3'])).get('c3')).toEqual({ messages: [message(1, 'after', 'c3')] });
  });

  it('a writer that died mid-write blocks fills until its mark expires', async () => {
    const { writers } = historyKeys(namespace.prefix, 'u1', 'c4');
    await redis.set(writers, '1', 'PX', 300);
    expect(versionOf((await cache.read('u1', ['c4'])).get('c4'))).toBeNull();
    await new Promise((r) => setTimeout(r, 350));
    expect(versionOf((await cache.read('u1', ['c4'])).get('c4'))).not.toBeNull();
  });

  it('ids that run together under a naive key still get keys of their own', async () => {
    const pairs = [
      ['acme', 'alice:c6'],
      ['acme:alice', 'c6'],
      ['acme', 'alice}:c6'],
      ['acme{', 'alice:c6'],
      ['a\ud800', 'c6'],
      ['a\ufffd', 'c6'],
    ] as const;
    const keys = pairs.map(([user, conversation]) => historyKeys(namespace.prefix, user, conversation));
    expect(new Set(keys.map((k) => k.entry)).size).toBe(pairs.length);
    // Inside one hash tag, with none of the ids' braces: a conversation's keys share a Cluster slot.
    for (const k of keys) {
      const tag = /\{([^}]*)\}/.exec(k.entry)![1];
      expect([k.version, k.writers].map((key) => /\{([^}]*)\}/.exec(key)![1])).toEqual([tag, tag]);
      expect(k.entry.endsWith(`{${tag}}:path`)).toBe(true);
    }
    const owner = { ...message(1, 'acme:alice only', 'c6'), userId: 'acme:alice' };
    const version = versionOf((await cache.read('acme:alice', ['c6'])).get('c6'));
    cache.fill('acme:alice', 'c6', version!, [owner]);
    await settle();
    expect((await cache.read('acme:alice', ['c6'])).get('c6')).toEqual({ messages: [owner] });
    expect((await cache.read('acme', ['alice:c6'])).get('alice:c6')).not.toHaveProperty('messages');
  });

  it('an entry that names another owner or conversation is a miss, and is not overwritten by that reader', async () => {
    const keys = historyKeys(namespace.prefix, 'u1', 'c7');
    const epoch = (await redis.get(keys.epoch)) ?? '0';
    const planted = [
      { userId: 'u2', conversationId: 'c7', messages: [message(1, 'u2 secret', 'c7')] },
      { userId: 'u1', conversationId: 'C7', messages: [message(1, 'other conversation', 'C7')] },
      // The format before entries named their owner.
      [message(1, 'unowned', 'c7')],
    ];
    for (const entry of planted) {
      await redis.set(keys.entry, `${epoch}|${JSON.stringify(entry)}`, 'PX', 60_000);
      expect((await cache.read('u1', ['c7'])).get('c7')).toEqual({ version: null });
    }
  });

  it('refuses to fill an entry with rows of another owner or another spelling of the conversation', async () => {
    for (const [i, rows] of [[{ ...message(1, 'u2 row', 'c8'), userId: 'u2' }], [message(1, 'upper case', 'C8')], [message(1, 'padded', 'c8 ')]].entries()) {
      const version = versionOf((await cache.read('u1', ['c8'])).get('c8'));
      expect(version, `attempt ${i}`).not.toBeNull();
      cache.fill('u1', 'c8', version!, rows);
      await settle();
      expect((await cache.read('u1', ['c8'])).get('c8'), `attempt ${i}`).not.toHaveProperty('messages');
    }
    const version = versionOf((await cache.read('u1', ['c8'])).get('c8'));
    cache.fill('u1', 'c8', version!, [message(1, 'own', 'c8')]);
    await settle();
    expect((await cache.read('u1', ['c8'])).get('c8')).toEqual({ messages: [message(1, 'own', 'c8')] });
  });

  it('entries of an older epoch are never served', async () => {
    const version = versionOf((await cache.read('u1', ['c5'])).get('c5'));
    cache.fill('u1', 'c5', version!, [message(1, 'old epoch', 'c5')]);
    await settle();
    expect((await cache.read('u1', ['c5'])).get('c5')).toHaveProperty('messages');
    await redis.incr(historyKeys(namespace.prefix, 'u1', 'c5').epoch);
    expect((await cache.read('u1', ['c5'])).get('c5')).not.toHaveProperty('messages');
  });
});
