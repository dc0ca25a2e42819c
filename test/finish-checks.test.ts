// The follower's end checks: subscribers that went silent on the same tick cost one query, not one each.
import { describe, expect, it } from 'vitest';
import { FinishChecks } from '../src/chat/finish-checks.ts';
import { ReplyFollower } from '../src/chat/follow.ts';
import { MemoryBroker } from '../src/streaming/memory-broker.ts';
import type { ReplyState, ReplyStates, Store } from '../src/store/store.ts';

function storeOf(states: Map<string, ReplyState>) {
  const calls: string[][] = [];
  let failNext = false;
  const store = {
    async replyStatesById(ids: string[]): Promise<ReplyStates> {
      calls.push(ids);
      if (failNext) {
        failNext = false;
        throw new Error('database away');
      }
      const streaming = new Set(ids.filter((id) => states.get(id)?.status === 'STREAMING'));
      const ended = new Map([...states].filter(([id, state]) => ids.includes(id) && state.status !== 'STREAMING'));
      return { streaming, ended };
    },
  } as unknown as Store;
  return { store, calls, failOnce: () => (failNext = true) };
}

describe('FinishChecks', () => {
  it('answers a thousand checks of one turn with three queries of at most 500 ids, each id asked once', async () => {
    const states = new Map<string, ReplyState>();
    for (let i = 0; i < 1200; i++) states.set(`m${i}`, i % 3 === 0 ? { status: 'COMPLETE', error: null, content: `text ${i}` } : { status: 'STREAMING', error: null, content: '' });
    const { store, calls } = storeOf(states);
    const checks = new FinishChecks(store, 1000);
    // 1,200 messages, the first 300 asked twice (two subscribers each), and 5 that are gone.
    const ids = [...states.keys(), ...[...states.keys()].slice(0, 300), 'gone-1', 'gone-2', 'gone-3', 'gone-4', 'gone-5'];
    const answers = await Promise.all(ids.map((id) => checks.check(id)));
    expect(calls.map((c) => c.length)).toEqual([500, 500, 205]);
    expect(new Set(calls.flat()).size).toBe(1205);
    ids.forEach((id, k) => {
      const state = states.get(id);
      const expected = !state ? { status: 'INTERRUPTED', error: 'the message was deleted', content: '' } : state.status === 'STREAMING' ? null : state;
      expect(answers[k], id).toEqual(expected);
    });
  });

  it('reuses a recent answer, asks again once it is old, and never reuses a failure', async () => {
    const states = new Map<string, ReplyState>([['m', { status: 'STREAMING', error: null, content: '' }]]);
    const { store, calls, failOnce } = storeOf(states);
    let clock = 0;
    const checks = new FinishChecks(store, 1000, () => clock);
    expect(await checks.check('m')).toBeNull();
    clock = 999;
    expect(await checks.check('m')).toBeNull();
    expect(calls).toHaveLength(1);
    clock = 1000;
    states.set('m', { status: 'STOPPED', error: null, content: 'so far' });
    expect(await checks.check('m')).toEqual({ status: 'STOPPED', error: null, content: 'so far' });
    expect(calls).toHaveLength(2);

    clock = 2000;
    failOnce();
    await expect(checks.check('m')).rejects.toThrow('database away');
    expect(await checks.check('m')).toEqual({ status: 'STOPPED', error: null, content: 'so far' });
    expect(calls).toHaveLength(4);
  });

  it('fails only its own checks when the store throws at once', async () => {
    const store = {
      replyStatesById: () => {
        throw new Error('not even a promise');
      },
    } as unknown as Store;
    const checks = new FinishChecks(store, 1000);
    await expect(Promise.all([checks.check('a'), checks.check('b')])).rejects.toThrow('not even a promise');
  });

  it('costs one query per silence tick for 300 subscribers waiting on 300 silent replies', async () => {
    const states = new Map<string, ReplyState>();
    for (let i = 0; i < 300; i++) states.set(`m${i}`, { status: 'STREAMING', error: null, content: '' });
    const { store, calls } = storeOf(states);
    const follower = new ReplyFollower(
      Object.assign(store, { replyState: async (_user: string, id: string) => states.get(id) ?? null }) as Store,
      new MemoryBroker(60_000),
      300, // lease 300 ms: the silence clock ticks every 100 ms
    );
    const shutdown = new AbortController();
    const streams = await Promise.all([...states.keys()].map((id) => follower.follow({ userId: 'u' }, id, -1, shutdown.signal)));
    const ended = streams.map(async (stream) => {
      const events = [];
      for await (const event of stream) events.push(event);
      return events;
    });
    await new Promise((r) => setTimeout(r, 450));
    // Each check asked for every silent reply at once.
    expect(calls.length).toBeGreaterThan(0);
    expect(calls.length).toBeLessThanOrEqual(3);
    for (const ids of calls) expect(new Set(ids).size).toBe(300);
    // They all end at the next check once the database says so.
    for (const id of states.keys()) states.set(id, { status: 'FAILED', error: 'gone wrong', content: '' });
    const results = await Promise.all(ended);
    expect(results.every((events) => events.length === 1 && events[0]!.status === 'FAILED' && events[0]!.done)).toBe(true);
    expect(calls.length).toBeLessThanOrEqual(6);
    shutdown.abort();
  });
});
