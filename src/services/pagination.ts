// Relay cursor pagination over keys that the server encodes itself. Cursors carry sort-key values,
// never row ids, so a cursor made up by a client positions a page and cannot probe other rows.
import { badInput } from '../errors.ts';
import type { PageWindow } from '../store/store.ts';

export type { PageWindow };

export const MAX_PAGE_SIZE = 100;
export const DEFAULT_PAGE_SIZE = 20;

export interface PageArgs {
  first?: number | null;
  after?: string | null;
  last?: number | null;
  before?: string | null;
}


export interface CursorCodec<Key> {
  encode(key: Key): string;
  /** undefined when the text is not a cursor of this kind */
  decode(text: string): Key | undefined;
}

export function cursorCodec<Key>(prefix: string, toText: (key: Key) => string, fromText: (text: string) => Key | undefined): CursorCodec<Key> {
  return {
    encode: (key) => Buffer.from(`${prefix}:${toText(key)}`).toString('base64url'),
    decode: (cursor) => {
      const text = Buffer.from(cursor, 'base64url').toString();
      return text.startsWith(`${prefix}:`) ? fromText(text.slice(prefix.length + 1)) : undefined;
    },
  };
}

function checkSize(name: string, value: number | null | undefined): void {
  if (value != null && (value < 1 || value > MAX_PAGE_SIZE)) throw badInput(name, `must be between 1 and ${MAX_PAGE_SIZE}`);
}

export function pageWindow<Key>(args: PageArgs, codec: CursorCodec<Key>): PageWindow<Key> {
  checkSize('first', args.first);
  checkSize('last', args.last);
  if (args.first != null && args.last != null) throw badInput('last', 'cannot be combined with first');
  const decode = (name: string, cursor: string | null | undefined) => {
    if (cursor == null) return undefined;
    const key = codec.decode(cursor);
    if (key === undefined) throw badInput(name, 'is not a valid cursor');
    return key;
  };
  const fromEnd = args.last != null || (args.before != null && args.first == null && args.after == null);
  return {
    limit: (fromEnd ? args.last : args.first) ?? DEFAULT_PAGE_SIZE,
    fromEnd,
    after: decode('after', args.after),
    before: decode('before', args.before),
  };
}

export interface Connection<Node> {
  edges: { cursor: string; node: Node }[];
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
}

/**
 * Builds the connection from the rows fetched for `window`, in fetch order (reversed when
 * `fromEnd`) and up to `limit + 1` long: the extra row only tells that there is more.
 */
export function toConnection<Node, Key>(rows: Node[], window: PageWindow<Key>, keyOf: (node: Node) => Key, codec: CursorCodec<Key>): Connection<Node> {
  const more = rows.length > window.limit;
  const page = rows.slice(0, window.limit);
  if (window.fromEnd) page.reverse();
  const edges = page.map((node) => ({ cursor: codec.encode(keyOf(node)), node }));
  return {
    edges,
    pageInfo: {
      hasNextPage: window.fromEnd ? window.before !== undefined : more,
      hasPreviousPage: window.fromEnd ? more : window.after !== undefined,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null,
    },
  };
}
