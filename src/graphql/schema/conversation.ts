import { queryFromInfo } from '@pothos/plugin-prisma';
import { builder } from '../builder.ts';
import { selectedFields } from '../selection.ts';
import { Message, messageColumns } from './message.ts';

export const Conversation = builder.prismaObject('Conversation', {
  fields: (t) => ({
    id: t.exposeID('id'),
    title: t.exposeString('title', { nullable: true }),
    archived: t.exposeBoolean('archived'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
    currentMessageId: t.exposeID('currentMessageId', { nullable: true, description: 'The tip of the active path; null when the conversation is empty' }),
    messageCount: t.int({ description: 'How many messages the active path holds', resolve: (conversation, _, ctx) => ctx.messagePages.count(conversation.id) }),
    messages: t.connection(
      {
        type: Message,
        description: 'The active path, root to tip (oldest first). Relay connection: edges { cursor node }, pageInfo.',
        resolve: (conversation, args, ctx, info) => ctx.messagePages.load(conversation.id, args, messageColumns(selectedFields(info, ['edges', 'node']))),
      },
      { name: 'MessageConnection' },
      { name: 'MessageEdge' },
    ),
  }),
});

const CreateConversationInput = builder.inputType('CreateConversationInput', {
  fields: (t) => ({ title: t.string() }),
});

const UpdateConversationInput = builder.inputType('UpdateConversationInput', {
  fields: (t) => ({
    id: t.id({ required: true }),
    title: t.string({ description: 'null clears the title; omitted leaves it' }),
    archived: t.boolean(),
  }),
});

builder.queryFields((t) => ({
  conversation: t.prismaField({
    type: 'Conversation',
    nullable: true,
    description: "null when it does not exist or is not the viewer's",
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _, args, ctx) => ctx.services.conversations.find(ctx.viewer, args.id, query),
  }),
  conversations: t.connection(
    {
      type: Conversation,
      description: "The viewer's conversations, most recently updated first. Relay connection.",
      args: { archived: t.arg.boolean({ defaultValue: false, description: 'null lists archived and active ones' }) },
      resolve: (_, args, ctx, info) =>
        ctx.services.conversations.list(ctx.viewer, args, queryFromInfo({ context: ctx, info, path: ['edges', 'node'] }), {
          withViewerEventSeq: selectedFields(info, []).has('viewerEventSeq'),
        }),
    },
    {
      name: 'ConversationConnection',
      fields: (t) => ({
        viewerEventSeq: t.int({
          description: "The viewer's newest viewer event seq, read before the page: subscribe to viewerEvents after it, and nothing falls between",
          resolve: (connection, _, ctx) => (connection as { viewerEventSeq?: number }).viewerEventSeq ?? ctx.services.liveEvents.viewerEventSeq(ctx.viewer),
        }),
      }),
    },
    { name: 'ConversationEdge' },
  ),
}));

builder.mutationFields((t) => ({
  createConversation: t.prismaField({
    type: 'Conversation',
    args: { input: t.arg({ type: CreateConversationInput }) },
    resolve: (query, _, args, ctx) => ctx.services.conversations.create(ctx.viewer, args.input, query),
  }),
  updateConversation: t.prismaField({
    type: 'Conversation',
    args: { input: t.arg({ type: UpdateConversationInput, required: true }) },
    resolve: (query, _, args, ctx) => ctx.services.conversations.update(ctx.viewer, args.input, query),
  }),
  deleteConversation: t.id({
    description: "Deletes the conversation and its messages. Returns the deleted conversation's id.",
    args: { id: t.arg.id({ required: true }) },
    resolve: (_, args, ctx) => ctx.services.conversations.delete(ctx.viewer, args.id),
  }),
}));
