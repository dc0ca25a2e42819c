// The ChangeFeed contract, the same on both feeds: MemoryFeed (one instance) and RedisFeed against
// a real Redis (a fresh key prefix). The log read back sorted and each seq once, however it was
// published; its bound and its TTL; live listening per feed and stopping. Then RedisFeed's own:
// another instance, what else a sorted set may hold, and a redis-server of the test's own that
// goes away and comes back (listen while it is away, onReconnect, a follower's RESYNC).
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { followFeed, type ChangeFeed, type FeedEvent, type FeedLimits } from '../src/streaming/change-feed.ts';
import { MemoryFeed } from '../src/streaming/memory-feed.ts';
import { RedisFeed } from '../src/streaming/redis-feed.ts';
import { TestRedisServer } from './support/redis-server.ts';
import { redisNamespace } from './support/redis.ts';

const namespace = redisNamespace();
const feeds: ChangeFeed[] = [];
afterAll(async () => {
  await Promise.all(feeds.map((f) => f.close()));
  await namespace.cleanup();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const ev = (seq: number, kind = 'UPDATED', conversationId = 'conv', messageId: string | null = `m${seq}`): FeedEvent => ({ seq, kind, conversationId, messageId });
const seqs = (events: FeedEvent[]) => events.map((e) => e.seq);
let ids = 0;
const newId = () => `feed-${++ids}`;
const RESYNC = 'RESYNC';
const LIMITS: FeedLimits = { maxEvents: 100, ttlMs: 60_000 };

/** Waits until `check` holds (at most `ms`), then once more for anything that should not come. */
async function settle(check: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await sleep(10);
  await sleep(50);
}

async function until(check: () => boolean, ms = 3000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}

const memoryFeed = (limits: FeedLimits) => new MemoryFeed(limits);
const redisFeed = (limits: FeedLimits) => new RedisFeed({ redis: namespace.redis(), subscriber: namespace.redis(), prefix: namespace.prefix, limits });

describe.each([
  ['MemoryFeed', memoryFeed],
  ['RedisFeed', redisFeed],
] as const)('%s', (kind, make) => {
  const create = (limits: FeedLimits = LIMITS) => {
    const feed = make(limits);
    feeds.push(feed);
    return feed;
  };

  it('reads the events after afterSeq sorted and each seq once, however out of order and repeated they were published', async () => {
    const feed = create();
    const name = `c:${newId()}`;
    await feed.publish(name, [ev(3), ev(1), ev(3)]);
    await feed.publish(name, [ev(2), ev(5), ev(1)]);
    await Promise.all([feed.publish(name, [ev(4), ev(2)]), feed.publish(name, [ev(5), ev(0)])]);
    expect(await feed.read(name, -1)).toEqual([ev(0), ev(1), ev(2), ev(3), ev(4), ev(5)]);
    expect(await feed.read(name, 2)).toEqual([ev(3), ev(4), ev(5)]);
    expect(await feed.read(name, 4)).toEqual([ev(5)]);
    expect(await feed.read(name, 5)).toEqual([]);
    expect(await feed.read(name, 1_000)).toEqual([]);
    expect(await feed.read(`c:${newId()}`, -1)).toEqual([]);
    // Publishing nothing changes nothing.
    await feed.publish(name, []);
    expect(seqs(await feed.read(name, -1))).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('keeps every field, null and empty ones too', async () => {
    const feed = create();
    const name = `c:${newId()}`;
    const odd = [ev(1, 'DELETED', 'é ✓ "q"\n', null), ev(2, '', '', ''), ev(Number.MAX_SAFE_INTEGER, 'K', 'c', 'm')];
    await feed.publish(name, odd);
    expect(await feed.read(name, -1)).toStrictEqual(odd);
  });

  it('reads copies: not the objects published or heard live, and changing one changes no later read', async () => {
    const feed = create();
    const name = `c:${newId()}`;
    const heard: FeedEvent[] = [];
    const stop = await feed.listen(name, (e) => heard.push(e));
    const published = [ev(1), ev(2)];
    await feed.publish(name, published);
    await settle(() => heard.length >= 2);
    const first = await feed.read(name, -1);
    expect(first).toEqual(published);
    for (const e of first) {
      expect(published).not.toContain(e);
      expect(heard).not.toContain(e);
    }
    first[0]!.kind = 'CHANGED';
    first.pop();
    const second = await feed.read(name, -1);
    expect(second).toEqual([ev(1), ev(2)]);
    expect(second[0]).not.toBe(first[0]);
    stop();
  });

  it('keeps only the newest maxEvents, whatever order they came in; a repeat does not take a place', async () => {
    const feed = create({ maxEvents: 5, ttlMs: 60_000 });
    const name = `c:${newId()}`;
    await feed.publish(name, [ev(1), ev(2), ev(3), ev(4), ev(5)]);
    await feed.publish(name, [ev(3), ev(5)]);
    expect(seqs(await feed.read(name, -1))).toEqual([1, 2, 3, 4, 5]);
    await feed.publish(name, [ev(8), ev(6)]);
    await feed.publish(name, [ev(7)]);
    expect(await feed.read(name, -1)).toEqual([ev(4), ev(5), ev(6), ev(7), ev(8)]);
    // Older than everything kept: not kept either.
    await feed.publish(name, [ev(2)]);
    expect(seqs(await feed.read(name, -1))).toEqual([4, 5, 6, 7, 8]);
    // One batch larger than the log.
    await feed.publish(
      name,
      Array.from({ length: 12 }, (_, i) => ev(20 - i)),
    );
    expect(seqs(await feed.read(name, -1))).toEqual([16, 17, 18, 19, 20]);
  });

  it('listeners hear the events of their feed only, in publish order; a feed whose name starts with another’s is its own', async () => {
    const feed = create();
    const id = newId();
    const names = { a: `c:${id}`, log: `c:${id}:log`, events: `c:${id}:events`, longer: `c:${id}b`, viewer: `u:${id}` };
    const heard: Record<string, FeedEvent[]> = { a1: [], a2: [], log: [], events: [], longer: [], viewer: [] };
    const stops = await Promise.all([
      feed.listen(names.a, (e) => heard.a1!.push(e)),
      feed.listen(names.a, (e) => heard.a2!.push(e)),
      feed.listen(names.log, (e) => heard.log!.push(e)),
      feed.listen(names.events, (e) => heard.events!.push(e)),
      feed.listen(names.longer, (e) => heard.longer!.push(e)),
      feed.listen(names.viewer, (e) => heard.viewer!.push(e)),
    ]);
    await feed.publish(names.a, [ev(2), ev(1)]);
    await feed.publish(names.log, [ev(10)]);
    await feed.publish(names.events, [ev(20)]);
    await feed.publish(names.longer, [ev(30)]);
    await feed.publish(names.a, [ev(3)]);
    await settle(() => heard.a1!.length >= 3 && heard.a2!.length >= 3 && heard.log!.length >= 1 && heard.events!.length >= 1 && heard.longer!.length >= 1);
    expect(heard).toEqual({ a1: [ev(2), ev(1), ev(3)], a2: [ev(2), ev(1), ev(3)], log: [ev(10)], events: [ev(20)], longer: [ev(30)], viewer: [] });
    // The logs are kept apart too.
    expect(await feed.read(names.a, -1)).toEqual([ev(1), ev(2), ev(3)]);
    expect(await feed.read(names.log, -1)).toEqual([ev(10)]);
    expect(await feed.read(names.events, -1)).toEqual([ev(20)]);
    expect(await feed.read(names.longer, -1)).toEqual([ev(30)]);
    expect(await feed.read(names.viewer, -1)).toEqual([]);
    stops.forEach((stop) => stop());
  });

  it('a listener hears nothing published before it listened; each stop removes its own listener only', async () => {
    const feed = create();
    const name = `c:${newId()}`;
    await feed.publish(name, [ev(1)]);
    const first: FeedEvent[] = [];
    const second: FeedEvent[] = [];
    const stopFirst = await feed.listen(name, (e) => first.push(e));
    const stopSecond = await feed.listen(name, (e) => second.push(e));
    await feed.publish(name, [ev(2)]);
    await settle(() => first.length >= 1 && second.length >= 1);
    expect([first, second]).toEqual([[ev(2)], [ev(2)]]);

    stopFirst();
    await feed.publish(name, [ev(3)]);
    await settle(() => second.length >= 2);
    expect([first, second]).toEqual([[ev(2)], [ev(2), ev(3)]]);

    stopSecond();
    await feed.publish(name, [ev(4)]);
    await sleep(100);
    expect([first, second]).toEqual([[ev(2)], [ev(2), ev(3)]]);

    // Listening again after everybody stopped, and stale stops called again, leave the new listener in place.
    const third: FeedEvent[] = [];
    const stopThird = await feed.listen(name, (e) => third.push(e));
    stopFirst();
    stopSecond();
    await feed.publish(name, [ev(5)]);
    await settle(() => third.length >= 1);
    expect(third).toEqual([ev(5)]);
    expect(second).toHaveLength(2);
    stopThird();
  });

  it('the same function listening twice is two listeners: one stop leaves the other', async () => {
    const feed = create();
    const name = `c:${newId()}`;
    const heard: FeedEvent[] = [];
    const onEvent = (e: FeedEvent) => heard.push(e);
    const stopA = await feed.listen(name, onEvent);
    const stopB = await feed.listen(name, (e) => onEvent(e));
    stopA();
    await feed.publish(name, [ev(1)]);
    await settle(() => heard.length >= 1);
    expect(heard).toEqual([ev(1)]);
    stopB();
  });

  it('a log lives for ttlMs after its last publish (each publish renews it), then is gone', async () => {
    const ttlMs = 300;
    const feed = create({ maxEvents: 100, ttlMs });
    const name = `c:${newId()}`;
    const started = Date.now();
    const at = (ms: number) => sleep(Math.max(0, started + ms - Date.now()));
    const pttl = () => namespace.redis().pttl(`${namespace.prefix}feed:${name}:log`);
    await feed.publish(name, [ev(1)]);
    if (feed instanceof RedisFeed) {
      expect(await pttl()).toBeGreaterThan(0);
      expect(await pttl()).toBeLessThanOrEqual(ttlMs);
    }
    // Renewed every 200 ms, it outlives its first TTL by far.
    for (const [ms, seq] of [
      [200, 2],
      [400, 3],
      [600, 4],
    ] as const) {
      await at(ms);
      await feed.publish(name, [ev(seq)]);
    }
    if (feed instanceof RedisFeed) expect(await pttl()).toBeGreaterThan(ttlMs - 100);
    await at(700);
    expect(seqs(await feed.read(name, -1)), kind).toEqual([1, 2, 3, 4]);
    // Past the TTL after the last publish (and, in memory, the sweep after it).
    await at(600 + ttlMs * 2 + 200);
    expect(await feed.read(name, -1)).toEqual([]);
    if (feed instanceof RedisFeed) expect(await pttl()).toBe(-2);
  });
});

describe('RedisFeed only', () => {
  it('instances on one Redis share logs and live events', async () => {
    const a = redisFeed(LIMITS);
    const b = redisFeed(LIMITS);
    feeds.push(a, b);
    const name = `c:${newId()}`;
    const heard: FeedEvent[] = [];
    const stop = await b.listen(name, (e) => heard.push(e));
    await a.publish(name, [ev(2), ev(1)]);
    expect(await b.read(name, 0)).toEqual([ev(1), ev(2)]);
    await settle(() => heard.length >= 2);
    expect(heard).toEqual([ev(2), ev(1)]);
    stop();
  });

  it('keys the log under its prefix, and feeds of another prefix are kept apart', async () => {
    const mine = redisFeed(LIMITS);
    const theirs = new RedisFeed({ redis: namespace.redis(), subscriber: namespace.redis(), prefix: `${namespace.prefix}other:`, limits: LIMITS });
    feeds.push(mine, theirs);
    const name = `c:${newId()}`;
    const heard: FeedEvent[] = [];
    const stop = await mine.listen(name, (e) => heard.push(e));
    await theirs.publish(name, [ev(1)]);
    await mine.publish(name, [ev(2)]);
    await settle(() => heard.length >= 1);
    expect(heard).toEqual([ev(2)]);
    expect(await mine.read(name, -1)).toEqual([ev(2)]);
    expect(await theirs.read(name, -1)).toEqual([ev(1)]);
    expect(await namespace.redis().zcard(`${namespace.prefix}feed:${name}:log`)).toBe(1);
    stop();
  });

  it("unsubscribes from a feed's channel once its last listener stops, and not before", async () => {
    const feed = redisFeed(LIMITS);
    feeds.push(feed);
    const admin = namespace.redis();
    const name = `c:${newId()}`;
    const channel = `${namespace.prefix}feed:${name}:events`;
    const subscribers = async () => Number(((await admin.pubsub('NUMSUB', channel)) as [string, number])[1]);
    const stopA = await feed.listen(name, () => {});
    const stopB = await feed.listen(name, () => {});
    expect(await subscribers()).toBe(1);
    stopA();
    await sleep(50);
    expect(await subscribers()).toBe(1);
    stopB();
    await settle(() => false, 100);
    expect(await subscribers()).toBe(0);
  });

  describe('what else the sorted set may hold (written there directly)', () => {
    const admin = () => namespace.redis();
    const logKey = (name: string) => `${namespace.prefix}feed:${name}:log`;

    it('garbage, wrong arity and wrong types are never returned, and reading does not throw', async () => {
      const feed = redisFeed(LIMITS);
      feeds.push(feed);
      const name = `c:${newId()}`;
      await feed.publish(name, [ev(1), ev(2), ev(3)]);
      const redis = admin();
      const planted: [number, string][] = [
        [0.5, 'garbage'],
        [1, '[1,"UPDATED","conv"]'],
        [1.2, '{"seq":1,"kind":"UPDATED","conversationId":"conv","messageId":null}'],
        [2.5, '[2,"UPDATED","conv",null,"extra"]'],
        [2.7, '[3,7,"conv",null]'],
        [3.5, '[4,"UPDATED",null,null]'],
        [3.6, '[4,"UPDATED","conv",4]'],
        [4, '[-4,"UPDATED","conv",null]'],
        [4.5, 'null'],
        [5, '[5.5,"UPDATED","conv",null]'],
        [5.5, '["5","UPDATED","conv",null]'],
        [5.7, ''],
      ];
      for (const [score, member] of planted) await redis.zadd(logKey(name), score, member);
      await feed.publish(name, [ev(6)]);
      await expect(feed.read(name, -1)).resolves.toEqual([ev(1), ev(2), ev(3), ev(6)]);
      await expect(feed.read(name, 3)).resolves.toEqual([ev(6)]);
      await expect(feed.read(name, 0.5)).resolves.toEqual([ev(1), ev(2), ev(3), ev(6)]);
    });

    it('an entry whose seq is higher than its score, after the real ones, is not returned', async () => {
      const feed = redisFeed(LIMITS);
      feeds.push(feed);
      const name = `c:${newId()}`;
      await feed.publish(name, [ev(1), ev(2), ev(3)]);
      await admin().zadd(logKey(name), 4, JSON.stringify([9, 'UPDATED', 'conv', 'm9']));
      expect(seqs(await feed.read(name, -1))).toEqual([1, 2, 3]);
      expect(await feed.read(name, 3)).toEqual([]);
    });

    it('an entry whose seq is higher than its score, among the real ones, neither is returned nor hides them', async () => {
      const feed = redisFeed(LIMITS);
      feeds.push(feed);
      const name = `c:${newId()}`;
      await feed.publish(name, [ev(1), ev(2), ev(3)]);
      await admin().zadd(logKey(name), 1.5, JSON.stringify([100, 'UPDATED', 'conv', 'm100']));
      expect(seqs(await feed.read(name, -1))).toEqual([1, 2, 3]);
      expect(await feed.read(name, 0)).toEqual([ev(1), ev(2), ev(3)]);
    });

    it('an entry whose seq is lower than its score is not returned', async () => {
      const feed = redisFeed(LIMITS);
      feeds.push(feed);
      const name = `c:${newId()}`;
      await feed.publish(name, [ev(1), ev(2), ev(3)]);
      await admin().zadd(logKey(name), 10, JSON.stringify([4, 'UPDATED', 'conv', 'm4']));
      await admin().zadd(logKey(name), 11, JSON.stringify([2, 'UPDATED', 'conv', 'm2-again']));
      expect(seqs(await feed.read(name, -1))).toEqual([1, 2, 3]);
      expect(await feed.read(name, 3)).toEqual([]);
    });

    it('two entries with one seq come back once', async () => {
      const feed = redisFeed(LIMITS);
      feeds.push(feed);
      const name = `c:${newId()}`;
      await feed.publish(name, [ev(1), ev(2), ev(3)]);
      // Sorts before the real one in the set, and after it.
      await admin().zadd(logKey(name), 2, JSON.stringify([2, 'AAA', 'conv', 'x']));
      await admin().zadd(logKey(name), 2, JSON.stringify([2, 'ZZZ', 'conv', 'y']));
      await feed.publish(name, [ev(3, 'OTHER')]);
      const read = await feed.read(name, -1);
      expect(seqs(read)).toEqual([1, 2, 3]);
      expect(seqs(await feed.read(name, 1))).toEqual([2, 3]);
    });

    it('a log key of another type: reading fails without taking the feed down, and publishing says so', async () => {
      const feed = redisFeed(LIMITS);
      feeds.push(feed);
      const name = `c:${newId()}`;
      await admin().set(logKey(name), 'a string');
      await expect(feed.read(name, -1)).rejects.toThrow(/WRONGTYPE/);
      await expect(feed.publish(name, [ev(1)])).rejects.toThrow(/WRONGTYPE/);
      // Other feeds still work.
      const other = `c:${newId()}`;
      await feed.publish(other, [ev(1)]);
      expect(await feed.read(other, -1)).toEqual([ev(1)]);
    });

    it('garbage published on a feed’s channel reaches no listener and breaks nothing', async () => {
      const feed = redisFeed(LIMITS);
      feeds.push(feed);
      const name = `c:${newId()}`;
      const heard: FeedEvent[] = [];
      const stop = await feed.listen(name, (e) => heard.push(e));
      const channel = `${namespace.prefix}feed:${name}:events`;
      const redis = admin();
      for (const message of ['garbage', '[1,"UPDATED","conv"]', '[-1,"UPDATED","conv",null]', '{"seq":1}', '']) await redis.publish(channel, message);
      await feed.publish(name, [ev(1)]);
      await settle(() => heard.length >= 1);
      expect(heard).toEqual([ev(1)]);
      stop();
    });
  });
});

describe('RedisFeed through an outage (a redis-server of its own)', () => {
  let server: TestRedisServer;
  const connections: Redis[] = [];
  // Fail-fast connections, as Parley's (src/redis.ts): no offline queue, quick reconnects.
  const connect = () => {
    const redis = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
    redis.on('error', () => {});
    connections.push(redis);
    return redis;
  };
  const ready = (redis: Redis) => until(() => redis.status === 'ready', 5000);
  const instance = () => {
    const [redis, subscriber] = [connect(), connect()];
    const feed = new RedisFeed({ redis, subscriber, prefix: 'outage:', limits: LIMITS });
    return { feed, redis, subscriber };
  };

  beforeAll(async () => {
    server = await TestRedisServer.start();
  });
  afterAll(async () => {
    connections.forEach((c) => c.disconnect());
    await server.stop();
  });

  it('down from the start: listen does not throw; once Redis is up, onReconnect is called once and the listener hears what is published', async () => {
    await server.kill();
    const a = instance();
    const calls = { first: 0, second: 0, removed: 0 };
    a.feed.onReconnect(() => calls.first++);
    a.feed.onReconnect(() => calls.second++);
    a.feed.onReconnect(() => calls.removed++)();
    const heard: FeedEvent[] = [];
    await sleep(100);
    const stop = await a.feed.listen('c:down-at-start', (e) => heard.push(e));
    expect(stop).toBeTypeOf('function');
    await server.restart();
    expect(await until(() => calls.first >= 1, 5000)).toBe(true);
    // Published as soon as the handlers are told: heard.
    const writer = instance();
    expect(await ready(writer.redis)).toBe(true);
    await writer.feed.publish('c:down-at-start', [ev(1)]);
    await settle(() => heard.length >= 1);
    expect(heard).toEqual([ev(1)]);
    await sleep(200);
    expect(calls).toEqual({ first: 1, second: 1, removed: 0 });
    stop();
  });

  it('an outage while listening: listen during it does not throw; each reconnect calls onReconnect exactly once, and every listener hears what follows', async () => {
    const a = instance();
    let reconnects = 0;
    // Told before its first connection is made.
    a.feed.onReconnect(() => reconnects++);
    const writer = instance();
    expect(await ready(a.subscriber)).toBe(true);
    expect(await ready(writer.redis)).toBe(true);
    const before: FeedEvent[] = [];
    const during: FeedEvent[] = [];
    const stopped: FeedEvent[] = [];
    const stopBefore = await a.feed.listen('c:before', (e) => before.push(e));
    const stopStopped = await a.feed.listen('c:stopped', (e) => stopped.push(e));
    await writer.feed.publish('c:before', [ev(1)]);
    await settle(() => before.length >= 1);
    expect(before).toEqual([ev(1)]);
    // Its first connection is not a reconnect.
    expect(reconnects).toBe(0);

    await server.kill();
    expect(await until(() => a.subscriber.status !== 'ready')).toBe(true);
    const stopDuring = await a.feed.listen('c:during', (e) => during.push(e));
    stopStopped();
    await sleep(150);
    await server.restart();
    expect(await until(() => reconnects >= 1, 5000)).toBe(true);
    expect(await ready(writer.redis)).toBe(true);
    // Right away, no pause: the channels are subscribed again by the time the handlers run.
    await Promise.all([writer.feed.publish('c:before', [ev(2)]), writer.feed.publish('c:during', [ev(1)]), writer.feed.publish('c:stopped', [ev(1)])]);
    await settle(() => before.length >= 2 && during.length >= 1);
    expect(before).toEqual([ev(1), ev(2)]);
    expect(during).toEqual([ev(1)]);
    expect(stopped).toEqual([]);
    await sleep(150);
    expect(reconnects).toBe(1);

    // A second outage: one more call, and every listener still hears.
    await server.kill();
    expect(await until(() => a.subscriber.status !== 'ready')).toBe(true);
    await sleep(200);
    await server.restart();
    expect(await until(() => reconnects >= 2, 5000)).toBe(true);
    expect(await ready(writer.redis)).toBe(true);
    await Promise.all([writer.feed.publish('c:before', [ev(3)]), writer.feed.publish('c:during', [ev(2)])]);
    await settle(() => before.length >= 3 && during.length >= 2);
    expect(before).toEqual([ev(1), ev(2), ev(3)]);
    expect(during).toEqual([ev(1), ev(2)]);
    await sleep(200);
    expect(reconnects).toBe(2);
    stopBefore();
    stopDuring();
  });

  it('a follower over a RedisFeed gets one RESYNC for what an outage lost, then the events after it', async () => {
    const a = instance();
    const writer = instance();
    expect(await ready(a.subscriber)).toBe(true);
    expect(await ready(writer.redis)).toBe(true);
    const db = { seq: 0 };
    const signal = { aborted: false, onAbort: undefined as (() => void) | undefined };
    const events: FeedEvent[] = [];
    let ended = false;
    const run = (async () => {
      for await (const e of followFeed(a.feed, 'c:followed', {
        afterSeq: 0,
        currentSeq: async () => db.seq,
        limits: LIMITS,
        gapWaitMs: 200,
        kind: {
          accepts: (e, subject) => e.kind !== RESYNC && e.conversationId === subject,
          isLast: () => false,
          gone: (seq, subject) => ({ seq, kind: 'GONE', conversationId: subject, messageId: null }),
          resync: (seq, subject) => ({ seq, kind: RESYNC, conversationId: subject, messageId: null }),
        },
        subject: 'conv',
        signal,
      }))
        events.push(e);
    })().finally(() => (ended = true));
    await sleep(100);
    db.seq = 1;
    await writer.feed.publish('c:followed', [ev(1)]);
    expect(await until(() => events.length >= 1)).toBe(true);

    await server.kill();
    // Written to the database while Redis was away: their publish fails, the events are lost.
    db.seq = 3;
    await expect(writer.feed.publish('c:followed', [ev(2), ev(3)])).rejects.toThrow();
    await sleep(100);
    await server.restart();
    expect(await until(() => events.length >= 2, 5000)).toBe(true);
    expect(events[1]).toEqual({ seq: 3, kind: RESYNC, conversationId: 'conv', messageId: null });
    expect(await ready(writer.redis)).toBe(true);
    db.seq = 4;
    await writer.feed.publish('c:followed', [ev(4)]);
    expect(await until(() => events.length >= 3)).toBe(true);
    await sleep(300);
    expect(events.map((e) => (e.kind === RESYNC ? `R${e.seq}` : e.seq))).toEqual([1, 'R3', 4]);
    signal.aborted = true;
    signal.onAbort?.();
    await run;
    expect(ended).toBe(true);
  });
});
