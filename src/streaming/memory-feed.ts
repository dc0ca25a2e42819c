// The change feed of a single instance (no REDIS_URL): logs and listeners in this process's memory.
import type { ChangeFeed, FeedEvent, FeedLimits } from './change-feed.ts';

interface Log {
  events: FeedEvent[];
  expiresAt: number;
}

export class MemoryFeed implements ChangeFeed {
  private readonly logs = new Map<string, Log>();
  private readonly listeners = new Map<string, Set<(event: FeedEvent) => void>>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly limits: FeedLimits) {
    this.sweeper = setInterval(() => {
      const now = Date.now();
      for (const [name, log] of this.logs) if (log.expiresAt < now) this.logs.delete(name);
    }, Math.min(limits.ttlMs, 60_000)).unref();
  }

  async publish(name: string, events: FeedEvent[]): Promise<void> {
    let log = this.logs.get(name);
    if (!log) this.logs.set(name, (log = { events: [], expiresAt: 0 }));
    log.expiresAt = Date.now() + this.limits.ttlMs;
    for (const event of events) {
      // Writers finish in any order: keep the log sorted, each seq once.
      let at = log.events.length;
      while (at > 0 && log.events[at - 1]!.seq > event.seq) at--;
      if (at > 0 && log.events[at - 1]!.seq === event.seq) continue;
      log.events.splice(at, 0, event);
    }
    if (log.events.length > this.limits.maxEvents) log.events.splice(0, log.events.length - this.limits.maxEvents);
    for (const event of events) for (const listener of this.listeners.get(name) ?? []) listener(event);
  }

  /**
   * Copies: a live event reaches this instance's subscribers as one object, whose GraphQL result
   * they share (shared-subscription-events.ts); a replay later must be executed anew.
   */
  async read(name: string, afterSeq: number): Promise<FeedEvent[]> {
    return (this.logs.get(name)?.events ?? []).filter((event) => event.seq > afterSeq).map((event) => ({ ...event }));
  }

  async listen(name: string, onEvent: (event: FeedEvent) => void): Promise<() => void> {
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    set.add(onEvent);
    return () => {
      set.delete(onEvent);
      if (set.size === 0 && this.listeners.get(name) === set) this.listeners.delete(name);
    };
  }

  onReconnect(): () => void {
    // One process: nothing is ever missed.
    return () => {};
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }
}
