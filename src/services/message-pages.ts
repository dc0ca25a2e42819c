// Pages of Conversation.messages, and message counts, for every conversation of one GraphQL
// request, loaded together.
// A list of 50 conversations asking for their last 5 messages costs two queries: one window
// query that picks each conversation's rows, and one that reads them.
import type { HistoryCache } from '../cache/history-cache.ts';
import type { Db } from '../db/client.ts';
import type { DatabaseProvider } from '../db/provider.ts';
import { Prisma, type Message } from '../generated/prisma/sqlite/client.ts';

const { join, raw, sql } = Prisma;
import { cursorCodec, pageWindow, toConnection, type Connection, type PageArgs, type PageWindow } from './pagination.ts';

export const messageCursor = cursorCodec<number>(
  'message',
  (seq) => String(seq),
  (text) => (/^\d{1,10}$/.test(text) ? Number(text) : undefined),
);

interface Request {
  conversationId: string;
  resolve(rows: Message[]): void;
  reject(error: unknown): void;
}

type Batch = { window: PageWindow<number>; requests: Request[] };

// Every column of Message, in the model's order.
const MESSAGE_COLUMNS = Object.values(Prisma.MessageScalarFieldEnum);

export class MessagePageLoader {
  // Created on first use: every operation's context has a loader, few operations page messages.
  private batchesByKey: Map<string, Batch> | undefined;
  private pendingCounts: { ids: Set<string>; counted: Promise<Map<string, number>> } | undefined;

  constructor(
    private readonly db: Db,
    private readonly provider: DatabaseProvider,
    private readonly cache: HistoryCache,
    private readonly userId: string,
  ) {}

  /** The page of the conversation's messages that `args` asks for; the caller checked ownership. */
  async load(conversationId: string, args: PageArgs): Promise<Connection<Message>> {
    const window = pageWindow(args, messageCursor);
    const rows = await new Promise<Message[]>((resolve, reject) => {
      const key = JSON.stringify(window);
      const batches = (this.batchesByKey ??= new Map<string, Batch>());
      let batch = batches.get(key);
      if (!batch) {
        batch = { window, requests: [] };
        batches.set(key, batch);
        // Every field resolved in this tick joins the batch.
        const current = batch;
        process.nextTick(() => {
          batches.delete(key);
          this.run(current.window, current.requests).catch((error) => current.requests.forEach((r) => r.reject(error)));
        });
      }
      batch.requests.push({ conversationId, resolve, reject });
    });
    return toConnection(rows, window, (m) => m.seq, messageCursor);
  }

  /**
   * How many messages the conversation has, counted together with every other count asked for in
   * the same tick. Prisma's relation count joins a GROUP BY over the whole Message table; this
   * counts only the listed conversations, through the (conversationId, seq) index.
   */
  count(conversationId: string): Promise<number> {
    if (!this.pendingCounts) {
      const ids = new Set<string>();
      const counted = new Promise<Map<string, number>>((resolve, reject) =>
        process.nextTick(() => {
          this.pendingCounts = undefined;
          this.countAll([...ids]).then(resolve, reject);
        }),
      );
      this.pendingCounts = { ids, counted };
    }
    this.pendingCounts.ids.add(conversationId);
    return this.pendingCounts.counted.then((counts) => counts.get(conversationId) ?? 0);
  }

  private async countAll(ids: string[]): Promise<Map<string, number>> {
    const groups = await this.db.message.groupBy({ by: ['conversationId'], where: { conversationId: { in: ids }, userId: this.userId }, _count: { _all: true } });
    return new Map(groups.map((group) => [group.conversationId, group._count._all]));
  }

  private async run(window: PageWindow<number>, requests: Request[]): Promise<void> {
    const ids = [...new Set(requests.map((r) => r.conversationId))];
    const rows = this.isNewestPage(window) ? await this.newestPages(ids, window.limit) : await this.pages(ids, window);
    const byConversation = new Map<string, Message[]>();
    for (const row of rows) {
      const list = byConversation.get(row.conversationId);
      if (list) list.push(row);
      else byConversation.set(row.conversationId, [row]);
    }
    for (const request of requests) request.resolve(byConversation.get(request.conversationId) ?? []);
  }

  /** `last: n` without a cursor, and small enough for the history cache to answer. */
  private isNewestPage(window: PageWindow<number>): boolean {
    return window.fromEnd && window.after === undefined && window.before === undefined && window.limit + 1 <= this.cache.size;
  }

  /** Newest first, `limit + 1` per conversation: cached entries, the rest read together and cached. */
  private async newestPages(ids: string[], limit: number): Promise<Message[]> {
    const reads = await this.cache.read(this.userId, ids);
    const missing = ids.filter((id) => !('messages' in reads.get(id)!));
    // Whole entries are read only when they can be cached; otherwise just the page.
    const fillable = missing.some((id) => (reads.get(id) as { version: string | null }).version !== null);
    const loaded = missing.length > 0 ? await this.pages(missing, { limit: fillable ? this.cache.size - 1 : limit, fromEnd: true }) : [];
    const rows: Message[] = [];
    for (const id of ids) {
      const read = reads.get(id)!;
      let newest: Message[];
      if ('messages' in read) {
        newest = read.messages;
      } else {
        newest = loaded.filter((m) => m.conversationId === id).reverse();
        if (read.version !== null) this.cache.fill(this.userId, id, read.version, newest);
      }
      rows.push(...newest.slice(-(limit + 1)).reverse());
    }
    return rows;
  }

  /**
   * PostgreSQL: the window query returns the rows themselves, instead of ids to read in a second
   * query. Raw rows come back with the same types as Prisma's model queries there (a test checks).
   */
  private pagesInOneQuery(conditions: Prisma.Sql[], order: 'asc' | 'desc', perConversation: number): Promise<Message[]> {
    const columns = raw(MESSAGE_COLUMNS.map((c) => `"${c}"`).join(', '));
    return this.db.$queryRaw<Message[]>`
      SELECT ${columns} FROM (
        SELECT ${columns}, ROW_NUMBER() OVER (PARTITION BY "conversationId" ORDER BY "seq" ${raw(order)}) AS rn
        FROM "Message"
        WHERE ${join(conditions, ' AND ')}
      ) ranked WHERE rn <= ${perConversation} ORDER BY "seq" ${raw(order)}`;
  }

  /** Rows of each conversation in window order, at most `limit + 1` each. */
  private async pages(ids: string[], window: PageWindow<number>): Promise<Message[]> {
    const seqRange = { gt: window.after, lt: window.before };
    const order = window.fromEnd ? 'desc' : 'asc';
    let rows: Message[];
    if (ids.length === 1) {
      rows = await this.db.message.findMany({ where: { conversationId: ids[0], seq: seqRange }, orderBy: { seq: order }, take: window.limit + 1 });
    } else {
      const quote = this.provider === 'mysql' ? '`' : '"';
      const q = (name: string) => raw(`${quote}${name}${quote}`);
      const conditions = [sql`${q('conversationId')} IN (${join(ids)})`];
      if (window.after !== undefined) conditions.push(sql`${q('seq')} > ${window.after}`);
      if (window.before !== undefined) conditions.push(sql`${q('seq')} < ${window.before}`);
      if (this.provider === 'postgresql') return this.pagesInOneQuery(conditions, order, window.limit + 1);
      const picked = await this.db.$queryRaw<{ id: string }[]>`
        SELECT ${q('id')} AS id FROM (
          SELECT ${q('id')}, ROW_NUMBER() OVER (PARTITION BY ${q('conversationId')} ORDER BY ${q('seq')} ${raw(order)}) AS rn
          FROM ${q('Message')}
          WHERE ${join(conditions, ' AND ')}
        ) ranked WHERE rn <= ${window.limit + 1}`;
      rows = picked.length === 0 ? [] : await this.db.message.findMany({ where: { id: { in: picked.map((p) => p.id) } }, orderBy: { seq: order } });
    }
    return rows;
  }
}
