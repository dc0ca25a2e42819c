// messageStream: a viewer's message as a stream of events, replayed and live, from any instance.
import type { Viewer } from '../auth.ts';
import { notFound } from '../errors.ts';
import type { Store } from '../store/store.ts';
import { abortable } from '../streaming/abortable.ts';
import type { StreamBroker } from '../streaming/events.ts';
import { followMessage, SilenceClock, type FollowedEvent } from '../streaming/follow.ts';
import { FinishChecks, finishedState } from './finish-checks.ts';

export class ReplyFollower {
  private readonly silence: SilenceClock;
  private readonly finishChecks: FinishChecks;

  constructor(
    private readonly store: Store,
    private readonly broker: StreamBroker,
    leaseMs: number,
  ) {
    this.silence = new SilenceClock(Math.min(2000, Math.max(100, Math.floor(leaseMs / 3))));
    // Read at most about once per tick however many subscribers of this instance wait on a message.
    this.finishChecks = new FinishChecks(store, this.silence.everyMs / 2);
  }

  /**
   * The viewer's message as a stream of events after `afterSeq`. Checks ownership before anything
   * else: a foreign or missing id is NOT_FOUND and yields nothing.
   */
  async follow(viewer: Viewer, messageId: string, afterSeq: number, shutdown: AbortSignal): Promise<AsyncGenerator<FollowedEvent>> {
    const message = await this.store.replyState(viewer.userId, messageId);
    if (!message) throw notFound('message');
    return abortable(
      (signal) =>
        followMessage(this.broker, messageId, {
          afterSeq,
          finished: finishedState(message),
          silence: this.silence,
          loadFinished: () => this.finishChecks.check(messageId),
          signal,
        }),
      shutdown,
    );
  }
}
