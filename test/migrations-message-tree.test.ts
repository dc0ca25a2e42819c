// Migration 20261208000000_message_tree on a populated database (over 10,000 messages), on SQLite,
// PostgreSQL and MariaDB: every row and column of Conversation, Message, UserConfig and ViewerState
// is kept, each message's parent is the message before it in seq order within its conversation
// (null for the first), depth is its 0-based position, every message is on the active path, and
// each conversation's tip is its highest-seq message. Message ids sort in another order than their
// seqs, createdAt runs with, against or level with seq, seqs have gaps, and conversation ids differ
// only by case or a trailing space, so that a migration ordering by id or createdAt, linking by
// seq - 1, reading the tip from lastSeq, or matching ids loosely fails here.
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseProvider, MigrationConnection } from '../src/store/dialect.ts';
import { DIALECTS } from '../src/store/dialects/index.ts';
import { applyMigrations, migrationsDir, readMigrations } from '../src/store/migrate.ts';
import { ALL_PROVIDERS, createTestDatabase, type TestDatabase } from './support/databases.ts';

const MESSAGE_TREE = '20261208000000_message_tree';

// ---------------------------------------------------------------------------------------------
// The columns before the migration, and how each driver's values are normalized for comparison.

type Kind = 'text' | 'int' | 'float' | 'bool' | 'date' | 'json';

const OLD_COLUMNS = {
  Conversation: { id: 'text', userId: 'text', title: 'text', archived: 'bool', lastSeq: 'int', lastEventSeq: 'int', createdAt: 'date', updatedAt: 'date' },
  Message: {
    id: 'text',
    conversationId: 'text',
    userId: 'text',
    seq: 'int',
    role: 'text',
    content: 'text',
    tokenCount: 'int',
    metadata: 'json',
    status: 'text',
    model: 'text',
    finishReason: 'text',
    promptTokens: 'int',
    completionTokens: 'int',
    error: 'text',
    clientMessageId: 'text',
    createdAt: 'date',
    updatedAt: 'date',
    leaseExpiresAt: 'date',
  },
  UserConfig: {
    userId: 'text',
    presetId: 'text',
    model: 'text',
    baseUrl: 'text',
    apiKeyEncrypted: 'text',
    maxTokens: 'int',
    temperature: 'float',
    systemPrompt: 'text',
    contextTokens: 'int',
    createdAt: 'date',
    updatedAt: 'date',
  },
  ViewerState: { userId: 'text', lastEventSeq: 'int' },
} satisfies Record<string, Record<string, Kind>>;

type Table = keyof typeof OLD_COLUMNS;
const TABLES = Object.keys(OLD_COLUMNS) as Table[];
const KEY: Record<Table, string> = { Conversation: 'id', Message: 'id', UserConfig: 'userId', ViewerState: 'userId' };

/** The columns the migration adds, with whether each may be null. */
const NEW_COLUMNS: Record<Table, Record<string, { kind: Kind; nullable: boolean }>> = {
  Conversation: { currentMessageId: { kind: 'text', nullable: true }, pathLength: { kind: 'int', nullable: false } },
  Message: { parentId: { kind: 'text', nullable: true }, depth: { kind: 'int', nullable: false }, onPath: { kind: 'bool', nullable: false } },
  UserConfig: {},
  ViewerState: {},
};

type Row = Record<string, unknown>;

/** One driver value as a comparable one; anything unexpected stays visible as an `invalid` string. */
function normalize(kind: Kind, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  switch (kind) {
    case 'text':
      return typeof value === 'string' ? value : `invalid text: ${typeof value} ${String(value)}`;
    case 'int':
      if (typeof value === 'number' && Number.isInteger(value)) return value;
      if (typeof value === 'bigint') return Number(value);
      if (typeof value === 'string' && /^-?\d+$/.test(value)) return Number(value);
      return `invalid int: ${typeof value} ${String(value)}`;
    case 'float':
      return typeof value === 'number' ? value : `invalid float: ${typeof value} ${String(value)}`;
    case 'bool':
      if (typeof value === 'boolean') return value;
      if (value === 0 || value === 1 || value === 0n || value === 1n) return Number(value) === 1;
      return `invalid bool: ${typeof value} ${String(value)}`;
    case 'date':
      if (value instanceof Date) return value.toISOString();
      return typeof value === 'string' ? value : `invalid date: ${typeof value} ${String(value)}`;
    case 'json':
      return typeof value === 'string' ? JSON.parse(value) : value;
  }
}

// ---------------------------------------------------------------------------------------------
// The data set: the same for every provider, from a seeded generator.

interface Conversation {
  id: string;
  userId: string;
  title: string | null;
  archived: boolean;
  lastSeq: number;
  lastEventSeq: number;
  createdAt: Date;
  updatedAt: Date;
}

interface Message {
  id: string;
  conversationId: string;
  userId: string;
  seq: number;
  role: 'SYSTEM' | 'USER' | 'ASSISTANT';
  content: string;
  tokenCount: number | null;
  metadata: unknown;
  status: 'STREAMING' | 'COMPLETE' | 'STOPPED' | 'FAILED' | 'INTERRUPTED';
  model: string | null;
  finishReason: string | null;
  promptTokens: number | null;
  completionTokens: number | null;
  error: string | null;
  clientMessageId: string | null;
  createdAt: Date;
  updatedAt: Date;
  leaseExpiresAt: Date | null;
}

interface UserConfig {
  userId: string;
  presetId: string | null;
  model: string | null;
  baseUrl: string | null;
  apiKeyEncrypted: string | null;
  maxTokens: number | null;
  temperature: number | null;
  systemPrompt: string | null;
  contextTokens: number | null;
  createdAt: Date;
  updatedAt: Date;
}

interface ViewerState {
  userId: string;
  lastEventSeq: number;
}

interface Dataset {
  conversations: Conversation[];
  messages: Message[];
  userConfigs: UserConfig[];
  viewerStates: ViewerState[];
}

const LONG_CONVERSATION = 'conv-long';
const LONG_MESSAGES = 5000;
const SHORT_CONVERSATIONS = 1300;

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function buildDataset(): Dataset {
  const random = mulberry32(20261208);
  const int = (min: number, max: number) => min + Math.floor(random() * (max - min + 1));
  const pick = <T,>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const usedIds = new Set<string>();
  const randomId = (prefix = '') => {
    for (;;) {
      let id = prefix;
      for (let i = 0; i < 14; i++) id += 'abcdefghijklmnopqrstuvwxyz0123456789'[int(0, 35)];
      if (!usedIds.has(id)) {
        usedIds.add(id);
        return id;
      }
    }
  };
  const BASE = Date.UTC(2026, 10, 1, 8, 0, 0, 0);
  const USERS = ['ann', 'Ann', 'bob', 'cy', 'dee', 'eve'] as const;
  const CONTENTS = [
    'hello',
    "it's got 'single' and \"double\" quotes",
    'a backslash \\ and a percent % and a question mark ?',
    'line one\nline two\r\n\ttabbed',
    'ünïcödé ✓ 中文 🙂 𝄞',
    '{"looks": "like json"} but is text',
    '-- not a comment; DROP TABLE "Message";',
    '',
    '   padded   ',
  ];
  const conversations: Conversation[] = [];
  const messages: Message[] = [];
  let clientKey = 0;

  const conversation = (id: string, userId: string, lastSeq: number, extra: Partial<Conversation> = {}) => {
    const createdAt = new Date(BASE + conversations.length * 60_000);
    const c: Conversation = {
      id,
      userId,
      title: pick([null, 'Plans', "Ann's \"quoted\" title", 'Ünïcode 🙂 title', 'x'.repeat(255)]),
      archived: random() < 0.15,
      lastSeq,
      // One event per message (the last one counts from 0) plus a few title or archive changes.
      lastEventSeq: lastSeq === 0 ? -1 : lastSeq - 1 + int(0, 3),
      createdAt,
      updatedAt: new Date(createdAt.getTime() + int(0, 10_000_000)),
      ...extra,
    };
    conversations.push(c);
    return c;
  };

  /** Messages of `c` at these seqs, in seq order; ids from `idFor`, createdAt along `clock`. */
  const fill = (c: Conversation, seqs: number[], idFor: (seq: number, index: number) => string, clock: 'forward' | 'backward' | 'level' = 'forward') => {
    let role: Message['role'] = random() < 0.25 ? 'SYSTEM' : 'USER';
    seqs.forEach((seq, index) => {
      const last = index === seqs.length - 1;
      const offset = clock === 'forward' ? index * 1500 : clock === 'backward' ? (seqs.length - index) * 1500 : 0;
      const createdAt = new Date(c.createdAt.getTime() + offset);
      const m: Message = {
        id: idFor(seq, index),
        conversationId: c.id,
        userId: c.userId,
        seq,
        role,
        content: pick(CONTENTS),
        tokenCount: null,
        metadata: null,
        status: 'COMPLETE',
        model: null,
        finishReason: null,
        promptTokens: null,
        completionTokens: null,
        error: null,
        clientMessageId: null,
        createdAt,
        updatedAt: createdAt,
        leaseExpiresAt: null,
      };
      if (role === 'USER') {
        m.tokenCount = random() < 0.7 ? int(1, 400) : null;
        if (random() < 0.6) m.clientMessageId = `client-${++clientKey}`;
      }
      if (role === 'ASSISTANT') {
        m.model = pick(['local-echo', 'gpt-test', 'llama-3']);
        const r = random();
        m.status = (last && r < 0.3) || r < 0.02 ? 'STREAMING' : r < 0.75 ? 'COMPLETE' : r < 0.85 ? 'STOPPED' : r < 0.93 ? 'FAILED' : 'INTERRUPTED';
        if (m.status === 'STREAMING') {
          m.content = random() < 0.5 ? '' : 'partial repl';
          m.leaseExpiresAt = new Date(createdAt.getTime() + 30_000);
        } else {
          m.updatedAt = new Date(createdAt.getTime() + int(100, 90_000));
          m.finishReason = m.status === 'COMPLETE' ? pick(['stop', 'length']) : m.status === 'STOPPED' ? 'stopped' : null;
          m.promptTokens = int(10, 4000);
          m.completionTokens = int(0, 2000);
          m.tokenCount = m.completionTokens;
        }
        if (m.status === 'FAILED') m.error = pick(['model unreachable', "upstream said: 'no'", 'ünïcode error ✗']);
        if (random() < 0.5) {
          m.metadata = pick([
            { temperature: 0.7, maxTokens: 512 },
            { presetId: 'default', nested: { list: [1, 2.5, 'three', null, true], empty: {} }, note: "it's \"quoted\" ✓" },
            { usage: { prompt: 12, completion: 34 }, tags: [] },
            [],
          ]);
        }
      }
      messages.push(m);
      role = role === 'USER' ? (random() < 0.1 ? 'USER' : 'ASSISTANT') : role === 'SYSTEM' ? 'USER' : random() < 0.05 ? 'ASSISTANT' : 'USER';
    });
  };
  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

  // One long conversation whose ids sort in the reverse of its seqs: long-99999 is seq 1.
  fill(conversation(LONG_CONVERSATION, 'ann', LONG_MESSAGES), range(1, LONG_MESSAGES), (seq) => `long-${100_000 - seq}`);

  // Seqs with gaps (messages deleted from the middle): 1, 2, 5, 9, ...
  const gaps = [1, 2, 5, 9];
  while (gaps.length < 40) gaps.push(gaps[gaps.length - 1]! + (random() < 0.5 ? 1 : int(2, 6)));
  fill(conversation('conv-gaps', 'bob', gaps[gaps.length - 1]!), gaps, () => randomId('g'), 'backward');
  // The first messages deleted: the root is seq 4.
  fill(conversation('conv-headless', 'cy', 8), [4, 5, 6, 8], () => randomId('h'));
  // The newest messages deleted: lastSeq (9) is past the newest message (6).
  fill(conversation('conv-tail-deleted', 'cy', 9), range(1, 6), () => randomId('t'), 'level');
  // Every message deleted, and one that never had any.
  conversation('conv-emptied', 'dee', 6);
  conversation('conv-empty', 'eve', 0, { title: null, archived: false });
  // A single message, still being generated.
  const single = conversation('conv-single', 'eve', 1);
  messages.push({
    id: 'single-reply',
    conversationId: single.id,
    userId: single.userId,
    seq: 1,
    role: 'ASSISTANT',
    content: '',
    tokenCount: null,
    metadata: { presetId: 'default' },
    status: 'STREAMING',
    model: 'local-echo',
    finishReason: null,
    promptTokens: null,
    completionTokens: null,
    error: null,
    clientMessageId: null,
    createdAt: single.createdAt,
    updatedAt: single.createdAt,
    leaseExpiresAt: new Date(single.createdAt.getTime() + 30_000),
  });
  // Ids that differ only by case or a trailing space are different conversations and messages.
  for (const [conversationId, userId, variant] of [
    ['conv-case', 'ann', (s: string) => s],
    ['CONV-CASE', 'Ann', (s: string) => s.toUpperCase()],
    ['conv-case ', 'ann', (s: string) => `${s} `],
  ] as const) {
    fill(conversation(conversationId, userId, 3), [1, 2, 3], (seq) => variant(`case-m${seq}`));
  }
  // The same idempotency key for two users.
  const shared = messages.filter((m) => m.role === 'USER' && (m.userId === 'ann' || m.userId === 'bob') && m.conversationId !== LONG_CONVERSATION);
  for (const userId of ['ann', 'bob']) shared.find((m) => m.userId === userId)!.clientMessageId = 'shared-key';

  // Many short conversations of every user, with random ids.
  for (let i = 0; i < SHORT_CONVERSATIONS; i++) {
    const size = int(1, 8);
    const c = conversation(randomId('c'), pick(USERS), size);
    fill(c, range(1, size), () => randomId(), pick(['forward', 'forward', 'backward', 'level'] as const));
  }
  // A few long texts.
  messages.filter((m) => m.role !== 'SYSTEM').slice(100, 103).forEach((m, i) => (m.content = ['長'.repeat(20_000), 'a'.repeat(30_000), '🙂'.repeat(5_000)][i]!));

  const at = (ms: number) => new Date(BASE + ms);
  const userConfigs: UserConfig[] = [
    { userId: 'ann', presetId: 'default', model: 'gpt-test', baseUrl: 'https://llm.example/v1', apiKeyEncrypted: 'v1:abc:def:ghi', maxTokens: 512, temperature: 0.7, systemPrompt: "Be brief. Don't \"quote\".", contextTokens: 8000, createdAt: at(1), updatedAt: at(2) },
    { userId: 'Ann', presetId: null, model: null, baseUrl: null, apiKeyEncrypted: null, maxTokens: null, temperature: null, systemPrompt: '中'.repeat(20_000), contextTokens: null, createdAt: at(3), updatedAt: at(3) },
    { userId: 'bob', presetId: 'creative', model: 'llama-3', baseUrl: null, apiKeyEncrypted: null, maxTokens: 4096, temperature: 1.25, systemPrompt: null, contextTokens: 32000, createdAt: at(4), updatedAt: at(5_000) },
  ];
  const viewerStates: ViewerState[] = USERS.map((userId, i) => ({ userId, lastEventSeq: i === 0 ? -1 : i * 17 }));
  return { conversations, messages, userConfigs, viewerStates };
}

const DATA = buildDataset();

/** What the migration must produce, from the data set itself (not from what the database holds). */
const EXPECTED = (() => {
  const byConversation = new Map<string, Message[]>(DATA.conversations.map((c) => [c.id, []]));
  for (const m of DATA.messages) byConversation.get(m.conversationId)!.push(m);
  const messages = new Map<string, { parentId: string | null; depth: number; onPath: boolean }>();
  const conversations = new Map<string, { currentMessageId: string | null; pathLength: number }>();
  for (const [id, list] of byConversation) {
    const ordered = [...list].sort((a, b) => a.seq - b.seq);
    ordered.forEach((m, i) => messages.set(m.id, { parentId: i === 0 ? null : ordered[i - 1]!.id, depth: i, onPath: true }));
    conversations.set(id, { currentMessageId: ordered.at(-1)?.id ?? null, pathLength: ordered.length });
  }
  return { messages, conversations, byConversation };
})();

// ---------------------------------------------------------------------------------------------
// SQL per provider.

const quote = (provider: DatabaseProvider, name: string) => (provider === 'mysql' ? `\`${name}\`` : `"${name}"`);

/** A date as each database is written to: Prisma's SQLite adapter writes ISO with +00:00. */
function dateParam(provider: DatabaseProvider, value: Date | null): string | null {
  if (value === null) return null;
  if (provider === 'sqlite') return value.toISOString().replace('Z', '+00:00');
  if (provider === 'mysql') return value.toISOString().replace('T', ' ').replace('Z', '');
  return value.toISOString();
}

function param(provider: DatabaseProvider, kind: Kind, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (kind === 'date') return dateParam(provider, value as Date);
  if (kind === 'json') return JSON.stringify(value);
  if (kind === 'bool') return provider === 'postgresql' ? value : value ? 1 : 0;
  return value;
}

const BATCH = 400;

async function insertRows(conn: MigrationConnection, provider: DatabaseProvider, table: Table, rows: object[]): Promise<void> {
  const columns = Object.entries(OLD_COLUMNS[table]) as [string, Kind][];
  const tuple = `(${columns.map(() => '?').join(', ')})`;
  for (let i = 0; i < rows.length; i += BATCH) {
    const chunk = rows.slice(i, i + BATCH) as Row[];
    await conn.query(
      `INSERT INTO ${quote(provider, table)} (${columns.map(([c]) => quote(provider, c)).join(', ')}) VALUES ${chunk.map(() => tuple).join(', ')}`,
      chunk.flatMap((row) => columns.map(([c, kind]) => param(provider, kind, row[c]))),
    );
  }
}

/** Every row of a table, the given columns normalized, keyed by the table's key. */
async function readTable(conn: MigrationConnection, provider: DatabaseProvider, table: Table, columns: Record<string, Kind>): Promise<Map<string, Row>> {
  const names = Object.keys(columns);
  const rows = await conn.query<Row>(`SELECT ${names.map((c) => quote(provider, c)).join(', ')} FROM ${quote(provider, table)}`);
  const result = new Map<string, Row>();
  for (const raw of rows) {
    const row: Row = {};
    for (const name of names) row[name] = normalize(columns[name]!, raw[name]);
    const key = row[KEY[table]] as string;
    if (result.has(key)) throw new Error(`${table}: key ${JSON.stringify(key)} read twice`);
    result.set(key, row);
  }
  return result;
}

async function snapshotOldColumns(conn: MigrationConnection, provider: DatabaseProvider) {
  const snapshot = {} as Record<Table, Map<string, Row>>;
  for (const table of TABLES) snapshot[table] = await readTable(conn, provider, table, OLD_COLUMNS[table]);
  return snapshot;
}

interface ColumnInfo {
  name: string;
  type: string;
  nullable: boolean;
}

/** Name, type (with collation on MySQL) and nullability of every column of a table. */
async function columnsOf(conn: MigrationConnection, provider: DatabaseProvider, table: Table): Promise<ColumnInfo[]> {
  let rows: { name: string; type: string; nullable: unknown }[];
  if (provider === 'sqlite') {
    rows = await conn.query(`SELECT name, type, "notnull" = 0 AS nullable FROM pragma_table_info('${table}')`);
  } else if (provider === 'postgresql') {
    rows = await conn.query(
      `SELECT column_name AS name, udt_name || coalesce('(' || character_maximum_length || ')', '') || coalesce('(' || datetime_precision || ')', '') AS type, is_nullable = 'YES' AS nullable
         FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?`,
      [table],
    );
  } else {
    rows = await conn.query(
      `SELECT COLUMN_NAME AS name, CONCAT(COLUMN_TYPE, ' ', COALESCE(COLLATION_NAME, '')) AS type, IS_NULLABLE = 'YES' AS nullable
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`,
      [table],
    );
  }
  return rows.map((r) => ({ name: String(r.name), type: String(r.type), nullable: normalize('bool', r.nullable) as boolean })).sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** Readable differences between two snapshots of a table (missing, added and changed rows). */
function differences(table: string, before: Map<string, Row>, after: Map<string, Row>): string[] {
  const found: string[] = [];
  for (const [key, row] of before) {
    const now = after.get(key);
    if (!now) {
      found.push(`${table} ${JSON.stringify(key)}: row lost`);
      continue;
    }
    for (const [column, value] of Object.entries(row)) {
      if (!isDeepStrictEqual(now[column], value)) found.push(`${table} ${JSON.stringify(key)}.${column}: ${JSON.stringify(value)} became ${JSON.stringify(now[column])}`);
    }
  }
  for (const key of after.keys()) if (!before.has(key)) found.push(`${table} ${JSON.stringify(key)}: row added`);
  return found;
}

/** Fails with the first few differences and their count. */
function expectNone(found: string[], what: string) {
  expect(found.slice(0, 15), `${found.length} ${what}`).toEqual([]);
}

// ---------------------------------------------------------------------------------------------

const created: TestDatabase[] = [];
afterAll(async () => {
  await Promise.all(created.map((db) => db.drop()));
});

it('the data set has the shapes the migration must handle', () => {
  expect(DATA.messages.length).toBeGreaterThanOrEqual(10_000);
  expect(new Set(DATA.messages.map((m) => m.userId)).size).toBeGreaterThanOrEqual(5);
  expect(new Set(DATA.messages.map((m) => m.role))).toEqual(new Set(['SYSTEM', 'USER', 'ASSISTANT']));
  expect(new Set(DATA.messages.map((m) => m.status))).toEqual(new Set(['STREAMING', 'COMPLETE', 'STOPPED', 'FAILED', 'INTERRUPTED']));
  expect(DATA.messages.filter((m) => m.status === 'STREAMING').every((m) => m.leaseExpiresAt !== null)).toBe(true);
  expect(DATA.messages.some((m) => m.metadata !== null && m.clientMessageId === null)).toBe(true);
  expect(DATA.messages.filter((m) => m.clientMessageId === 'shared-key').map((m) => m.userId).sort()).toEqual(['ann', 'bob']);
  const sizes = [...EXPECTED.byConversation.values()].map((list) => list.length);
  expect(Math.max(...sizes)).toBe(LONG_MESSAGES);
  expect(sizes.filter((n) => n === 0).length).toBe(2);
  expect(sizes.filter((n) => n > 0 && n <= 8).length).toBeGreaterThan(1000);
  // Ordering by id instead of seq gives another parent in most conversations with 2+ messages.
  const misordered = [...EXPECTED.byConversation.values()].filter((list) => {
    const bySeq = [...list].sort((a, b) => a.seq - b.seq).map((m) => m.id);
    return list.length > 1 && bySeq.join() !== [...bySeq].sort().join();
  });
  expect(misordered.length).toBeGreaterThan(500);
  // ... and so does ordering by createdAt.
  expect([...EXPECTED.byConversation.values()].filter((list) => list.length > 1 && list[0]!.createdAt >= list[1]!.createdAt).length).toBeGreaterThan(300);
  // lastSeq is the highest seq handed out: the newest message's, or past it after deletes.
  for (const c of DATA.conversations) {
    const seqs = EXPECTED.byConversation.get(c.id)!.map((m) => m.seq);
    expect(c.lastSeq, c.id).toBeGreaterThanOrEqual(Math.max(0, ...seqs));
  }
  expect(DATA.conversations.filter((c) => c.lastSeq > Math.max(0, ...EXPECTED.byConversation.get(c.id)!.map((m) => m.seq))).map((c) => c.id)).toEqual(['conv-tail-deleted', 'conv-emptied']);
});

describe.each(ALL_PROVIDERS)(`migration ${MESSAGE_TREE} on a populated %s database`, (provider) => {
  let db: TestDatabase;
  let remaining: string[];
  let applied: string[];
  let before: Record<Table, Map<string, Row>>;
  let columnsBefore: Record<Table, ColumnInfo[]>;
  let after: Record<Table, Map<string, Row>>;
  let columnsAfter: Record<Table, ColumnInfo[]>;
  let conn: MigrationConnection;

  beforeAll(async () => {
    const migrations = await readMigrations(migrationsDir(provider));
    const index = migrations.findIndex((m) => m.name === MESSAGE_TREE);
    if (index < 0) throw new Error(`migration ${MESSAGE_TREE} is missing: no prisma/${provider}/migrations/${MESSAGE_TREE}/migration.sql`);
    remaining = migrations.slice(index).map((m) => m.name);

    db = await createTestDatabase(provider);
    created.push(db);
    // Today's schema: every migration before MESSAGE_TREE, recorded as `prisma migrate deploy` does.
    const setup = await DIALECTS[provider].connectForMigrations(db.url);
    try {
      await setup.script(setup.migrationsTableDdl);
      for (const migration of migrations.slice(0, index)) {
        await setup.script(migration.script);
        await setup.query(
          `INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at, finished_at, applied_steps_count) VALUES (?, ?, ?, ${setup.now}, ${setup.now}, 1)`,
          [randomUUID(), migration.checksum, migration.name],
        );
      }
      await insertRows(setup, provider, 'Conversation', DATA.conversations);
      await insertRows(setup, provider, 'Message', DATA.messages);
      await insertRows(setup, provider, 'UserConfig', DATA.userConfigs);
      await insertRows(setup, provider, 'ViewerState', DATA.viewerStates);
      before = await snapshotOldColumns(setup, provider);
      columnsBefore = {} as Record<Table, ColumnInfo[]>;
      for (const table of TABLES) columnsBefore[table] = await columnsOf(setup, provider, table);
    } finally {
      await setup.close();
    }

    applied = await applyMigrations(db.url);

    conn = await DIALECTS[provider].connectForMigrations(db.url);
    after = {} as Record<Table, Map<string, Row>>;
    columnsAfter = {} as Record<Table, ColumnInfo[]>;
    for (const table of TABLES) {
      const columns: Record<string, Kind> = { ...OLD_COLUMNS[table] };
      for (const [name, { kind }] of Object.entries(NEW_COLUMNS[table])) columns[name] = kind;
      after[table] = await readTable(conn, provider, table, columns);
      columnsAfter[table] = await columnsOf(conn, provider, table);
    }
  }, 120_000);

  afterAll(async () => {
    await conn?.close();
  });

  it('the database held the whole data set before the migration', () => {
    expect(before.Conversation.size).toBe(DATA.conversations.length);
    expect(before.Message.size).toBe(DATA.messages.length);
    expect(before.UserConfig.size).toBe(DATA.userConfigs.length);
    expect(before.ViewerState.size).toBe(DATA.viewerStates.length);
    const found: string[] = [];
    for (const m of DATA.messages) {
      const row = before.Message.get(m.id);
      for (const column of ['conversationId', 'userId', 'seq', 'role', 'status', 'content', 'clientMessageId', 'error'] as const) {
        if (row?.[column] !== m[column]) found.push(`Message ${JSON.stringify(m.id)}.${column}: wrote ${JSON.stringify(m[column])}, read ${JSON.stringify(row?.[column])}`);
      }
      if (!isDeepStrictEqual(row?.metadata, m.metadata)) found.push(`Message ${JSON.stringify(m.id)}.metadata: wrote ${JSON.stringify(m.metadata)}, read ${JSON.stringify(row?.metadata)}`);
    }
    for (const c of DATA.conversations) {
      const row = before.Conversation.get(c.id);
      for (const column of ['userId', 'title', 'archived', 'lastSeq', 'lastEventSeq'] as const) {
        if (row?.[column] !== c[column]) found.push(`Conversation ${JSON.stringify(c.id)}.${column}: wrote ${JSON.stringify(c[column])}, read ${JSON.stringify(row?.[column])}`);
      }
    }
    expectNone(found, 'rows not as written');
  });

  it('applies exactly the migrations from message_tree on', () => {
    expect(remaining[0]).toBe(MESSAGE_TREE);
    expect(applied).toEqual(remaining);
  });

  it('keeps every row and every old column of Conversation, Message, UserConfig and ViewerState unchanged', () => {
    for (const table of TABLES) {
      const oldOnly = new Map([...after[table]].map(([key, row]) => [key, Object.fromEntries(Object.keys(OLD_COLUMNS[table]).map((c) => [c, row[c]]))]));
      expect(oldOnly.size, `${table} rows`).toBe(before[table].size);
      expectNone(differences(table, before[table], oldOnly), `differences in ${table}`);
    }
  });

  it('keeps the old columns as they were and adds the new ones with the contract’s nullability', () => {
    for (const table of TABLES) {
      const added = Object.entries(NEW_COLUMNS[table]).map(([name, { nullable }]) => ({ name, nullable }));
      const kept = columnsAfter[table].filter((c) => !(c.name in NEW_COLUMNS[table]));
      expect(kept, `${table}: old columns`).toEqual(columnsBefore[table]);
      expect(
        columnsAfter[table].filter((c) => c.name in NEW_COLUMNS[table]).map(({ name, nullable }) => ({ name, nullable })),
        `${table}: new columns`,
      ).toEqual(added.sort((a, b) => (a.name < b.name ? -1 : 1)));
    }
  });

  it("links every message to the one before it by seq in its own conversation, with depth its 0-based position, and puts it on the active path", () => {
    const messages = after.Message;
    const found: string[] = [];
    for (const [id, want] of EXPECTED.messages) {
      const row = messages.get(id);
      if (!row) {
        found.push(`Message ${JSON.stringify(id)}: lost`);
        continue;
      }
      const have = { parentId: row.parentId, depth: row.depth, onPath: row.onPath };
      if (!isDeepStrictEqual(have, want)) found.push(`Message ${JSON.stringify(id)} (seq ${String(row.seq)} of ${JSON.stringify(row.conversationId)}): want ${JSON.stringify(want)}, have ${JSON.stringify(have)}`);
    }
    expectNone(found, 'messages with another parent, depth or onPath');

    // The same, checked from the rows alone: a parent is an earlier message of the same conversation.
    const structural: string[] = [];
    const children = new Map<string, number>();
    for (const [id, row] of messages) {
      if (row.parentId === null) {
        if (row.depth !== 0) structural.push(`root ${JSON.stringify(id)} has depth ${String(row.depth)}`);
        continue;
      }
      const parent = messages.get(row.parentId as string);
      if (!parent) structural.push(`${JSON.stringify(id)}: parent ${JSON.stringify(row.parentId)} does not exist`);
      else if (parent.conversationId !== row.conversationId) structural.push(`${JSON.stringify(id)} of ${JSON.stringify(row.conversationId)}: parent ${JSON.stringify(row.parentId)} is in ${JSON.stringify(parent.conversationId)}`);
      else if ((parent.seq as number) >= (row.seq as number)) structural.push(`${JSON.stringify(id)} (seq ${String(row.seq)}): parent has seq ${String(parent.seq)}`);
      else if (row.depth !== (parent.depth as number) + 1) structural.push(`${JSON.stringify(id)}: depth ${String(row.depth)}, parent's ${String(parent.depth)}`);
      children.set(row.parentId as string, (children.get(row.parentId as string) ?? 0) + 1);
    }
    // Today's conversations are lines: one root per non-empty conversation, no message with two children.
    const roots = [...messages.values()].filter((m) => m.parentId === null).map((m) => m.conversationId as string);
    expect(roots.length, 'roots').toBe([...EXPECTED.byConversation.values()].filter((list) => list.length > 0).length);
    expect(new Set(roots).size, 'conversations with a root').toBe(roots.length);
    for (const [id, n] of children) if (n > 1) structural.push(`${JSON.stringify(id)} has ${n} children`);
    expectNone(structural, 'broken links');
    expect(messages.get('long-99999')).toMatchObject({ parentId: null, depth: 0, onPath: true });
    expect(messages.get('long-95000')).toMatchObject({ parentId: 'long-95001', depth: LONG_MESSAGES - 1, onPath: true });
    expect(messages.get('CASE-M2')).toMatchObject({ parentId: 'CASE-M1', depth: 1 });
    expect(messages.get('case-m2 ')).toMatchObject({ parentId: 'case-m1 ', depth: 1 });
  });

  it("sets every conversation's tip to its highest-seq message (null when empty) and pathLength to its message count", () => {
    const found: string[] = [];
    for (const [id, want] of EXPECTED.conversations) {
      const row = after.Conversation.get(id);
      const have = row && { currentMessageId: row.currentMessageId, pathLength: row.pathLength };
      if (!isDeepStrictEqual(have, want)) found.push(`Conversation ${JSON.stringify(id)}: want ${JSON.stringify(want)}, have ${JSON.stringify(have)}`);
      else if (want.currentMessageId !== null && after.Message.get(want.currentMessageId)?.conversationId !== id) found.push(`Conversation ${JSON.stringify(id)}: tip is not its own message`);
    }
    expectNone(found, 'conversations with another tip or pathLength');
    expect(after.Conversation.get(LONG_CONVERSATION)).toMatchObject({ currentMessageId: 'long-95000', pathLength: LONG_MESSAGES });
    expect(after.Conversation.get('conv-tail-deleted')).toMatchObject({ lastSeq: 9, pathLength: 6 });
    expect(after.Conversation.get('conv-emptied')).toMatchObject({ currentMessageId: null, pathLength: 0 });
    expect(after.Conversation.get('conv-empty')).toMatchObject({ currentMessageId: null, pathLength: 0 });
  });

  it('leaves no foreign key pointing nowhere, and new rows get the defaults (root, depth 0, on the path; empty path)', async () => {
    if (provider === 'sqlite') expect(await conn.query('PRAGMA foreign_key_check')).toEqual([]);
    const q = (name: string) => quote(provider, name);
    const now = dateParam(provider, new Date());
    await conn.query(`INSERT INTO ${q('Conversation')} (${q('id')}, ${q('userId')}, ${q('updatedAt')}) VALUES (?, ?, ?)`, ['after-migration', 'ann', now]);
    await conn.query(
      `INSERT INTO ${q('Message')} (${q('id')}, ${q('conversationId')}, ${q('userId')}, ${q('seq')}, ${q('role')}, ${q('content')}, ${q('updatedAt')}) VALUES (?, ?, ?, 1, 'USER', 'new', ?)`,
      ['after-migration-1', 'after-migration', 'ann', now],
    );
    // parentId has no foreign key: the store keeps it pointing at a message.
    await conn.query(
      `INSERT INTO ${q('Message')} (${q('id')}, ${q('conversationId')}, ${q('userId')}, ${q('seq')}, ${q('role')}, ${q('content')}, ${q('updatedAt')}, ${q('parentId')}, ${q('depth')}) VALUES (?, ?, ?, 2, 'ASSISTANT', 'new', ?, ?, 1)`,
      ['after-migration-2', 'after-migration', 'ann', now, 'no-such-message'],
    );
    const [conversation] = await conn.query<Row>(`SELECT ${q('currentMessageId')}, ${q('pathLength')} FROM ${q('Conversation')} WHERE ${q('id')} = ?`, ['after-migration']);
    expect({ currentMessageId: conversation?.currentMessageId, pathLength: normalize('int', conversation?.pathLength) }).toEqual({ currentMessageId: null, pathLength: 0 });
    const [message] = await conn.query<Row>(`SELECT ${q('parentId')}, ${q('depth')}, ${q('onPath')} FROM ${q('Message')} WHERE ${q('id')} = ?`, ['after-migration-1']);
    expect({ parentId: message?.parentId, depth: normalize('int', message?.depth), onPath: normalize('bool', message?.onPath) }).toEqual({ parentId: null, depth: 0, onPath: true });
    await conn.query(`DELETE FROM ${q('Message')} WHERE ${q('conversationId')} = ?`, ['after-migration']);
    await conn.query(`DELETE FROM ${q('Conversation')} WHERE ${q('id')} = ?`, ['after-migration']);
  });

  it('keeps the foreign key from Message to Conversation: it refuses a message of no conversation, and deleting a conversation deletes its messages only', async () => {
    const q = (name: string) => quote(provider, name);
    if (provider === 'sqlite') await conn.query('PRAGMA foreign_keys = ON');
    await expect(
      conn.query(`INSERT INTO ${q('Message')} (${q('id')}, ${q('conversationId')}, ${q('userId')}, ${q('seq')}, ${q('role')}, ${q('content')}, ${q('updatedAt')}) VALUES (?, ?, ?, 1, 'USER', 'x', ?)`, [
        'orphan',
        'no-such-conversation',
        'ann',
        dateParam(provider, new Date()),
      ]),
    ).rejects.toThrow(/foreign key/i);
    const victims = [LONG_CONVERSATION, 'CONV-CASE', DATA.conversations.find((c) => EXPECTED.byConversation.get(c.id)!.length === 8)!.id];
    for (const id of victims) await conn.query(`DELETE FROM ${q('Conversation')} WHERE ${q('id')} = ?`, [id]);
    const counts = await conn.query<{ conversationId: string; n: unknown }>(`SELECT ${q('conversationId')} AS ${q('conversationId')}, COUNT(*) AS n FROM ${q('Message')} GROUP BY ${q('conversationId')}`);
    const have = new Map(counts.map((r) => [r.conversationId, Number(r.n)]));
    const want = new Map([...EXPECTED.byConversation].filter(([id, list]) => list.length > 0 && !victims.includes(id)).map(([id, list]) => [id, list.length]));
    expect(have.size).toBe(want.size);
    expect(have).toEqual(want);
    expect(Number((await conn.query<{ n: unknown }>(`SELECT COUNT(*) AS n FROM ${q('Message')}`))[0]?.n)).toBe(
      DATA.messages.length - victims.reduce((sum, id) => sum + EXPECTED.byConversation.get(id)!.length, 0),
    );
  });
});
