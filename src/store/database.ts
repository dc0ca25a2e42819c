// Opens the database a DATABASE_URL names, with the store that fits it: the Prisma store, or on
// PostgreSQL the one with named statements for the hot paths.
import { DIALECTS, databaseProvider, UNSUPPORTED_URL } from './dialects/index.ts';
import type { DatabaseProvider, Db, DirectSql } from './dialect.ts';
import { PgStore } from './pg-store.ts';
import { PrismaStore } from './prisma-store.ts';
import type { Store } from './store.ts';

export type { Db, DirectSql };

export interface Database {
  provider: DatabaseProvider;
  /** For Pothos' Prisma plugin and tests; services use `store`. */
  prisma: Db;
  /** Present on PostgreSQL. */
  sql: DirectSql | null;
  store: Store;
  /** Resolves when the database answers a trivial query. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  url: string;
  poolSize: number;
  /** Called once per SQL statement sent; tests count round trips with it. */
  onQuery?: (sql: string) => void;
}

export async function openDatabase({ url, poolSize, onQuery }: DatabaseOptions): Promise<Database> {
  const provider = databaseProvider(url);
  if (!provider) throw new Error(UNSUPPORTED_URL);
  const log = onQuery ? [{ level: 'query' as const, emit: 'event' as const }] : [];
  // Under a burst, transactions wait for a pooled connection instead of failing after 2 s.
  const transactionOptions = { maxWait: 15_000, timeout: 15_000 };
  const client = await DIALECTS[provider].openClient(url, { poolSize, log, transactionOptions, onQuery });
  const { prisma, sql } = client;
  if (onQuery) (prisma as unknown as { $on(event: 'query', cb: (e: { query: string }) => void): void }).$on('query', (e) => onQuery(e.query));
  return {
    provider,
    prisma,
    sql,
    store: sql ? new PgStore(prisma, sql) : new PrismaStore(prisma, provider),
    ping: async () => {
      await prisma.$queryRawUnsafe('SELECT 1');
    },
    close: async () => {
      await prisma.$disconnect();
      await client.close();
    },
  };
}
