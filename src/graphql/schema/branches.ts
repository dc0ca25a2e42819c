import type { DeletedMessages } from '../../chat/branches.ts';
import type { EditResult } from '../../chat/chat-service.ts';
import { builder } from '../builder.ts';
import { generationOptions, SendMessagePayload } from './chat.ts';
import { Conversation } from './conversation.ts';
import { Message } from './message.ts';

const RegenerateInput = builder.inputType('RegenerateInput', {
  fields: (t) => ({
    messageId: t.id({ required: true, description: 'An assistant message answering a user message' }),
    ...generationOptions(t),
  }),
});

const EditMessageInput = builder.inputType('EditMessageInput', {
  fields: (t) => ({
    messageId: t.id({ required: true }),
    content: t.string({ required: true }),
    ...generationOptions(t),
  }),
});

const ForkConversationInput = builder.inputType('ForkConversationInput', {
  fields: (t) => ({
    messageId: t.id({ required: true, description: 'The last message to copy' }),
    title: t.string({ description: "Omitted: the original's title" }),
  }),
});

const EditMessagePayload = builder.objectRef<EditResult>('EditMessagePayload').implement({
  fields: (t) => ({
    conversation: t.field({ type: Conversation, resolve: (payload) => payload.conversation }),
    userMessage: t.field({ type: Message, description: 'The new message, whatever its role', resolve: (payload) => payload.userMessage }),
    assistantMessage: t.field({ type: Message, nullable: true, description: 'The new reply to an edited user message; null when nothing is generated', resolve: (payload) => payload.assistantMessage }),
  }),
});

const DeleteMessagePayload = builder.objectRef<DeletedMessages>('DeleteMessagePayload').implement({
  fields: (t) => ({
    deletedIds: t.idList({ description: 'The message and everything below it, oldest first', resolve: (payload) => payload.deletedIds }),
    conversation: t.field({ type: Conversation, resolve: (payload) => payload.conversation }),
  }),
});

builder.mutationFields((t) => ({
  regenerate: t.field({
    type: SendMessagePayload,
    description: 'A new reply to the same parent as messageId (an assistant message), streamed like sendMessage; the new branch becomes active.',
    args: { input: t.arg({ type: RegenerateInput, required: true }) },
    resolve: (_, args, ctx) => ctx.services.chat.regenerate(ctx.viewer, args.input),
  }),
  editMessage: t.field({
    type: EditMessagePayload,
    description:
      'A sibling of a USER message with new content and a fresh reply; or, for SYSTEM/ASSISTANT, a sibling with new content and no generation. The new branch becomes active.',
    args: { input: t.arg({ type: EditMessageInput, required: true }) },
    resolve: (_, args, ctx) => ctx.services.chat.edit(ctx.viewer, args.input),
  }),
  switchBranch: t.field({
    type: Conversation,
    description: 'Makes the path through messageId active; the tip becomes the newest leaf below it.',
    args: { messageId: t.arg.id({ required: true }) },
    resolve: (_, args, ctx) => ctx.services.chat.switchBranch(ctx.viewer, args.messageId),
  }),
  forkConversation: t.field({
    type: Conversation,
    description: 'A new conversation holding a copy of the path from the root to messageId.',
    args: { input: t.arg({ type: ForkConversationInput, required: true }) },
    resolve: (_, args, ctx) => ctx.services.chat.fork(ctx.viewer, args.input),
  }),
  deleteMessage: t.field({
    type: DeleteMessagePayload,
    description: "Deletes the message and everything below it; a reply still generating is stopped first. The tip moves to the parent's newest other branch, or to the parent.",
    args: { id: t.arg.id({ required: true }) },
    resolve: (_, args, ctx) => ctx.services.chat.deleteMessage(ctx.viewer, args.id),
  }),
}));
