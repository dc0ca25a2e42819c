// The change feed shared by every instance on one Redis: a sorted set per feed (score = seq) is
// the replay log, and each publish sends the same events on the feed's channel in the same Lua
// step, so a subscriber that saw event n live finds every logged event before it.
import type { Redis } from 'ioredis';
import { decodeFeedEvent, encodeFeedEvent, type ChangeFeed, type FeedEvent, type FeedLimits } from './change-feed.ts';

// KEYS: the log. ARGV: ttl ms, events kept, channel, then per event: seq, event.
const PUBLISH = `
for i = 4, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('PUBLISH', ARGV[3], ARGV[i + 1])
end
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
`;

type FeedRedis = Redis & { parleyFeedPublish(log: string, ...args: (string | number)[]): Promise<number> };

export interface RedisFeedOptions {
  redis: Redis;
  /** The subscriber-mode connection (shared with the stream broker). */
  subscriber: Redis;
  prefix: string;
  limits: FeedLimits;
}

export class RedisFeed implements ChangeFeed {
  private readonly redis: FeedRedis;
  private readonly channels = new Map<string, Set<(event: FeedEvent) => void>>();
  private readonly reconnectHandlers = new Set<() => void>();
  private lostConnection = false;

  constructor(private readonly options: RedisFeedOptions) {
    this.redis = options.redis as FeedRedis;
    this.redis.defineCommand('parleyFeedPublish', { numberOfKeys: 1, lua: PUBLISH });
    const { subscriber } = options;
    subscriber.on('close', () => {
      this.lostConnection = true;
    });
    // What was published while the connection was away is lost: followers are told, once the
    // channels are subscribed again (ioredis renews its own, and a SUBSCRIBE that failed is sent anew).
    subscriber.on('ready', () => {
      if (!this.lostConnection) return;
      this.lostConnection = false;
      const channels = [...this.channels.keys()];
      const resubscribed = channels.length > 0 ? subscriber.subscribe(...channels) : Promise.resolve();
      resubscribed.then(
        () => {
          for (const handler of this.reconnectHandlers) handler();
        },
        () => {
          this.lostConnection = true;
        },
      );
    });
    subscriber.on('message', (channel: string, message: string) => {
      const listeners = this.channels.get(channel);
      if (!listeners) return;
      const event = decodeFeedEvent(message);
      if (!event) return;
      for (const listener of listeners) listener(event);
    });
  }

  private keys(name: string) {
    const base = `${this.options.prefix}feed:${name}`;
    return { log: `${base}:log`, channel: `${base}:events` };
  }

  async publish(name: string, events: FeedEvent[]): Promise<void> {
    const { log, channel } = this.keys(name);
    const args: (string | number)[] = [this.options.limits.ttlMs, this.options.limits.maxEvents, channel];
    for (const event of events) args.push(event.seq, encodeFeedEvent(event));
    await this.redis.parleyFeedPublish(log, ...args);
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

  async listen(name: string, onEvent: (event: FeedEvent) => void): Promise<() => void> {
    const { channel } = this.keys(name);
    let listeners = this.channels.get(channel);
    if (!listeners) this.channels.set(channel, (listeners = new Set()));
    listeners.add(onEvent);
    const stop = () => {
      listeners.delete(onEvent);
      if (listeners.size === 0 && this.channels.get(channel) === listeners) {
        this.channels.delete(channel);
        this.options.subscriber.unsubscribe(channel).catch(() => {});
      }
    };
    try {
      // Awaited by every caller: nothing published after this returns is missed.
      await this.options.subscriber.subscribe(channel);
    } catch {
      // Redis is away: the listener stays, its channel is subscribed when Redis is back, and the
      // follower is then told to look for what it missed.
      this.lostConnection = true;
    }
    return stop;
  }

  onReconnect(handler: () => void): () => void {
    this.reconnectHandlers.add(handler);
    return () => this.reconnectHandlers.delete(handler);
  }

  async close(): Promise<void> {
    this.channels.clear();
    this.reconnectHandlers.clear();
  }
}
