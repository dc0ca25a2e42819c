// The Redis broker's own guarantees, against a real Redis: the replay log accepts only the next
// seq, a sealed log only its sealer's terminal event, and a refused SUBSCRIBE leaves nothing behind.
import { afterAll, describe, expect, it } from 'vitest';
import type { StreamEvent } from '../src/streaming/events.ts';
import { Redis } from 'ioredis';
import { RedisBroker } from '../src/streaming/redis-broker.ts';
import { TestRedisServer } from './support/redis-server.ts';
import { redisNamespace } from './support/redis.ts';

const namespace = redisNamespace();
afterAll(() => namespace.cleanup());

const event = (seq: number, extra: Partial<StreamEvent> = {}): StreamEvent => ({ seq, delta: `d${seq}`, done: false, status: 'STREAMING', ...extra });

function broker(subscriber = namespace.redis()) {
  return new RedisBroker({ redis: namespace.redis(), subscriber, prefix: namespace.prefix, replayTtlMs: 60_000, sealTtlMs: 30_000 });
}

describe('the replay log', () => {
  it('accepts only the next seq: a gap, a repeat and a step back are refused and not logged', async () => {
    const b = broker();
    expect(await b.append('m-gap', event(0))).toBe('ok');
    expect(await b.append('m-gap', event(2))).toBe('out-of-order');
    expect(await b.append('m-gap', event(0))).toBe('out-of-order');
    expect(await b.append('m-gap', event(1))).toBe('ok');
    expect(await b.append('m-gap', event(1))).toBe('out-of-order');
    expect(await b.append('m-gap', event(5))).toBe('out-of-order');
    expect((await b.read('m-gap', 0)).map((e) => e.seq)).toEqual([0, 1]);
  });

  it('refuses a first event that is not seq 0', async () => {
    const b = broker();
    expect(await b.append('m-first', event(1))).toBe('out-of-order');
    expect(await b.read('m-first', 0)).toEqual([]);
  });

  it('once sealed, takes only the sealer’s events, and only one party wins the seal', async () => {
    const b = broker();
    await b.append('m-seal', event(0));
    const [first, second] = await Promise.all([b.seal('m-seal', 'token-a'), b.seal('m-seal', 'token-b')]);
    expect([first.won, second.won].sort()).toEqual([false, true]);
    const winner = first.won ? 'token-a' : 'token-b';
    const loser = first.won ? 'token-b' : 'token-a';
    expect((first.won ? first : second).events.map((e) => e.seq)).toEqual([0]);
    expect(await b.append('m-seal', event(1))).toBe('sealed');
    expect(await b.append('m-seal', event(1, { done: true, status: 'COMPLETE' }), loser)).toBe('sealed');
    expect(await b.append('m-seal', event(1, { done: true, status: 'COMPLETE' }), winner)).toBe('ok');
    expect((await b.read('m-seal', 0)).map((e) => [e.seq, e.done])).toEqual([
      [0, false],
      [1, true],
    ]);
  });
});

describe('listening', () => {
  it('a refused SUBSCRIBE leaves no listener behind', async () => {
    const subscriber = namespace.redis();
    const subscribe = subscriber.subscribe.bind(subscriber);
    let refuse = true;
    (subscriber as unknown as { subscribe: (...channels: string[]) => Promise<unknown> }).subscribe = (...channels: string[]) => {
      if (refuse) {
        refuse = false;
        return Promise.reject(new Error('Connection is closed.'));
      }
      return subscribe(...channels);
    };
    const b = broker(subscriber);
    const refused: StreamEvent[] = [];
    await expect(b.listen('m-listen', (e) => refused.push(e))).rejects.toThrow(/closed/);
    const heard: StreamEvent[] = [];
    const stop = await b.listen('m-listen', (e) => heard.push(e));
    await b.append('m-listen', event(0));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(heard.map((e) => e.seq)).toEqual([0]);
    expect(refused).toEqual([]);
    stop();
  });

  it('stop requests reach an instance whose first SUBSCRIBE to the stop channel failed, once Redis is back', async () => {
    const server = await TestRedisServer.start();
    await server.kill();
    // Fail-fast connections, as Parley's (src/redis.ts): no offline queue, quick reconnects.
    const connect = () => {
      const redis = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
      redis.on('error', () => {});
      return redis;
    };
    const [commands, subscriber] = [connect(), connect()];
    try {
      const b = new RedisBroker({ redis: commands, subscriber, prefix: namespace.prefix, replayTtlMs: 60_000, sealTtlMs: 30_000 });
      const stops: string[] = [];
      // Redis is away: this SUBSCRIBE fails, and ioredis does not know to redo it.
      b.onStopRequest((messageId) => stops.push(messageId));
      await new Promise((resolve) => setTimeout(resolve, 100));
      await server.restart();
      await new Promise<void>((resolve) => (subscriber.status === 'ready' ? resolve() : subscriber.once('ready', () => resolve())));
      const publisher = new Redis(server.url);
      try {
        // Until the broker's SUBSCRIBE lands, a publish reaches nobody: retry for a while.
        for (let i = 0; i < 40 && stops.length === 0; i++) {
          await publisher.publish(`${namespace.prefix}stop`, 'm-stop-after-outage');
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      } finally {
        publisher.disconnect();
      }
      expect(stops[0]).toBe('m-stop-after-outage');
    } finally {
      commands.disconnect();
      subscriber.disconnect();
      await server.stop();
    }
  });
});
