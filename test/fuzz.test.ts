// A bounded, seeded fuzz of GraphQL documents and variables generated from the schema itself,
// sent over HTTP (POST and GET), SSE and graphql-ws to a started Parley on PostgreSQL and MariaDB.
// It passes only with no internal error, no 5xx, no stack trace, SQL or file path in any answer,
// and no hang. FUZZ_SEED=<n> replays a run; FUZZ_SECONDS sets the budget per database.
import {
  getNamedType,
  isEnumType,
  isInputObjectType,
  isListType,
  isNonNullType,
  isObjectType,
  isScalarType,
  type GraphQLArgument,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLObjectType,
  type GraphQLSchema,
} from 'graphql';
import { createClient as createSseClient } from 'graphql-sse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSchema } from '../src/graphql/index.ts';
import type { DatabaseProvider } from '../src/store/dialect.ts';
import { startParley, type TestServer } from './support/parley.ts';
import { redisNamespace } from './support/redis.ts';
import { wsClient } from './support/subscriptions.ts';

const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const SECONDS = Number(process.env.FUZZ_SECONDS ?? 25);
const REQUEST_TIMEOUT_MS = 10_000;

/** mulberry32: small, fast and good enough to replay a run from its seed. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!,
    chance: (p: number) => next() < p,
  };
}
type Rng = ReturnType<typeof prng>;

const NASTY_STRINGS = [
  '',
  ' ',
  'a',
  'x'.repeat(300),
  '中'.repeat(2000),
  '\u0000',
  'a\u0000b',
  '\ud800',
  'x\udfff',
  '\ufeff\u200b\u202e',
  '👩‍👩‍👧‍👦',
  "'; DROP TABLE \"Message\"; --",
  '$1 %s \\ " `',
  'message:9999999999',
  'bWVzc2FnZTo5OTk5OTk5OTk5',
  'Y29udmVyc2F0aW9uOjk5OTk5OTk5OTk5OTk5OTk5Ojo=',
  '__proto__',
  'constructor',
  '{"a":1}',
  '2130706433',
  'http://127.0.0.1:1/',
  'javascript:alert(1)',
];
const NASTY_INTS = [0, 1, -1, 2, 20, 100, 101, 2147483647, -2147483648, 2147483648, 9007199254740991, 1e300];

/** Ids seen in answers: real conversation and message ids make deeper paths reachable. */
const knownIds: string[] = [];

function scalarValue(name: string, rng: Rng): unknown {
  switch (name) {
    case 'Int':
      return rng.chance(0.7) ? rng.pick(NASTY_INTS) : rng.int(50);
    case 'Float':
      return rng.pick([0, 0.5, 2, 2.5, -1, 1e308, 0.1]);
    case 'Boolean':
      return rng.chance(0.5);
    case 'ID':
      return knownIds.length > 0 && rng.chance(0.6) ? mangleId(rng.pick(knownIds), rng) : rng.pick(NASTY_STRINGS);
    case 'DateTime':
      return rng.pick(['2026-12-01T00:00:00.000Z', 'not a date', '', '9999-99-99']);
    case 'JSON':
      return jsonValue(rng, 0);
    default:
      return rng.pick(NASTY_STRINGS);
  }
}

function mangleId(id: string, rng: Rng): string {
  switch (rng.int(6)) {
    case 0:
      return id.toUpperCase();
    case 1:
      return `${id} `;
    case 2:
      return `${id}\u0000`;
    case 3:
      return `local:${id}`;
    default:
      return id;
  }
}

function jsonValue(rng: Rng, depth: number): unknown {
  if (depth > 3) return rng.pick(NASTY_STRINGS);
  switch (rng.int(6)) {
    case 0:
      return rng.pick(NASTY_STRINGS);
    case 1:
      return rng.pick(NASTY_INTS);
    case 2:
      return Array.from({ length: rng.int(4) }, () => jsonValue(rng, depth + 1));
    case 3:
      return Object.fromEntries(Array.from({ length: rng.int(4) }, () => [rng.pick(NASTY_STRINGS), jsonValue(rng, depth + 1)]));
    case 4:
      // Deeply nested: a stack-depth probe.
      return rng.chance(0.3) ? JSON.parse('['.repeat(3000) + ']'.repeat(3000)) : null;
    default:
      return rng.chance(0.5);
  }
}

/** A value for an input type: mostly well-typed, sometimes of the wrong type or null. */
function inputValue(type: GraphQLInputType, rng: Rng, depth = 0): unknown {
  if (rng.chance(0.04)) return rng.pick([null, 'wrong type', 42, [], {}]);
  if (isNonNullType(type)) return inputValue(type.ofType, rng, depth);
  if (rng.chance(0.08)) return null;
  if (isListType(type)) return Array.from({ length: rng.int(3) }, () => inputValue(type.ofType, rng, depth + 1));
  if (isEnumType(type)) return rng.chance(0.9) ? rng.pick(type.getValues()).name : 'NOT_A_VALUE';
  if (isInputObjectType(type)) {
    const out: Record<string, unknown> = {};
    for (const field of Object.values(type.getFields())) {
      if (isNonNullType(field.type) || rng.chance(0.6)) out[field.name] = inputValue(field.type, rng, depth + 1);
    }
    return out;
  }
  if (isScalarType(type)) return scalarValue(type.name, rng);
  return null;
}

interface Operation {
  query: string;
  variables: Record<string, unknown>;
  kind: 'query' | 'mutation' | 'subscription';
}

/** A random selection of an object type's fields, `depth` levels deep. */
function selection(type: GraphQLObjectType, rng: Rng, depth: number, vars: Map<string, { type: string; value: unknown }>): string {
  const fields = Object.values(type.getFields());
  const chosen = fields.filter(() => rng.chance(0.5));
  if (chosen.length === 0) chosen.push(rng.pick(fields));
  const parts = chosen.map((field) => fieldText(field, rng, depth, vars));
  if (rng.chance(0.1)) parts.push('__typename');
  return `{ ${parts.join(' ')} }`;
}

function fieldText(field: GraphQLField<unknown, unknown>, rng: Rng, depth: number, vars: Map<string, { type: string; value: unknown }>): string {
  const args = field.args.filter((arg) => isNonNullType(arg.type) || rng.chance(0.5)).map((arg) => argText(arg, rng, vars));
  const named = getNamedType(field.type);
  let text = field.name + (args.length > 0 ? `(${args.join(', ')})` : '');
  if (isObjectType(named)) text += depth >= 3 ? ' { __typename }' : ` ${selection(named, rng, depth + 1, vars)}`;
  return text;
}

function argText(arg: GraphQLArgument, rng: Rng, vars: Map<string, { type: string; value: unknown }>): string {
  const value = inputValue(arg.type, rng);
  // Through a variable (typed by the schema) or written inline as a literal.
  if (rng.chance(0.7)) {
    const name = `v${vars.size}`;
    vars.set(name, { type: String(arg.type), value });
    return `${arg.name}: $${name}`;
  }
  return `${arg.name}: ${literal(value)}`;
}

function literal(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return `[${value.map(literal).join(', ')}]`;
  if (typeof value === 'object') return `{ ${Object.entries(value).map(([k, v]) => `${/^[_A-Za-z][_0-9A-Za-z]*$/.test(k) ? k : 'bad_key'}: ${literal(v)}`).join(', ')} }`;
  if (typeof value === 'string') return JSON.stringify(value);
  return String(value);
}

function operation(schema: GraphQLSchema, rng: Rng): Operation {
  const kind = rng.pick(['query', 'query', 'mutation', 'mutation', 'subscription'] as const);
  const root = kind === 'query' ? schema.getQueryType()! : kind === 'mutation' ? schema.getMutationType()! : schema.getSubscriptionType()!;
  const vars = new Map<string, { type: string; value: unknown }>();
  const field = rng.pick(Object.values(root.getFields()));
  let body = `{ ${fieldText(field, rng, 1, vars)} }`;
  // Aliases, a second field or a broken document now and then.
  if (kind !== 'subscription' && rng.chance(0.2)) body = `{ a: ${fieldText(field, rng, 1, vars)} b: ${fieldText(rng.pick(Object.values(root.getFields())), rng, 1, vars)} }`;
  const declarations = [...vars].map(([name, { type }]) => `$${name}: ${type}`);
  let query = `${kind} Fuzz${declarations.length > 0 ? `(${declarations.join(', ')})` : ''} ${body}`;
  if (rng.chance(0.05)) query = query.slice(0, rng.int(query.length));
  const variables = Object.fromEntries([...vars].map(([name, { value }]) => [name, value]));
  if (rng.chance(0.05)) variables[`v${vars.size + 1}`] = 'extra';
  return { query, variables, kind };
}

// What must never reach a client.
const LEAKS = [/\bat .+\.(ts|js):\d+/, /\/work\/|node_modules|src\//, /\b(SELECT|INSERT|UPDATE|DELETE)\b.+\b(FROM|INTO|SET)\b/, /prisma/i, /invalid byte sequence|syntax error at or near|\bER_[A-Z_]+/];

interface Problem {
  transport: string;
  query: string;
  variables: unknown;
  problem: string;
}

function inspect(transport: string, op: Operation, status: number | undefined, body: string, problems: Problem[]): void {
  const report = (problem: string) => problems.push({ transport, query: op.query, variables: op.variables, problem });
  if (status !== undefined && status >= 500) report(`HTTP ${status}: ${body.slice(0, 300)}`);
  if (/INTERNAL_SERVER_ERROR|Unexpected error/.test(body)) report(`internal error: ${body.slice(0, 300)}`);
  for (const leak of LEAKS) if (leak.test(body)) report(`leak ${leak}: ${body.slice(0, 300)}`);
  for (const id of body.match(/"id":"([0-9a-f-]{36})"/g) ?? []) {
    const value = id.slice(6, -1);
    if (!knownIds.includes(value) && knownIds.length < 200) knownIds.push(value);
  }
}

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms: ${what}`)), REQUEST_TIMEOUT_MS)))]).finally(() => clearTimeout(timer));
}

async function overHttp(server: TestServer, op: Operation, rng: Rng, problems: Problem[]): Promise<void> {
  const useGet = op.kind === 'query' && rng.chance(0.3);
  const accept = rng.pick(['application/json', 'application/graphql-response+json', '*/*']);
  const response = useGet
    ? await fetch(`${server.graphqlUrl}?${new URLSearchParams({ query: op.query, variables: JSON.stringify(op.variables) })}`, { headers: { accept } })
    : await fetch(server.graphqlUrl, { method: 'POST', headers: { 'content-type': 'application/json', accept }, body: JSON.stringify({ query: op.query, variables: op.variables }) });
  inspect(useGet ? 'http-get' : 'http-post', op, response.status, await response.text(), problems);
}

async function overSse(server: TestServer, op: Operation, problems: Problem[]): Promise<void> {
  const client = createSseClient({ url: server.graphqlUrl, retryAttempts: 0 });
  try {
    await new Promise<void>((resolve) => {
      const stop = client.subscribe(op, {
        next: (value) => inspect('sse', op, undefined, JSON.stringify(value), problems),
        error: (error) => {
          inspect('sse', op, undefined, error instanceof Error ? error.message : JSON.stringify(error), problems);
          resolve();
        },
        complete: resolve,
      });
      // A live subscription that stays open is fine; it is let go after a while.
      setTimeout(() => {
        stop();
        resolve();
      }, 300);
    });
  } finally {
    client.dispose();
  }
}

async function overWs(client: ReturnType<typeof wsClient>, op: Operation, problems: Problem[]): Promise<void> {
  await new Promise<void>((resolve) => {
    const stop = client.subscribe(op, {
      next: (value) => inspect('graphql-ws', op, undefined, JSON.stringify(value), problems),
      error: (error) => {
        inspect('graphql-ws', op, undefined, error instanceof Error ? error.message : JSON.stringify(error), problems);
        resolve();
      },
      complete: resolve,
    });
    setTimeout(() => {
      stop();
      resolve();
    }, 300);
  });
}

describe.each(['postgresql', 'mysql'] as DatabaseProvider[])('fuzzing the API on %s', (provider) => {
  const redis = redisNamespace();
  let server: TestServer;
  beforeAll(async () => {
    server = await startParley({ provider, env: { REDIS_URL: 'redis://127.0.0.1:6379', REDIS_KEY_PREFIX: redis.prefix } });
  });
  afterAll(async () => {
    await server?.stop();
    await redis.cleanup();
  });

  it(`answers every generated operation without an internal error, a 5xx, a leak or a hang (seed ${SEED})`, async () => {
    console.log(`fuzz on ${provider}: FUZZ_SEED=${SEED}`);
    const schema = buildSchema();
    const rng = prng(SEED + (provider === 'mysql' ? 1 : 0));
    const problems: Problem[] = [];
    const ws = wsClient(server.graphqlUrl);
    const deadline = Date.now() + SECONDS * 1000;
    let sent = 0;
    try {
      while (Date.now() < deadline && problems.length < 20) {
        const op = operation(schema, rng);
        const transport = op.kind === 'subscription' ? rng.pick(['sse', 'ws'] as const) : rng.pick(['http', 'http', 'ws'] as const);
        const what = `${transport} ${op.query.slice(0, 200)}`;
        try {
          if (transport === 'http') await withTimeout(overHttp(server, op, rng, problems), what);
          else if (transport === 'sse') await withTimeout(overSse(server, op, problems), what);
          else await withTimeout(overWs(ws, op, problems), what);
        } catch (error) {
          problems.push({ transport, query: op.query, variables: op.variables, problem: String(error) });
        }
        sent++;
      }
      // The server is still there and healthy.
      const health = await fetch(`${server.url}/health`);
      expect(health.status).toBe(200);
    } finally {
      await ws.dispose();
    }
    expect(sent).toBeGreaterThan(50);
    expect(problems, `FUZZ_SEED=${SEED}: ${JSON.stringify(problems.slice(0, 5), null, 1).slice(0, 4000)}`).toEqual([]);
  }, (SECONDS + 40) * 1000);
});
