// messageStream: a viewer's message as a stream of events, replayed and live, from any instance.
import type { Viewer } from '../auth.ts';
import { notFound } from '../errors.ts';
import type { ReplyState, Store } from '../store/store.ts';
import { abortable } from '../streaming/abortable.ts';
import type { StreamBroker } from '../streaming/events.ts';
import { followMessage, SilenceClock, type FinishedMessage, type FollowedEvent } from '../streaming/follow.ts';

export class ReplyFollower {
  private readonly silence: SilenceClock;
  private readonly finishChecks = new Map<string, { at: number; result: Promise<FinishedMessage | null> }>();

  constructor(
    private readonly store: Store,
    private readonly broker: StreamBroker,
    leaseMs: number,
  ) {
    this.silence = new SilenceClock(Math.min(2000, Math.max(100, Math.floor(leaseMs / 3))));
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
          loadFinished: () => this.finishedMessage(messageId),
          signal,
        }),
      shutdown,
    );
  }

  /**
   * Whether a message has ended, read at most about once per check interval however many
   * subscribers of this instance are waiting on it: a thousand idle subscribers cost one query.
   */
  private finishedMessage(messageId: string): Promise<FinishedMessage | null> {
    const recent = this.finishChecks.get(messageId);
    if (recent && Date.now() - recent.at < this.silence.everyMs / 2) return recent.result;
    const result = this.store.replyStateById(messageId).then(finishedState);
    const check = { at: Date.now(), result };
    this.finishChecks.set(messageId, check);
    setTimeout(() => {
      if (this.finishChecks.get(messageId) === check) this.finishChecks.delete(messageId);
    }, this.silence.everyMs).unref();
    return result;
  }
}

function finishedState(message: ReplyState | null): FinishedMessage | null {
  if (!message) return { status: 'INTERRUPTED', error: 'the message was deleted', content: '' };
  return message.status !== 'STREAMING' ? message : null;
}
