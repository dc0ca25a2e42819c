import { Prisma, type Conversation } from '../generated/prisma/sqlite/client.ts';
import { notFound } from '../graphql/errors.ts';

/**
 * Hands out the next `count` message positions of the user's conversation (a new one when no id
 * is given) in one statement. Updating the row takes its lock, so concurrent writers queue up
 * here and never share a seq; it also bumps updatedAt. Returns the conversation after the update.
 */
export async function reserveSeqs(tx: Prisma.TransactionClient, userId: string, conversationId: string | null, count: number): Promise<Conversation> {
  if (conversationId === null) return tx.conversation.create({ data: { userId, lastSeq: count } });
  try {
    return await tx.conversation.update({ where: { id: conversationId, userId }, data: { lastSeq: { increment: count } } });
  } catch (error) {
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2025') throw notFound('conversation');
    throw error;
  }
}
