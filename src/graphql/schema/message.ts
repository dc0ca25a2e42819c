import { MessageStatus as MessageStatuses, Role as Roles } from '../../model.ts';
import type { ChatMessage } from '../../services/messages.ts';
import { builder } from '../builder.ts';

export const Role = builder.enumType('Role', { values: Object.values(Roles) });

export const MessageStatus = builder.enumType('MessageStatus', {
  description: 'STREAMING while a model writes the reply; the others are final.',
  values: Object.values(MessageStatuses),
});

export const Message = builder.prismaObject('Message', {
  fields: (t) => ({
    id: t.exposeID('id'),
    conversation: t.relation('conversation'),
    parentId: t.exposeID('parentId', { nullable: true, description: 'The message this one answers; null for a root' }),
    siblingIds: t.idList({
      description: 'The messages with the same parent (this one included), oldest first: the versions to flip between',
      // No `select`: Pothos would reload each row that came without it (a page's rows), one query each.
      resolve: (message, _, ctx) => ctx.siblings.siblingIds(message),
    }),
    siblingIndex: t.int({
      description: "This message's position in siblingIds",
      resolve: async (message, _, ctx) => (await ctx.siblings.siblingIds(message)).indexOf(message.id),
    }),
    role: t.expose('role', { type: Role }),
    content: t.exposeString('content'),
    tokenCount: t.exposeInt('tokenCount', { nullable: true }),
    metadata: t.expose('metadata', { type: 'JSON', nullable: true }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    status: t.expose('status', { type: MessageStatus }),
    model: t.exposeString('model', { nullable: true }),
    finishReason: t.exposeString('finishReason', { nullable: true }),
    promptTokens: t.exposeInt('promptTokens', { nullable: true }),
    completionTokens: t.exposeInt('completionTokens', { nullable: true }),
    error: t.exposeString('error', { nullable: true }),
  }),
});

// The column behind each field of Message: a page read for an operation reads only these.
const COLUMN_OF_FIELD: Record<string, string | null> = {
  __typename: null,
  id: 'id',
  conversation: 'conversationId',
  parentId: 'parentId',
  siblingIds: 'parentId',
  siblingIndex: 'parentId',
  role: 'role',
  content: 'content',
  tokenCount: 'tokenCount',
  metadata: 'metadata',
  createdAt: 'createdAt',
  status: 'status',
  model: 'model',
  finishReason: 'finishReason',
  promptTokens: 'promptTokens',
  completionTokens: 'completionTokens',
  error: 'error',
};

/** The columns the selected Message fields need; undefined (every column) for a field not mapped. */
export function messageColumns(fields: ReadonlySet<string>): string[] | undefined {
  const columns: string[] = [];
  for (const field of fields) {
    const column = Object.hasOwn(COLUMN_OF_FIELD, field) ? COLUMN_OF_FIELD[field] : undefined;
    if (column === undefined) return undefined;
    if (column !== null) columns.push(column);
  }
  return columns;
}

const ChatMessageRef = builder.objectRef<ChatMessage>('ChatMessage').implement({
  description: 'A message as it is sent to a model',
  fields: (t) => ({
    role: t.expose('role', { type: Role }),
    content: t.exposeString('content'),
  }),
});

const AddMessageInput = builder.inputType('AddMessageInput', {
  fields: (t) => ({
    conversationId: t.id({ description: 'Omit to start a new conversation, or to answer parentId in its own' }),
    parentId: t.id({ description: 'The message this one answers; omitted: the tip of the active path. Its branch becomes active.' }),
    role: t.field({ type: Role, required: true }),
    content: t.string({ required: true }),
    metadata: t.field({ type: 'JSON' }),
    tokenCount: t.int(),
  }),
});

builder.queryField('history', (t) =>
  t.field({
    type: [ChatMessageRef],
    description: 'The last `limit` messages (1..100) of the active path, oldest first: what would be sent to a model. NOT_FOUND for a missing or foreign conversation.',
    args: {
      conversationId: t.arg.id({ required: true }),
      limit: t.arg.int({ defaultValue: 20 }),
    },
    resolve: (_, args, ctx) => ctx.services.messages.history(ctx.viewer, args.conversationId, args.limit ?? 20),
  }),
);

builder.mutationFields((t) => ({
  addMessage: t.prismaField({
    type: 'Message',
    description: "Appends a message to the tip of the active path, or under parentId. Without either, a new conversation is created. Bumps the conversation's updatedAt.",
    args: { input: t.arg({ type: AddMessageInput, required: true }) },
    resolve: (query, _, args, ctx) => ctx.services.messages.add(ctx.viewer, args.input, query),
  }),
  clearMessages: t.int({
    description: 'Deletes every message of the conversation and keeps the conversation. Returns how many were deleted.',
    args: { conversationId: t.arg.id({ required: true }) },
    resolve: (_, args, ctx) => ctx.services.messages.clear(ctx.viewer, args.conversationId),
  }),
}));
