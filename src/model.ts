// The data model's enums, defined once in the Prisma schema and generated from it. Every layer
// uses these; the three provider clients generate identical values.
export { MessageStatus, Role } from './generated/prisma/sqlite/enums.ts';
import type { MessageStatus } from './generated/prisma/sqlite/enums.ts';

/** Every status but STREAMING: how a reply ended. */
export type FinalStatus = Exclude<MessageStatus, 'STREAMING'>;

/** What a conversation event says happened (Subscription.conversationEvents). */
export const ConversationEventKind = {
  MESSAGE_ADDED: 'MESSAGE_ADDED',
  MESSAGE_UPDATED: 'MESSAGE_UPDATED',
  MESSAGE_DELETED: 'MESSAGE_DELETED',
  BRANCH_SWITCHED: 'BRANCH_SWITCHED',
  CONVERSATION_UPDATED: 'CONVERSATION_UPDATED',
  CLEARED: 'CLEARED',
  DELETED: 'DELETED',
  RESYNC: 'RESYNC',
} as const;
export type ConversationEventKind = (typeof ConversationEventKind)[keyof typeof ConversationEventKind];

/** What a viewer event says happened to the viewer's list of conversations (Subscription.viewerEvents). */
export const ViewerEventKind = {
  CONVERSATION_CREATED: 'CONVERSATION_CREATED',
  CONVERSATION_UPDATED: 'CONVERSATION_UPDATED',
  CONVERSATION_DELETED: 'CONVERSATION_DELETED',
  RESYNC: 'RESYNC',
} as const;
export type ViewerEventKind = (typeof ViewerEventKind)[keyof typeof ViewerEventKind];
