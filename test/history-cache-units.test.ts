// The history cache on its own, against real Redis servers: what a hit costs and returns, what
// is counted, what is never served, and how an outage is entered and left (a redis-server of the
// test's own, killed and brought back from a snapshot). history-cache-races.test.ts drives the
// write guards; history-cache.test.ts the cache inside a running Parley.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { historyKeys, NoHistoryCache, recentMessages, RedisHistoryCache, type CacheRead } from '../src/cache/history-cache.ts';
import { createLogger } from '../src/logger.ts';
import type { Message } from '../src/store/rows.ts';
import { REDIS_URL, redisNamespace } from './support/redis.ts';
import { TestRedisServer } from './support/redis-server.ts';

const message = (seq: number, content: string, conversationId = 'c1', userId = 'u1'): Message =>
  ({
    id: `m${seq}`,
    conversationId,
    userId,
    seq,
    role: 'USER',
    content,
    status: 'COMPLETE',
    createdAt: new Date(1_700_000_000_000 + seq),
    updatedAt: new Date(1_700_000_000_500 + seq),
    leaseExpiresAt: null,
  }) as unknown as Message;

const settle = () => new Promise((resolve) => setTimeout(resolve, 50));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const versionOf = (read: CacheRead | undefined) => (read as { version: string | null }).version;

/** Fills the conversation's entry through the cache's own read-then-fill, and waits for it to land. */
async function filled(cache: RedisHistoryCache, userId: string, conversationId: string, messages: Message[]) {
  const version = versionOf((await cache.read(userId, [conversationId])).get(conversationId));
  expect(version).not.toBeNull();
  cache.fill(userId, conversationId, version!, messages);
  await settle();
}

interface LogLine {
  level: number;
  msg: string;
  err?: unknown;
}

function capturedLogger() {
  const lines: LogLine[] = [];
  return { lines, logger: createLogger('info', { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) }) };
}

describe('the history cache, Redis up', () => {
  const namespace = redisNamespace();
  let redis: Redis;
  let cache: RedisHistoryCache;
  let scriptReads = 0;
  // Full reads of an entry (MGET), and head checks (the same-head script), by the cache's client.
  const calls = { mget: 0, historySameHead: 0 };
  // Every command the cache's client sends, by name.
  const sent: string[] = [];

  beforeAll(() => {
    redis = new Redis(REDIS_URL);
    cache = new RedisHistoryCache({ redis, prefix: namespace.prefix, size: 10, ttlMs: 60_000, logger: createLogger('silent') });
    // Count the read script's runs: a hit must not need it.
    const scripted = redis as unknown as { historyRead: (...args: unknown[]) => Promise<unknown> };
    const run = scripted.historyRead.bind(redis);
    scripted.historyRead = (...args) => (scriptReads++, run(...args));
    const sendCommand = redis.sendCommand.bind(redis);
    redis.sendCommand = (command, stream) => (sent.push(command.name), sendCommand(command, stream));
    for (const name of ['mget', 'historySameHead'] as const) {
      const counted = redis as unknown as Record<string, (...args: unknown[]) => unknown>;
      const original = counted[name]!.bind(redis);
      counted[name] = (...args) => (calls[name]++, original(...args));
    }
  });
  afterAll(async () => {
    redis.disconnect();
    await namespace.cleanup();
  });

  it('keys every entry under the prefix, with the epoch shared by all of them', () => {
    const a = historyKeys(namespace.prefix, 'u1', 'c1');
    const b = historyKeys(namespace.prefix, 'u2', 'c2');
    expect(a.epoch).toBe(`${namespace.prefix}history-epoch`);
    expect(b.epoch).toBe(a.epoch);
    for (const key of [a.entry, a.version, a.writers]) expect(key.startsWith(`${namespace.prefix}history:{`)).toBe(true);
    expect([a.entry, a.version, a.writers].map((key) => key.slice(a.base.length))).toEqual([':path', ':version', ':writers']);
  });

  it('serves a hit with one MGET (no script), revives its dates, and counts hits and misses per conversation', async () => {
    const before = cache.stats();
    await filled(cache, 'u1', 'hit', [message(1, 'one', 'hit'), message(2, 'two', 'hit')]);
    const scriptsBefore = scriptReads;
    const read = await cache.read('u1', ['hit', 'missing-a', 'missing-b']);
    expect(scriptReads - scriptsBefore).toBe(2);
    const hit = read.get('hit') as { messages: Message[] };
    expect(hit.messages.map((m) => m.content)).toEqual(['one', 'two']);
    expect(hit.messages[0]!.createdAt).toBeInstanceOf(Date);
    expect(hit.messages[0]!.createdAt.getTime()).toBe(1_700_000_000_001);
    expect(hit.messages[1]!.updatedAt.getTime()).toBe(1_700_000_000_502);
    expect(hit.messages[0]!.leaseExpiresAt).toBeNull();
    expect(Object.isFrozen(hit.messages) && Object.isFrozen(hit.messages[0])).toBe(true);
    expect(read.get('missing-a')).toEqual({ version: expect.any(String) });
    const after = cache.stats();
    // The fill's own read was a miss too.
    expect([after.hits - before.hits, after.misses - before.misses, after.errors, after.bypassed, after.status]).toEqual([1, 3, 0, 0, 'up']);
  });

  it('hands readers of an unchanged entry the same parsed messages, and new ones once it changes', async () => {
    await filled(cache, 'u1', 'reuse-a', [message(1, 'a', 'reuse-a')]);
    await filled(cache, 'u1', 'reuse-b', [message(1, 'b', 'reuse-b')]);
    const first = ((await cache.read('u1', ['reuse-a'])).get('reuse-a') as { messages: Message[] }).messages;
    // Another entry read in between does not push this one out.
    await cache.read('u1', ['reuse-b']);
    const again = ((await cache.read('u1', ['reuse-a'])).get('reuse-a') as { messages: Message[] }).messages;
    expect(again).toBe(first);
    await cache.writing('u1', 'reuse-a', async () => {});
    await settle();
    await filled(cache, 'u1', 'reuse-a', [message(1, 'changed', 'reuse-a')]);
    const changed = ((await cache.read('u1', ['reuse-a'])).get('reuse-a') as { messages: Message[] }).messages;
    expect(changed).not.toBe(first);
    expect(changed.map((m) => m.content)).toEqual(['changed']);
  });

  it('reads only the head of an entry it parsed before, and sees any other fill behind the same key', async () => {
    const keys = historyKeys(namespace.prefix, 'u1', 'heads');
    await filled(cache, 'u1', 'heads', [message(1, 'first', 'heads')]);
    const first = ((await cache.read('u1', ['heads'])).get('heads') as { messages: Message[] }).messages;
    const before = { ...calls };
    const reads = scriptReads;
    const sentBefore = sent.length;
    for (let i = 0; i < 5; i++) expect(((await cache.read('u1', ['heads'])).get('heads') as { messages: Message[] }).messages).toBe(first);
    expect([calls.mget - before.mget, calls.historySameHead - before.historySameHead, scriptReads - reads]).toEqual([0, 5, 0]);
    // Nothing else: one script call per hit.
    expect(sent.slice(sentBefore)).toEqual(Array(5).fill('evalsha'));
    // Another fill of the same length, written behind the cache's back: a new fill id, so a full read.
    const epoch = (await redis.get(keys.epoch)) ?? '0';
    const other = { fill: '00000000-0000-4000-8000-000000000000', userId: 'u1', conversationId: 'heads', messages: [message(1, 'other', 'heads')] };
    await redis.set(keys.entry, `${epoch}|${JSON.stringify(other)}`, 'PX', 60_000);
    const changed = ((await cache.read('u1', ['heads'])).get('heads') as { messages: Message[] }).messages;
    expect(changed.map((m) => m.content)).toEqual(['other']);
    // The same bytes after a new epoch are an entry of a retired epoch: never a hit.
    const raw = (await redis.get(keys.entry))!;
    await redis.incr(keys.epoch);
    await redis.set(keys.entry, raw, 'PX', 60_000);
    expect(versionOf((await cache.read('u1', ['heads'])).get('heads'))).toEqual(expect.any(String));
    // Gone (a writer deleted it): a miss, whatever was parsed before.
    await filled(cache, 'u1', 'heads', [message(1, 'third', 'heads')]);
    expect(((await cache.read('u1', ['heads'])).get('heads') as { messages: Message[] }).messages.map((m) => m.content)).toEqual(['third']);
    await redis.del(keys.entry);
    expect(versionOf((await cache.read('u1', ['heads'])).get('heads'))).toEqual(expect.any(String));
  });

  it('never serves what is not an entry of this format, and does not fill over it from that read', async () => {
    const keys = historyKeys(namespace.prefix, 'u1', 'odd');
    const epoch = (await redis.get(keys.epoch)) ?? '0';
    const fill = '0e2f4c1a-9b7d-4e3f-8a6b-5c4d3e2f1a0b';
    const planted = [
      'not json',
      'null',
      '[]',
      // Earlier format, without a fill id.
      JSON.stringify({ userId: 'u1', conversationId: 'odd', messages: [] }),
      // The fill id must be a UUID and come first: a head compared later must name the whole entry.
      JSON.stringify({ userId: 'u1', fill, conversationId: 'odd', messages: [] }),
      JSON.stringify({ fill: 'x', userId: 'u1', conversationId: 'odd', messages: [] }),
      JSON.stringify({ fill: 7, userId: 'u1', conversationId: 'odd', messages: [] }),
      ` ${JSON.stringify({ fill, userId: 'u1', conversationId: 'odd', messages: [] })}`,
      JSON.stringify({ fill, userId: 1, conversationId: 'odd', messages: [] }),
      JSON.stringify({ fill, userId: 'u1', conversationId: 7, messages: [] }),
      JSON.stringify({ fill, userId: 'u1', conversationId: 'odd', messages: {} }),
      JSON.stringify({ fill, conversationId: 'odd', messages: [] }),
      JSON.stringify({ fill, userId: 'u1', messages: [] }),
    ];
    for (const text of planted) {
      await redis.set(keys.entry, `${epoch}|${text}`, 'PX', 60_000);
      expect((await cache.read('u1', ['odd'])).get('odd'), text).toEqual({ version: null });
    }
    // Each was a miss, not a failure that takes the cache down.
    expect(cache.stats()).toMatchObject({ status: 'up', errors: 0 });
  });

  it('fills only when every row is the conversation’s own', async () => {
    const version = versionOf((await cache.read('u1', ['mixed'])).get('mixed'));
    cache.fill('u1', 'mixed', version!, [message(1, 'own', 'mixed'), message(2, 'foreign', 'mixed', 'u2')]);
    await settle();
    expect((await cache.read('u1', ['mixed'])).get('mixed')).not.toHaveProperty('messages');
  });

  it('a new instance serves the entries other instances filled', async () => {
    await filled(cache, 'u1', 'shared', [message(1, 'from instance one', 'shared')]);
    const other = new Redis(REDIS_URL);
    try {
      const second = new RedisHistoryCache({ redis: other, prefix: namespace.prefix, size: 10, ttlMs: 60_000, logger: createLogger('silent') });
      const read = (await second.read('u1', ['shared'])).get('shared') as { messages: Message[] };
      expect(read.messages.map((m) => m.content)).toEqual(['from instance one']);
    } finally {
      other.disconnect();
    }
  });

  it('recentMessages: a miss loads and fills, a hit does not load, and a conversation that is not the user’s is not cached', async () => {
    let loads = 0;
    const load = (rows: Message[] | null) => async () => (loads++, rows);
    const rows = [message(1, 'recent', 'recent')];
    expect(await recentMessages(cache, 'u1', 'recent', load(rows))).toEqual(rows);
    await settle();
    expect((await recentMessages(cache, 'u1', 'recent', load(rows)))!.map((m) => m.content)).toEqual(['recent']);
    expect(loads).toBe(1);
    expect(await recentMessages(cache, 'u1', 'not-mine', load(null))).toBeNull();
    await settle();
    expect(await recentMessages(cache, 'u1', 'not-mine', load(null))).toBeNull();
    expect(loads).toBe(3);
  });
});

describe('without Redis (NoHistoryCache)', () => {
  it('reads nothing, fills nothing, runs every change, and says it is off', async () => {
    const cache = new NoHistoryCache(10);
    expect(await cache.read('u1', ['a', 'b'])).toEqual(
      new Map([
        ['a', { version: null }],
        ['b', { version: null }],
      ]),
    );
    expect(await cache.writing('u1', 'a', async () => 'one')).toBe('one');
    expect(await cache.writingAll([{ userId: 'u1', conversationId: 'a' }], async () => 'all')).toBe('all');
    expect(cache.stats()).toEqual({ status: 'off', hits: 0, misses: 0, errors: 0, bypassed: 0 });
    let loads = 0;
    expect(await recentMessages(cache, 'u1', 'a', async () => (loads++, [message(1, 'db')]))).toHaveLength(1);
    await recentMessages(cache, 'u1', 'a', async () => (loads++, [message(1, 'db')]));
    expect(loads).toBe(2);
  });
});

describe('the history cache through an outage', () => {
  let server: TestRedisServer;
  let redis: Redis;
  let cache: RedisHistoryCache;
  const { lines, logger } = capturedLogger();
  const RETRY_MS = 300;
  const errorLines = () => lines.filter((line) => line.level === 50);
  const backLines = () => lines.filter((line) => /cache is back/.test(line.msg));

  beforeAll(async () => {
    server = await TestRedisServer.start();
    // Fail fast, as Parley's connections do (src/redis.ts).
    redis = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 200, retryStrategy: () => 50 });
    redis.on('error', () => {});
    await new Promise((resolve) => redis.once('ready', resolve));
    cache = new RedisHistoryCache({ redis, prefix: 'outage:', size: 10, ttlMs: 60_000, logger, retryAfterMs: RETRY_MS });
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
  });

  it('starts up without announcing anything, and serves', async () => {
    await filled(cache, 'u1', 'before', [message(1, 'before the outage', 'before')]);
    expect((await cache.read('u1', ['before'])).get('before')).toHaveProperty('messages');
    expect(lines).toEqual([]);
    // Saved, so that Redis comes back with this entry although later writes missed it.
    await server.snapshot();
  });

  it('when Redis dies: a write still runs, the failure is counted and logged once, and reads are bypassed without retrying Redis', async () => {
    await server.kill();
    // The first call to find Redis gone is a write's mark: the write itself must still happen.
    expect(await cache.writing('u1', 'before', async () => 'written')).toBe('written');
    await settle();
    expect(cache.stats()).toMatchObject({ status: 'down', errors: 1 });
    const read = await cache.read('u1', ['before', 'other']);
    expect([...read.values()]).toEqual([{ version: null }, { version: null }]);
    // Filling and writing while down do not touch Redis either.
    cache.fill('u1', 'other', '1', [message(1, 'x', 'other')]);
    expect(await cache.writing('u1', 'other', async () => 'also written')).toBe('also written');
    await settle();
    expect(cache.stats()).toMatchObject({ status: 'down', errors: 1, bypassed: 2 });
    expect(errorLines()).toHaveLength(1);
    expect(errorLines()[0]).toMatchObject({ msg: expect.stringMatching(/unavailable/), err: expect.anything() });
  });

  it('tries Redis again only after retryAfterMs, and a failed try is counted but not logged again', async () => {
    await sleep(RETRY_MS + 50);
    expect((await cache.read('u1', ['before'])).get('before')).toEqual({ version: null });
    expect(cache.stats()).toMatchObject({ status: 'down', errors: 2, bypassed: 3 });
    expect(errorLines()).toHaveLength(1);
  });

  it('when Redis is back (from a snapshot that missed the writes): entries from before are retired, the return is logged once, and the cache serves again', async () => {
    await server.restartFromSnapshot();
    await sleep(RETRY_MS + 100);
    const bypassed = cache.stats().bypassed;
    const read = (await cache.read('u1', ['before'])).get('before')!;
    // Served by Redis (not bypassed), and not the entry that missed the write.
    expect(cache.stats().bypassed).toBe(bypassed);
    expect(read).not.toHaveProperty('messages');
    expect(versionOf(read)).not.toBeNull();
    expect(cache.stats().status).toBe('up');
    expect(backLines()).toHaveLength(1);
    await filled(cache, 'u1', 'after', [message(1, 'after the outage', 'after')]);
    expect((await cache.read('u1', ['after'])).get('after')).toHaveProperty('messages');
    expect(backLines()).toHaveLength(1);
  });

  it('after a dropped connection, retires the entries before serving again, without calling it an outage', async () => {
    await filled(cache, 'u1', 'dropped', [message(1, 'before the drop', 'dropped')]);
    const ready = new Promise((resolve) => redis.once('ready', resolve));
    redis.disconnect(true);
    await ready;
    expect((await cache.read('u1', ['dropped'])).get('dropped')).not.toHaveProperty('messages');
    expect(cache.stats().status).toBe('up');
    expect(backLines()).toHaveLength(1);
  });

  it('a read that finds Redis frozen is bypassed within the command timeout, and takes the cache down: a new outage, logged again', async () => {
    const errors = cache.stats().errors;
    // Frozen, the connection stays open: the read's own command fails, on its timeout.
    server.freeze();
    try {
      const started = Date.now();
      expect((await cache.read('u1', ['after'])).get('after')).toEqual({ version: null });
      expect(Date.now() - started).toBeLessThan(1000);
      expect(cache.stats()).toMatchObject({ status: 'down', errors: errors + 1 });
      expect(errorLines()).toHaveLength(2);
    } finally {
      server.thaw();
    }
  });
});
