/**
 * Every reply's buffered text is published by one shared timer, so the appends of all replies
 * due in a flush interval leave together (the broker sends them to Redis as one call). A delta
 * still waits at most `flushMs`.
 */
export class FlushScheduler {
  private readonly due = new Set<() => void>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly flushMs: number) {}

  /** Runs `flush` at the next shared flush, once however often it is scheduled before. */
  schedule(flush: () => void): void {
    this.due.add(flush);
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      const flushes = [...this.due];
      this.due.clear();
      for (const run of flushes) run();
    }, this.flushMs);
  }

  cancel(flush: () => void): void {
    this.due.delete(flush);
  }
}
