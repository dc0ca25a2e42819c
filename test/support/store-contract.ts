// Fixtures of the store contract suite (test/store-contract.test.ts): the adapter/provider pairs,
// one fresh migrated database per provider for the file, and inputs and literal expectations that
// are the same for every adapter.
import { randomBytes } from 'node:crypto';
import { openDatabase, type Database } from '../../src/store/database.ts';
import type { DatabaseProvider } from '../../src/store/dialect.ts';
import { applyMigrations } from '../../src/store/migrate.ts';
import { PgStore } from '../../src/store/pg-store.ts';
import { PrismaStore } from '../../src/store/prisma-store.ts';
import type { Message } from '../../src/store/rows.ts';
import type { NewExchange, ReplyEnd, Store } from '../../src/store/store.ts';
import { createTestDatabase, type TestDatabase } from './databases.ts';

export type ContractStore = Store;

export const ADAPTERS: { name: string; provider: DatabaseProvider; make: (db: Database) => ContractStore }[] = [
  { name: 'prisma on sqlite', provider: 'sqlite', make: (db) => new PrismaStore(db.prisma, 'sqlite') },
  { name: 'prisma on postgresql', provider: 'postgresql', make: (db) => new PrismaStore(db.prisma, 'postgresql') },
  { name: 'pg on postgresql', provider: 'postgresql', make: (db) => new PgStore(db.prisma, db.sql!) },
  { name: 'prisma on mysql', provider: 'mysql', make: (db) => new PrismaStore(db.prisma, 'mysql') },
];

// One fresh, migrated database per provider, opened when a suite first needs it.
const opened = new Map<DatabaseProvider, Promise<{ database: TestDatabase; db: Database }>>();

export function databaseFor(provider: DatabaseProvider): Promise<{ database: TestDatabase; db: Database }> {
  let entry = opened.get(provider);
  if (!entry) {
    entry = createTestDatabase(provider).then(async (database) => {
      try {
        await applyMigrations(database.url);
        return { database, db: await openDatabase({ url: database.url, poolSize: 4 }) };
      } catch (error) {
        await database.drop();
        throw error;
      }
    });
    opened.set(provider, entry);
  }
  return entry;
}

/** Closes and drops every database `databaseFor` opened. */
export async function closeDatabases(): Promise<void> {
  for (const entry of await Promise.allSettled(opened.values())) {
    if (entry.status !== 'fulfilled') continue;
    await entry.value.db.close();
    await entry.value.database.drop();
  }
  opened.clear();
}

export const newUser = () => `u-${randomBytes(6).toString('hex')}`;
/** Another user: the same id in other letter case, which must never share a row with it. */
export const intruderOf = (userId: string) => userId.toUpperCase();
export const newKey = () => `k-${randomBytes(6).toString('hex')}`;
/** The columns messagePages always returns. */
export const KEYS = ['id', 'conversationId', 'userId', 'seq'] as const;
export const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

export const exchange = (userId: string, conversationId: string | null, extra: Partial<NewExchange> = {}): NewExchange => ({
  userId,
  conversationId,
  content: 'Hello',
  tokenCount: 2,
  clientMessageId: null,
  settings: Promise.resolve({ model: 'model-a', presetId: 'preset-a' }),
  leaseMs: 60_000,
  ...extra,
});

/** A message without what differs between runs (ids, owner, times): a literal on every adapter. */
export const plain = ({ id: _id, conversationId: _c, userId: _u, createdAt: _a, updatedAt: _m, leaseExpiresAt, parentId, ...rest }: Message) => ({
  ...rest,
  leased: leaseExpiresAt !== null,
  hasParent: parentId !== null,
});

/** The literal `plain` gives for a message with these fields and the defaults elsewhere (one path: each answers the one before). */
export const message = (fields: { seq: number; role: string; content: string } & Record<string, unknown>) => ({
  depth: fields.seq - 1,
  onPath: true,
  hasParent: fields.seq > 1,
  tokenCount: null,
  metadata: null,
  status: 'COMPLETE',
  model: null,
  finishReason: null,
  promptTokens: null,
  completionTokens: null,
  error: null,
  clientMessageId: null,
  leased: false,
  ...fields,
});

/** A message as messagesBefore returns it. */
export const history = (m: Message) => ({ id: m.id, seq: m.seq, role: m.role, content: m.content, tokenCount: m.tokenCount, completionTokens: m.completionTokens, status: m.status });

export const ENDED: ReplyEnd = {
  status: 'COMPLETE',
  content: 'All done',
  error: null,
  finishReason: 'stop',
  model: 'model-z',
  metadata: { presetId: 'preset-a', context: { includedMessages: 3, omittedMessageIds: ['x'] } },
  promptTokens: 42,
  completionTokens: 7,
};
/** An end that leaves model, metadata and prompt tokens as saved. */
export const NULL_END: ReplyEnd = { status: 'FAILED', content: 'half', error: 'boom', finishReason: null, model: null, metadata: null, promptTokens: null, completionTokens: 0 };

/** Text that quoting, escaping, placeholders, normalization or a 3-byte charset would change. */
export const TEXT = [
  'emoji 😀 🇵🇹 👩‍👩‍👧‍👦 𝄞',
  'RTL: مرحبا بالعالم · שלום עולם · \u202Eevil\u202C',
  'combining: e\u0301 A\u030A n\u0303 \u0915\u094D\u0937 Z\u0351\u0361',
  `quotes: ' " \` “ ” ‘ ’ '' "" ''';`,
  'placeholders: $1 $$ $& ? ?? :name %s %_ @p1',
  'backslashes: \\ \\\\ \\n \\u0041 \\x00 \\0 \\\' \\"',
  '\ttab, CR\r\nand a trailing space ',
].join('\n');
/** The same kinds of characters, short enough for a title column. */
export const TITLE = `Ñandú 😀 مرحبا e\u0301 '"$1\\`;
