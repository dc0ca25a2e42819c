// Message.siblingIds for every message of one GraphQL request, loaded together: one query for the
// children of all the parents asked about in the same tick.
import { siblingKey, type Store } from '../store/store.ts';

interface Parent {
  conversationId: string;
  parentId: string | null;
}

export class SiblingLoader {
  private pending: { parents: Map<string, Parent>; loaded: Promise<Map<string, string[]>> } | undefined;

  constructor(
    private readonly store: Store,
    private readonly userId: string,
  ) {}

  /**
   * The ids of the message's parent's children (the roots, for a root), oldest first, itself
   * included. A row read without its parent (an operation's planned selection left it out) is
   * looked up; one deleted meanwhile is its own only sibling.
   */
  async siblingIds(row: { id: string; conversationId?: string; parentId?: string | null }): Promise<string[]> {
    const message = row.conversationId !== undefined && row.parentId !== undefined ? (row as { id: string } & Parent) : await this.parentOf(row.id);
    if (!message) return [row.id];
    const key = siblingKey(message.conversationId, message.parentId);
    if (!this.pending) {
      const parents = new Map<string, Parent>();
      const loaded = new Promise<void>((resolve) => process.nextTick(resolve)).then(() => {
        this.pending = undefined;
        return this.store.siblings(this.userId, [...parents.values()]);
      });
      this.pending = { parents, loaded };
    }
    this.pending.parents.set(key, { conversationId: message.conversationId, parentId: message.parentId });
    const ids = (await this.pending.loaded).get(key) ?? [];
    // A message read before a concurrent delete of its siblings still counts itself.
    return ids.includes(message.id) ? ids : [...ids, message.id];
  }

  private async parentOf(id: string): Promise<({ id: string } & Parent) | null> {
    const found = await this.store.findMessage(this.userId, id, { select: { id: true, conversationId: true, parentId: true } });
    return found && { id, conversationId: found.conversationId, parentId: found.parentId };
  }
}
