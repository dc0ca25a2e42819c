// The newest messages of each conversation, cached in Redis per user and conversation.
//
// Correctness rests on five rules:
// - An entry belongs to one (user, conversation) pair: its key encodes each id on its own, and it
//   names the pair, which a read and a fill check.
// - Entries are only ever filled from the database, and only with what a reader saw.
// - A writer brackets its database change: before it, the conversation's version is bumped, the
//   entry deleted and an in-flight writer counted (with a TTL, in case the writer dies); after
//   it, the version is bumped again, the entry deleted and the writer uncounted. One Lua step each.
// - A fill lands only if the version is still the one read before the database read and no
//   writer is in flight. So a reader that raced a writer, or a writer that died between its
//   commit and its cleanup, never leaves an entry the database did not hold.
// - Every entry carries the cache epoch. An instance that could not reach Redis around a write,
//   or whose connection to Redis dropped, bumps the epoch as soon as Redis answers again and
//   before it uses the cache, which retires every entry that might have missed a write.
// Redis failures never fail a request: every call is bounded by the command timeout, and while
// Redis is unavailable the cache stands aside and the database answers.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Message } from '../store/rows.ts';
import type { Logger } from '../logger.ts';

// KEYS: entry, version, epoch, writers. Returns {entry JSON} when it belongs to the current
// epoch, else {false, version} to fill against, or {false, false} while a writer is in flight.
const READ = `
local entry = redis.call('GET', KEYS[1])
if entry then
  local epoch = redis.call('GET', KEYS[3]) or '0'
  if string.sub(entry, 1, string.len(epoch) + 1) == epoch .. '|' then
    return {string.sub(entry, string.len(epoch) + 2)}
  end
end
if tonumber(redis.call('GET', KEYS[4]) or '0') > 0 then return {false, false} end
return {false, redis.call('GET', KEYS[2]) or '0'}
`;

// KEYS: entry, epoch. ARGV: the head of an entry parsed before, epoch included. Returns 1 when the
// entry still begins with that head under the current epoch: the same fill, not retired.
const SAME_HEAD = `
local epoch = redis.call('GET', KEYS[2]) or '0'
local head = ARGV[1]
if string.sub(head, 1, string.len(epoch) + 1) ~= epoch .. '|' then return 0 end
if redis.call('GETRANGE', KEYS[1], 0, string.len(head) - 1) == head then return 1 end
return 0
`;

// KEYS: entry, version, epoch, writers. ARGV: version seen before the database read, JSON, ttl ms.
const FILL = `
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
if tonumber(redis.call('GET', KEYS[4]) or '0') > 0 then return 0 end
local epoch = redis.call('GET', KEYS[3]) or '0'
redis.call('SET', KEYS[1], epoch .. '|' .. ARGV[2], 'PX', ARGV[3])
return 1
`;

// KEYS: entry, version, writers. ARGV: +1 before a change, -1 after it; version ttl ms; writer ttl ms.
const WRITE = `
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[1])
local writers = redis.call('INCRBY', KEYS[3], ARGV[1])
if writers <= 0 then redis.call('DEL', KEYS[3]) else redis.call('PEXPIRE', KEYS[3], ARGV[3]) end
return 1
`;

/**
 * The Redis keys of one user's conversation. Each id is encoded on its own (base64url of its UTF-16
 * code units, so any string, even an ill-formed one, has its own code), and the codes are joined by
 * `:`, which base64url never uses: two different (user, conversation) pairs never share a key. The
 * hash tag keeps a conversation's keys together on a Redis Cluster slot.
 */
export function historyKeys(prefix: string, userId: string, conversationId: string) {
  const base = `${prefix}history:{${encodeKeyPart(userId)}:${encodeKeyPart(conversationId)}}`;
  return { base, entry: `${base}:path`, version: `${base}:version`, writers: `${base}:writers`, epoch: `${prefix}history-epoch` };
}

function encodeKeyPart(id: string): string {
  return Buffer.from(id, 'utf16le').toString('base64url');
}

/**
 * An entry as stored after its epoch: the fill that wrote it, whose conversation it holds, and its
 * newest messages. `fill` comes first, so the entry's first bytes name its fill.
 */
interface StoredEntry {
  fill: string;
  userId: string;
  conversationId: string;
  messages: Message[];
}

/** An entry this instance parsed: the first bytes that identify it in Redis, and its messages. */
interface ParsedEntry {
  head: string;
  messages: Message[];
}

type CacheRedis = Redis & {
  historyRead(entry: string, version: string, epoch: string, writers: string): Promise<[string] | [null, string | null]>;
  historySameHead(entry: string, epoch: string, head: string): Promise<number>;
  historyFill(entry: string, version: string, epoch: string, writers: string, seenVersion: string, messages: string, ttlMs: number): Promise<number>;
  historyWrite(entry: string, version: string, writers: string, delta: number, versionTtlMs: number, writerTtlMs: number): Promise<number>;
};

// Longer than any transaction that changes messages: a writer that died is forgotten after it.
const WRITER_TTL_MS = 30_000;

export interface CacheStats {
  status: 'up' | 'down' | 'off';
  hits: number;
  misses: number;
  errors: number;
  /** Reads served by the database because Redis was unavailable. */
  bypassed: number;
}

/** What the cache holds for one conversation: its messages, or the version a fill must match. */
export type CacheRead = { messages: Message[] } | { version: string | null };

export interface HistoryCache {
  /** How many of a conversation's newest messages an entry holds. */
  readonly size: number;
  /** Entries of the user's conversations. `version: null` means: do not fill (Redis unavailable). */
  read(userId: string, conversationIds: string[]): Promise<Map<string, CacheRead>>;
  /** Stores the newest `size` messages (oldest first) read from the database after `read`. */
  fill(userId: string, conversationId: string, version: string, messages: Message[]): void;
  /** Runs a database change to the conversation's messages with the cache closed around it. */
  writing<T>(userId: string, conversationId: string, change: () => Promise<T>): Promise<T>;
  /** The same for one change to the messages of many conversations. */
  writingAll<T>(conversations: readonly ConversationKey[], change: () => Promise<T>): Promise<T>;
  stats(): CacheStats;
}

export interface ConversationKey {
  userId: string;
  conversationId: string;
}

/**
 * The conversation's newest `cache.size` messages, oldest first: from the cache, or from `load`,
 * which returns null when the conversation is not the user's (nothing is cached then).
 */
export async function recentMessages(cache: HistoryCache, userId: string, conversationId: string, load: () => Promise<Message[] | null>): Promise<Message[] | null> {
  const entry = (await cache.read(userId, [conversationId])).get(conversationId)!;
  if ('messages' in entry) return entry.messages;
  const messages = await load();
  if (messages !== null && entry.version !== null) cache.fill(userId, conversationId, entry.version, messages);
  return messages;
}

/** Without Redis every read goes to the database. */
export class NoHistoryCache implements HistoryCache {
  constructor(readonly size: number) {}
  async read(_userId: string, conversationIds: string[]): Promise<Map<string, CacheRead>> {
    return new Map(conversationIds.map((id) => [id, { version: null }]));
  }
  fill() {}
  writing<T>(_userId: string, _conversationId: string, change: () => Promise<T>): Promise<T> {
    return change();
  }
  writingAll<T>(_conversations: readonly ConversationKey[], change: () => Promise<T>): Promise<T> {
    return change();
  }
  stats(): CacheStats {
    return { status: 'off', hits: 0, misses: 0, errors: 0, bypassed: 0 };
  }
}

export interface RedisHistoryCacheOptions {
  redis: Redis;
  prefix: string;
  size: number;
  ttlMs: number;
  logger: Logger;
  /** How long the cache stands aside after a failure before it tries Redis again. */
  retryAfterMs?: number;
}

export class RedisHistoryCache implements HistoryCache {
  readonly size: number;
  private readonly redis: CacheRedis;
  private readonly counters = { hits: 0, misses: 0, errors: 0, bypassed: 0 };
  private available = true;
  /** An invalidation may have been lost: the epoch must move before the cache is used again. */
  private missedInvalidation = false;
  private retryAt = 0;
  private reconnecting: Promise<boolean> | undefined;
  // Entries parsed here, by key base, most recently read last.
  private readonly lastParsed = new Map<string, ParsedEntry>();
  // Keys by user and conversation: computing them is a fair part of a hit's cost.
  private readonly keyCache = new Map<string, ReturnType<typeof historyKeys>>();

  constructor(private readonly options: RedisHistoryCacheOptions) {
    this.size = options.size;
    this.redis = options.redis as CacheRedis;
    this.redis.defineCommand('historyRead', { numberOfKeys: 4, lua: READ });
    this.redis.defineCommand('historySameHead', { numberOfKeys: 2, lua: SAME_HEAD });
    this.redis.defineCommand('historyFill', { numberOfKeys: 4, lua: FILL });
    this.redis.defineCommand('historyWrite', { numberOfKeys: 3, lua: WRITE });
    // A dropped connection means Redis went away, maybe to come back from an old snapshot, or
    // while another instance could not reach it to invalidate: retire everything before reuse.
    this.redis.on('close', () => {
      this.missedInvalidation = true;
    });
  }

  private keys(userId: string, conversationId: string) {
    // The user id's length first: no two pairs share a cache key.
    const id = `${userId.length}:${userId}${conversationId}`;
    let keys = this.keyCache.get(id);
    if (!keys) {
      if (this.keyCache.size >= KEY_CACHE_SIZE) this.keyCache.delete(this.keyCache.keys().next().value!);
      keys = historyKeys(this.options.prefix, userId, conversationId);
      this.keyCache.set(id, keys);
    }
    return keys;
  }

  async read(userId: string, conversationIds: string[]): Promise<Map<string, CacheRead>> {
    const bypass = () => {
      this.counters.bypassed += conversationIds.length;
      return new Map<string, CacheRead>(conversationIds.map((id) => [id, { version: null }]));
    };
    if (!(await this.usable())) return bypass();
    try {
      const results = await Promise.all(conversationIds.map((id) => this.readOne(userId, id)));
      const reads = new Map<string, CacheRead>();
      results.forEach((read, i) => {
        if ('messages' in read) this.counters.hits++;
        else this.counters.misses++;
        reads.set(conversationIds[i]!, read);
      });
      return reads;
    } catch (error) {
      this.failed(error);
      return bypass();
    }
  }

  private async readOne(userId: string, conversationId: string): Promise<CacheRead> {
    const keys = this.keys(userId, conversationId);
    // An entry parsed here before is checked by its first bytes, which name its fill, and by the
    // epoch, in one step: a hit moves a few bytes instead of the whole entry.
    const known = this.lastParsed.get(keys.base);
    if (known) {
      if ((await this.redis.historySameHead(keys.entry, keys.epoch, known.head)) === 1) {
        this.remember(keys.base, known);
        return { messages: known.messages };
      }
    }
    // A full read needs only the entry and the epoch: one MGET costs Redis far less than the
    // script, which runs only on a miss, for the version to fill against.
    const [entry, epoch] = await this.redis.mget(keys.entry, keys.epoch);
    const current = `${epoch ?? '0'}|`;
    if (entry?.startsWith(current)) {
      const stored = pairEntry(entry.slice(current.length), userId, conversationId);
      if (stored) this.remember(keys.base, { head: current + entryHead(stored.fill), messages: stored.messages });
      // An entry of another owner or conversation is never served, nor overwritten by this read.
      return stored ? { messages: stored.messages } : { version: null };
    }
    // The script finds the entry too when it was filled after the MGET (its epoch unknown here,
    // so it is served but not remembered).
    const [cached, version] = await this.redis.historyRead(keys.entry, keys.version, keys.epoch, keys.writers);
    if (cached == null) return { version: version ?? null };
    const stored = pairEntry(cached, userId, conversationId);
    return stored ? { messages: stored.messages } : { version: null };
  }

  /** Keeps the entry as the most recently read, evicting the least recently read beyond the bound. */
  private remember(base: string, entry: ParsedEntry): void {
    this.lastParsed.delete(base);
    if (this.lastParsed.size >= PARSED_ENTRIES) this.lastParsed.delete(this.lastParsed.keys().next().value!);
    this.lastParsed.set(base, entry);
  }

  fill(userId: string, conversationId: string, version: string, messages: Message[]): void {
    if (!this.available) return;
    // Only the conversation's own rows, exactly as named: a database that matched the ids loosely
    // (another case, trailing spaces) must not give one conversation two entries.
    if (messages.some((m) => m.userId !== userId || m.conversationId !== conversationId)) return;
    const keys = this.keys(userId, conversationId);
    const entry: StoredEntry = { fill: randomUUID(), userId, conversationId, messages };
    this.redis.historyFill(keys.entry, keys.version, keys.epoch, keys.writers, version, JSON.stringify(entry), this.options.ttlMs).catch((error) => this.failed(error));
  }

  writing<T>(userId: string, conversationId: string, change: () => Promise<T>): Promise<T> {
    return this.writingAll([{ userId, conversationId }], change);
  }

  async writingAll<T>(conversations: readonly ConversationKey[], change: () => Promise<T>): Promise<T> {
    const mark = async (delta: 1 | -1) => {
      // Unavailable: this mark is lost, and the epoch moves before the cache is used again.
      if (!this.available) return;
      try {
        await Promise.all(
          conversations.map(({ userId, conversationId }) => {
            const keys = this.keys(userId, conversationId);
            return this.redis.historyWrite(keys.entry, keys.version, keys.writers, delta, this.options.ttlMs, WRITER_TTL_MS);
          }),
        );
      } catch (error) {
        this.failed(error);
      }
    };
    await mark(1);
    try {
      return await change();
    } finally {
      // Not awaited: until it lands, readers find no entry and do not fill, and read the database,
      // which already holds the change. The caller's answer need not wait one more round trip.
      void mark(-1);
    }
  }

  stats(): CacheStats {
    return { status: this.available ? 'up' : 'down', ...this.counters };
  }

  private failed(error: unknown): void {
    this.counters.errors++;
    if (this.available) {
      // A failed or timed-out call may still run later: the cache is used again only after
      // reconnecting, which moves the epoch (usable()).
      this.available = false;
      this.options.logger.error({ err: error }, 'Redis history cache unavailable; reading from the database until it is back');
    }
    this.retryAt = Date.now() + (this.options.retryAfterMs ?? 1000);
  }

  /** Whether reads may use Redis now; after an outage or a dropped connection, first retires every entry. */
  private async usable(): Promise<boolean> {
    if (this.available && !this.missedInvalidation) return true;
    if (Date.now() < this.retryAt) return false;
    this.reconnecting ??= (async () => {
      try {
        await this.redis.incr(this.keys('', '').epoch);
        this.missedInvalidation = false;
        if (!this.available) this.options.logger.info('Redis history cache is back; entries from before the outage are retired');
        this.available = true;
        return true;
      } catch (error) {
        this.failed(error);
        return false;
      } finally {
        this.reconnecting = undefined;
      }
    })();
    return this.reconnecting;
  }
}

const DATE_FIELDS = ['createdAt', 'updatedAt', 'leaseExpiresAt'] as const;

/** How many parsed entries each instance keeps for reuse (most recently read first). */
const PARSED_ENTRIES = 200;

/** How many key sets each instance keeps computed. */
const KEY_CACHE_SIZE = 1000;

/** The entry's text up to the end of its fill id. */
function entryHead(fill: string): string {
  return `{"fill":${JSON.stringify(fill)}`;
}

const FILL_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The entry in `text` when it is one of this format and holds this pair's conversation, else null. */
function pairEntry(text: string, userId: string, conversationId: string): StoredEntry | null {
  const entry = reviveEntry(text);
  return entry && entry.userId === userId && entry.conversationId === conversationId ? entry : null;
}

// Frozen: the same objects go to every reader of an unchanged entry. Null for text that is not an
// entry of this format (an older one, or anything else found under the key).
function reviveEntry(json: string): StoredEntry | null {
  let entry: Partial<StoredEntry> | null;
  try {
    entry = JSON.parse(json) as Partial<StoredEntry> | null;
  } catch {
    return null;
  }
  // The head that later hits compare must be the entry's own first bytes.
  if (typeof entry?.fill !== 'string' || !FILL_ID.test(entry.fill) || !json.startsWith(entryHead(entry.fill))) return null;
  if (typeof entry.userId !== 'string' || typeof entry.conversationId !== 'string' || !Array.isArray(entry.messages)) return null;
  const messages = entry.messages;
  for (const message of messages) {
    for (const field of DATE_FIELDS) {
      const value = message[field] as unknown;
      if (typeof value === 'string') (message as Record<string, unknown>)[field] = new Date(value);
    }
    Object.freeze(message);
  }
  return { fill: entry.fill, userId: entry.userId, conversationId: entry.conversationId, messages: Object.freeze(messages) as Message[] };
}
