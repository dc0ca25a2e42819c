// The rows the store hands out, typed by the generated Prisma client (the three providers'
// clients have one shape). Layers above the store use these names, never the client itself.
import { Prisma, type Conversation, type Message, type UserConfig } from '../generated/prisma/sqlite/client.ts';

export type { Conversation, Message };
export type UserConfigRow = UserConfig;

/** JSON as a column holds it. */
export type JsonObject = Prisma.InputJsonObject;
export type JsonValue = Prisma.InputJsonValue;

/** What the GraphQL layer asks a row to carry along (Pothos' Prisma plugin builds it). */
export type MessageQuery = { include?: Prisma.MessageInclude; select?: Prisma.MessageSelect };
export type ConversationQuery = { include?: Prisma.ConversationInclude; select?: Prisma.ConversationSelect };

/** Every column of Message, in the model's order. */
export const MESSAGE_COLUMNS: readonly string[] = Object.values(Prisma.MessageScalarFieldEnum);
