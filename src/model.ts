// The data model's enums, defined once in the Prisma schema and generated from it. Every layer
// uses these; the three provider clients generate identical values.
export { MessageStatus, Role } from './generated/prisma/sqlite/enums.ts';
import type { MessageStatus } from './generated/prisma/sqlite/enums.ts';

/** Every status but STREAMING: how a reply ended. */
export type FinalStatus = Exclude<MessageStatus, 'STREAMING'>;
