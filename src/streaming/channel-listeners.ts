// The listeners of Redis channels on one subscriber connection, shared by the stream broker and
// the change feed: a channel is subscribed while someone listens and unsubscribed after the last.
import type { Redis } from 'ioredis';

export class ChannelListeners<T> {
  private readonly channels = new Map<string, Set<(value: T) => void>>();

  constructor(
    private readonly subscriber: Redis,
    /** A message as its listeners get it; undefined: nobody gets it. */
    private readonly decode: (message: string) => T | undefined,
  ) {}

  /** Hands a message of one of these channels to its listeners; one message is decoded once for all. */
  deliver(channel: string, message: string): void {
    const listeners = this.channels.get(channel);
    if (!listeners) return;
    const value = this.decode(message);
    if (value === undefined) return;
    for (const listener of listeners) listener(value);
  }

  /**
   * Adds a listener and awaits the SUBSCRIBE, so nothing published after this returns is missed.
   * When the SUBSCRIBE fails, the listener is removed and the error thrown; with `onFailure`, the
   * listener stays instead, for the caller to subscribe its channel again later (`names`).
   */
  async listen(channel: string, onValue: (value: T) => void, onFailure?: (error: unknown) => void): Promise<() => void> {
    let listeners = this.channels.get(channel);
    if (!listeners) this.channels.set(channel, (listeners = new Set()));
    listeners.add(onValue);
    const stop = () => {
      listeners.delete(onValue);
      // A stop called again after others listened anew must not drop their new set.
      if (listeners.size === 0 && this.channels.get(channel) === listeners) {
        this.channels.delete(channel);
        this.subscriber.unsubscribe(channel).catch(() => {});
      }
    };
    try {
      await this.subscriber.subscribe(channel);
    } catch (error) {
      if (onFailure) {
        onFailure(error);
        return stop;
      }
      // A caller that was refused holds no handle to stop with: nothing of it may stay behind.
      stop();
      throw error;
    }
    return stop;
  }

  /** The channels someone listens to. */
  names(): string[] {
    return [...this.channels.keys()];
  }

  clear(): void {
    this.channels.clear();
  }
}
