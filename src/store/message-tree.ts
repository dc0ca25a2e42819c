// The tree of a conversation's messages, inside a write transaction that already holds the
// conversation's row lock. Each message has a parent (null for a root); `onPath` marks the active
// path, root to Conversation.currentMessageId, so that every read of the path is a plain index
// read. The walks here are recursive CTEs through the (conversationId, parentId, seq) index and
// the primary key; they run on SQLite, PostgreSQL and MariaDB alike.
import { badInput } from '../errors.ts';
import type { Prisma } from '../generated/prisma/sqlite/client.ts';
import type { Conversation } from './rows.ts';

type Tx = Prisma.TransactionClient;

// Ids per UPDATE or DELETE: far below every database's limit on bound parameters.
const CHUNK = 500;

/** Where a new message goes: the active tip (undefined), a new root (null), or under that message. */
export type ParentChoice = string | null | undefined;

/** A new message's parent and depth, once its branch is the active one. */
export interface Placement {
  parentId: string | null;
  depth: number;
}

export interface TreeNode {
  id: string;
  seq: number;
  depth: number;
}

export class MessageTree {
  constructor(private readonly quote: (identifier: string) => Prisma.Sql) {}

  /**
   * Makes the branch under `parent` active and says where a message answering it goes. The
   * conversation row must be locked and read in this transaction (`tip`, `pathLength`). A parent
   * that is not a message of this conversation and user is refused, never linked.
   */
  async place(tx: Tx, userId: string, conversation: { id: string; currentMessageId: string | null; pathLength: number }, parent: ParentChoice): Promise<Placement> {
    if (parent === undefined || (parent !== null && parent === conversation.currentMessageId)) {
      return { parentId: conversation.currentMessageId, depth: conversation.pathLength };
    }
    if (parent === null) {
      await tx.message.updateMany({ where: { conversationId: conversation.id, onPath: true }, data: { onPath: false } });
      return { parentId: null, depth: 0 };
    }
    const row = await tx.message.findFirst({ where: { id: parent, userId, conversationId: conversation.id }, select: { id: true, depth: true } });
    if (!row) throw badInput('input.parentId', 'must be a message of the conversation');
    await this.activate(tx, conversation.id, row.id);
    return { parentId: row.id, depth: row.depth + 1 };
  }

  /**
   * Makes the path root → `nodeId` the active one: marks the node's ancestors that are off the
   * path, and unmarks what the old path held below the point where the two meet.
   */
  async activate(tx: Tx, conversationId: string, nodeId: string): Promise<void> {
    const q = this.quote;
    // The node, then its ancestors while they are off the path, then the first one on it.
    const chain = await tx.$queryRaw<{ id: string; seq: number | bigint; onPath: boolean | number | bigint }[]>`
      WITH RECURSIVE up (id, parent, seq, on_path) AS (
        SELECT ${q('id')}, ${q('parentId')}, ${q('seq')}, ${q('onPath')} FROM ${q('Message')} WHERE ${q('id')} = ${nodeId} AND ${q('conversationId')} = ${conversationId}
        UNION ALL
        SELECT m.${q('id')}, m.${q('parentId')}, m.${q('seq')}, m.${q('onPath')} FROM ${q('Message')} m JOIN up ON m.${q('id')} = up.parent
        WHERE up.on_path = FALSE AND m.${q('conversationId')} = ${conversationId}
      )
      SELECT id, seq, on_path AS ${q('onPath')} FROM up`;
    const meeting = chain.find((row) => Boolean(Number(row.onPath)));
    const off = chain.filter((row) => !Number(row.onPath)).map((row) => row.id);
    await tx.message.updateMany({
      where: { conversationId, onPath: true, ...(meeting ? { seq: { gt: Number(meeting.seq) } } : {}) },
      data: { onPath: false },
    });
    for (let i = 0; i < off.length; i += CHUNK) await tx.message.updateMany({ where: { id: { in: off.slice(i, i + CHUNK) } }, data: { onPath: true } });
  }

  /** The message and everything below it, oldest first; empty when it is not in the conversation. */
  async subtree(tx: Tx, conversationId: string, nodeId: string): Promise<TreeNode[]> {
    const q = this.quote;
    const rows = await tx.$queryRaw<{ id: string; seq: number | bigint; depth: number | bigint }[]>`
      WITH RECURSIVE down (id, seq, depth) AS (
        SELECT ${q('id')}, ${q('seq')}, ${q('depth')} FROM ${q('Message')} WHERE ${q('id')} = ${nodeId} AND ${q('conversationId')} = ${conversationId}
        UNION ALL
        SELECT m.${q('id')}, m.${q('seq')}, m.${q('depth')} FROM ${q('Message')} m JOIN down ON m.${q('parentId')} = down.id
        WHERE m.${q('conversationId')} = ${conversationId}
      )
      SELECT id, seq, depth FROM down ORDER BY seq`;
    return rows.map((row) => ({ id: row.id, seq: Number(row.seq), depth: Number(row.depth) }));
  }

  /** The newest message below `nodeId` (itself when it is a leaf); below every root when null. */
  async newestLeaf(tx: Tx, conversationId: string, nodeId: string | null): Promise<TreeNode | null> {
    if (nodeId === null) {
      const row = await tx.message.findFirst({ where: { conversationId }, orderBy: { seq: 'desc' }, select: { id: true, seq: true, depth: true } });
      return row;
    }
    // A child always comes after its parent: the newest message of a subtree has no children.
    return (await this.subtree(tx, conversationId, nodeId)).at(-1) ?? null;
  }

  /** Moves the conversation's tip; the path through it must be active already. */
  setTip(tx: Tx, conversationId: string, tip: Pick<TreeNode, 'id' | 'depth'> | null): Promise<Conversation> {
    return tx.conversation.update({ where: { id: conversationId }, data: { currentMessageId: tip?.id ?? null, pathLength: tip ? tip.depth + 1 : 0 } });
  }

  async deleteAll(tx: Tx, ids: readonly string[]): Promise<void> {
    for (let i = 0; i < ids.length; i += CHUNK) await tx.message.deleteMany({ where: { id: { in: ids.slice(i, i + CHUNK) } } });
  }

  /** The ids of the path root → `nodeId` of the user's message, root first; empty when it is not theirs. */
  async pathTo(tx: Tx, userId: string, nodeId: string): Promise<string[]> {
    const q = this.quote;
    const rows = await tx.$queryRaw<{ id: string; depth: number | bigint }[]>`
      WITH RECURSIVE up (id, parent, depth) AS (
        SELECT ${q('id')}, ${q('parentId')}, ${q('depth')} FROM ${q('Message')} WHERE ${q('id')} = ${nodeId} AND ${q('userId')} = ${userId}
        UNION ALL
        SELECT m.${q('id')}, m.${q('parentId')}, m.${q('depth')} FROM ${q('Message')} m JOIN up ON m.${q('id')} = up.parent
        WHERE m.${q('userId')} = ${userId}
      )
      SELECT id, depth FROM up`;
    return rows.sort((a, b) => Number(a.depth) - Number(b.depth)).map((row) => row.id);
  }
}

