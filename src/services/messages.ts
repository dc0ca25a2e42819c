import { z } from 'zod';
import type { Viewer } from '../auth.ts';
import type { Db } from '../db/client.ts';
import type { Message, Prisma, Role } from '../generated/prisma/sqlite/client.ts';
import type { HistoryCache } from '../cache/history-cache.ts';
import { notFound } from '../graphql/errors.ts';
import { parseInput } from './input.ts';
import { reserveSeqs } from './sequence.ts';
import { cachedRecentMessages, loadRecentMessages } from './recent-messages.ts';

export const MAX_HISTORY_LIMIT = 100;
export const MAX_METADATA_BYTES = 64 * 1024;

export type MessageQuery = { include?: Prisma.MessageInclude; select?: Prisma.MessageSelect };

export interface ChatMessage {
  role: Role;
  content: string;
}

export interface MessageLimits {
  maxContentChars: number;
}

function addInput(limits: MessageLimits) {
  return z.object({
    conversationId: z.string().nullish(),
    role: z.enum(['SYSTEM', 'USER', 'ASSISTANT']),
    content: z
      .string()
      .refine((s) => s.trim().length > 0, 'must not be empty')
      .refine((s) => s.length <= limits.maxContentChars, `must be at most ${limits.maxContentChars} characters`),
    metadata: z
      .unknown()
      .refine((m) => m == null || JSON.stringify(m).length <= MAX_METADATA_BYTES, `must be at most ${MAX_METADATA_BYTES} bytes of JSON`)
      .nullish(),
    tokenCount: z.number().int().min(0, 'must not be negative').nullish(),
  });
}

const historyLimit = z.number().int().min(1, `must be between 1 and ${MAX_HISTORY_LIMIT}`).max(MAX_HISTORY_LIMIT, `must be between 1 and ${MAX_HISTORY_LIMIT}`);

export class MessageService {
  private readonly addSchema: ReturnType<typeof addInput>;

  constructor(
    private readonly db: Db,
    limits: MessageLimits,
    private readonly cache: HistoryCache,
  ) {
    this.addSchema = addInput(limits);
  }

  /**
   * Appends a message, creating the conversation when no id is given. The conversation row is
   * updated first: that takes its lock, hands out the next `seq` and bumps `updatedAt`.
   */
  async add(viewer: Viewer, rawInput: unknown, query: MessageQuery = {}): Promise<Message> {
    const input = parseInput(this.addSchema, rawInput, 'input');
    const append = () =>
      this.db.$transaction(async (tx) => {
        const conversation = await reserveSeqs(tx, viewer.userId, input.conversationId ?? null, 1);
        return tx.message.create({
          ...query,
          data: {
            conversationId: conversation.id,
            userId: viewer.userId,
            seq: conversation.lastSeq,
            role: input.role,
            content: input.content,
            tokenCount: input.tokenCount ?? null,
            metadata: (input.metadata ?? undefined) as Prisma.InputJsonValue | undefined,
          },
        });
      });
    // A new conversation has no cache entry to keep in step.
    return input.conversationId != null ? this.cache.writing(viewer.userId, input.conversationId, append) : append();
  }

  /** Deletes every message of the viewer's conversation; returns how many. */
  async clear(viewer: Viewer, conversationId: string): Promise<number> {
    return this.cache.writing(viewer.userId, conversationId, () =>
      this.db.$transaction(async (tx) => {
        // Touching the conversation first checks ownership and locks it against concurrent adds.
        const { count } = await tx.conversation.updateMany({ where: { id: conversationId, userId: viewer.userId }, data: { updatedAt: new Date() } });
        if (count === 0) throw notFound('conversation');
        return (await tx.message.deleteMany({ where: { conversationId } })).count;
      }),
    );
  }

  /** The newest `limit` messages of the viewer's conversation, oldest first. */
  async history(viewer: Viewer, conversationId: string, limit: number): Promise<ChatMessage[]> {
    parseInput(historyLimit, limit, 'limit');
    const newest =
      limit <= this.cache.size
        ? await cachedRecentMessages(this.db, this.cache, viewer.userId, conversationId)
        : await loadRecentMessages(this.db, viewer.userId, conversationId, limit);
    if (!newest) throw notFound('conversation');
    return newest.slice(-limit).map(({ role, content }) => ({ role, content }));
  }
}
