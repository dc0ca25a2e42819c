// A fresh, empty database per test file on each provider, dropped afterwards. Names carry the
// process id and a random part, so parallel runs and leftovers from earlier runs never collide.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as mariadb from 'mariadb';
import pg from 'pg';
import type { DatabaseProvider } from '../../src/store/dialect.ts';
import { DIALECTS } from '../../src/store/dialects/index.ts';

export const PG_ADMIN_URL = process.env.TEST_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
export const MYSQL_ADMIN_URL = process.env.TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/';

export interface TestDatabase {
  provider: DatabaseProvider;
  url: string;
  drop(): Promise<void>;
}

const uniqueName = () => `parley_t${process.pid}_${randomBytes(4).toString('hex')}`;

export async function createTestDatabase(provider: DatabaseProvider): Promise<TestDatabase> {
  const name = uniqueName();
  const dialect = DIALECTS[provider];
  if (provider === 'sqlite') {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'parley-test-'));
    return { provider, url: await dialect.createDatabase(dir, name), drop: () => rm(dir, { recursive: true, force: true }) };
  }
  const adminUrl = provider === 'postgresql' ? PG_ADMIN_URL : MYSQL_ADMIN_URL;
  return { provider, url: await dialect.createDatabase(adminUrl, name), drop: () => dialect.dropDatabase(adminUrl, name) };
}

export async function pgAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function mysqlAdmin<T>(fn: (conn: mariadb.Connection) => Promise<T>): Promise<T> {
  const u = new URL(MYSQL_ADMIN_URL);
  const conn = await mariadb.createConnection({ host: u.hostname, port: Number(u.port || 3306), user: decodeURIComponent(u.username), password: decodeURIComponent(u.password) });
  try {
    return await fn(conn);
  } finally {
    await conn.end();
  }
}

export const ALL_PROVIDERS: DatabaseProvider[] = ['sqlite', 'postgresql', 'mysql'];
