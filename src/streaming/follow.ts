// Follows one message's stream for one subscriber: the replay log from `afterSeq + 1`, then live
// events, each exactly once and in seq order, ending with the terminal event.
import type { StopSignal } from './abortable.ts';
import type { MessageStatus, StreamBroker, StreamEvent } from './events.ts';

/** The saved state of a message that is no longer streaming. */
export interface FinishedMessage {
  status: MessageStatus;
  error: string | null;
  content: string;
}

export interface FollowOptions {
  afterSeq: number;
  /** Reads the message from the database; null while it is still streaming. */
  loadFinished: () => Promise<FinishedMessage | null>;
  /** After about one tick of it without events the database is asked whether the message ended. */
  silence: SilenceClock;
  signal: StopSignal;
  /** The message as the caller already read it, when it had ended. */
  finished?: FinishedMessage | null;
}

export type FollowedEvent = StreamEvent & { messageId: string };

/**
 * One timer for every waiting subscriber instead of one each: waiters are called at the next tick.
 * A subscriber that heard an event since the previous tick waits for another one, so a check
 * comes after one to two ticks of silence.
 */
export class SilenceClock {
  private waiting = new Set<() => void>();
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly everyMs: number) {}

  wait(onTick: () => void): void {
    this.waiting.add(onTick);
    this.timer ??= setInterval(() => this.tick(), this.everyMs).unref();
  }

  cancel(onTick: () => void): void {
    this.waiting.delete(onTick);
  }

  private tick(): void {
    const due = this.waiting;
    this.waiting = new Set();
    for (const onTick of due) onTick();
    if (this.waiting.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}

// A live event reaches every subscriber of its message on this instance as the same object; its
// tagged copy is shared too, so the GraphQL layer can execute it once for all of them.
const tagged = new WeakMap<StreamEvent, FollowedEvent>();

export async function* followMessage(broker: StreamBroker, messageId: string, options: FollowOptions): AsyncGenerator<FollowedEvent> {
  let next = options.afterSeq + 1;
  // The text this subscriber has been sent; it may start mid-reply, after afterSeq.
  let received = '';
  const receivedFromStart = next === 0;
  const live = new Map<number, StreamEvent>();
  let wake: (() => void) | undefined;
  const safeRead = (from: number) => broker.read(messageId, from).catch(() => [] as StreamEvent[]);
  // Without live events (Redis unreachable) the subscriber still ends: it polls the database.
  const stopListening = await broker
    .listen(messageId, (event) => {
      if (event.seq >= next) live.set(event.seq, event);
      wake?.();
    })
    .catch(() => () => {});
  options.signal.onAbort = () => wake?.();

  // Yields the events that continue the sequence; true once the terminal event went out.
  const take = function* (events: Iterable<StreamEvent>): Generator<FollowedEvent, boolean> {
    for (const event of events) {
      if (event.seq !== next) continue;
      next++;
      received += event.delta;
      let out = tagged.get(event);
      if (!out) tagged.set(event, (out = { ...event, messageId }));
      yield out;
      if (event.done) return true;
    }
    return false;
  };

  // The end of a message that is no longer streaming: the log holds the rest, unless it is
  // unreachable (Redis down) or expired. Then the saved text the subscriber lacks comes as one
  // event, so its deltas still add up to the saved content.
  const finish = async function* (finished: FinishedMessage): AsyncGenerator<FollowedEvent> {
    if (yield* take(await safeRead(next))) return;
    if (yield* take([...live.values()].sort((a, b) => a.seq - b.seq))) return;
    if (receivedFromStart && finished.content.length > received.length && finished.content.startsWith(received)) {
      yield { messageId, seq: next++, delta: finished.content.slice(received.length), done: false, status: 'STREAMING' };
    }
    yield { messageId, seq: next, delta: '', done: true, status: finished.status, error: finished.error };
  };

  try {
    if (yield* take(await safeRead(next))) return;
    if (options.finished) return yield* finish(options.finished);
    let gapReads = 0;
    // Whether an event came since the last tick of the silence clock.
    let heard = true;
    for (;;) {
      // Events already received go out first, so a terminal event is never cut off by a shutdown.
      while (live.has(next)) {
        const event = live.get(next)!;
        live.delete(next);
        if (yield* take([event])) return;
      }
      if (options.signal.aborted) return;
      for (const seq of live.keys()) if (seq < next) live.delete(seq);
      if (live.size > 0) {
        // A later event arrived first: the ones before it are already in the log.
        if (yield* take(await safeRead(next))) return;
        if (!live.has(next) && ++gapReads < 100) {
          await new Promise((resolve) => setTimeout(resolve, 5));
          continue;
        }
      }
      gapReads = 0;
      if (live.has(next)) continue;
      const woken = await new Promise<boolean>((resolve) => {
        const onTick = () => resolve(false);
        wake = () => {
          options.silence.cancel(onTick);
          resolve(true);
        };
        options.silence.wait(onTick);
      });
      wake = undefined;
      if (woken) {
        heard = true;
        continue;
      }
      if (heard) {
        heard = false;
        continue;
      }
      const finished = await options.loadFinished();
      if (finished) return yield* finish(finished);
    }
  } finally {
    options.signal.onAbort = undefined;
    stopListening();
  }
}
