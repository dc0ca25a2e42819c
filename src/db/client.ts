// One Prisma client per provider, generated from prisma/<provider>/schema.prisma. The three share
// the same models, so the rest of Parley uses the SQLite client's type for all of them.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { PrismaClient } from '../generated/prisma/sqlite/client.ts';
import { mysqlConnectionOptions } from './migrate.ts';
import { databaseProvider, sqliteFilePath, type DatabaseProvider } from './provider.ts';

export type Db = PrismaClient;

/**
 * PostgreSQL only: the few statements every reply runs, sent as named (prepared once per
 * connection) statements through the pool that Prisma's adapter uses too. Through Prisma each
 * cost 0.2–0.4 ms of CPU; through the pool 0.06–0.15 ms.
 */
export interface DirectSql {
  query<Row = Record<string, unknown>>(name: string, text: string, values: unknown[]): Promise<{ rows: Row[]; rowCount: number }>;
}

export interface Database {
  provider: DatabaseProvider;
  prisma: Db;
  /** Present on PostgreSQL. */
  sql: DirectSql | null;
  /** Resolves when the database answers a trivial query. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  url: string;
  poolSize: number;
  /** Called once per SQL statement Prisma sends; tests count round trips with it. */
  onQuery?: (sql: string) => void;
}

export async function openDatabase({ url, poolSize, onQuery }: DatabaseOptions): Promise<Database> {
  const provider = databaseProvider(url);
  if (!provider) throw new Error('DATABASE_URL must start with file:, postgresql:// or mysql://');
  const log = onQuery ? [{ level: 'query' as const, emit: 'event' as const }] : [];
  // Under a burst, transactions wait for a pooled connection instead of failing after 2 s.
  const transactionOptions = { maxWait: 15_000, timeout: 15_000 };
  let prisma: Db;
  let sql: DirectSql | null = null;
  let pool: { end(): Promise<void> } | undefined;
  switch (provider) {
    case 'sqlite': {
      const file = sqliteFilePath(url);
      await mkdir(path.dirname(file), { recursive: true });
      const [{ PrismaClient }, { PrismaLibSql }] = await Promise.all([
        import('../generated/prisma/sqlite/client.ts'),
        import('@prisma/adapter-libsql'),
      ]);
      prisma = new PrismaClient({ adapter: new PrismaLibSql({ url: `file:${file}` }), log, transactionOptions });
      // WAL lets readers run beside the writer; the busy timeout covers other processes' writes.
      await prisma.$queryRawUnsafe('PRAGMA journal_mode = WAL');
      await prisma.$executeRawUnsafe('PRAGMA busy_timeout = 5000');
      break;
    }
    case 'postgresql': {
      const [{ PrismaClient }, { PrismaPg }, { default: pg }] = await Promise.all([
        import('../generated/prisma/postgresql/client.ts'),
        import('@prisma/adapter-pg'),
        import('pg'),
      ]);
      const pgPool = new pg.Pool({ connectionString: url, max: poolSize });
      // An idle connection that fails (a database restart) is dropped by the pool and replaced
      // on the next query; without a listener the error would end the process.
      pgPool.on('error', () => {});
      pool = pgPool;
      sql = {
        query: async <Row>(name: string, text: string, values: unknown[]) => {
          onQuery?.(text);
          const result = await pgPool.query({ name, text, values });
          return { rows: result.rows as Row[], rowCount: result.rowCount ?? 0 };
        },
      };
      prisma = new PrismaClient({ adapter: new PrismaPg(pgPool), log, transactionOptions }) as unknown as Db;
      break;
    }
    case 'mysql': {
      const [{ PrismaClient }, { PrismaMariaDb }] = await Promise.all([
        import('../generated/prisma/mysql/client.ts'),
        import('@prisma/adapter-mariadb'),
      ]);
      const adapter = new PrismaMariaDb({ ...mysqlConnectionOptions(url), connectionLimit: poolSize });
      prisma = new PrismaClient({ adapter, log, transactionOptions }) as unknown as Db;
      break;
    }
  }
  if (onQuery) (prisma as unknown as { $on(event: 'query', cb: (e: { query: string }) => void): void }).$on('query', (e) => onQuery(e.query));
  return {
    provider,
    prisma,
    sql,
    ping: async () => {
      await prisma.$queryRawUnsafe('SELECT 1');
    },
    close: async () => {
      await prisma.$disconnect();
      // Prisma leaves a pool it was given open.
      await pool?.end();
    },
  };
}
