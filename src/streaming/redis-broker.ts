// The broker shared by every instance on one Redis: a LIST per message is the replay log, and
// each append publishes the same event on the message's channel in the same Lua step, so a
// subscriber that saw event n live can always find every event before n in the log.
import type { Redis } from 'ioredis';
import { decodeEvent, encodeEvent, type AppendResult, type SealResult, type StreamBroker, type StreamEvent } from './events.ts';

// KEYS: log, seal. ARGV: seq, event, ttl ms, channel, seal token ('' when not sealing).
const APPEND = `
local sealed = redis.call('GET', KEYS[2])
if sealed and sealed ~= ARGV[5] then return -1 end
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then return -2 end
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[2])
return 1
`;

// KEYS: log, seal. ARGV: token, ttl ms. Returns the log to the winner, nothing to the others.
const SEAL = `
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return redis.call('LRANGE', KEYS[1], 0, -1)
`;

type BrokerRedis = Redis & {
  parleyAppend(log: string, seal: string, seq: number, event: string, ttlMs: number, channel: string, token: string): Promise<number>;
  parleySeal(log: string, seal: string, token: string, ttlMs: number): Promise<string[] | null>;
};

export interface RedisBrokerOptions {
  /** Commands and publishes. */
  redis: Redis;
  /** A second connection in subscriber mode. */
  subscriber: Redis;
  prefix: string;
  replayTtlMs: number;
  /** How long a seal holds if its holder dies before appending the terminal event. */
  sealTtlMs: number;
}

export class RedisBroker implements StreamBroker {
  private readonly redis: BrokerRedis;
  private readonly channels = new Map<string, Set<(event: StreamEvent) => void>>();
  private readonly stopHandlers: ((messageId: string) => void)[] = [];
  private readonly stopChannel: string;

  constructor(private readonly options: RedisBrokerOptions) {
    this.redis = options.redis as BrokerRedis;
    this.redis.defineCommand('parleyAppend', { numberOfKeys: 2, lua: APPEND });
    this.redis.defineCommand('parleySeal', { numberOfKeys: 2, lua: SEAL });
    this.stopChannel = `${options.prefix}stop`;
    // Also after a reconnect, in case the first SUBSCRIBE happened while Redis was away.
    options.subscriber.on('ready', () => {
      if (this.stopHandlers.length > 0) options.subscriber.subscribe(this.stopChannel).catch(() => {});
    });
    options.subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.stopChannel) {
        for (const handler of this.stopHandlers) handler(message);
        return;
      }
      const listeners = this.channels.get(channel);
      if (!listeners) return;
      const event = decodeEvent(message);
      for (const listener of listeners) listener(event);
    });
  }

  private keys(messageId: string) {
    const base = `${this.options.prefix}stream:{${messageId}}`;
    return { log: `${base}:log`, seal: `${base}:seal`, channel: `${base}:events` };
  }

  async append(messageId: string, event: StreamEvent, sealToken = ''): Promise<AppendResult> {
    const { log, seal, channel } = this.keys(messageId);
    const result = await this.redis.parleyAppend(log, seal, event.seq, encodeEvent(event), this.options.replayTtlMs, channel, sealToken);
    return result === 1 ? 'ok' : result === -1 ? 'sealed' : 'out-of-order';
  }

  async seal(messageId: string, token: string): Promise<SealResult> {
    const { log, seal } = this.keys(messageId);
    const events = await this.redis.parleySeal(log, seal, token, this.options.sealTtlMs);
    return events ? { won: true, events: events.map(decodeEvent) } : { won: false, events: [] };
  }

  async read(messageId: string, fromSeq: number): Promise<StreamEvent[]> {
    const raw = await this.redis.lrange(this.keys(messageId).log, Math.max(0, fromSeq), -1);
    return raw.map(decodeEvent);
  }

  async listen(messageId: string, onEvent: (event: StreamEvent) => void): Promise<() => void> {
    const { channel } = this.keys(messageId);
    let listeners = this.channels.get(channel);
    if (!listeners) {
      listeners = new Set();
      this.channels.set(channel, listeners);
    }
    listeners.add(onEvent);
    // Every call awaits the SUBSCRIBE reply, so no event published after this returns is missed.
    await this.options.subscriber.subscribe(channel);
    return () => {
      listeners.delete(onEvent);
      if (listeners.size === 0 && this.channels.get(channel) === listeners) {
        this.channels.delete(channel);
        this.options.subscriber.unsubscribe(channel).catch(() => {});
      }
    };
  }

  async requestStop(messageId: string): Promise<void> {
    await this.redis.publish(this.stopChannel, messageId);
  }

  onStopRequest(handler: (messageId: string) => void): void {
    if (this.stopHandlers.length === 0) this.options.subscriber.subscribe(this.stopChannel).catch(() => {});
    this.stopHandlers.push(handler);
  }

  async close(): Promise<void> {
    this.channels.clear();
  }
}
