// What differs between the databases Parley runs on, as one interface: each provider implements
// it once in src/store/dialects/. Nothing else switches on the provider.
import type { PrismaClient } from '../generated/prisma/sqlite/client.ts';

import type { DatabaseProvider } from '../config.ts';

export type { DatabaseProvider };

/** The Prisma client; the three providers' generated clients have one shape. */
export type Db = PrismaClient;

/** PostgreSQL's named statements (prepared once per connection), through the pool Prisma uses too. */
export interface DirectSql {
  query<Row = Record<string, unknown>>(name: string, text: string, values: unknown[]): Promise<{ rows: Row[]; rowCount: number }>;
}

export interface ClientOptions {
  poolSize: number;
  log: { level: 'query'; emit: 'event' }[];
  transactionOptions: { maxWait: number; timeout: number };
  onQuery?: (sql: string) => void;
}

export interface OpenedClient {
  prisma: Db;
  /** Present where the store has statements of its own (PostgreSQL). */
  sql: DirectSql | null;
  /** Ends what Prisma does not end itself (a pool it was given). */
  close(): Promise<void>;
}

/** The few operations the migration runner needs. */
export interface MigrationConnection {
  /** Runs a script that may hold several statements. */
  script(sql: string): Promise<void>;
  /** Runs one statement; `?` placeholders. */
  query<Row>(sql: string, params?: unknown[]): Promise<Row[]>;
  /** Excludes other runners (Parley's and Prisma's own) until close. */
  lock(): Promise<void>;
  /** After each migration: fails when it left what the database could not check while it ran. */
  verify(): Promise<void>;
  close(): Promise<void>;
  migrationsTableDdl: string;
  now: string;
}

export interface Dialect {
  provider: DatabaseProvider;
  openClient(url: string, options: ClientOptions): Promise<OpenedClient>;
  connectForMigrations(url: string): Promise<MigrationConnection>;
  /** Creates an empty database next to the admin URL's and returns its URL (tests, tooling). */
  createDatabase(adminUrl: string, name: string): Promise<string>;
  dropDatabase(adminUrl: string, name: string): Promise<void>;
}

export class MigrationError extends Error {
  override name = 'MigrationError';
}

/** Host, port, user, password and database of a server's URL, decoded. */
export function urlConnectionFields(url: string, defaultPort: number) {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: u.port ? Number(u.port) : defaultPort,
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: decodeURIComponent(u.pathname.slice(1)),
  };
}

/** The same server's URL, naming another database. */
export function withDatabase(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}
