/** Tells a generator that its consumer has gone. Cheaper than an AbortSignal per subscription. */
export interface StopSignal {
  readonly aborted: boolean;
  /** Called once when the stop happens; the generator sets it to wake itself up. */
  onAbort: (() => void) | undefined;
}

class Stop implements StopSignal {
  aborted = false;
  onAbort: (() => void) | undefined = undefined;

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.onAbort?.();
  }
}

// One listener per parent signal (the server's shutdown) instead of one per subscription.
const stopsByParent = new WeakMap<AbortSignal, Set<Stop>>();

function track(parent: AbortSignal, stop: Stop): () => void {
  let stops = stopsByParent.get(parent);
  if (!stops) {
    const tracked = (stops = new Set());
    stopsByParent.set(parent, tracked);
    parent.addEventListener('abort', () => tracked.forEach((s) => s.abort()), { once: true });
  }
  stops.add(stop);
  return () => stops.delete(stop);
}

/**
 * Wraps a generator so that `return()` from the consumer (a client unsubscribing) stops it at
 * once, and so does the parent signal (the server shutting down). A plain async generator only
 * sees `return()` at its next yield, so one that waits for events would keep its listeners until
 * an event came.
 */
export function abortable<T>(start: (signal: StopSignal) => AsyncGenerator<T>, parent: AbortSignal): AsyncGenerator<T> {
  const stop = new Stop();
  if (parent.aborted) stop.abort();
  const untrack = track(parent, stop);
  const inner = start(stop);
  const end = () => {
    untrack();
    stop.abort();
  };
  const iterator: AsyncGenerator<T> = {
    next: (...args) =>
      inner.next(...args).then((step) => {
        if (step.done) untrack();
        return step;
      }),
    return: (value) => {
      end();
      return inner.return(value);
    },
    throw: (error) => {
      end();
      return inner.throw(error);
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}
