// Importing each module registers its types and fields on the builder.
import { lexicographicSortSchema, type GraphQLSchema } from 'graphql';
import { builder } from './builder.ts';
import './schema/scalars.ts';
import './schema/system.ts';
import './schema/message.ts';
import './schema/conversation.ts';
import './schema/user-config.ts';
import './schema/chat.ts';
import './schema/branches.ts';
import './schema/live-events.ts';

export function buildSchema(): GraphQLSchema {
  return lexicographicSortSchema(builder.toSchema());
}
