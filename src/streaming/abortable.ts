/**
 * Wraps a generator so that `return()` from the consumer (a client unsubscribing) aborts the
 * generator's signal at once. A plain async generator only sees `return()` at its next yield, so
 * one that waits for events would keep its listeners until an event came.
 */
export function abortable<T>(start: (signal: AbortSignal) => AsyncGenerator<T>, parent: AbortSignal): AsyncGenerator<T> {
  const ended = new AbortController();
  const signal = AbortSignal.any([ended.signal, parent]);
  const inner = start(signal);
  const iterator: AsyncGenerator<T> = {
    next: (...args) => inner.next(...args),
    return: (value) => {
      ended.abort();
      return inner.return(value);
    },
    throw: (error) => {
      ended.abort();
      return inner.throw(error);
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}
