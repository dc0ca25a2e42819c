// Pages of Conversation.messages, and message counts, for every conversation of one GraphQL
// request, loaded together.
// A list of 50 conversations asking for their last 5 messages and their counts costs one window
// query where the store counts with its pages (PostgreSQL), two elsewhere (the rows, the counts).
import type { HistoryCache } from '../cache/history-cache.ts';
import type { Message } from '../store/rows.ts';
import type { Store } from '../store/store.ts';
import { cursorCodec, pageWindow, toConnection, type Connection, type PageArgs, type PageWindow } from './pagination.ts';

// seq is a 32-bit column: a cursor past its range was made up, and the database would refuse it.
const MAX_SEQ = 2 ** 31 - 1;

export const messageCursor = cursorCodec<number>(
  'message',
  (seq) => String(seq),
  (text) => (/^\d{1,10}$/.test(text) && Number(text) <= MAX_SEQ ? Number(text) : undefined),
);

interface Request {
  conversationId: string;
  resolve(rows: Message[]): void;
  reject(error: unknown): void;
}

/** `columns`: what the batch's requests read (the keys always), or undefined: every column. */
type Batch = { window: PageWindow<number>; requests: Request[]; columns: Set<string> | undefined };

/** Message counts of the conversations whose every message a page query counted. */
type Totals = Map<string, number>;

interface PendingCounts {
  ids: Set<string>;
  counted: Promise<Map<string, number>>;
  resolve(counts: Map<string, number>): void;
  reject(error: unknown): void;
}

// Read whatever the operation selects: what identifies, pages and owns a row.
const KEY_COLUMNS = ['id', 'conversationId', 'userId', 'seq'];

export class MessagePageLoader {
  // Created on first use: every operation's context has a loader, few operations page messages.
  private batchesByKey: Map<string, Batch> | undefined;
  private pendingCounts: PendingCounts | undefined;
  private scheduled = false;

  constructor(
    private readonly store: Store & { readonly pagesCarryTotals: boolean },
    private readonly cache: HistoryCache,
    private readonly userId: string,
  ) {}

  /**
   * The page of the conversation's messages that `args` asks for; the caller checked ownership.
   * With `columns`, rows may carry only those columns (and the keys), on PostgreSQL: an operation
   * selecting three fields of 20 messages does not read and convert all eighteen.
   */
  async load(conversationId: string, args: PageArgs, columns?: readonly string[]): Promise<Connection<Message>> {
    const window = pageWindow(args, messageCursor);
    const rows = await new Promise<Message[]>((resolve, reject) => {
      const key = JSON.stringify(window);
      const batches = (this.batchesByKey ??= new Map<string, Batch>());
      let batch = batches.get(key);
      if (!batch) {
        batch = { window, requests: [], columns: new Set(KEY_COLUMNS) };
        batches.set(key, batch);
        this.schedule();
      }
      if (!columns) batch.columns = undefined;
      else if (batch.columns) for (const column of columns) batch.columns.add(column);
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
      let settle!: Pick<PendingCounts, 'resolve' | 'reject'>;
      const counted = new Promise<Map<string, number>>((resolve, reject) => (settle = { resolve, reject }));
      this.pendingCounts = { ids: new Set(), counted, ...settle };
      this.schedule();
    }
    this.pendingCounts.ids.add(conversationId);
    return this.pendingCounts.counted.then((counts) => counts.get(conversationId) ?? 0);
  }

  /** Every page and count asked for in this tick (a list's fields) is loaded together. */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    process.nextTick(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    const batches = [...(this.batchesByKey?.values() ?? [])];
    this.batchesByKey?.clear();
    const counts = this.pendingCounts;
    this.pendingCounts = undefined;
    // A store that counts with its pages (PostgreSQL) counts each conversation's messages in the
    // window query of a page without a cursor (it reads every row of those conversations anyway).
    const totals: Totals = new Map();
    const carrier = counts && this.store.pagesCarryTotals ? batches.find((b) => b.window.after === undefined && b.window.before === undefined) : undefined;
    let carried = Promise.resolve();
    for (const batch of batches) {
      const run = this.run(batch, batch === carrier ? totals : undefined).catch((error) => batch.requests.forEach((r) => r.reject(error)));
      if (batch === carrier) carried = run;
    }
    if (!counts) return;
    void carried
      .then(async () => {
        const rest = [...counts.ids].filter((id) => !totals.has(id));
        if (rest.length > 0) for (const [id, count] of await this.countAll(rest)) totals.set(id, count);
        counts.resolve(totals);
      })
      .catch(counts.reject);
  }

  private countAll(ids: string[]): Promise<Map<string, number>> {
    return this.store.countMessages(this.userId, ids);
  }

  private async run({ window, requests, columns }: Batch, totals?: Totals): Promise<void> {
    const ids = [...new Set(requests.map((r) => r.conversationId))];
    const rows = this.isNewestPage(window) ? await this.newestPages(ids, window.limit, columns, totals) : await this.pages(ids, window, columns, totals);
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
  private async newestPages(ids: string[], limit: number, columns: Set<string> | undefined, totals?: Totals): Promise<Message[]> {
    const reads = await this.cache.read(this.userId, ids);
    const missing = ids.filter((id) => !('messages' in reads.get(id)!));
    // Whole entries are read only when they can be cached; otherwise just the page.
    const fillable = missing.some((id) => (reads.get(id) as { version: string | null }).version !== null);
    const loaded = missing.length > 0 ? await this.pages(missing, { limit: fillable ? this.cache.size - 1 : limit, fromEnd: true }, fillable ? undefined : columns, totals) : [];
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

  /** Rows of each conversation in window order, at most `limit + 1` each. */
  private async pages(ids: string[], window: PageWindow<number>, columns: Set<string> | undefined, totals?: Totals): Promise<Message[]> {
    const pages = await this.store.messagePages({ userId: this.userId, conversationIds: ids, window, columns, withTotals: totals !== undefined });
    if (totals && pages.totals) for (const [id, count] of pages.totals) totals.set(id, count);
    return pages.rows;
  }
}
