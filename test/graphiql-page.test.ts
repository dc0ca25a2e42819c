// The GraphiQL page's patch, without a browser: it is in the page Parley serves, it fails loudly
// when the package's markup no longer fits, and its fetcher wrapper (run here in a bare V8
// context) shows a subscription's every event and leaves other operations alone.
import { parse } from 'graphql';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { EVERY_EVENT_SCRIPT, graphiqlOptions, renderGraphiQL, withEveryEvent } from '../src/server/graphiql.ts';

type Fetcher = (params: { query: string; operationName?: string }, options?: { documentAST?: unknown }) => Promise<unknown>;
const everyEvent = (): ((fetcher: Fetcher) => Fetcher) => {
  const context: { parleyEveryEvent?: (fetcher: Fetcher) => Fetcher } = {};
  runInNewContext(EVERY_EVENT_SCRIPT, context);
  return context.parleyEveryEvent!;
};
const run = (fetcher: Fetcher, query: string, operationName?: string) => fetcher({ query, operationName }, { documentAST: parse(query) });

async function* events<T>(...values: T[]) {
  yield* values;
}
const event = (seq: number, delta: string) => ({ data: { messageStream: { seq, delta, done: delta === '' } } });

describe('the GraphiQL page', () => {
  it('hands GraphiQL the wrapped fetcher, defined before the bundle runs', () => {
    const page = renderGraphiQL(graphiqlOptions({ auth: false }));
    expect(page.match(/fetcher:parleyEveryEvent\([\w$]+\),children:/g)).toHaveLength(1);
    expect(page.match(/\bfetcher:[\w$]+,children:/g)).toBeNull();
    const definition = page.indexOf(EVERY_EVENT_SCRIPT);
    expect(definition).toBeGreaterThan(0);
    expect(definition).toBeLessThan(page.indexOf('YogaGraphiQL.renderYogaGraphiQL('));
  });

  it('fails loudly when the package markup no longer has exactly one place to patch', () => {
    const page = '<html><body><script>render({...n,fetcher:s,children:x})</script></body></html>';
    expect(withEveryEvent(page)).toContain('fetcher:parleyEveryEvent(s),children:');
    expect(() => withEveryEvent(page.replace('fetcher:s', 'fetcher:()=>s'))).toThrow(/found 0 .*has @graphql-yoga\/render-graphiql changed/);
    expect(() => withEveryEvent(page.replace('fetcher:s,children:x', 'fetcher:s,children:x,fetcher:t,children:y'))).toThrow(/found 2/);
    expect(() => withEveryEvent(page.replaceAll('<script>', '<script type="module">'))).toThrow(/found 1 and none/);
  });
});

describe('the fetcher wrapper', () => {
  it('returns a query or mutation result as is, and the same wrapper for the same fetcher', async () => {
    const wrap = everyEvent();
    const result = { data: { sendMessage: { id: '1' } } };
    const fetcher: Fetcher = async () => result;
    expect(wrap(fetcher)).toBe(wrap(fetcher));
    expect(await run(wrap(fetcher), 'mutation Send { sendMessage { id } }')).toBe(result);
    // An operation named in a document of several: its own type decides.
    const stream = events(event(0, 'a'));
    expect(await run(wrap(async () => stream), 'subscription Follow { messageStream { seq } } query Q { me { id } }', 'Q')).toBe(stream);
  });

  it('turns each result of a subscription into every result so far, and the deltas joined', async () => {
    const wrap = everyEvent();
    const sent = [event(0, 'You '), event(1, 'said'), event(2, '')];
    const shown: unknown[] = [];
    const results = (await run(wrap(async () => events(...sent)), 'subscription Follow($id: ID!) { messageStream(messageId: $id) { seq delta done } }')) as AsyncIterable<unknown>;
    for await (const result of results) shown.push(JSON.parse(JSON.stringify(result)));
    expect(shown).toEqual([
      { text: 'You ', events: sent.slice(0, 1) },
      { text: 'You said', events: sent.slice(0, 2) },
      { text: 'You said', events: sent },
    ]);
    // No delta selected, no text; an error result is an event like the others.
    const failed = { errors: [{ message: 'message not found' }] };
    const noDelta = (await run(wrap(async () => events<unknown>({ data: { messageStream: { seq: 0 } } }, failed)), 'subscription { messageStream(messageId: "1") { seq } }')) as AsyncIterable<unknown>;
    const last: unknown[] = [];
    for await (const result of noDelta) last.push(JSON.parse(JSON.stringify(result)));
    expect(last.at(-1)).toEqual({ events: [{ data: { messageStream: { seq: 0 } } }, failed] });
  });

  it("passes GraphiQL's Stop straight to the source, even while it waits for the next event", async () => {
    let returned = false;
    const source = {
      [Symbol.asyncIterator]: () => source,
      next: () => new Promise<IteratorResult<unknown>>(() => {}),
      return: async () => ((returned = true), { done: true as const, value: undefined }),
    };
    const results = (await run(everyEvent()(async () => source), 'subscription { messageStream(messageId: "1") { seq } }')) as AsyncIterableIterator<unknown>;
    const iterator = results[Symbol.asyncIterator]();
    void iterator.next();
    await iterator.return!();
    expect(returned).toBe(true);
  });
});
