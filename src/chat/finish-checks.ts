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
  private pending = new Map<string, Pending[]>();

  /** `reuseMs`: a message checked this recently is answered from that check. */
  constructor(
    private readonly store: Store,
    private readonly reuseMs: number,
  ) {}

  /** The message's end, null while it streams; a message that is gone has ended as INTERRUPTED. */
  check(messageId: string): Promise<FinishedMessage | null> {
    const recent = this.recent.get(messageId);
    if (recent && Date.now() - recent.at < this.reuseMs) return recent.result;
    const result = new Promise<FinishedMessage | null>((resolve, reject) => {
      if (this.pending.size === 0) setImmediate(() => this.flush());
      let waiting = this.pending.get(messageId);
      if (!waiting) this.pending.set(messageId, (waiting = []));
      waiting.push({ resolve, reject });
    });
    const entry = { at: Date.now(), result };
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
      this.store.replyStatesById(part).then(
        ({ streaming, ended }) => {
          for (const id of part) {
            const state = streaming.has(id) ? null : finishedState(ended.get(id) ?? null);
            for (const waiter of batch.get(id)!) waiter.resolve(state);
          }
        },
        (error) => {
          for (const id of part) for (const waiter of batch.get(id)!) waiter.reject(error);
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
