// Whether replies that went silent have ended, asked of the database for many at once: the
// silence clock wakes every waiting subscriber of the instance on the same tick, and a thousand
// of them waiting on queued or slow replies would otherwise be a thousand queries in one burst.
import type { ReplyState, Store } from '../store/store.ts';
import type { FinishedMessage } from '../streaming/follow.ts';

/** Ids per query. */
const MAX_BATCH = 500;

interface Pending {
  resolve: (state: FinishedMessage | null) => void;
  reject: (error: unknown) => void;
}

export class FinishChecks {
  private readonly recent = new Map<string, { at: number; result: Promise<FinishedMessage | null> }>();
  /** One per message: a second check while one is pending is answered by `recent`. */
  private pending = new Map<string, Pending>();

  /** `reuseMs`: a message checked this recently is answered from that check. */
  constructor(
    private readonly store: Store,
    private readonly reuseMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The message's end, null while it streams; a message that is gone has ended as INTERRUPTED. */
  check(messageId: string): Promise<FinishedMessage | null> {
    const recent = this.recent.get(messageId);
    if (recent && this.now() - recent.at < this.reuseMs) return recent.result;
    const result = new Promise<FinishedMessage | null>((resolve, reject) => {
      if (this.pending.size === 0) setImmediate(() => this.flush());
      // A check replaced by a newer one (its answer too old) still gets that newer answer.
      const earlier = this.pending.get(messageId);
      this.pending.set(messageId, earlier ? { resolve: (s) => (earlier.resolve(s), resolve(s)), reject: (e) => (earlier.reject(e), reject(e)) } : { resolve, reject });
    });
    const entry = { at: this.now(), result };
    this.recent.set(messageId, entry);
    // A failed check is not reused: the next one asks again.
    result.catch(() => {
      if (this.recent.get(messageId) === entry) this.recent.delete(messageId);
    });
    setTimeout(() => {
      if (this.recent.get(messageId) === entry) this.recent.delete(messageId);
    }, this.reuseMs * 2).unref();
    return result;
  }

  private flush(): void {
    const batch = this.pending;
    this.pending = new Map();
    const ids = [...batch.keys()];
    for (let from = 0; from < ids.length; from += MAX_BATCH) {
      const part = ids.slice(from, from + MAX_BATCH);
      // Through a promise, so that even a store that throws at once fails only its own checks.
      Promise.resolve(part)
        .then((ids) => this.store.replyStatesById(ids))
        .then(
          ({ streaming, ended }) => {
            for (const id of part) batch.get(id)!.resolve(streaming.has(id) ? null : finishedState(ended.get(id) ?? null));
          },
          (error) => {
            for (const id of part) batch.get(id)!.reject(error);
          },
        );
    }
  }
}

/** A message's end as a subscriber reports it; null while it streams. */
export function finishedState(message: ReplyState | null): FinishedMessage | null {
  if (!message) return { status: 'INTERRUPTED', error: 'the message was deleted', content: '' };
  return message.status !== 'STREAMING' ? message : null;
}
