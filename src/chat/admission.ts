import { performance, type EventLoopUtilization } from 'node:perf_hooks';

/** Whether the instance has no CPU to spare for another reply right now. */
export type LoadGauge = () => boolean;

/**
 * True while the event loop was busy at least `threshold` of the last window: a burst of
 * requests is being handled, and a reply started now would stream its first tokens behind it.
 */
export function eventLoopGauge(threshold = 0.9, windowMs = 50): LoadGauge {
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  let lastAt = performance.now();
  let saturated = false;
  return () => {
    const at = performance.now();
    if (at - lastAt >= windowMs) {
      const current = performance.eventLoopUtilization();
      saturated = performance.eventLoopUtilization(current, last).utilization >= threshold;
      last = current;
      lastAt = at;
    }
    return saturated;
  };
}

/** How often a reply held back by load asks again. */
const RECHECK_MS = 20;

/**
 * Which replies this instance generates now. A reply costs CPU per token for as long as it runs,
 * so a burst of sends past what the instance carries waits in line, first come first served,
 * instead of slowing every live stream. A place is given when fewer than `limit` replies run
 * and the event loop has time to spare; one reply always may run, so the line always moves.
 * A waiting reply is saved and leased like a running one; it only has no model call yet.
 */
export class ReplyAdmission {
  private running = 0;
  /** In arrival order; a Set, so that a waiting reply that is aborted leaves it in O(1). */
  private readonly waiting = new Set<{ admit: () => void; onAbort: () => void }>();
  private recheck: NodeJS.Timeout | undefined;

  /** `limit` 0: no limit, and no waiting on load either. */
  constructor(
    private readonly limit: number,
    private readonly busy: LoadGauge = eventLoopGauge(),
  ) {}

  /** Replies running now, and replies waiting for a place. */
  get load(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.size };
  }

  /**
   * Resolves with the release of a place once the reply may run; rejects with the signal's
   * reason if it is aborted first. Release exactly once, however the reply ends.
   */
  admit(signal: AbortSignal): Promise<() => void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.waiting.size === 0 && this.hasPlace()) return Promise.resolve(this.take());
    return new Promise((resolve, reject) => {
      const entry = {
        admit: () => {
          signal.removeEventListener('abort', entry.onAbort);
          resolve(this.take());
        },
        onAbort: () => {
          this.waiting.delete(entry);
          reject(signal.reason);
        },
      };
      signal.addEventListener('abort', entry.onAbort, { once: true });
      this.waiting.add(entry);
      this.pump();
    });
  }

  private hasPlace(): boolean {
    if (this.limit === 0 || this.running === 0) return true;
    return this.running < this.limit && !this.busy();
  }

  /** Gives free places to the longest waiting replies; asks again soon if load held them back. */
  private pump(): void {
    for (let next = this.waiting.values().next(); !next.done && this.hasPlace(); next = this.waiting.values().next()) {
      this.waiting.delete(next.value);
      next.value.admit();
    }
    if (this.waiting.size > 0 && this.running < this.limit && !this.recheck) {
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
