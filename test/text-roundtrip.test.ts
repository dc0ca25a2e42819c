// Property: every text input, sent through the GraphQL API of a started server, is either stored
// exactly (read back identical, code unit for code unit) or refused with BAD_USER_INPUT naming the
// field, and the outcome is the same on SQLite, PostgreSQL and MariaDB.
//
// Strings are generated from a seeded PRNG; the seed is printed. Replay a failure with
// TEXT_ROUNDTRIP_SEED=<seed> npx vitest run test/text-roundtrip.test.ts
import { randomBytes, randomInt } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretBox } from '../src/services/secrets.ts';
import type { DatabaseProvider } from '../src/store/dialect.ts';
import { ALL_PROVIDERS } from './support/databases.ts';
import { startParley, tokenFor, TEST_JWT_SECRET, type TestServer } from './support/parley.ts';
import { REDIS_URL, redisNamespace } from './support/redis.ts';

const SEED = Number(process.env.TEXT_ROUNDTRIP_SEED ?? randomInt(2 ** 31));
// Small enough for quick cases near the limit; the system prompt shares it.
const MAX_CONTENT_CHARS = 5000;
const MAX_METADATA_CHARS = 64 * 1024;
const ENCRYPTION_KEY = randomBytes(32);

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

type Rng = () => number;
const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)]!;

// Kinds of text, each with its weight. Neighbours may pair up: a high half then a low half is a
// valid pair, so the oracle judges the whole string, never the pieces.
const PIECES: [number, string[]][] = [
  [30, ['a', 'Z', '0', ' ', '"', "'", '\\', '%', '_', '{', '}', ':', '.', '\u007f', '; DROP TABLE "Message"; --', '${x}', '<b>']],
  [8, ['😀', '𝔘', '𠀀', '🂡', '\u{10ffff}']],
  [6, ['שלום', 'مرحبا', '\u200f', '\u202e', '\u2067']],
  [6, ['e\u0301', '\u0336', 'a\u0308\u0323', '\u0345']],
  [6, ['👨\u200d👩\u200d👧', '🏳\ufe0f\u200d🌈', '\u200d', '\u200b', '\ufeff']],
  [2, ['\u0000']],
  [3, ['\ud800', '\udbff', '\udc00', '\udfff']],
  [4, ['\ufffe', '\uffff', '\ufffd']],
  [10, [' ', '  ', '\t', '\n', '\r\n', '\u00a0', '\u3000', '\u2028', '\u0085']],
  [6, ['中', '文字', 'ﾃｽﾄ', '한']],
  [3, ['\u0001', '\u001f', '\u001b[31m', '\u0080']],
];
const TOTAL_WEIGHT = PIECES.reduce((sum, [weight]) => sum + weight, 0);

function piece(rng: Rng): string {
  let roll = rng() * TOTAL_WEIGHT;
  for (const [weight, options] of PIECES) {
    if ((roll -= weight) < 0) return pick(rng, options);
  }
  return 'a';
}

/** How a field measures its limit: zod's `max` counts code points, the content limit UTF-16 units. */
type Measure = (s: string) => number;
const units: Measure = (s) => s.length;
const codePoints: Measure = (s) => [...s].length;

/** Mostly short strings; one in five is a few units either side of `limit` as `measure` counts. */
function text(rng: Rng, limit: number, measure: Measure = units): string {
  if (rng() < 0.2) {
    const target = Math.max(0, limit + Math.floor(rng() * 7) - 3);
    let s = '';
    while (measure(s) < target - 32) s += piece(rng);
    while (measure(s) < target) s += rng() < 0.9 ? 'x' : ' ';
    // Cutting UTF-16 units may split a pair in two: a case for the refusal.
    return measure === units ? s.slice(0, target) : [...s].slice(0, target).join('');
  }
  let s = '';
  const pieces = Math.floor(rng() * 12);
  for (let i = 0; i < pieces; i++) s += piece(rng);
  return s;
}

// The oracle's own test for text no database stores exactly: it contains U+0000, or UTF-8 cannot
// carry it (a lone surrogate comes back from a UTF-8 round trip as U+FFFD).
const unstorable = (s: string) => s.includes('\u0000') || Buffer.from(s, 'utf8').toString('utf8') !== s;

const NUMBERS = [0, -0, 1, -1, 0.1, 123456789.125, 2 ** 53 + 2, 1e21, 1.7976931348623157e308, 5e-324, -2.5e-7];
const KEYS = ['__proto__', 'constructor', 'toString', '$type', 'value', '', ' '];

/** A JSON value a client might send: shallow, with generated strings and keys. */
function jsonValue(rng: Rng, depth = 0): unknown {
  const roll = rng();
  if (depth >= 3 || roll < 0.4) {
    const kind = rng();
    if (kind < 0.6) return text(rng, 40);
    if (kind < 0.85) return pick(rng, NUMBERS);
    return pick(rng, [true, false, null]);
  }
  if (roll < 0.65) return Array.from({ length: Math.floor(rng() * 4) }, () => jsonValue(rng, depth + 1));
  // fromEntries defines each key as an own property, `__proto__` included.
  return Object.fromEntries(Array.from({ length: Math.floor(rng() * 4) }, () => [rng() < 0.3 ? pick(rng, KEYS) : text(rng, 20), jsonValue(rng, depth + 1)]));
}

function metadata(rng: Rng): Record<string, unknown> {
  if (rng() < 0.1) {
    // {"blob":"…"} is 11 code units around the string: a few either side of the limit.
    const size = MAX_METADATA_CHARS - 11 + Math.floor(rng() * 7) - 3;
    return { blob: 'x'.repeat(size) };
  }
  return Object.fromEntries(Array.from({ length: 1 + Math.floor(rng() * 4) }, () => [rng() < 0.3 ? pick(rng, KEYS) : text(rng, 20), jsonValue(rng, 1)]));
}

/** JSON with sorted keys: PostgreSQL's jsonb keeps keys in an order of its own. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const object = value as Record<string, unknown>;
    return `{${Object.keys(object)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonical(object[key])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

function jsonUnstorable(value: unknown): boolean {
  if (typeof value === 'string') return unstorable(value);
  if (Array.isArray(value)) return value.some(jsonUnstorable);
  if (value !== null && typeof value === 'object') return Object.keys(value).some((key) => unstorable(key) || jsonUnstorable((value as Record<string, unknown>)[key]));
  return false;
}

/** What the server must do with a value: store exactly this, or refuse it naming this field. */
type Expected = { stored: string } | { refused: string };
/** What a server did: the value read back (canonical JSON), or the refusal's message. */
type Outcome = { stored: string } | { refused: string };

interface Instance {
  provider: DatabaseProvider;
  server: TestServer;
}

/** Where one field's cases run on one instance: a user and a conversation of its own. */
interface Place {
  instance: Instance;
  userId: string;
  token: string;
  conversationId: string;
}

type Answer = { data?: Record<string, any> | null; errors?: { message: string; extensions?: { code?: string } }[] };

async function gql(place: Place, query: string, variables: Record<string, unknown>): Promise<Answer> {
  // JSON.stringify writes a lone surrogate as a \ud800 escape: it reaches the server intact.
  const body = JSON.stringify({ query, variables });
  const res = await fetch(place.instance.server.graphqlUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${place.token}` }, body });
  const answer = (await res.json()) as Answer;
  const where = place.instance.provider;
  if (answer.errors) {
    // Only a refusal of the input is an acceptable error.
    expect(answer.errors, `${where}: ${JSON.stringify(answer.errors)}`).toHaveLength(1);
    expect(answer.errors[0]!.extensions?.code, `${where}: ${answer.errors[0]!.message}`).toBe('BAD_USER_INPUT');
  }
  return answer;
}

const refusal = (answer: Answer): Outcome | undefined => (answer.errors ? { refused: answer.errors[0]!.message } : undefined);

const Newest = `query($id: ID!, $n: Int) { conversation(id: $id) { title messages(last: $n) { edges { node { id role content model metadata } } } } }`;

/** `key` of the `index`th of the newest `n` messages, read twice: the second read may come from the cache the first filled. */
async function newest(place: Place, conversationId: string, n: number, index: number, key: 'content' | 'model' | 'metadata'): Promise<unknown> {
  const reads: unknown[] = [];
  for (let i = 0; i < 2; i++) {
    const answer = await gql(place, Newest, { id: conversationId, n });
    expect(answer.errors).toBeUndefined();
    reads.push((answer.data!.conversation.messages.edges[index] as { node: Record<string, unknown> }).node[key]);
  }
  expect(reads[1], `${place.instance.provider}: a second read differs from the first`).toEqual(reads[0]);
  return reads[0];
}

interface Field {
  /** The operation, then the argument path that a refusal names. */
  name: string;
  generate(rng: Rng): unknown;
  expect(value: unknown): Expected;
  /** Sends the value and reads back what was stored. */
  run(place: Place, value: unknown): Promise<Outcome>;
}

/** A text field's rule: refused when unstorable or out of bounds; `trim` and `emptyClears` say what an accepted value becomes. */
function textRule(name: string, limit: number, options: { measure?: Measure; trim?: boolean; min?: number; blankRefused?: boolean; emptyClears?: boolean }) {
  const measure = options.measure ?? units;
  return (value: unknown): Expected => {
    const s = value as string;
    if (unstorable(s)) return { refused: name };
    const kept = options.trim ? s.trim() : s;
    if (options.blankRefused && s.trim().length === 0) return { refused: name };
    if (measure(kept) < (options.min ?? 0) || measure(kept) > limit) return { refused: name };
    return { stored: JSON.stringify(kept === '' && options.emptyClears ? null : kept) };
  };
}

const AddMessage = `mutation($input: AddMessageInput!) { addMessage(input: $input) { id } }`;
const SendMessage = `mutation($input: SendMessageInput!) { sendMessage(input: $input) { conversation { id } userMessage { id } } }`;
const UpdateUserConfig = `mutation($input: UpdateUserConfigInput!) { updateUserConfig(input: $input) { model } }`;
const UserConfig = `{ userConfig { model systemPrompt hasApiKey } }`;

const FIELDS: Field[] = [
  {
    name: 'addMessage input.content',
    generate: (rng) => text(rng, MAX_CONTENT_CHARS),
    expect: textRule('input.content', MAX_CONTENT_CHARS, { blankRefused: true }),
    async run(place, content) {
      const answer = await gql(place, AddMessage, { input: { conversationId: place.conversationId, role: 'USER', content } });
      return refusal(answer) ?? { stored: JSON.stringify(await newest(place, place.conversationId, 1, 0, 'content')) };
    },
  },
  {
    name: 'sendMessage input.content',
    generate: (rng) => text(rng, MAX_CONTENT_CHARS),
    expect: textRule('input.content', MAX_CONTENT_CHARS, { blankRefused: true }),
    async run(place, content) {
      const answer = await gql(place, SendMessage, { input: { content, maxTokens: 1 } });
      return refusal(answer) ?? { stored: JSON.stringify(await newest(place, answer.data!.sendMessage.conversation.id, 2, 0, 'content')) };
    },
  },
  {
    name: 'sendMessage input.model',
    generate: (rng) => text(rng, 255, codePoints),
    expect: textRule('input.model', 255, { measure: codePoints, trim: true, min: 1 }),
    async run(place, model) {
      const answer = await gql(place, SendMessage, { input: { content: 'which model?', model, maxTokens: 1 } });
      return refusal(answer) ?? { stored: JSON.stringify(await newest(place, answer.data!.sendMessage.conversation.id, 2, 1, 'model')) };
    },
  },
  {
    name: 'sendMessage input.clientMessageId',
    // The test puts a case number in front (5 code units): ids of different cases never meet.
    generate: (rng) => text(rng, 123, codePoints),
    expect: textRule('input.clientMessageId', 128, { measure: codePoints, min: 1 }),
    async run(place, clientMessageId) {
      const input = { content: 'once', clientMessageId, maxTokens: 1 };
      const first = await gql(place, SendMessage, { input });
      const refused = refusal(first);
      if (refused) return refused;
      // A retry finds the same exchange by the stored key.
      const retry = await gql(place, SendMessage, { input });
      expect(retry.data!.sendMessage.userMessage.id, `${place.instance.provider}: a retry did not find the first exchange`).toBe(first.data!.sendMessage.userMessage.id);
      const row = await place.instance.server.app.db.prisma.message.findUniqueOrThrow({ where: { id: first.data!.sendMessage.userMessage.id } });
      return { stored: JSON.stringify(row.clientMessageId) };
    },
  },
  {
    name: 'createConversation input.title',
    generate: (rng) => text(rng, 200, codePoints),
    expect: textRule('input.title', 200, { measure: codePoints, trim: true, emptyClears: true }),
    async run(place, title) {
      const answer = await gql(place, `mutation($title: String) { createConversation(input: { title: $title }) { id } }`, { title });
      if (answer.errors) return refusal(answer)!;
      const read = await gql(place, Newest, { id: answer.data!.createConversation.id, n: 1 });
      return { stored: JSON.stringify(read.data!.conversation.title) };
    },
  },
  {
    name: 'updateConversation input.title',
    generate: (rng) => text(rng, 200, codePoints),
    expect: textRule('input.title', 200, { measure: codePoints, trim: true, emptyClears: true }),
    async run(place, title) {
      const answer = await gql(place, `mutation($input: UpdateConversationInput!) { updateConversation(input: $input) { id } }`, { input: { id: place.conversationId, title } });
      if (answer.errors) return refusal(answer)!;
      const read = await gql(place, Newest, { id: place.conversationId, n: 1 });
      return { stored: JSON.stringify(read.data!.conversation.title) };
    },
  },
  {
    name: 'updateUserConfig input.systemPrompt',
    generate: (rng) => text(rng, MAX_CONTENT_CHARS, codePoints),
    expect: textRule('input.systemPrompt', MAX_CONTENT_CHARS, { measure: codePoints, emptyClears: true }),
    async run(place, systemPrompt) {
      const answer = await gql(place, UpdateUserConfig, { input: { systemPrompt } });
      return refusal(answer) ?? { stored: JSON.stringify((await gql(place, UserConfig, {})).data!.userConfig.systemPrompt) };
    },
  },
  {
    name: 'updateUserConfig input.model',
    generate: (rng) => text(rng, 255, codePoints),
    expect: textRule('input.model', 255, { measure: codePoints, trim: true, min: 1 }),
    async run(place, model) {
      const answer = await gql(place, UpdateUserConfig, { input: { model } });
      return refusal(answer) ?? { stored: JSON.stringify((await gql(place, UserConfig, {})).data!.userConfig.model) };
    },
  },
  {
    name: 'updateUserConfig input.apiKey',
    generate: (rng) => text(rng, 4096, codePoints),
    expect: textRule('input.apiKey', 4096, { measure: codePoints, emptyClears: true }),
    async run(place, apiKey) {
      const answer = await gql(place, UpdateUserConfig, { input: { apiKey } });
      const refused = refusal(answer);
      if (refused) return refused;
      // Write-only through the API: the stored key is opened as the server would open it.
      const row = await place.instance.server.app.db.prisma.userConfig.findUniqueOrThrow({ where: { userId: place.userId } });
      const hasApiKey = (await gql(place, UserConfig, {})).data!.userConfig.hasApiKey;
      expect(hasApiKey).toBe(row.apiKeyEncrypted !== null);
      return { stored: JSON.stringify(row.apiKeyEncrypted === null ? null : new SecretBox(ENCRYPTION_KEY).open(row.apiKeyEncrypted, place.userId)) };
    },
  },
  {
    name: 'addMessage input.metadata',
    generate: metadata,
    expect: (value) => {
      if (jsonUnstorable(value)) return { refused: 'input.metadata' };
      if (JSON.stringify(value).length > MAX_METADATA_CHARS) return { refused: 'input.metadata' };
      return { stored: canonical(value) };
    },
    async run(place, metadata) {
      const answer = await gql(place, AddMessage, { input: { conversationId: place.conversationId, role: 'USER', content: 'with metadata', metadata } });
      return refusal(answer) ?? { stored: canonical(await newest(place, place.conversationId, 1, 0, 'metadata')) };
    },
  },
];

const CASES_PER_FIELD = 30;

describe('text round trip', () => {
  const instances: Instance[] = [];
  const namespaces = ALL_PROVIDERS.map(() => redisNamespace());

  beforeAll(async () => {
    console.log(`text round-trip seed: ${SEED} (replay: TEXT_ROUNDTRIP_SEED=${SEED})`);
    const started = await Promise.all(
      ALL_PROVIDERS.map((provider, i) =>
        startParley({
          provider,
          env: {
            AUTH_JWT_SECRET: TEST_JWT_SECRET,
            REDIS_URL,
            REDIS_KEY_PREFIX: namespaces[i]!.prefix,
            CONFIG_ENCRYPTION_KEY: ENCRYPTION_KEY.toString('hex'),
            MAX_CONTENT_CHARS: String(MAX_CONTENT_CHARS),
          },
        }),
      ),
    );
    for (const [i, server] of started.entries()) instances.push({ provider: ALL_PROVIDERS[i]!, server });
  });
  afterAll(async () => {
    await Promise.all(instances.map((instance) => instance.server.stop()));
    await Promise.all(namespaces.map((namespace) => namespace.cleanup()));
  });

  /** A user and a conversation of the field's own on each instance: fields run side by side. */
  async function placesFor(fieldNo: number): Promise<Place[]> {
    const userId = `field-${fieldNo}`;
    const token = await tokenFor(userId);
    return Promise.all(
      instances.map(async (instance) => {
        const place: Place = { instance, userId, token, conversationId: '' };
        place.conversationId = (await gql(place, `mutation { createConversation { id } }`, {})).data!.createConversation.id;
        return place;
      }),
    );
  }

  it.concurrent.each(FIELDS.map((field, i) => [field.name, field, i] as const))('%s: stored exactly or refused naming the field, alike on every database', async (_, field, fieldNo) => {
    const places = await placesFor(fieldNo);
    const rng = prng(SEED + fieldNo);
    const tally = { stored: 0, refused: 0 };
    for (let caseNo = 0; caseNo < CASES_PER_FIELD; caseNo++) {
      let value = field.generate(rng);
      if (field.name.endsWith('clientMessageId')) value = `${String(caseNo).padStart(4, '0')}|${value as string}`;
      const expected = field.expect(value);
      const label = `seed ${SEED}, ${field.name}, case ${caseNo}: ${JSON.stringify(value).slice(0, 300)}`;
      const outcomes = await Promise.all(places.map((place) => field.run(place, value)));
      for (const [i, outcome] of outcomes.entries()) {
        const where = `${label} on ${places[i]!.instance.provider}`;
        if ('refused' in expected) {
          expect(outcome, where).toHaveProperty('refused');
          const message = (outcome as { refused: string }).refused;
          // The field itself, or a path inside it (metadata): `input.metadata.key: …`.
          expect(message.startsWith(`${expected.refused}: `) || message.startsWith(`${expected.refused}.`), `${where}: ${message}`).toBe(true);
        } else {
          expect(outcome, where).toEqual(expected);
        }
      }
      // The same answer everywhere, refusal messages included.
      expect(outcomes[1], `${label}: PostgreSQL differs from SQLite`).toEqual(outcomes[0]);
      expect(outcomes[2], `${label}: MariaDB differs from SQLite`).toEqual(outcomes[0]);
      tally['refused' in expected ? 'refused' : 'stored']++;
    }
    // Both outcomes must come up, or the property says little.
    expect(tally.stored, JSON.stringify(tally)).toBeGreaterThan(0);
    expect(tally.refused, JSON.stringify(tally)).toBeGreaterThan(0);
  });
});
