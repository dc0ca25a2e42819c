// The broker of a single instance (no REDIS_URL): logs and listeners in this process's memory.
import type { AppendResult, SealResult, StreamBroker, StreamEvent } from './events.ts';

interface Log {
  events: StreamEvent[];
  sealToken?: string;
  expiresAt: number;
}

export class MemoryBroker implements StreamBroker {
  private readonly logs = new Map<string, Log>();
  private readonly listeners = new Map<string, Set<(event: StreamEvent) => void>>();
  private readonly stopHandlers: ((messageId: string) => void)[] = [];
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly ttlMs: number) {
    this.sweeper = setInterval(() => {
      const now = Date.now();
      for (const [id, log] of this.logs) if (log.expiresAt < now) this.logs.delete(id);
    }, Math.min(ttlMs, 60_000)).unref();
  }

  private log(messageId: string): Log {
    let log = this.logs.get(messageId);
    if (!log) {
      log = { events: [], expiresAt: 0 };
      this.logs.set(messageId, log);
    }
    log.expiresAt = Date.now() + this.ttlMs;
    return log;
  }

  async append(messageId: string, event: StreamEvent, sealToken?: string): Promise<AppendResult> {
    const log = this.log(messageId);
    if (log.sealToken !== undefined && log.sealToken !== sealToken) return 'sealed';
    if (log.events.length !== event.seq) return 'out-of-order';
    log.events.push(event);
    for (const listener of this.listeners.get(messageId) ?? []) listener(event);
    return 'ok';
  }

  async seal(messageId: string, token: string): Promise<SealResult> {
    const log = this.log(messageId);
    if (log.sealToken !== undefined) return { won: false, events: [] };
    log.sealToken = token;
    return { won: true, events: [...log.events] };
  }

  async release(messageId: string, token: string): Promise<void> {
    const log = this.logs.get(messageId);
    if (log?.sealToken === token) delete log.sealToken;
  }

  async read(messageId: string, fromSeq: number): Promise<StreamEvent[]> {
    return this.logs.get(messageId)?.events.slice(Math.max(0, fromSeq)) ?? [];
  }

  async listen(messageId: string, onEvent: (event: StreamEvent) => void): Promise<() => void> {
    let set = this.listeners.get(messageId);
    if (!set) this.listeners.set(messageId, (set = new Set()));
    set.add(onEvent);
    return () => {
      set.delete(onEvent);
      // A stop called again after others listened anew must not drop their new set.
      if (set.size === 0 && this.listeners.get(messageId) === set) this.listeners.delete(messageId);
    };
  }

  async requestStop(messageId: string): Promise<void> {
    for (const handler of this.stopHandlers) handler(messageId);
  }

  onStopRequest(handler: (messageId: string) => void): void {
    this.stopHandlers.push(handler);
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }
}
