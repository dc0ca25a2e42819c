// followMessage on its own, against a scriptable broker: the replay log from afterSeq + 1, then
// live events, each exactly once and in seq order, a gap filled from the log, the saved text when
// the log is gone, polling when live events cannot be heard, and the stop. The end-to-end suites
// (chat, transports, multi-instance) follow replies through real brokers.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { StopSignal } from '../src/streaming/abortable.ts';
import type { StreamBroker, StreamEvent } from '../src/streaming/events.ts';
import { followMessage, SilenceClock, type FinishedMessage, type FollowedEvent, type FollowOptions } from '../src/streaming/follow.ts';

const event = (seq: number, delta = `d${seq}`): StreamEvent => ({ seq, delta, done: false, status: 'STREAMING' });
const terminal = (seq: number, status: StreamEvent['status'] = 'COMPLETE'): StreamEvent => ({ seq, delta: '', done: true, status });

/** The parts of a broker followMessage uses, with the failures a real one has. */
class ScriptedBroker {
  log: StreamEvent[] = [];
  readonly listeners = new Set<(event: StreamEvent) => void>();
  readonly reads: number[] = [];
  readFails = false;
  listenFails = false;
  released = 0;
  /** Called after each read has taken its copy of the log. */
  afterRead: (() => void) | undefined;

  async read(_messageId: string, fromSeq: number): Promise<StreamEvent[]> {
    this.reads.push(fromSeq);
    if (this.readFails) throw new Error('Redis is away');
    const events = this.log.filter((e) => e.seq >= fromSeq);
    this.afterRead?.();
    return events;
  }

  async listen(_messageId: string, onEvent: (event: StreamEvent) => void): Promise<() => void> {
    if (this.listenFails) throw new Error('Redis is away');
    this.listeners.add(onEvent);
    return () => {
      this.listeners.delete(onEvent);
      this.released++;
    };
  }

  /** Publishes an event: into the log (unless `logged` is false), then to every listener. */
  emit(e: StreamEvent, { logged = true } = {}): void {
    if (logged) this.log.push(e);
    for (const listener of this.listeners) listener(e);
  }

  get asBroker(): StreamBroker {
    return this as unknown as StreamBroker;
  }
}

function stopSignal(): StopSignal & { abort(): void } {
  const signal = {
    aborted: false,
    onAbort: undefined as (() => void) | undefined,
    abort() {
      signal.aborted = true;
      signal.onAbort?.();
    },
  };
  return signal;
}

const clocks: SilenceClock[] = [];
function options(overrides: Partial<FollowOptions> = {}, silenceMs = 10): FollowOptions {
  const silence = new SilenceClock(silenceMs);
  clocks.push(silence);
  return { afterSeq: -1, loadFinished: async () => null, silence, signal: stopSignal(), ...overrides };
}

/** Runs the follower to its end (or `timeoutMs`), returning every event it yielded. */
async function followAll(broker: ScriptedBroker, opts: FollowOptions, { timeoutMs = 3000, onEvent }: { timeoutMs?: number; onEvent?: (e: FollowedEvent, i: number) => void } = {}) {
  const events: FollowedEvent[] = [];
  const run = (async () => {
    for await (const e of followMessage(broker.asBroker, 'm1', opts)) {
      events.push(e);
      onEvent?.(e, events.length - 1);
    }
  })();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
  const outcome = await Promise.race([run.then(() => 'ended' as const), timedOut]);
  clearTimeout(timer);
  return { events, outcome };
}

const seqs = (events: FollowedEvent[]) => events.map((e) => e.seq);
const text = (events: FollowedEvent[]) => events.map((e) => e.delta).join('');
const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

afterEach(() => {
  vi.useRealTimers();
});

describe('followMessage', () => {
  it('replays the log after afterSeq, then live events, each once and in order, to the terminal event', async () => {
    const broker = new ScriptedBroker();
    broker.log = [event(0), event(1), event(2)];
    const { events, outcome } = await followAll(broker, options({ afterSeq: 0 }), {
      onEvent: (e) => {
        // Live events come as the replay goes out, with a repeat of one already sent.
        if (e.seq === 2) queueMicrotask(() => [event(2), event(3), event(4), terminal(5)].forEach((x) => broker.emit(x, { logged: x.seq !== 2 })));
      },
    });
    expect(outcome).toBe('ended');
    expect(seqs(events)).toEqual([1, 2, 3, 4, 5]);
    expect(events.every((e) => e.messageId === 'm1')).toBe(true);
    expect(events.at(-1)).toMatchObject({ done: true, status: 'COMPLETE', delta: '' });
    expect(broker.reads[0]).toBe(1);
    expect(broker.listeners.size).toBe(0);
    expect(broker.released).toBe(1);
  });

  it('ends at a terminal event found in the log, without waiting for anything live', async () => {
    const broker = new ScriptedBroker();
    broker.log = [event(0), terminal(1, 'FAILED')];
    const { events, outcome } = await followAll(broker, options(), { timeoutMs: 500 });
    expect(outcome).toBe('ended');
    expect(events.map((e) => [e.seq, e.done, e.status])).toEqual([
      [0, false, 'STREAMING'],
      [1, true, 'FAILED'],
    ]);
    expect(broker.released).toBe(1);
  });

  it('takes the missing event live when it is not in the log yet, and keeps the order', async () => {
    const broker = new ScriptedBroker();
    const run = followAll(broker, options());
    await tick(20);
    // seq 1 arrives before seq 0, and neither is in the log when seq 1 arrives.
    broker.emit(event(1), { logged: false });
    await tick(30);
    broker.emit(event(0), { logged: false });
    broker.emit(terminal(2), { logged: false });
    const { events, outcome } = await run;
    expect(outcome).toBe('ended');
    expect(seqs(events)).toEqual([0, 1, 2]);
    // It looked in the log for seq 0 while it waited.
    expect(broker.reads.filter((from) => from === 0).length).toBeGreaterThan(1);
  });

  it('fills a gap from the log: the live copy of an event was lost, a later one came', async () => {
    const broker = new ScriptedBroker();
    const run = followAll(broker, options());
    await tick(20);
    broker.log.push(event(0));
    broker.emit(event(1));
    broker.emit(terminal(2));
    const { events, outcome } = await run;
    expect(outcome).toBe('ended');
    expect(seqs(events)).toEqual([0, 1, 2]);
    expect(text(events)).toBe('d0d1');
  });

  it('drops live events it already sent from the log', async () => {
    const broker = new ScriptedBroker();
    broker.log = [event(0), event(1)];
    const { events } = await followAll(broker, options(), {
      onEvent: (e) => {
        if (e.seq === 1) queueMicrotask(() => [event(0), event(1), terminal(2)].forEach((x) => broker.emit(x, { logged: false })));
      },
    });
    expect(seqs(events)).toEqual([0, 1, 2]);
  });

  it('does not read the log forever for a gap it never fills: it asks the database whether the message ended', async () => {
    const broker = new ScriptedBroker();
    let asked = 0;
    const loadFinished = async () => (++asked, { status: 'FAILED' as const, error: 'lost', content: '' });
    const run = followAll(broker, options({ loadFinished }), { timeoutMs: 5000 });
    await tick(20);
    // seq 1 arrives; seq 0 never does, live or in the log.
    broker.emit(event(1), { logged: false });
    const { events, outcome } = await run;
    expect(outcome).toBe('ended');
    expect(asked).toBe(1);
    // Rounds of about 100 reads of the log, 5 ms apart, between silent ticks.
    expect(broker.reads.length).toBeGreaterThanOrEqual(100);
    expect(events.map((e) => [e.seq, e.done, e.status])).toEqual([[0, true, 'FAILED']]);
  });

  describe('a message that already ended', () => {
    const finished = (content: string, status: FinishedMessage['status'] = 'COMPLETE', error: string | null = null): FinishedMessage => ({ status, error, content });

    it('replays the log when it holds the rest', async () => {
      const broker = new ScriptedBroker();
      broker.log = [event(0, 'Hel'), event(1, 'lo'), terminal(2)];
      const { events } = await followAll(broker, options({ finished: finished('Hello') }));
      expect(seqs(events)).toEqual([0, 1, 2]);
      expect(text(events)).toBe('Hello');
    });

    it('reads the log again at the end: events logged after its first read come from the log, not the saved text', async () => {
      const broker = new ScriptedBroker();
      broker.log = [event(0, 'Hel')];
      // The rest is logged just after the first read.
      broker.afterRead = () => {
        broker.afterRead = undefined;
        broker.log.push(event(1, 'l'), event(2, 'o'), terminal(3));
      };
      const { events } = await followAll(broker, options({ finished: finished('Hello') }));
      expect(events.map((e) => [e.seq, e.delta, e.done])).toEqual([
        [0, 'Hel', false],
        [1, 'l', false],
        [2, 'o', false],
        [3, '', true],
      ]);
    });

    it('sends the saved text as one event when the log is gone, then the saved end', async () => {
      const broker = new ScriptedBroker();
      broker.readFails = true;
      const { events } = await followAll(broker, options({ finished: finished('Hello there', 'FAILED', 'model went away') }));
      expect(events.map((e) => [e.seq, e.delta, e.done, e.status])).toEqual([
        [0, 'Hello there', false, 'STREAMING'],
        [1, '', true, 'FAILED'],
      ]);
      expect(events[1]!.error).toBe('model went away');
    });

    it('sends only the part of the saved text it has not sent, after a partial log', async () => {
      const broker = new ScriptedBroker();
      broker.log = [event(0, 'Hel'), event(1, 'lo')];
      const { events } = await followAll(broker, options({ finished: finished('Hello there') }));
      expect(events.map((e) => [e.seq, e.delta, e.done])).toEqual([
        [0, 'Hel', false],
        [1, 'lo', false],
        [2, ' there', false],
        [3, '', true],
      ]);
      expect(text(events)).toBe('Hello there');
    });

    it('sends no text event when the saved text is all sent already, or does not continue what was sent', async () => {
      for (const content of ['Hello', 'Help', 'Hel']) {
        const broker = new ScriptedBroker();
        broker.log = [event(0, 'Hel'), event(1, 'lo')];
        const { events } = await followAll(broker, options({ finished: finished(content) }));
        expect(events.map((e) => [e.seq, e.delta, e.done]), content).toEqual([
          [0, 'Hel', false],
          [1, 'lo', false],
          [2, '', true],
        ]);
      }
    });

    it('sends no text event to a subscriber that started mid-reply: it cannot know what it lacks', async () => {
      const broker = new ScriptedBroker();
      broker.readFails = true;
      const { events } = await followAll(broker, options({ afterSeq: 3, finished: finished('Hello there') }));
      expect(events.map((e) => [e.seq, e.delta, e.done, e.status])).toEqual([[4, '', true, 'COMPLETE']]);
    });

    it('takes the end heard live when the log cannot be read, rather than the saved text', async () => {
      const broker = new ScriptedBroker();
      broker.log = [event(0, 'ab')];
      // Asked after the silence: Redis goes away, and the rest arrives live meanwhile.
      const loadFinished = async () => {
        broker.readFails = true;
        broker.emit(terminal(2, 'COMPLETE'), { logged: false });
        broker.emit(event(1, 'c'), { logged: false });
        return finished('abc', 'FAILED', 'saved as failed');
      };
      const { events, outcome } = await followAll(broker, options({ loadFinished }));
      expect(outcome).toBe('ended');
      expect(events.map((e) => [e.seq, e.delta, e.done, e.status])).toEqual([
        [0, 'ab', false, 'STREAMING'],
        [1, 'c', false, 'STREAMING'],
        [2, '', true, 'COMPLETE'],
      ]);
    });
  });

  describe('without live events', () => {
    it('asks the database whether the message ended after two silent ticks, not before', async () => {
      const broker = new ScriptedBroker();
      broker.listenFails = true;
      const started = Date.now();
      let asked = 0;
      const loadFinished = async () => {
        asked++;
        return asked >= 2 ? { status: 'INTERRUPTED' as const, error: 'stopped', content: '' } : null;
      };
      const { events, outcome } = await followAll(broker, options({ loadFinished }));
      expect(outcome).toBe('ended');
      expect(asked).toBe(2);
      // Two ticks of silence before the first question, two before the second (10 ms each).
      expect(Date.now() - started).toBeGreaterThanOrEqual(30);
      expect(events.map((e) => [e.seq, e.done, e.status, e.error])).toEqual([[0, true, 'INTERRUPTED', 'stopped']]);
    });

    it('does not ask the database while events keep coming', async () => {
      const broker = new ScriptedBroker();
      let asked = 0;
      const run = followAll(broker, options({ loadFinished: async () => (asked++, null) }));
      for (let seq = 0; seq < 12; seq++) {
        await tick(6);
        broker.emit(event(seq));
      }
      broker.emit(terminal(12));
      const { events } = await run;
      expect(seqs(events)).toEqual([...Array(13).keys()]);
      expect(asked).toBe(0);
    });
  });

  it('ends when its consumer stops, releasing its listener, and sends what it already heard first', async () => {
    const broker = new ScriptedBroker();
    const signal = stopSignal();
    const run = followAll(broker, options({ signal }));
    await tick(20);
    expect(signal.onAbort).toBeTypeOf('function');
    broker.emit(event(0));
    signal.abort();
    const { events, outcome } = await run;
    expect(outcome).toBe('ended');
    expect(seqs(events)).toEqual([0]);
    expect(signal.onAbort).toBeUndefined();
    expect(broker.released).toBe(1);
  });

  it('wakes at once when its consumer stops while it waits, however long the silence clock', async () => {
    const broker = new ScriptedBroker();
    const signal = stopSignal();
    const run = followAll(broker, options({ signal }, 60_000));
    await tick(20);
    const stoppedAt = Date.now();
    signal.abort();
    const { outcome } = await run;
    expect(outcome).toBe('ended');
    expect(Date.now() - stoppedAt).toBeLessThan(200);
  });

  it('takes a stop while its consumer holds an event (nothing waiting to wake)', async () => {
    const broker = new ScriptedBroker();
    broker.log = [event(0), event(1)];
    const signal = stopSignal();
    const { events, outcome } = await followAll(broker, options({ signal }), {
      onEvent: (e) => {
        if (e.seq === 0) expect(() => signal.abort()).not.toThrow();
      },
    });
    expect(outcome).toBe('ended');
    // What it already read still goes out; then it stops.
    expect(seqs(events)).toEqual([0, 1]);
  });

  it('sends what it holds at once after filling a gap from the log, without waiting for a tick', async () => {
    const broker = new ScriptedBroker();
    const delivered: number[] = [];
    const run = followAll(broker, options({}, 60_000), { timeoutMs: 1000, onEvent: (e) => delivered.push(e.seq) });
    await tick(20);
    // 0 and 1 reach only the log; 2 arrives only live.
    broker.log.push(event(0), event(1));
    broker.emit(event(2), { logged: false });
    await tick(150);
    expect(delivered).toEqual([0, 1, 2]);
    broker.emit(terminal(3), { logged: false });
    const { events, outcome } = await run;
    expect(outcome).toBe('ended');
    expect(seqs(events)).toEqual([0, 1, 2, 3]);
  });

  it('forgets a live event the log already delivered, instead of reading the log for it again and again', async () => {
    const broker = new ScriptedBroker();
    const run = followAll(broker, options());
    await tick(20);
    // 1 is in the log only; 2 is in the log and heard live: the log read delivers both.
    broker.log.push(event(0), event(1));
    broker.emit(event(2));
    await tick(60);
    const reads = broker.reads.length;
    await tick(200);
    expect(broker.reads.length - reads).toBeLessThanOrEqual(1);
    broker.emit(terminal(3));
    const { events } = await run;
    expect(seqs(events)).toEqual([0, 1, 2, 3]);
  });

  it('hands every follower of a live event the same tagged object', async () => {
    const broker = new ScriptedBroker();
    const runs = [followAll(broker, options()), followAll(broker, options())];
    await tick(20);
    broker.emit(event(0));
    broker.emit(terminal(1));
    const [a, b] = await Promise.all(runs);
    expect(seqs(a!.events)).toEqual([0, 1]);
    expect(a!.events[0]).toBe(b!.events[0]);
    expect(a!.events[1]).toBe(b!.events[1]);
  });
});

describe('SilenceClock', () => {
  it('calls each waiter once at the next tick, on one timer, and stops the timer when nobody waits', () => {
    vi.useFakeTimers();
    const clock = new SilenceClock(100);
    const calls: string[] = [];
    const a = () => calls.push('a');
    const b = () => calls.push('b');
    const c = () => calls.push('c');
    clock.wait(a);
    clock.wait(b);
    clock.wait(c);
    clock.cancel(c);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(99);
    expect(calls).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(calls).toEqual(['a', 'b']);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(500);
    expect(calls).toEqual(['a', 'b']);
  });

  it('keeps ticking for waiters that wait again from their callback', () => {
    vi.useFakeTimers();
    const clock = new SilenceClock(50);
    let calls = 0;
    const again = () => {
      if (++calls < 3) clock.wait(again);
    };
    clock.wait(again);
    vi.advanceTimersByTime(50);
    expect(calls).toBe(1);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(100);
    expect(calls).toBe(3);
    expect(vi.getTimerCount()).toBe(0);
  });
});
