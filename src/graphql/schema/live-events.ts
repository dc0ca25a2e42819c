import { queryFromInfo } from '@pothos/plugin-prisma';
import { ConversationEventKind as ConversationEventKinds, ViewerEventKind as ViewerEventKinds } from '../../model.ts';
import type { ConversationEvent as ConversationEventShape, ViewerEvent as ViewerEventShape } from '../../services/live-events.ts';
import { builder } from '../builder.ts';
import { Conversation } from './conversation.ts';
import { Message } from './message.ts';

const ConversationEventKind = builder.enumType('ConversationEventKind', {
  values: {
    MESSAGE_ADDED: { description: 'Any new message: user, system, assistant (a STREAMING one included: follow it with messageStream)' },
    MESSAGE_UPDATED: { description: 'A message reached a final status, or its content or metadata changed' },
    MESSAGE_DELETED: { description: 'deleteMessage: the message named and everything below it are gone; the active path may have moved' },
    BRANCH_SWITCHED: { description: 'Another branch is active: currentMessageId and the path changed' },
    CONVERSATION_UPDATED: { description: 'Title or archived changed' },
    CLEARED: { description: 'clearMessages: every message is gone' },
    DELETED: { description: 'The conversation is gone; the subscription then ends' },
    RESYNC: { description: 'Events after afterSeq are no longer held: refetch, then carry on from this seq' },
  } satisfies Record<keyof typeof ConversationEventKinds, object>,
});

const ViewerEventKind = builder.enumType('ViewerEventKind', {
  values: {
    CONVERSATION_CREATED: {},
    CONVERSATION_UPDATED: { description: 'Title or archived changed' },
    CONVERSATION_DELETED: {},
    RESYNC: { description: 'Events after afterSeq are no longer held: refetch the list, then carry on from this seq' },
  } satisfies Record<keyof typeof ViewerEventKinds, object>,
});

const ConversationEvent = builder.objectRef<ConversationEventShape>('ConversationEvent').implement({
  fields: (t) => ({
    seq: t.exposeInt('seq', { description: 'Per conversation: 0, 1, 2, … with no gaps' }),
    kind: t.expose('kind', { type: ConversationEventKind }),
    conversationId: t.exposeID('conversationId'),
    messageId: t.exposeID('messageId', { nullable: true }),
    message: t.field({
      type: Message,
      nullable: true,
      description: 'The message the event concerns, as saved when the event is delivered; null when it no longer exists',
      resolve: (event, _, ctx, info) => (event.messageId === null ? null : ctx.services.messages.find(ctx.viewer, event.messageId, queryFromInfo({ context: ctx, info }))),
    }),
    conversation: t.field({
      type: Conversation,
      nullable: true,
      description: 'On CONVERSATION_UPDATED: the conversation as it is now',
      resolve: (event, _, ctx, info) =>
        event.kind === 'CONVERSATION_UPDATED' ? ctx.services.conversations.find(ctx.viewer, event.conversationId, queryFromInfo({ context: ctx, info })) : null,
    }),
  }),
});

const ViewerEvent = builder.objectRef<ViewerEventShape>('ViewerEvent').implement({
  fields: (t) => ({
    seq: t.exposeInt('seq', { description: 'Per user: 0, 1, 2, … with no gaps' }),
    kind: t.expose('kind', { type: ViewerEventKind }),
    conversationId: t.exposeID('conversationId', { description: 'Empty on RESYNC' }),
    conversation: t.field({
      type: Conversation,
      nullable: true,
      description: 'The conversation as it is now; null on CONVERSATION_DELETED and RESYNC, or once it is gone',
      resolve: (event, _, ctx, info) =>
        event.kind === 'CONVERSATION_DELETED' || event.kind === 'RESYNC' ? null : ctx.services.conversations.find(ctx.viewer, event.conversationId, queryFromInfo({ context: ctx, info })),
    }),
  }),
});

builder.prismaObjectFields(Conversation, (t) => ({
  lastEventSeq: t.exposeInt('lastEventSeq', { description: 'The seq of its newest event: subscribe with afterSeq set to this after a fetch, and nothing falls between' }),
  generating: t.prismaField({
    type: ['Message'],
    description: 'Messages of this conversation that are STREAMING now: what a tab opening mid-reply follows with messageStream',
    resolve: (query, conversation, _, ctx) => ctx.services.liveEvents.generating(ctx.viewer, conversation.id, query),
  }),
}));

builder.queryField('viewerEventSeq', (t) =>
  t.int({
    description: "The seq of the viewer's newest viewer event; -1 before the first",
    resolve: (_, __, ctx) => ctx.services.liveEvents.viewerEventSeq(ctx.viewer),
  }),
);

builder.subscriptionFields((t) => ({
  conversationEvents: t.field({
    type: ConversationEvent,
    description: 'Everything that changes one conversation, from any client and any instance, in order, each once. NOT_FOUND for a missing or foreign conversation.',
    args: {
      conversationId: t.arg.id({ required: true }),
      afterSeq: t.arg.int({ description: 'The last seq already received (-1: from the first); omit to start with the next event' }),
    },
    subscribe: (_, args, ctx) => ctx.services.liveEvents.followConversation(ctx.viewer, args.conversationId, args.afterSeq, ctx.shutdown),
    resolve: (event) => event,
  }),
  viewerEvents: t.field({
    type: ViewerEvent,
    description: "Changes to the viewer's list of conversations, in order, each once",
    args: { afterSeq: t.arg.int({ description: 'The last seq already received (-1: from the first); omit to start with the next event' }) },
    subscribe: (_, args, ctx) => ctx.services.liveEvents.followViewer(ctx.viewer, args.afterSeq, ctx.shutdown),
    resolve: (event) => event,
  }),
}));
