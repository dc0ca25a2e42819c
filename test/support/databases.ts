// A fresh, empty database per test file on each provider, dropped afterwards. Names carry the
// process id and a random part, so parallel runs and leftovers from earlier runs never collide.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as mariadb from 'mariadb';
import pg from 'pg';
import type { DatabaseProvider } from '../../src/db/provider.ts';

export const PG_ADMIN_URL = process.env.TEST_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
export const MYSQL_ADMIN_URL = process.env.TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/';

export interface TestDatabase {
  provider: DatabaseProvider;
  url: string;
  drop(): Promise<void>;
}

const uniqueName = () => `parley_t${process.pid}_${randomBytes(4).toString('hex')}`;

function withDatabase(adminUrl: string, database: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

export async function createTestDatabase(provider: DatabaseProvider): Promise<TestDatabase> {
  const name = uniqueName();
  switch (provider) {
    case 'sqlite': {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'parley-test-'));
      return { provider, url: `file:${path.join(dir, `${name}.db`)}`, drop: () => rm(dir, { recursive: true, force: true }) };
    }
    case 'postgresql': {
      await pgAdmin((c) => c.query(`CREATE DATABASE "${name}"`));
      return {
        provider,
        url: withDatabase(PG_ADMIN_URL, name),
        drop: async () => {
          await pgAdmin((c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
        },
      };
    }
    case 'mysql': {
      await mysqlAdmin((c) => c.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`));
      return {
        provider,
        url: withDatabase(MYSQL_ADMIN_URL, name),
        drop: async () => {
          await mysqlAdmin((c) => c.query(`DROP DATABASE IF EXISTS \`${name}\``));
        },
      };
    }
  }
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
