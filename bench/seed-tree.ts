// Writes conversations straight into a migrated database for the page-cost scenario (8): tens of
// thousands of messages would take minutes through the API. The rows are what Parley itself would
// have written: seqs 1, 2, ..., each message's parent and depth, the active path flagged, and the
// conversation's tip, path length and counters.
import { openDatabase } from '../src/store/database.ts';
import { uuid7 } from '../src/store/ids.ts';

const BATCH = 1000;

/** One conversation's shape: `length` messages on the active path, and a sibling off it before every `branchEvery`-th. */
export interface ConversationShape {
  length: number;
  branchEvery?: number;
  /** Seconds before now of its updatedAt: the list's order. */
  age: number;
}

export async function seedConversations(url: string, userId: string, shapes: ConversationShape[]): Promise<string[]> {
  const db = await openDatabase({ url, poolSize: 2 });
  const ids: string[] = [];
  try {
    let messages: Record<string, unknown>[] = [];
    // In slices: one statement has a bounded number of parameters.
    const flush = async () => {
      for (let i = 0; i < messages.length; i += BATCH) await db.prisma.message.createMany({ data: messages.slice(i, i + BATCH) as never });
      messages = [];
    };
    for (const shape of shapes) {
      const conversationId = uuid7();
      const updatedAt = new Date(Date.now() - shape.age * 1000);
      let seq = 0;
      let parentId: string | null = null;
      const add = (depth: number, onPath: boolean): string => {
        const id = uuid7();
        seq++;
        messages.push({
          id,
          conversationId,
          userId,
          seq,
          parentId,
          depth,
          onPath,
          role: depth % 2 ? 'ASSISTANT' : 'USER',
          content: `message ${seq} of a conversation ${'lorem ipsum '.repeat(6)}`,
          tokenCount: 20,
          createdAt: updatedAt,
          updatedAt,
        });
        return id;
      };
      for (let depth = 0; depth < shape.length; depth++) {
        // The older sibling, off the path: a regenerated reply or an edit replaced it.
        if (shape.branchEvery && depth > 0 && depth % shape.branchEvery === 0) add(depth, false);
        parentId = add(depth, true);
      }
      await db.prisma.conversation.create({
        data: { id: conversationId, userId, title: `conversation ${ids.length}`, lastSeq: seq, currentMessageId: parentId, pathLength: shape.length, createdAt: updatedAt, updatedAt },
      });
      if (messages.length >= BATCH) await flush();
      ids.push(conversationId);
    }
    await flush();
    // Fresh statistics, as autovacuum would gather after a bulk load: the planner judges by them.
    await db.prisma.$executeRawUnsafe('ANALYZE');
  } finally {
    await db.close();
  }
  return ids;
}
