import { z } from 'zod';
import type { Viewer } from '../auth.ts';
import type { HistoryCache } from '../cache/history-cache.ts';
import type { Db } from '../db/client.ts';
import type { Conversation, Prisma } from '../generated/prisma/sqlite/client.ts';
import { notFound } from '../graphql/errors.ts';
import { parseInput } from './input.ts';
import { cursorCodec, pageWindow, toConnection, type Connection, type PageArgs } from './pagination.ts';

export const MAX_TITLE_LENGTH = 200;

export type ConversationQuery = { include?: Prisma.ConversationInclude; select?: Prisma.ConversationSelect };

const title = z.string().trim().max(MAX_TITLE_LENGTH, `must be at most ${MAX_TITLE_LENGTH} characters`).nullish();
const createInput = z.object({ title }).nullish();
const updateInput = z.object({ id: z.string(), title, archived: z.boolean().nullish() });

interface ConversationKey {
  updatedAt: Date;
  id: string;
}

const conversationCursor = cursorCodec<ConversationKey>(
  'conversation',
  (key) => `${key.updatedAt.getTime()}:${key.id}`,
  (text) => {
    const match = /^(\d{1,15}):(.+)$/s.exec(text);
    return match ? { updatedAt: new Date(Number(match[1])), id: match[2]! } : undefined;
  },
);

/** Rows strictly after `key` in the list order: newest `updatedAt` first, then `id` descending. */
function after(key: ConversationKey): Prisma.ConversationWhereInput {
  return { OR: [{ updatedAt: { lt: key.updatedAt } }, { updatedAt: key.updatedAt, id: { lt: key.id } }] };
}

function before(key: ConversationKey): Prisma.ConversationWhereInput {
  return { OR: [{ updatedAt: { gt: key.updatedAt } }, { updatedAt: key.updatedAt, id: { gt: key.id } }] };
}

export class ConversationService {
  constructor(
    private readonly db: Db,
    private readonly cache: HistoryCache,
  ) {}

  /** The viewer's conversation, or null for a missing or foreign id. */
  find(viewer: Viewer, id: string, query: ConversationQuery = {}): Promise<Conversation | null> {
    return this.db.conversation.findFirst({ ...query, where: { id, userId: viewer.userId } });
  }

  async list(viewer: Viewer, args: PageArgs & { archived?: boolean | null }, query: ConversationQuery = {}): Promise<Connection<Conversation>> {
    const window = pageWindow(args, conversationCursor);
    const conditions: Prisma.ConversationWhereInput[] = [{ userId: viewer.userId }];
    if (args.archived != null) conditions.push({ archived: args.archived });
    if (window.after) conditions.push(after(window.after));
    if (window.before) conditions.push(before(window.before));
    const direction = window.fromEnd ? 'asc' : 'desc';
    const rows = await this.db.conversation.findMany({
      ...query,
      where: { AND: conditions },
      orderBy: [{ updatedAt: direction }, { id: direction }],
      take: window.limit + 1,
    });
    return toConnection(rows, window, (c) => ({ updatedAt: c.updatedAt, id: c.id }), conversationCursor);
  }

  create(viewer: Viewer, rawInput: unknown, query: ConversationQuery = {}): Promise<Conversation> {
    const input = parseInput(createInput, rawInput, 'input');
    return this.db.conversation.create({ ...query, data: { userId: viewer.userId, title: input?.title || null } });
  }

  async update(viewer: Viewer, rawInput: unknown, query: ConversationQuery = {}): Promise<Conversation> {
    const input = parseInput(updateInput, rawInput, 'input');
    const data: Prisma.ConversationUpdateManyMutationInput = {};
    if (input.title !== undefined) data.title = input.title || null;
    if (input.archived != null) data.archived = input.archived;
    return this.db.$transaction(async (tx) => {
      const { count } = await tx.conversation.updateMany({ where: { id: input.id, userId: viewer.userId }, data });
      if (count === 0) throw notFound('conversation');
      return tx.conversation.findUniqueOrThrow({ ...query, where: { id: input.id } });
    });
  }

  /** Deletes the conversation and, by cascade, its messages. */
  async delete(viewer: Viewer, id: string): Promise<string> {
    const { count } = await this.cache.writing(viewer.userId, id, () => this.db.conversation.deleteMany({ where: { id, userId: viewer.userId } }));
    if (count === 0) throw notFound('conversation');
    return id;
  }
}
