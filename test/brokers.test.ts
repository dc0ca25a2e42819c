// The StreamBroker contract, the same on both brokers: the in-memory one (one instance) and the
// Redis one against a real Redis. Reading from any seq, the seal, live listening and stopping to
// listen, stop requests, batches of appends, and how long a log and a seal live.
import { afterAll, describe, expect, it } from 'vitest';
import type { StreamBroker, StreamEvent } from '../src/streaming/events.ts';
import { MemoryBroker } from '../src/streaming/memory-broker.ts';
import { RedisBroker } from '../src/streaming/redis-broker.ts';
import { redisNamespace } from './support/redis.ts';

const namespace = redisNamespace();
const brokers: StreamBroker[] = [];
afterAll(async () => {
  await Promise.all(brokers.map((b) => b.close()));
  await namespace.cleanup();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const event = (seq: number, extra: Partial<StreamEvent> = {}): StreamEvent => ({ seq, delta: `d${seq}`, done: false, status: 'STREAMING', ...extra });
let ids = 0;
const newId = () => `broker-msg-${++ids}`;

interface Options {
  replayTtlMs?: number;
  sealTtlMs?: number;
}
const memoryBroker = ({ replayTtlMs = 60_000 }: Options = {}) => new MemoryBroker(replayTtlMs);
const redisBroker = ({ replayTtlMs = 60_000, sealTtlMs = 30_000 }: Options = {}) =>
  new RedisBroker({ redis: namespace.redis(), subscriber: namespace.redis(), prefix: namespace.prefix, replayTtlMs, sealTtlMs });

/** Waits until `check` holds (at most 2 s), then once more for anything that should not come. */
async function settle(check: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !check(); i++) await sleep(20);
  await sleep(50);
}

describe.each([
  ['MemoryBroker', memoryBroker],
  ['RedisBroker', redisBroker],
] as const)('%s', (_, make) => {
  // Brokers of one kind that share a log: two instances on one Redis; the in-memory broker is one instance.
  const create = (options?: Options) => {
    const b = make(options);
    brokers.push(b);
    return b;
  };

  it('reads the log from any seq; a negative seq reads it all, past the end reads nothing', async () => {
    const b = create();
    const id = newId();
    for (let seq = 0; seq < 4; seq++) expect(await b.append(id, event(seq))).toBe('ok');
    expect(await b.read(id, 0)).toEqual([event(0), event(1), event(2), event(3)]);
    expect(await b.read(id, 2)).toEqual([event(2), event(3)]);
    expect(await b.read(id, 3)).toEqual([event(3)]);
    expect(await b.read(id, 4)).toEqual([]);
    expect(await b.read(id, -5)).toEqual([event(0), event(1), event(2), event(3)]);
    expect(await b.read(newId(), 0)).toEqual([]);
  });

  it('keeps every field of an event', async () => {
    const b = create();
    const id = newId();
    const terminal = { seq: 1, delta: 'é ✓ "quoted"\n', done: true, status: 'FAILED' as const, error: 'the model failed' };
    expect(await b.append(id, event(0))).toBe('ok');
    expect(await b.append(id, terminal)).toBe('ok');
    expect(await b.read(id, 1)).toEqual([terminal]);
  });

  it('the seal: the winner gets the log so far, later sealers get nothing, and only the sealer appends', async () => {
    const b = create();
    const id = newId();
    await b.append(id, event(0));
    await b.append(id, event(1));
    const won = await b.seal(id, 'token-a');
    expect(won).toEqual({ won: true, events: [event(0), event(1)] });
    // The winner's copy is not the log itself.
    won.events.pop();
    expect(await b.seal(id, 'token-b')).toEqual({ won: false, events: [] });
    expect(await b.seal(id, 'token-a')).toEqual({ won: false, events: [] });
    expect(await b.append(id, event(2))).toBe('sealed');
    expect(await b.append(id, event(2), 'token-b')).toBe('sealed');
    expect(await b.append(id, event(3), 'token-a')).toBe('out-of-order');
    expect(await b.append(id, event(2, { done: true, status: 'COMPLETE' }), 'token-a')).toBe('ok');
    expect((await b.read(id, 0)).map((e) => e.seq)).toEqual([0, 1, 2]);
    // An empty log can be sealed too.
    expect(await b.seal(newId(), 'token-c')).toEqual({ won: true, events: [] });
  });

  it('release lifts a seal only for the token that holds it; then another party may seal', async () => {
    const b = create();
    const id = newId();
    await b.append(id, event(0));
    expect((await b.seal(id, 'token-a')).won).toBe(true);
    // Another token's release changes nothing: the holder still appends, others are still refused.
    await b.release(id, 'token-b');
    expect(await b.seal(id, 'token-b')).toEqual({ won: false, events: [] });
    expect(await b.append(id, event(1), 'token-b')).toBe('sealed');
    await b.release(id, 'token-a');
    // Lifted: the next ender wins the seal with the log as it stands, and only it appends.
    expect(await b.seal(id, 'token-c')).toEqual({ won: true, events: [event(0)] });
    expect(await b.append(id, event(1), 'token-a')).toBe('sealed');
    expect(await b.append(id, event(1, { done: true, status: 'FAILED' }), 'token-c')).toBe('ok');
    // Releasing what nobody sealed, or a message that has no log, is a no-op.
    await expect(b.release(newId(), 'token-a')).resolves.toBeUndefined();
    await b.release(id, 'token-a');
    expect(await b.seal(id, 'token-d')).toEqual({ won: false, events: [] });
  });

  it('a log is unsealed until sealed: a token on an unsealed log appends as usual', async () => {
    const b = create();
    const id = newId();
    expect(await b.append(id, event(0), 'some-token')).toBe('ok');
    expect(await b.read(id, 0)).toEqual([event(0)]);
  });

  it('listeners hear every later event of their message, in order, and only theirs; each stops on its own', async () => {
    const b = create();
    const id = newId();
    const other = newId();
    await b.append(id, event(0));
    const first: StreamEvent[] = [];
    const second: StreamEvent[] = [];
    const stopFirst = await b.listen(id, (e) => first.push(e));
    const stopSecond = await b.listen(id, (e) => second.push(e));
    await Promise.all([b.append(id, event(1)), b.append(other, event(0))]);
    await b.append(id, event(2));
    await settle(() => first.length >= 2 && second.length >= 2);
    expect(first).toEqual([event(1), event(2)]);
    expect(second).toEqual([event(1), event(2)]);

    stopFirst();
    await b.append(id, event(3));
    await settle(() => second.length >= 3);
    expect(first).toEqual([event(1), event(2)]);
    expect(second).toEqual([event(1), event(2), event(3)]);

    stopSecond();
    await b.append(id, event(4));
    await sleep(100);
    expect(second).toHaveLength(3);

    // Listening again after everybody stopped, and a stale stop called twice, leave the new listener in place.
    const third: StreamEvent[] = [];
    const stopThird = await b.listen(id, (e) => third.push(e));
    stopSecond();
    stopFirst();
    await b.append(id, event(5));
    await settle(() => third.length >= 1);
    expect(third).toEqual([event(5)]);
    stopThird();
  });

  it('a stop request reaches every handler, with the message id', async () => {
    const b = create();
    const heard: string[] = [];
    b.onStopRequest((id) => heard.push(`first:${id}`));
    b.onStopRequest((id) => heard.push(`second:${id}`));
    // The Redis broker's SUBSCRIBE to the stop channel goes out in the background.
    await sleep(100);
    const id = newId();
    await b.requestStop(id);
    await settle(() => heard.length >= 2);
    expect(heard).toEqual([`first:${id}`, `second:${id}`]);
  });

  it('appends of many messages in one turn, past one batch, all land in order', async () => {
    const b = create();
    const messages = [newId(), newId(), newId()];
    const appends: Promise<string>[] = [];
    for (let seq = 0; seq < 400; seq++) for (const id of messages) appends.push(b.append(id, event(seq)));
    // Out of order in the same turn: refused, and it changes nothing.
    appends.push(b.append(messages[0]!, event(1000)));
    const results = await Promise.all(appends);
    expect(results.slice(0, -1).every((r) => r === 'ok')).toBe(true);
    expect(results.at(-1)).toBe('out-of-order');
    for (const id of messages) expect((await b.read(id, 0)).map((e) => e.seq)).toEqual(Array.from({ length: 400 }, (_, i) => i));
  });

  it('a log lives for its TTL after its last append, then is gone', async () => {
    const b = create({ replayTtlMs: 1000 });
    const id = newId();
    await b.append(id, event(0));
    await sleep(600);
    // An append renews it.
    await b.append(id, event(1));
    await sleep(600);
    expect((await b.read(id, 0)).map((e) => e.seq)).toEqual([0, 1]);
    await sleep(2200);
    expect(await b.read(id, 0)).toEqual([]);
  });
});

describe('RedisBroker only', () => {
  it('instances on one Redis share logs, seals, live events and stop requests', async () => {
    const a = redisBroker();
    const b = redisBroker();
    brokers.push(a, b);
    const id = newId();
    const heard: StreamEvent[] = [];
    const stop = await b.listen(id, (e) => heard.push(e));
    const stops: string[] = [];
    b.onStopRequest((messageId) => stops.push(messageId));
    await sleep(100);
    expect(await a.append(id, event(0))).toBe('ok');
    expect(await b.read(id, 0)).toEqual([event(0)]);
    expect((await a.seal(id, 'token-a')).won).toBe(true);
    expect((await b.seal(id, 'token-b')).won).toBe(false);
    await a.requestStop(id);
    await settle(() => heard.length >= 1 && stops.length >= 1);
    expect(heard).toEqual([event(0)]);
    expect(stops).toEqual([id]);
    stop();
  });

  it('a seal held by a party that died lapses after the seal TTL', async () => {
    const b = redisBroker({ sealTtlMs: 300 });
    brokers.push(b);
    const id = newId();
    await b.append(id, event(0));
    expect((await b.seal(id, 'dead')).won).toBe(true);
    expect((await b.seal(id, 'alive')).won).toBe(false);
    await sleep(600);
    expect(await b.seal(id, 'alive')).toEqual({ won: true, events: [event(0)] });
  });

  it('appends fail, and say why, when Redis cannot be reached', async () => {
    const redis = namespace.redis();
    const b = new RedisBroker({ redis, subscriber: namespace.redis(), prefix: namespace.prefix, replayTtlMs: 60_000, sealTtlMs: 30_000 });
    await redis.quit();
    await expect(Promise.all([b.append(newId(), event(0)), b.append(newId(), event(0))])).rejects.toThrow(/closed/i);
  });

  it("unsubscribes from a message's channel once its last listener stops, and not before", async () => {
    const b = redisBroker();
    brokers.push(b);
    const admin = namespace.redis();
    const id = newId();
    const channel = `${namespace.prefix}stream:{${id}}:events`;
    const subscribers = async () => Number(((await admin.pubsub('NUMSUB', channel)) as [string, number])[1]);
    const stopA = await b.listen(id, () => {});
    const stopB = await b.listen(id, () => {});
    expect(await subscribers()).toBe(1);
    stopA();
    await sleep(50);
    expect(await subscribers()).toBe(1);
    stopB();
    await settle(() => false);
    expect(await subscribers()).toBe(0);
  });

  it('stop requests stay within their prefix', async () => {
    const mine = redisBroker();
    const theirs = new RedisBroker({ redis: namespace.redis(), subscriber: namespace.redis(), prefix: `${namespace.prefix}other:`, replayTtlMs: 60_000, sealTtlMs: 30_000 });
    brokers.push(mine, theirs);
    const heard: string[] = [];
    mine.onStopRequest((id) => heard.push(id));
    await sleep(100);
    await theirs.requestStop('not-yours');
    const id = newId();
    await mine.requestStop(id);
    await settle(() => heard.length >= 1);
    expect(heard).toEqual([id]);
  });

  it('after close, no listener hears anything', async () => {
    const b = redisBroker();
    const writer = redisBroker();
    brokers.push(writer);
    const id = newId();
    const heard: StreamEvent[] = [];
    await b.listen(id, (e) => heard.push(e));
    await b.close();
    await writer.append(id, event(0));
    await sleep(150);
    expect(heard).toEqual([]);
  });
});
