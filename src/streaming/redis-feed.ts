// The change feed shared by every instance on one Redis: a sorted set per feed (score = seq) is
// the replay log, and each publish sends the same events on the feed's channel in the same Lua
// step, so a subscriber that saw event n live finds every logged event before it.
import type { Redis } from 'ioredis';
import { ChannelListeners } from './channel-listeners.ts';
import { decodeFeedEvent, encodeFeedEvent, type ChangeFeed, type FeedEvent, type FeedLimits } from './change-feed.ts';

// Publishes to any number of feeds in one step. KEYS: each feed's log. ARGV: ttl ms, events
// kept, then per feed: its channel, its number of events, and per event: seq, event.
const PUBLISH = `
local a = 3
for k = 1, #KEYS do
  local log, channel, count = KEYS[k], ARGV[a], tonumber(ARGV[a + 1])
  a = a + 2
  for i = 1, count do
    redis.call('ZADD', log, ARGV[a], ARGV[a + 1])
    redis.call('PUBLISH', channel, ARGV[a + 1])
    a = a + 2
  end
  local extra = redis.call('ZCARD', log) - tonumber(ARGV[2])
  if extra > 0 then redis.call('ZREMRANGEBYRANK', log, 0, extra - 1) end
  redis.call('PEXPIRE', log, ARGV[1])
end
return 1
`;

type FeedRedis = Redis & { parleyFeedPublish(keyCount: number, ...keysAndArgs: (string | number)[]): Promise<number> };

interface PendingPublish {
  name: string;
  events: FeedEvent[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** Bounds one script call, so a burst cannot block Redis for long. */
const MAX_BATCH = 200;

export interface RedisFeedOptions {
  redis: Redis;
  /** The subscriber-mode connection (shared with the stream broker). */
  subscriber: Redis;
  prefix: string;
  limits: FeedLimits;
}

export class RedisFeed implements ChangeFeed {
  private readonly redis: FeedRedis;
  private readonly channels: ChannelListeners<FeedEvent>;
  private readonly reconnectHandlers = new Set<() => void>();
  private lostConnection = false;
  private pending: PendingPublish[] = [];
  private closed = false;

  constructor(private readonly options: RedisFeedOptions) {
    this.redis = options.redis as FeedRedis;
    this.channels = new ChannelListeners(options.subscriber, decodeFeedEvent);
    this.redis.defineCommand('parleyFeedPublish', { lua: PUBLISH });
    const { subscriber } = options;
    subscriber.on('close', () => {
      this.lostConnection = true;
    });
    // What was published while the connection was away is lost: followers are told, once the
    // channels are subscribed again (ioredis renews its own, and a SUBSCRIBE that failed is sent anew).
    subscriber.on('ready', () => {
      if (!this.lostConnection) return;
      this.lostConnection = false;
      this.resubscribe();
    });
    subscriber.on('message', (channel: string, message: string) => this.channels.deliver(channel, message));
  }

  /** Subscribes every followed channel again, then tells the followers; tried again until it works. */
  private resubscribe(): void {
    const channels = this.channels.names();
    const subscribed = channels.length > 0 ? this.options.subscriber.subscribe(...channels) : Promise.resolve();
    subscribed.then(
      () => {
        for (const handler of this.reconnectHandlers) handler();
      },
      () => {
        if (this.closed) return;
        // A timeout on a connection that stays up: no other `ready` will come.
        setTimeout(() => this.resubscribe(), 500).unref();
      },
    );
  }

  private keys(name: string) {
    const base = `${this.options.prefix}feed:${name}`;
    return { log: `${base}:log`, channel: `${base}:events` };
  }

  publish(name: string, events: FeedEvent[]): Promise<void> {
    return new Promise((resolve, reject) => {
      // Publishes of the same turn of the event loop (a write's conversation and viewer events,
      // a burst of sends) go to Redis as one script call.
      if (this.pending.length === 0) setImmediate(() => this.flushPublishes());
      this.pending.push({ name, events, resolve, reject });
    });
  }

  private flushPublishes(): void {
    const batch = this.pending.splice(0, MAX_BATCH);
    if (this.pending.length > 0) setImmediate(() => this.flushPublishes());
    const logs: string[] = [];
    const args: (string | number)[] = [this.options.limits.ttlMs, this.options.limits.maxEvents];
    for (const { name, events } of batch) {
      const { log, channel } = this.keys(name);
      logs.push(log);
      args.push(channel, events.length);
      for (const event of events) args.push(event.seq, encodeFeedEvent(event));
    }
    this.redis.parleyFeedPublish(logs.length, ...logs, ...args).then(
      () => batch.forEach((publish) => publish.resolve()),
      (error) => batch.forEach((publish) => publish.reject(error)),
    );
  }

  async read(name: string, afterSeq: number): Promise<FeedEvent[]> {
    const raw = await this.redis.zrangebyscore(this.keys(name).log, `(${afterSeq}`, '+inf', 'WITHSCORES');
    const events: FeedEvent[] = [];
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const event = decodeFeedEvent(raw[i]!);
      // An entry whose seq is not its score was not written by a publish: it is not trusted.
      if (!event || event.seq !== Number(raw[i + 1]) || event.seq <= afterSeq) continue;
      if (events.length === 0 || event.seq > events.at(-1)!.seq) events.push(event);
    }
    return events;
  }

  listen(name: string, onEvent: (event: FeedEvent) => void): Promise<() => void> {
    // Redis is away: the listener stays, its channel is subscribed when Redis is back, and the
    // follower is then told to look for what it missed.
    return this.channels.listen(this.keys(name).channel, onEvent, () => {
      this.lostConnection = true;
    });
  }

  onReconnect(handler: () => void): () => void {
    this.reconnectHandlers.add(handler);
    return () => this.reconnectHandlers.delete(handler);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.channels.clear();
    this.reconnectHandlers.clear();
  }
}
