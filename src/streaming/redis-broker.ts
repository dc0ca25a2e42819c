// The broker shared by every instance on one Redis: a LIST per message is the replay log, and
// each append publishes the same event on the message's channel in the same Lua step, so a
// subscriber that saw event n live can always find every event before n in the log.
import type { Redis } from 'ioredis';
import { ChannelListeners } from './channel-listeners.ts';
import { decodeEvent, encodeEvent, type AppendResult, type SealResult, type StreamBroker, type StreamEvent } from './events.ts';

// Appends of any number of messages in one step. KEYS: log and seal of each append, in pairs.
// ARGV: ttl ms, then per append: seq, event, channel, seal token ('' when not sealing).
// Returns per append 1 (ok), -1 (sealed by another party) or -2 (not the next seq).
const APPEND = `
local results = {}
for i = 1, #KEYS / 2 do
  local log, seal, a = KEYS[2 * i - 1], KEYS[2 * i], 4 * i - 2
  local sealed = redis.call('GET', seal)
  if sealed and sealed ~= ARGV[a + 3] then
    results[i] = -1
  elseif redis.call('LLEN', log) ~= tonumber(ARGV[a]) then
    results[i] = -2
  else
    redis.call('RPUSH', log, ARGV[a + 1])
    redis.call('PEXPIRE', log, ARGV[1])
    redis.call('PUBLISH', ARGV[a + 2], ARGV[a + 1])
    results[i] = 1
  end
end
return results
`;

// KEYS: log, seal. ARGV: token, ttl ms. Returns the log to the winner, nothing to the others.
const SEAL = `
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return redis.call('LRANGE', KEYS[1], 0, -1)
`;

// KEYS: seal. ARGV: token. Deletes the seal only while this token holds it.
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`;

/**
 * The broker's script commands. Appends are already batched per event-loop turn here, and they are
 * the latency-critical path: they skip the connection's automatic pipelining (a second deferral,
 * and a wait for the batch in flight).
 */
export const STREAM_COMMANDS = ['parleyAppend', 'parleySeal'];

type BrokerRedis = Redis & {
  parleyAppend(keyCount: number, ...keysAndArgs: (string | number)[]): Promise<number[]>;
  parleySeal(log: string, seal: string, token: string, ttlMs: number): Promise<string[] | null>;
  parleyRelease(seal: string, token: string): Promise<number>;
};

interface PendingAppend {
  messageId: string;
  event: StreamEvent;
  sealToken: string;
  resolve: (result: AppendResult) => void;
  reject: (error: unknown) => void;
}

/** Bounds one script call, so a burst cannot block Redis for long. */
const MAX_BATCH = 500;

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
  private readonly channels: ChannelListeners<StreamEvent>;
  private readonly stopHandlers: ((messageId: string) => void)[] = [];
  private readonly stopChannel: string;
  private pending: PendingAppend[] = [];

  constructor(private readonly options: RedisBrokerOptions) {
    this.redis = options.redis as BrokerRedis;
    this.channels = new ChannelListeners(options.subscriber, decodeEvent);
    this.redis.defineCommand('parleyAppend', { lua: APPEND });
    this.redis.defineCommand('parleySeal', { numberOfKeys: 2, lua: SEAL });
    this.redis.defineCommand('parleyRelease', { numberOfKeys: 1, lua: RELEASE });
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
      this.channels.deliver(channel, message);
    });
  }

  private keys(messageId: string) {
    const base = `${this.options.prefix}stream:{${messageId}}`;
    return { log: `${base}:log`, seal: `${base}:seal`, channel: `${base}:events` };
  }

  append(messageId: string, event: StreamEvent, sealToken = ''): Promise<AppendResult> {
    return new Promise((resolve, reject) => {
      // Appends made in the same turn of the event loop, from any number of replies, go to
      // Redis as one script call: one round trip and one write instead of one per event.
      if (this.pending.length === 0) setImmediate(() => this.flushAppends());
      this.pending.push({ messageId, event, sealToken, resolve, reject });
    });
  }

  private flushAppends(): void {
    const batch = this.pending.splice(0, MAX_BATCH);
    if (this.pending.length > 0) setImmediate(() => this.flushAppends());
    const keys: string[] = [];
    const args: (string | number)[] = [this.options.replayTtlMs];
    for (const { messageId, event, sealToken } of batch) {
      const { log, seal, channel } = this.keys(messageId);
      keys.push(log, seal);
      args.push(event.seq, encodeEvent(event), channel, sealToken);
    }
    this.redis.parleyAppend(keys.length, ...keys, ...args).then(
      (results) => batch.forEach((append, i) => append.resolve(results[i] === 1 ? 'ok' : results[i] === -1 ? 'sealed' : 'out-of-order')),
      (error) => batch.forEach((append) => append.reject(error)),
    );
  }

  async seal(messageId: string, token: string): Promise<SealResult> {
    const { log, seal } = this.keys(messageId);
    const events = await this.redis.parleySeal(log, seal, token, this.options.sealTtlMs);
    return events ? { won: true, events: events.map(decodeEvent) } : { won: false, events: [] };
  }

  async release(messageId: string, token: string): Promise<void> {
    await this.redis.parleyRelease(this.keys(messageId).seal, token);
  }

  async read(messageId: string, fromSeq: number): Promise<StreamEvent[]> {
    const raw = await this.redis.lrange(this.keys(messageId).log, Math.max(0, fromSeq), -1);
    return raw.map(decodeEvent);
  }

  listen(messageId: string, onEvent: (event: StreamEvent) => void): Promise<() => void> {
    return this.channels.listen(this.keys(messageId).channel, onEvent);
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
