// One pipeline: a plugin added after Parley's own sees every operation, on every path (HTTP POST
// through Yoga and through the fast path, GET, SSE, graphql-ws), at every phase (parse, validate,
// context, execute or subscribe, done), exactly once; and every operation's resolvers run once.
// The plugin wraps the resolvers of the fields the operations use, so an operation that ran twice
// (the fast path's old way with a failed query: run, then again in Yoga) is counted twice.
import { parse, type GraphQLObjectType, type GraphQLResolveInfo, type GraphQLSchema } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startParley, type TestServer } from './support/parley.ts';
import { subscribeSse, subscribeWs, wsClient } from './support/subscriptions.ts';

type Phase = 'parse' | 'validate' | 'context' | 'execute' | 'subscribe' | 'done';

/** What the plugin saw: the phases of each operation (by its variables), and resolver runs by marker. */
interface Seen {
  phases: Map<string, Phase[]>;
  runs: Map<string, number>;
  httpResults: number;
}

const variablesKey = (variables: unknown) => JSON.stringify(variables ?? null);

function recorder(seen: Seen, { hookHttpLayer = false } = {}): Plugin<{ params?: { variables?: unknown } }> {
  const note = (variables: unknown, phase: Phase) => {
    const key = variablesKey(variables);
    seen.phases.set(key, [...(seen.phases.get(key) ?? []), phase]);
  };
  const ran = (marker: unknown) => seen.runs.set(String(marker), (seen.runs.get(String(marker)) ?? 0) + 1);
  // Each field's marker: the argument that carries the operation's unique value.
  const wrapped: [type: 'Query' | 'Mutation' | 'Subscription', field: string, marker: (args: Record<string, any>) => unknown][] = [
    ['Query', 'conversation', (args) => args.id],
    ['Query', 'history', (args) => args.conversationId],
    ['Mutation', 'addMessage', (args) => args.input.content],
    ['Subscription', 'messageStream', (args) => args.messageId],
  ];
  const plugin: Plugin<{ params?: { variables?: unknown } }> = {
    onSchemaChange({ schema }) {
      for (const [typeName, fieldName, marker] of wrapped) {
        const field = ((schema as GraphQLSchema).getType(typeName) as GraphQLObjectType).getFields()[fieldName]!;
        const key = typeName === 'Subscription' ? 'subscribe' : 'resolve';
        const original = field[key]!;
        if ((original as { wrapped?: boolean }).wrapped) continue;
        const counted = (source: unknown, args: Record<string, unknown>, context: unknown, info: GraphQLResolveInfo) => {
          ran(marker(args));
          return original(source, args, context, info);
        };
        field[key] = Object.assign(counted, { wrapped: true });
      }
    },
    onParse: ({ context }) => note(context.params?.variables, 'parse'),
    onValidate: ({ context }) => note(context.params?.variables, 'validate'),
    onContextBuilding: ({ context }) => note(context.params?.variables, 'context'),
    onExecute({ args }) {
      note(args.variableValues, 'execute');
      return { onExecuteDone: () => note(args.variableValues, 'done') };
    },
    onSubscribe({ args }) {
      note(args.variableValues, 'subscribe');
      return { onSubscribeResult: () => note(args.variableValues, 'done') };
    },
  };
  if (hookHttpLayer) plugin.onResultProcess = () => void seen.httpResults++;
  return plugin;
}

const CONVERSATION = 'query Conversation($id: ID!) { conversation(id: $id) { id } }';
const HISTORY = 'query History($id: ID!) { history(conversationId: $id) { content } }';
const ADD = 'mutation Add($i: AddMessageInput!) { addMessage(input: $i) { content } }';
const STREAM = 'subscription Stream($id: ID!) { messageStream(messageId: $id) { seq done status } }';

describe.each([
  ['with the fast path', false],
  ['with a plugin on Yoga’s HTTP layer (the fast path steps aside)', true],
] as const)('a plugin added to the pipeline, %s', (_name, hookHttpLayer) => {
  const seen: Seen = { phases: new Map(), runs: new Map(), httpResults: 0 };
  let server: TestServer;
  let marker = 0;
  // Shaped as ids, so that each is a well-formed id of nothing.
  const nextMarker = () => `01a1e9c2-0000-7000-8000-${String(++marker).padStart(12, '0')}`;
  /** Every operation sent, what it must have been seen as, and the marker its resolver runs under. */
  const sent: { path: string; variables: unknown; kind: 'execute' | 'subscribe'; marker: string }[] = [];
  let httpRequests = 0;
  let finished: string[] = [];

  async function post(query: string, variables: unknown, accept?: string) {
    httpRequests++;
    const res = await fetch(server.graphqlUrl, { method: 'POST', headers: { 'content-type': 'application/json', ...(accept ? { accept } : {}) }, body: JSON.stringify({ query, variables }) });
    return (await res.json()) as { data?: unknown; errors?: { extensions?: { code?: string } }[] };
  }
  async function get(query: string, variables: unknown) {
    httpRequests++;
    const url = `${server.graphqlUrl}?query=${encodeURIComponent(query)}&variables=${encodeURIComponent(JSON.stringify(variables))}`;
    return (await (await fetch(url, { headers: { accept: 'application/graphql-response+json' } })).json()) as { data?: unknown; errors?: unknown[] };
  }

  /** The operations each path runs: a success and a failure of each kind, each with its own marker. */
  function operations() {
    const ops: { name: string; query: string; variables: unknown; marker: string; kind: 'execute' | 'subscribe'; fails: boolean }[] = [];
    let m = nextMarker();
    ops.push({ name: 'query', query: CONVERSATION, variables: { id: m }, marker: m, kind: 'execute', fails: false });
    m = nextMarker();
    ops.push({ name: 'failing query', query: HISTORY, variables: { id: m }, marker: m, kind: 'execute', fails: true });
    m = nextMarker();
    ops.push({ name: 'mutation', query: ADD, variables: { i: { role: 'USER', content: m } }, marker: m, kind: 'execute', fails: false });
    m = nextMarker();
    ops.push({ name: 'failing mutation', query: ADD, variables: { i: { conversationId: nextMarker(), role: 'USER', content: m } }, marker: m, kind: 'execute', fails: true });
    return ops;
  }

  beforeAll(async () => {
    server = await startParley({ plugins: [recorder(seen, { hookHttpLayer })] });
    // Finished replies to follow: one per subscription sent below.
    for (let i = 0; i < 4; i++) {
      const added = await post('mutation($i: AddMessageInput!) { addMessage(input: $i) { id } }', { i: { role: 'ASSISTANT', content: `finished ${i}` } });
      finished.push((added.data as { addMessage: { id: string } }).addMessage.id);
    }
    seen.phases.clear();
    seen.runs.clear();
    seen.httpResults = 0;
    httpRequests = 0;
  });
  afterAll(() => server?.stop());

  it('sees every operation over HTTP POST, through Yoga and then the fast path, once each', async () => {
    // Yoga runs a document first (and teaches the fast path); the same documents then take the fast path.
    for (const [path, accept] of [['POST through Yoga', 'application/graphql-response+json'], ['POST, known documents', undefined]] as const) {
      const answered = server.app.fastPathCounts.answered;
      for (const op of operations()) {
        const result = await post(op.query, op.variables, accept);
        expect(Boolean(result.errors), `${path}: ${op.name}`).toBe(op.fails);
        sent.push({ path, variables: op.variables, kind: op.kind, marker: op.marker });
      }
      const fastPathTook = server.app.fastPathCounts.answered - answered;
      expect(fastPathTook, path).toBe(path === 'POST, known documents' && !hookHttpLayer ? 4 : 0);
    }
  });

  it('sees every query over GET once', async () => {
    for (const op of operations().filter((op) => op.kind === 'execute' && op.query !== ADD)) {
      const result = await get(op.query, op.variables);
      expect(Boolean(result.errors), op.name).toBe(op.fails);
      sent.push({ path: 'GET', variables: op.variables, kind: op.kind, marker: op.marker });
    }
  });

  it('sees every operation over SSE and graphql-ws once, subscriptions included', async () => {
    const ws = wsClient(server.graphqlUrl);
    try {
      for (const path of ['SSE', 'graphql-ws'] as const) {
        const ops = [
          ...operations(),
          { name: 'subscription', query: STREAM, variables: { id: finished.pop()! }, kind: 'subscribe' as const, fails: false },
          { name: 'failing subscription', query: STREAM, variables: { id: nextMarker() }, kind: 'subscribe' as const, fails: true },
        ];
        for (const op of ops) {
          const document = parse(op.query);
          const run = path === 'SSE' ? subscribeSse(server.graphqlUrl, document, op.variables as Record<string, unknown>) : subscribeWs(ws, document, op.variables as Record<string, unknown>);
          await run.done.catch(() => {});
          expect(run.errors.length > 0, `${path}: ${op.name}`).toBe(op.fails);
          if (op.fails) expect(run.events, `${path}: ${op.name}`).toEqual([]);
          else if (op.kind === 'execute') expect(run.events, `${path}: ${op.name}`).toHaveLength(1);
          // A finished reply: its content, then the terminal event.
          else expect((run.events.at(-1) as { messageStream: { done: boolean } }).messageStream.done, `${path}: ${op.name}`).toBe(true);
          const marker = 'marker' in op ? op.marker : (op.variables as { id: string }).id;
          sent.push({ path, variables: op.variables, kind: op.kind, marker });
        }
      }
    } finally {
      await ws.dispose();
    }
  });

  it('saw each operation at every phase exactly once, and ran its resolver once', () => {
    expect(sent.length).toBe(2 * 4 + 2 + 2 * 6);
    for (const op of sent) {
      const label = `${op.path}: ${variablesKey(op.variables)}`;
      expect(seen.phases.get(variablesKey(op.variables)), label).toEqual(['parse', 'validate', 'context', op.kind, 'done']);
      expect(seen.runs.get(op.marker), label).toBe(1);
    }
    // Nothing else ran: no operation the test did not send, no resolver run without an operation.
    expect(seen.phases.size).toBe(sent.length);
    expect(seen.runs.size).toBe(sent.length);
    // The HTTP-layer hook ran for every HTTP request, SSE's included, when it is there.
    const sseRequests = sent.filter((op) => op.path === 'SSE').length;
    expect(seen.httpResults).toBe(hookHttpLayer ? httpRequests + sseRequests : 0);
  });
});
