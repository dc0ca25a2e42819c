// Starts a real Parley (buildApp, real HTTP port) on a fresh database, and hands out clients.
import { Client, fetchExchange, type AnyVariables, type OperationResult, type TypedDocumentNode } from '@urql/core';
import { SignJWT } from 'jose';
import { expect } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import type { DatabaseProvider } from '../../src/store/dialect.ts';
import { buildApp, type App, type AppOptions } from '../../src/server/app.ts';
import { createLogger } from '../../src/logger.ts';
import { createTestDatabase, type TestDatabase } from './databases.ts';

export const TEST_JWT_SECRET = 'test-secret-that-is-at-least-32-characters-long';

export interface TestServer {
  app: App;
  url: string;
  graphqlUrl: string;
  database: TestDatabase;
  /** A urql client; `token` goes into `Authorization: Bearer`. */
  client(token?: string): GraphQLClient;
  stop(): Promise<void>;
}

export interface StartOptions {
  provider?: DatabaseProvider;
  env?: Record<string, string>;
  onQuery?: (sql: string) => void;
  /** Reuse a database instead of creating one (it is not dropped on stop). */
  database?: TestDatabase;
  /** Collects every log line, at trace level. */
  logLines?: string[];
  /** Plugins after Parley's own (AppOptions.plugins). */
  plugins?: AppOptions['plugins'];
}

export async function startParley(options: StartOptions = {}): Promise<TestServer> {
  const owned = !options.database;
  const database = options.database ?? (await createTestDatabase(options.provider ?? 'sqlite'));
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', DATABASE_URL: database.url, LOG_LEVEL: 'silent', NODE_ENV: 'test', ...options.env });
  const logger = options.logLines
    ? createLogger('trace', { write: (line: string) => void options.logLines!.push(line) })
    : createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
  const app = await buildApp(config, { logger, onQuery: options.onQuery, plugins: options.plugins });
  const url = await app.start();
  return {
    app,
    url,
    graphqlUrl: `${url}/graphql`,
    database,
    client: (token) => new GraphQLClient(`${url}/graphql`, token),
    stop: async () => {
      await app.stop();
      if (owned) await database.drop();
    },
  };
}

export class GraphQLClient {
  private readonly urql: Client;

  constructor(url: string, token?: string) {
    this.urql = new Client({
      url,
      exchanges: [fetchExchange],
      requestPolicy: 'network-only',
      fetchOptions: (): RequestInit => ({ headers: token ? { authorization: `Bearer ${token}` } : {} }),
    });
  }

  async query<Data, Variables extends AnyVariables>(doc: TypedDocumentNode<Data, Variables>, variables: Variables): Promise<OperationResult<Data, Variables>> {
    return this.urql.query(doc, variables).toPromise();
  }

  async mutate<Data, Variables extends AnyVariables>(doc: TypedDocumentNode<Data, Variables>, variables: Variables): Promise<OperationResult<Data, Variables>> {
    return this.urql.mutation(doc, variables).toPromise();
  }

  /** The data of a successful operation; fails the test on any error. */
  async ok<Data, Variables extends AnyVariables>(doc: TypedDocumentNode<Data, Variables>, variables: Variables): Promise<Data> {
    const isMutation = doc.definitions.some((d) => d.kind === 'OperationDefinition' && d.operation === 'mutation');
    const result = isMutation ? await this.mutate(doc, variables) : await this.query(doc, variables);
    expect(result.error?.message).toBeUndefined();
    return result.data!;
  }
}

/** The single error of a failed operation: its code and message. */
export function errorOf(result: OperationResult): { code: unknown; message: string } {
  const errors = result.error?.graphQLErrors ?? [];
  expect(errors, result.error?.networkError?.message).toHaveLength(1);
  return { code: errors[0]!.extensions.code, message: errors[0]!.message };
}

export function tokenFor(userId: string, options: { secret?: string; expiresIn?: string; alg?: string } = {}): Promise<string> {
  const jwt = new SignJWT({}).setProtectedHeader({ alg: options.alg ?? 'HS256' }).setSubject(userId).setIssuedAt();
  if (options.expiresIn) jwt.setExpirationTime(options.expiresIn);
  return jwt.sign(new TextEncoder().encode(options.secret ?? TEST_JWT_SECRET));
}
