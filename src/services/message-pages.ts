// Pages of Conversation.messages (the active path), and message counts, for every conversation of
// one GraphQL request, loaded together. A list of 50 conversations asking for their last 5
// messages and their counts costs two statements: the pages (each through the index), and the
// path lengths kept on the conversations.
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
    private readonly store: Store,
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

  /** How many messages the conversation's active path holds, read with every other count asked for in the same tick. */
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
    for (const batch of batches) this.run(batch).catch((error) => batch.requests.forEach((r) => r.reject(error)));
    const counts = this.pendingCounts;
    this.pendingCounts = undefined;
    if (counts) this.store.countMessages(this.userId, [...counts.ids]).then(counts.resolve, counts.reject);
  }

  private async run({ window, requests, columns }: Batch): Promise<void> {
    const ids = [...new Set(requests.map((r) => r.conversationId))];
    const rows = this.isNewestPage(window) ? await this.newestPages(ids, window.limit, columns) : await this.pages(ids, window, columns);
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
  private async newestPages(ids: string[], limit: number, columns: Set<string> | undefined): Promise<Message[]> {
    const reads = await this.cache.read(this.userId, ids);
    const missing = ids.filter((id) => !('messages' in reads.get(id)!));
    // Whole entries are read only when they can be cached; otherwise just the page.
    const fillable = missing.some((id) => (reads.get(id) as { version: string | null }).version !== null);
    const loaded = missing.length > 0 ? await this.pages(missing, { limit: fillable ? this.cache.size - 1 : limit, fromEnd: true }, fillable ? undefined : columns) : [];
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
  private async pages(ids: string[], window: PageWindow<number>, columns: Set<string> | undefined): Promise<Message[]> {
    return (await this.store.messagePages({ userId: this.userId, conversationIds: ids, window, columns })).rows;
  }
}
