// The conversation a new message goes to when it names a parent: the parent's own, which a
// conversation named beside it must be. Anything else (missing, another user's, another
// conversation's) is refused the same way, so that the answer tells nothing about other users.
import type { Viewer } from '../auth.ts';
import { badInput } from '../errors.ts';
import type { ParentChoice, Store } from '../store/store.ts';
import { isStorableText } from './input.ts';

const NOT_A_PARENT = 'must be a message of the conversation';

export async function resolveParent(store: Store, viewer: Viewer, conversationId: string | null, parentId: ParentChoice): Promise<{ conversationId: string | null; parentId: ParentChoice }> {
  if (parentId === undefined || parentId === null) return { conversationId, parentId: undefined };
  if (!isStorableText(parentId)) throw badInput('input.parentId', NOT_A_PARENT);
  const parent = await store.findMessage(viewer.userId, parentId, { select: { conversationId: true } });
  if (!parent || (conversationId !== null && parent.conversationId !== conversationId)) throw badInput('input.parentId', NOT_A_PARENT);
  return { conversationId: parent.conversationId, parentId };
}
