import { queryFromInfo } from '@pothos/plugin-prisma';
import type { SendResult } from '../../chat/chat-service.ts';
import type { StreamEvent } from '../../streaming/events.ts';
import { builder } from '../builder.ts';
import { Conversation } from './conversation.ts';
import { Message, MessageStatus } from './message.ts';

type InputFields = Parameters<NonNullable<Parameters<typeof builder.inputType>[1]['fields']>>[0];

/** The options of every operation that starts a reply. */
export const generationOptions = (t: InputFields) => ({
  clientMessageId: t.string({ description: 'Idempotency key: a retry with the same key returns the first call’s messages and never calls the model twice' }),
  presetId: t.string(),
  model: t.string(),
  temperature: t.float(),
  maxTokens: t.int(),
});

const SendMessageInput = builder.inputType('SendMessageInput', {
  fields: (t) => ({
    conversationId: t.id({ description: 'Omit to start a new conversation, or to answer parentId in its own' }),
    parentId: t.id({ description: 'The message to answer; omitted: the tip of the active path. Its branch becomes active.' }),
    content: t.string({ required: true }),
    ...generationOptions(t),
  }),
});

// Rows as sendMessage saved them; relations asked for below them load on demand.
export const SendMessagePayload = builder.objectRef<SendResult>('SendMessagePayload').implement({
  fields: (t) => ({
    conversation: t.field({ type: Conversation, resolve: (payload) => payload.conversation }),
    userMessage: t.field({ type: Message, resolve: (payload) => payload.userMessage }),
    assistantMessage: t.field({ type: Message, resolve: (payload) => payload.assistantMessage }),
  }),
});

type MessageStreamEventShape = StreamEvent & { messageId: string };

const MessageStreamEvent = builder.objectRef<MessageStreamEventShape>('MessageStreamEvent').implement({
  fields: (t) => ({
    messageId: t.exposeID('messageId'),
    seq: t.exposeInt('seq', { description: '0, 1, 2, ... in order; every event has the next number' }),
    delta: t.exposeString('delta', { description: 'text appended by this event; empty on the terminal event' }),
    done: t.exposeBoolean('done', { description: 'true on the terminal event, which is always sent last' }),
    status: t.expose('status', { type: MessageStatus }),
    error: t.string({ nullable: true, resolve: (event) => event.error ?? null }),
    // Planned only on the terminal event: the other events carry no message, so no query.
    message: t.field({
      type: Message,
      nullable: true,
      description: 'the saved message, on the terminal event',
      resolve: (event, _, ctx, info) => (event.done ? ctx.services.messages.find(ctx.viewer, event.messageId, queryFromInfo({ context: ctx, info })) : null),
    }),
  }),
});

builder.mutationFields((t) => ({
  sendMessage: t.field({
    type: SendMessagePayload,
    description: 'Saves the user message and a STREAMING assistant message, then generates the reply in the background. Follow it with messageStream.',
    args: { input: t.arg({ type: SendMessageInput, required: true }) },
    resolve: (_, args, ctx) => ctx.services.chat.send(ctx.viewer, args.input),
  }),
  stopGeneration: t.prismaField({
    type: 'Message',
    description: 'Idempotent, works from any instance. Aborts the model call and keeps the partial reply with status STOPPED. A finished message is returned unchanged.',
    args: { messageId: t.arg.id({ required: true }) },
    resolve: async (query, _, args, ctx) => {
      const message = await ctx.services.chat.stop(ctx.viewer, args.messageId);
      return query.include || query.select ? ((await ctx.services.messages.find(ctx.viewer, message.id, query)) ?? message) : message;
    },
  }),
}));

builder.subscriptionField('messageStream', (t) =>
  t.field({
    type: MessageStreamEvent,
    description:
      'Every event after `afterSeq` (default: from the start), then live events, then the terminal event. Subscribing after the message finished replays it and ends.',
    args: {
      messageId: t.arg.id({ required: true }),
      afterSeq: t.arg.int({ description: 'The last seq already received; omit to start from the first event' }),
    },
    subscribe: (_, args, ctx) => ctx.services.chat.follow(ctx.viewer, args.messageId, args.afterSeq ?? -1, ctx.shutdown),
    resolve: (event) => event,
  }),
);
