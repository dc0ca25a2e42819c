// A STREAMING reply carries a lease that its generating instance renews. Once a lease has expired
// (its instance died), any instance ends the reply INTERRUPTED, keeping the last checkpoint.
import type { HistoryCache } from '../cache/history-cache.ts';
import type { Logger } from '../logger.ts';
import type { Store } from '../store/store.ts';
import type { ReplyFinalizer } from './finalize.ts';
import type { Generation } from './generation.ts';

const RECOVERY_BATCH = 100;

export class LeaseKeeper {
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly cache: HistoryCache,
    private readonly finalizer: ReplyFinalizer,
    /** This instance's replies. */
    private readonly running: ReadonlyMap<string, Generation>,
    private readonly leaseMs: number,
    private readonly logger: Logger,
  ) {}

  /** Recovers what it can now (everything, when no other instance can own a reply), then keeps renewing and recovering. */
  async start(singleInstance: boolean): Promise<void> {
    await this.recover(singleInstance);
    const every = Math.max(100, Math.floor(this.leaseMs / 3));
    // Checkpoints and sweeps skip their turn while their previous run is still going (a slow
    // database), so they never stack up. Renewals do not skip: a skipped one would let a lease
    // lapse whenever a renewal takes more than a third of it; they never wait behind checkpoints.
    const renew = () => void this.renew().catch((error) => this.logger.error({ err: error }, 'lease heartbeat failed'));
    const checkpoint = guarded(() => this.checkpoint(), (error) => this.logger.error({ err: error }, 'reply checkpoint failed'));
    const sweep = guarded(() => this.recover(false), (error) => this.logger.error({ err: error }, 'recovery sweep failed'));
    this.timers.push(
      setInterval(() => {
        renew();
        checkpoint();
      }, every).unref(),
      setInterval(sweep, every).unref(),
    );
  }

  stop(): void {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
  }

  /** Renews the leases of this instance's replies and checkpoints their text. */
  async heartbeat(): Promise<void> {
    await this.renew();
    await this.checkpoint();
  }

  private async renew(): Promise<void> {
    if (this.running.size === 0) return;
    // The lease is a column of the cached rows too: the renewal is bracketed like any change.
    await this.cache.writingAll([...this.running.values()], () => this.store.renewLeases([...this.running.keys()], new Date(Date.now() + this.leaseMs)));
  }

  /** Partial text survives a crash even without the shared log. */
  private async checkpoint(): Promise<void> {
    for (const [id, generation] of this.running) {
      if (generation.content.length === generation.checkpointed) continue;
      generation.checkpointed = generation.content.length;
      const content = generation.content;
      await this.cache.writing(generation.userId, generation.conversationId, () => this.store.checkpointReply(id, content));
    }
  }

  /** Ends replies whose instance stopped renewing its lease (with `everything`: all not running here). */
  async recover(everything: boolean): Promise<void> {
    if (this.stopped) return;
    const orphans = await this.store.orphanedReplies(everything, RECOVERY_BATCH);
    for (const id of orphans) {
      if (this.running.has(id)) continue;
      // One reply that cannot be ended must not keep the others (or a start) from being recovered.
      try {
        const finalized = await this.finalizer.finalize(id, { status: 'INTERRUPTED', error: 'the server generating this reply stopped before it finished' });
        if (finalized) this.logger.warn({ messageId: id }, 'marked an orphaned reply INTERRUPTED');
      } catch (error) {
        this.logger.error({ err: error, messageId: id }, 'could not end an orphaned reply; the next sweep tries again');
      }
    }
  }
}

/** A timer callback that skips its turn while the previous run is still going (a slow database). */
function guarded(task: () => Promise<void>, onError: (error: unknown) => void): () => void {
  let running = false;
  return () => {
    if (running) return;
    running = true;
    task()
      .catch(onError)
      .finally(() => (running = false));
  };
}
