import { performance, type EventLoopUtilization } from 'node:perf_hooks';

/** Whether the instance has no CPU to spare for another reply right now. */
export interface LoadGauge {
  busy(): boolean;
  close(): void;
}

/**
 * Busy while the event loop was busy at least `threshold` of the last sampled window: a burst
 * of requests is being handled, and a reply started now would stream its first tokens behind it.
 * Sampled on a timer, so the figure is recent whenever it is asked for.
 */
export function eventLoopGauge(threshold = 0.9, windowMs = 50): LoadGauge {
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  let busy = false;
  const timer = setInterval(() => {
    const current = performance.eventLoopUtilization();
    busy = performance.eventLoopUtilization(current, last).utilization >= threshold;
    last = current;
  }, windowMs).unref();
  return { busy: () => busy, close: () => clearInterval(timer) };
}

/** How often replies held back by load ask again. */
const RECHECK_MS = 20;

interface Waiter {
  admit: () => void;
  /** Set when it was aborted while waiting: skipped, not searched for and removed. */
  gone: boolean;
}

/** A first-in first-out line with O(1) push and shift (an array's shift is O(n)). */
class Line<T> {
  private items: T[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  peek(): T | undefined {
    return this.items[this.head];
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head]!;
    this.items[this.head++] = undefined as T;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}

export interface Admitted {
  release: () => void;
  /** It waited in line: the reply may have been ended by someone else meanwhile. */
  waited: boolean;
}

export interface AdmissionOptions {
  /** Most replies running at once; 0: no limit, and no waiting on load either. */
  limit: number;
  /** Replies that may always run, whatever the load, so that the line moves under any load. */
  floor: number;
  gauge: LoadGauge;
}

/**
 * Which replies this instance generates now. A reply costs CPU per token for as long as it runs,
 * so sends past what the instance carries wait in line instead of slowing every live stream. A
 * place is given when fewer than `limit` replies run and, past `floor` of them, when the event
 * loop has time to spare. Users take turns: one user's burst does not put everyone else's reply
 * behind all of it. A waiting reply is saved and leased like a running one; it only has no model
 * call yet.
 */
export class ReplyAdmission {
  private running = 0;
  private waitingCount = 0;
  /** Each user's waiting replies, and the users with any, in turn order. */
  private readonly lines = new Map<string, Line<Waiter>>();
  private readonly turns = new Line<string>();
  private recheck: NodeJS.Timeout | undefined;

  constructor(private readonly options: AdmissionOptions) {}

  /** Replies running now, and replies waiting for a place. */
  get load(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waitingCount };
  }

  /**
   * Resolves once the user's reply may run; rejects with the signal's reason if it is aborted
   * first. Release the place however the reply ends (a second release does nothing).
   */
  admit(userId: string, signal: AbortSignal): Promise<Admitted> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.waitingCount === 0 && this.hasPlace()) return Promise.resolve({ release: this.take(), waited: false });
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        waiter.gone = true;
        // Nobody left waiting: the lines hold only aborted replies.
        if (--this.waitingCount === 0) this.clearLines();
        reject(signal.reason);
      };
      const waiter: Waiter = {
        gone: false,
        admit: () => {
          signal.removeEventListener('abort', onAbort);
          resolve({ release: this.take(), waited: true });
        },
      };
      signal.addEventListener('abort', onAbort, { once: true });
      let line = this.lines.get(userId);
      if (!line) {
        this.lines.set(userId, (line = new Line()));
        this.turns.push(userId);
      }
      line.push(waiter);
      this.waitingCount++;
      this.pump();
    });
  }

  private clearLines(): void {
    this.lines.clear();
    while (this.turns.shift() !== undefined);
  }

  close(): void {
    clearTimeout(this.recheck);
    this.options.gauge.close();
  }

  private hasPlace(): boolean {
    const { limit, floor, gauge } = this.options;
    if (limit === 0) return true;
    if (this.running >= limit) return false;
    return this.running < floor || !gauge.busy();
  }

  /** The next waiting reply, users in turn; undefined when none waits. */
  private next(): Waiter | undefined {
    for (let userId = this.turns.shift(); userId !== undefined; userId = this.turns.shift()) {
      const line = this.lines.get(userId)!;
      let waiter = line.shift();
      while (waiter?.gone) waiter = line.shift();
      // Skip the aborted ones behind it too, so that an empty line is known now.
      while (line.peek()?.gone) line.shift();
      if (line.length > 0) this.turns.push(userId);
      else this.lines.delete(userId);
      if (waiter) return waiter;
    }
    return undefined;
  }

  /** Gives free places to waiting replies; asks again soon if load held them back. */
  private pump(): void {
    while (this.waitingCount > 0 && this.hasPlace()) {
      const waiter = this.next();
      if (!waiter) break;
      this.waitingCount--;
      waiter.admit();
    }
    if (this.waitingCount > 0 && this.running < this.options.limit && !this.recheck) {
      this.recheck = setTimeout(() => {
        this.recheck = undefined;
        this.pump();
      }, RECHECK_MS);
    }
  }

  private take(): () => void {
    this.running++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
      this.pump();
    };
  }
}
