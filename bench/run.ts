// npm run bench [-- --quick]
// Seven scenarios, each against a baseline measured in the same run on the same machine. Every
// server runs in its own process on loopback; CPU and RSS come from /proc. Prints one table of
// medians, writes bench/results/latest.json and the table into BENCHMARKS.md.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createClient, type Client } from 'graphql-ws';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { createTestDatabase, type TestDatabase } from '../test/support/databases.ts';
import { FakeModel, now, tokenStamps } from '../test/support/fake-model.ts';
import { REDIS_URL } from '../test/support/redis.ts';
import { cpuSeconds, gql, httpLoad, percentile, root, rssBytes, sleep, spread, startService, type Service } from './lib.ts';

const quick = process.argv.includes('--quick');
// Parley runs as `npm start` runs it: compiled to dist/ (built in main()).
const PARLEY = 'dist/server/main.js';
// --only 7: one scenario group (1, 2, 3 for 3–5, 6, 7), e.g. with BENCH_PROFILE to profile it.
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
const RUNS = quick ? 1 : 3;
const size = (full: number, small: number) => (quick ? small : full);
const prefix = `bench:${process.pid}:`;

interface Row {
  scenario: string;
  metric: string;
  parley: number;
  baseline: number | null;
  ratio: number | null;
  target: string;
  met: boolean;
  detail: string;
}

const rows: Row[] = [];
const raw: Record<string, unknown> = {};

function record(row: Omit<Row, 'ratio'> & { ratio?: number | null }) {
  const ratio = row.ratio ?? (row.baseline ? row.parley / row.baseline : null);
  rows.push({ ...row, ratio });
  console.log(`  ${row.scenario}: ${row.metric} parley=${fmt(row.parley)} baseline=${fmt(row.baseline)} ratio=${fmt(ratio)} ${row.met ? 'met' : 'MISSED'} (${row.target})`);
}

const fmt = (n: number | null) => (n === null ? '–' : n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));

function parleyEnv(database: TestDatabase, model: FakeModel, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: database.url,
    DATABASE_POOL_SIZE: '10',
    LLM_API_URL: model.url,
    LLM_MODEL: 'fake-model',
    LLM_MAX_RETRIES: '0',
    LLM_IDLE_TIMEOUT_MS: '120000',
    LLM_TIMEOUT_MS: '120000',
    GRAPHIQL: 'false',
    ...extra,
  };
}

const withRedis = { REDIS_URL, REDIS_KEY_PREFIX: prefix };

async function seedConversations(url: string, conversations: number, messages: number): Promise<string[]> {
  const ids: string[] = [];
  for (let c = 0; c < conversations; c++) {
    const first = await gql<{ addMessage: { conversation: { id: string } } }>(url, 'mutation($i: AddMessageInput!) { addMessage(input: $i) { conversation { id } } }', {
      i: { role: 'USER', content: `conversation ${c} message 0 ${'lorem ipsum '.repeat(8)}` },
    });
    const id = first.addMessage.conversation.id;
    for (let m = 1; m < messages; m++) {
      await gql(url, 'mutation($i: AddMessageInput!) { addMessage(input: $i) { id } }', {
        i: { conversationId: id, role: m % 2 ? 'ASSISTANT' : 'USER', content: `conversation ${c} message ${m} ${'lorem ipsum '.repeat(8)}` },
      });
    }
    ids.push(id);
  }
  return ids;
}

/** Runs `measure` RUNS times against each side, alternating, and returns the per-side values. */
async function compare(parley: () => Promise<number>, baseline: () => Promise<number>): Promise<{ parley: number[]; baseline: number[] }> {
  const result = { parley: [] as number[], baseline: [] as number[] };
  for (let i = 0; i < RUNS; i++) {
    result.baseline.push(await baseline());
    result.parley.push(await parley());
  }
  return result;
}

// 1 ─ cached recent history ────────────────────────────────────────────────────────────────
async function cachedHistory(database: TestDatabase, model: FakeModel) {
  const parley = await startService('parley', PARLEY, parleyEnv(database, model, withRedis));
  const [conversationId] = await seedConversations(parley.url, 1, 20);
  const query = JSON.stringify({ query: 'query($id: ID!) { history(conversationId: $id, limit: 20) { role content } }', variables: { id: conversationId } });
  const expected = await (await fetch(`${parley.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: query })).text();
  const redis = new Redis(REDIS_URL);
  const key = `${prefix}baseline:history`;
  await redis.set(key, expected);
  const baseline = await startService('baseline', 'bench/baselines/history-redis.ts', { REDIS_URL, BASELINE_KEY: key });
  const load = (url: string) => httpLoad({ url: `${url}/graphql`, method: 'POST', body: query, concurrency: 32, seconds: size(5, 1), check: (b) => b === expected });
  await load(parley.url);
  await load(baseline.url);
  const runs: { parley: number[]; baseline: number[] } = { parley: [], baseline: [] };
  const measured = await compare(
    async () => {
      const r = await load(parley.url);
      if (r.errors) throw new Error(`history: ${r.errors} wrong answers`);
      return r.rps;
    },
    async () => (await load(baseline.url)).rps,
  );
  Object.assign(runs, measured);
  const stats = (await (await fetch(`${parley.url}/health`)).json()) as { redis: { historyCache: { hits: number } } };
  raw.cachedHistory = { ...runs, cacheHits: stats.redis.historyCache.hits, rss: { parley: rssBytes(parley.pid), baseline: rssBytes(baseline.pid) } };
  const p = spread(runs.parley);
  const b = spread(runs.baseline);
  record({ scenario: '1 cached history', metric: 'requests/s', parley: p.median, baseline: b.median, target: '≥ 0.6× baseline', met: p.median / b.median >= 0.6, detail: `parley ${fmt(p.min)}–${fmt(p.max)}, baseline ${fmt(b.min)}–${fmt(b.max)}, c=32` });
  await Promise.all([parley.stop(), baseline.stop()]);
  redis.disconnect();
}

// 2 ─ uncached reads on PostgreSQL ──────────────────────────────────────────────────────────
async function uncachedReads(database: TestDatabase, model: FakeModel) {
  const parley = await startService('parley', PARLEY, parleyEnv(database, model));
  await seedConversations(parley.url, size(25, 21), 8);
  const query = JSON.stringify({ query: '{ conversations(first: 20) { edges { node { title messageCount messages(last: 5) { edges { node { id role content } } } } } } }' });
  const baseline = await startService('baseline', 'bench/baselines/pg-reads.ts', { DATABASE_URL: database.url });
  const parleyAnswer = JSON.parse(await (await fetch(`${parley.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: query })).text());
  const baselineAnswer = JSON.parse(await (await fetch(`${baseline.url}/`, { method: 'POST', body: query })).text());
  if (JSON.stringify(parleyAnswer) !== JSON.stringify(baselineAnswer)) throw new Error('the pg baseline answers differently from Parley');
  const load = (url: string) => httpLoad({ url: `${url}/graphql`, method: 'POST', body: query, concurrency: 16, seconds: size(5, 1) });
  await load(parley.url);
  const runs = await compare(
    async () => (await load(parley.url)).rps,
    async () => (await load(baseline.url)).rps,
  );
  raw.uncachedReads = runs;
  const p = spread(runs.parley);
  const b = spread(runs.baseline);
  record({ scenario: '2 uncached reads (PostgreSQL)', metric: 'requests/s', parley: p.median, baseline: b.median, target: '≥ 0.5× baseline', met: p.median / b.median >= 0.5, detail: `parley ${fmt(p.min)}–${fmt(p.max)}, baseline ${fmt(b.min)}–${fmt(b.max)}, c=16` });
  await Promise.all([parley.stop(), baseline.stop()]);
}

// 3, 4, 5 ─ streaming through two instances ─────────────────────────────────────────────────
interface StreamRun {
  streams: number;
  tokens: number;
  delivered: number;
  problems: string[];
  cpuSeconds: number;
  firstTokenMs: number[];
  tokenMs: number[];
}

async function parleyStreams(generator: Service, server: Service, model: FakeModel, streams: number, tokens: number, perConnection = 10): Promise<StreamRun> {
  model.setDefault({ tokens: Array.from({ length: tokens }, (_, i) => `w${i} `), delayMs: 50, headersDelayMs: 300, stamp: true });
  const clients: Client[] = Array.from({ length: Math.ceil(streams / perConnection) }, () =>
    createClient({ url: server.url.replace('http', 'ws') + '/graphql', webSocketImpl: WebSocket, retryAttempts: 0, lazy: false }),
  );
  const cpuBefore = cpuSeconds(generator.pid) + cpuSeconds(server.pid);
  const problems: string[] = [];
  const firstTokenMs: number[] = [];
  const tokenMs: number[] = [];
  let delivered = 0;
  await Promise.all(
    Array.from({ length: streams }, async (_, i) => {
      const sent = await gql<{ sendMessage: { assistantMessage: { id: string } } }>(generator.url, 'mutation($c: String!) { sendMessage(input: { content: $c }) { assistantMessage { id } } }', { c: `stream ${i}` });
      const id = sent.sendMessage.assistantMessage.id;
      const events: { seq: number; delta: string; done: boolean }[] = [];
      await new Promise<void>((resolve) => {
        clients[i % clients.length]!.subscribe<{ messageStream: { seq: number; delta: string; done: boolean } }>(
          { query: 'subscription($id: ID!) { messageStream(messageId: $id) { seq delta done } }', variables: { id } },
          {
            next: ({ data }) => {
              const at = now();
              const event = data!.messageStream;
              events.push(event);
              const stamps = tokenStamps(event.delta);
              stamps.forEach((emitted, k) => {
                tokenMs.push(at - emitted);
                if (event.seq === 0 && k === 0) firstTokenMs.push(at - emitted);
              });
            },
            error: (error) => {
              problems.push(`${id}: ${JSON.stringify(error)}`);
              resolve();
            },
            complete: resolve,
          },
        );
      });
      const seqs = events.map((e) => e.seq);
      if (seqs.some((seq, k) => seq !== k)) problems.push(`${id}: out of order or repeated`);
      if (!events.at(-1)?.done) problems.push(`${id}: no terminal event`);
      const received = tokenStamps(events.map((e) => e.delta).join('')).length;
      if (received !== tokens) problems.push(`${id}: ${received} of ${tokens} tokens`);
      delivered += received;
    }),
  );
  const cpu = cpuSeconds(generator.pid) + cpuSeconds(server.pid) - cpuBefore;
  if (process.env.BENCH_VERBOSE) console.log(`    ${streams} streams: generator ${cpuSeconds(generator.pid).toFixed(2)} s, subscriber side ${cpuSeconds(server.pid).toFixed(2)} s (cumulative)`);
  await Promise.all(clients.map((c) => c.dispose()));
  return { streams, tokens, delivered, problems, cpuSeconds: cpu, firstTokenMs, tokenMs };
}

async function relayStreams(producer: Service, relay: Service, model: FakeModel, streams: number, tokens: number): Promise<StreamRun> {
  model.setDefault({ tokens: Array.from({ length: tokens }, (_, i) => `w${i} `), delayMs: 50, headersDelayMs: 300, stamp: true });
  const cpuBefore = cpuSeconds(producer.pid) + cpuSeconds(relay.pid);
  const problems: string[] = [];
  let delivered = 0;
  const tokenMs: number[] = [];
  const firstTokenMs: number[] = [];
  await Promise.all(
    Array.from({ length: streams }, async (_, i) => {
      const streamId = `s${i}-${Date.now()}`;
      const socket = new WebSocket(`${relay.url.replace('http', 'ws')}/?stream=${streamId}`);
      const events: { seq: number; delta: string; done?: boolean }[] = [];
      await new Promise<void>((resolve) => {
        socket.on('message', (data) => {
          const at = now();
          const event = JSON.parse(String(data));
          if (event.subscribed) {
            void fetch(`${producer.url}/start`, { method: 'POST', body: JSON.stringify({ streamId, modelUrl: model.url }) });
            return;
          }
          events.push(event);
          tokenStamps(event.delta).forEach((emitted, k) => {
            tokenMs.push(at - emitted);
            if (event.seq === 0 && k === 0) firstTokenMs.push(at - emitted);
          });
          if (event.done) resolve();
        });
        socket.on('error', (error) => {
          problems.push(String(error));
          resolve();
        });
      });
      socket.close();
      if (events.some((e, k) => e.seq !== k)) problems.push(`${streamId}: out of order`);
      delivered += tokenStamps(events.map((e) => e.delta).join('')).length;
    }),
  );
  if (process.env.BENCH_VERBOSE) console.log(`    relay ${streams} streams: producer ${cpuSeconds(producer.pid).toFixed(2)} s, relay ${cpuSeconds(relay.pid).toFixed(2)} s (cumulative)`);
  return { streams, tokens, delivered, problems, cpuSeconds: cpuSeconds(producer.pid) + cpuSeconds(relay.pid) - cpuBefore, firstTokenMs, tokenMs };
}

async function streaming(database: TestDatabase, model: FakeModel) {
  const env = parleyEnv(database, model, { ...withRedis, STREAM_FLUSH_MS: '25' });
  const a = await startService('parley-a', PARLEY, env);
  const b = await startService('parley-b', PARLEY, env);
  const producer = await startService('relay-producer', 'bench/baselines/relay.ts', { REDIS_URL, BASELINE_PREFIX: `${prefix}relay:`, ROLE: 'producer' });
  const relay = await startService('relay', 'bench/baselines/relay.ts', { REDIS_URL, BASELINE_PREFIX: `${prefix}relay:`, ROLE: 'relay' });

  // 3: tokens per server CPU-second at N streams of 20 tokens/s.
  const streams3 = size(100, 10);
  const tokens3 = size(40, 10);
  await parleyStreams(a, b, model, 5, 5);
  const cost = await compare(
    async () => {
      const run = await parleyStreams(a, b, model, streams3, tokens3);
      if (run.problems.length) throw new Error(`streaming: ${run.problems.slice(0, 3).join('; ')}`);
      return run.delivered / run.cpuSeconds;
    },
    async () => {
      const run = await relayStreams(producer, relay, model, streams3, tokens3);
      if (run.problems.length) throw new Error(`relay: ${run.problems.slice(0, 3).join('; ')}`);
      return run.delivered / run.cpuSeconds;
    },
  );
  raw.streamingCost = cost;
  const p3 = spread(cost.parley);
  const b3 = spread(cost.baseline);
  record({ scenario: '3 streaming cost', metric: 'tokens per server CPU-s', parley: p3.median, baseline: b3.median, target: '≥ 1× relay', met: p3.median >= b3.median, detail: `${streams3} streams × ${tokens3} tokens at 20/s, 2 instances; parley ${fmt(p3.min)}–${fmt(p3.max)}, relay ${fmt(b3.min)}–${fmt(b3.max)}` });

  // 4: latency at 200 streams.
  const streams4 = size(200, 10);
  const firsts: number[] = [];
  const everyToken: number[] = [];
  const relayTokens: number[] = [];
  const relayFirsts: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const run = await parleyStreams(a, b, model, streams4, size(20, 5));
    if (run.problems.length) throw new Error(`latency: ${run.problems.slice(0, 3).join('; ')}`);
    firsts.push(percentile(run.firstTokenMs, 0.99));
    everyToken.push(percentile(run.tokenMs, 0.99));
    const relayRun = await relayStreams(producer, relay, model, streams4, size(20, 5));
    relayTokens.push(percentile(relayRun.tokenMs, 0.99));
    relayFirsts.push(percentile(relayRun.firstTokenMs, 0.99));
  }
  raw.latency = { firstTokenP99: firsts, tokenP99: everyToken, relayFirstTokenP99: relayFirsts, relayTokenP99: relayTokens };
  record({
    scenario: '4 first-token latency',
    metric: 'p99 ms',
    parley: spread(firsts).median,
    baseline: spread(relayFirsts).median,
    ratio: null,
    target: '≤ 5 ms at 200 streams',
    met: spread(firsts).median <= 5,
    detail: `model emits → subscriber on the other instance; runs ${firsts.map(fmt).join(', ')}; relay (the floor here) ${relayFirsts.map(fmt).join(', ')}`,
  });
  record({ scenario: '4 every-token latency', metric: 'p99 ms', parley: spread(everyToken).median, baseline: spread(relayTokens).median, ratio: null, target: '≤ STREAM_FLUSH_MS + 10 = 35 ms', met: spread(everyToken).median <= 35, detail: `relay (no coalescing) p99 ${relayTokens.map(fmt).join(', ')}` });

  // 5: scale.
  const streams5 = size(1000, 20);
  const scale = await parleyStreams(a, b, model, streams5, size(20, 5), 25);
  raw.scale = { ...scale, firstTokenMs: undefined, tokenMs: undefined, tokenP50: percentile(scale.tokenMs, 0.5), tokenP99: percentile(scale.tokenMs, 0.99) };
  record({
    scenario: '5 scale',
    metric: 'chunk p99 ms',
    parley: percentile(scale.tokenMs, 0.99),
    baseline: null,
    target: '≤ 100 ms, no loss',
    met: scale.problems.length === 0 && percentile(scale.tokenMs, 0.99) <= 100,
    detail: `${streams5} streams × ${scale.tokens} tokens at 20/s over 2 instances: ${scale.delivered}/${streams5 * scale.tokens} tokens, ${scale.problems.length} problems, p50 ${fmt(percentile(scale.tokenMs, 0.5))} ms`,
  });
  await Promise.all([a.stop(), b.stop(), producer.stop(), relay.stop()]);
}

// 6 ─ idle subscriptions ────────────────────────────────────────────────────────────────────
async function idleSubscriptions(database: TestDatabase, model: FakeModel) {
  const count = size(2000, 50);
  const query = 'subscription($id: ID!) { messageStream(messageId: $id) { seq delta done } }';
  // A subscription that ended (an error, a completion, a closed socket) holds no memory: the
  // measurement only counts if none did.
  let ended: string[] = [];
  const open = (transport: 'graphql-ws' | 'sse', url: string, id: string, onOpen: () => void): (() => void) => {
    if (transport === 'graphql-ws') {
      let disposed = false;
      const client = createClient({
        url: url.replace('http', 'ws') + '/graphql',
        webSocketImpl: WebSocket,
        retryAttempts: 0,
        lazy: false,
        on: { connected: onOpen, closed: (event) => void (disposed || ended.push(`socket closed ${(event as { code?: number }).code}`)) },
      });
      client.subscribe(
        { query, variables: { id } },
        { next: (r) => void ended.push(`event ${JSON.stringify(r).slice(0, 200)}`), error: (e) => void ended.push(`error ${JSON.stringify(e).slice(0, 200)}`), complete: () => void (disposed || ended.push('completed')) },
      );
      return () => {
        disposed = true;
        void client.dispose();
      };
    }
    const controller = new AbortController();
    void fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: JSON.stringify({ query, variables: { id } }), signal: controller.signal })
      .then(async (res) => {
        if (res.status !== 200 || !res.body) return void ended.push(`sse status ${res.status}`);
        onOpen();
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return void ended.push('sse stream ended');
          // Keep-alive comments are fine; any event is not idle.
          if (/^(data|event):/m.test(decoder.decode(value))) ended.push('sse event');
        }
      })
      .catch((error) => void (controller.signal.aborted || ended.push(`sse ${error}`)));
    return () => controller.abort();
  };
  const openMany = async (transport: 'graphql-ws' | 'sse', url: string, id: string, n: number) => {
    let acked = 0;
    const closers: (() => void)[] = [];
    for (let i = 0; i < n; i++) {
      closers.push(open(transport, url, id, () => acked++));
      if (i % 100 === 99) await sleep(20);
    }
    const deadline = Date.now() + 30_000;
    while (acked < n && Date.now() < deadline) await sleep(100);
    if (acked < n) throw new Error(`idle subscriptions: only ${acked} of ${n} ${transport} subscriptions opened`);
    return () => closers.forEach((close) => close());
  };
  const perSubscription: Record<'graphql-ws' | 'sse', number[]> = { 'graphql-ws': [], sse: [] };
  for (let run = 0; run < RUNS; run++) {
    for (const transport of ['graphql-ws', 'sse'] as const) {
      const parley = await startService('parley', PARLEY, parleyEnv(database, model, withRedis), { inspect: true });
      model.setDefault({ tokens: ['never'], stallAfter: 0 });
      const sent = await gql<{ sendMessage: { assistantMessage: { id: string } } }>(parley.url, 'mutation { sendMessage(input: { content: "idle" }) { assistantMessage { id } } }');
      const id = sent.sendMessage.assistantMessage.id;
      ended = [];
      // The cost of one more subscription on a server that already holds `count` of them: the
      // first ones also compile code, fill caches and grow the heap's spaces, which every later
      // one shares. Measured from a fresh process instead, the heap's own resizing made readings
      // swing from -4 to +15 KB.
      const closeFirst = await openMany(transport, parley.url, id, count);
      await sleep(1000);
      // Memory is compared after a full collection on both sides: uncollected garbage is not
      // memory that idle subscriptions hold, and it made single readings swing by ±8 KB. Before
      // the first reading, a second collection after a pause lets the heap give back the pages
      // that opening the first batch grew it by; otherwise that release can fall between the two
      // readings and the difference goes negative.
      await parley.collectGarbage();
      await sleep(1500);
      await parley.collectGarbage();
      const before = rssBytes(parley.pid);
      const closeSecond = await openMany(transport, parley.url, id, count);
      await sleep(1000);
      await parley.collectGarbage();
      perSubscription[transport].push((rssBytes(parley.pid) - before) / count / 1024);
      if (ended.length > 0) throw new Error(`idle subscriptions: ${ended.length} of ${2 * count} ${transport} subscriptions ended early, e.g. ${ended.slice(0, 3).join('; ')}`);
      closeFirst();
      closeSecond();
      await parley.stop();
    }
  }
  raw.idleSubscriptions = perSubscription;
  const ws = spread(perSubscription['graphql-ws']);
  const sse = spread(perSubscription.sse);
  record({
    scenario: '6 idle subscriptions',
    metric: 'KB RSS each (graphql-ws)',
    parley: ws.median,
    baseline: null,
    target: '≤ 16 KB',
    met: ws.median > 0 && ws.median <= 16,
    detail: `${count} subscriptions, RSS after a full GC; graphql-ws ${fmt(ws.min)}–${fmt(ws.max)} KB; SSE ${fmt(sse.median)} KB (${fmt(sse.min)}–${fmt(sse.max)})`,
  });
}

// 7 ─ sendMessage round trip ────────────────────────────────────────────────────────────────
async function sendMessageRoundTrip(database: TestDatabase, model: FakeModel) {
  const parley = await startService('parley', PARLEY, parleyEnv(database, model, withRedis));
  const baseline = await startService('baseline', 'bench/baselines/insert.ts', { DATABASE_URL: database.url });
  model.setDefault({ tokens: ['ok'] });
  const [conversationId] = await seedConversations(parley.url, 1, 4);
  // As a chat client does it: send, let the reply finish, send again. Only the mutation is timed;
  // waiting for the reply is not, so a reply still generating does not slow the next send.
  const sequential = async (send: () => Promise<(() => Promise<void>) | void>) => {
    const times: number[] = [];
    for (let i = 0; i < size(200, 20); i++) {
      const started = performance.now();
      const settle = await send();
      times.push(performance.now() - started);
      await settle?.();
    }
    return percentile(times, 0.5);
  };
  const parleySend = async () => {
    const sent = await gql<{ sendMessage: { assistantMessage: { id: string } } }>(
      parley.url,
      'mutation($i: SendMessageInput!) { sendMessage(input: $i) { userMessage { id } assistantMessage { id status } } }',
      { i: { conversationId, content: 'round trip' } },
    );
    return async () => {
      for (let polls = 0; ; polls++) {
        const { conversation } = await gql<{ conversation: { messages: { edges: { node: { id: string; status: string } }[] } } }>(
          parley.url,
          'query($id: ID!) { conversation(id: $id) { messages(last: 1) { edges { node { id status } } } } }',
          { id: conversationId },
        );
        const last = conversation.messages.edges[0]!.node;
        if (last.id !== sent.sendMessage.assistantMessage.id) throw new Error('sendMessage: the reply is not the newest message');
        if (last.status !== 'STREAMING') return;
        if (polls > 500) throw new Error('sendMessage: the reply did not finish');
        await sleep(5);
      }
    };
  };
  const baselineSend = async () => {
    await (await fetch(`${baseline.url}/`, { method: 'POST', body: JSON.stringify({ conversationId, content: 'round trip' }) })).json();
  };
  await sequential(parleySend);
  const runs = await compare(
    () => sequential(parleySend),
    () => sequential(baselineSend),
  );
  raw.sendMessage = runs;
  const p = spread(runs.parley);
  const b = spread(runs.baseline);
  record({ scenario: '7 sendMessage', metric: 'median round trip ms', parley: p.median, baseline: b.median, target: '≤ 2× baseline', met: p.median / b.median <= 2, detail: `sequential; parley ${fmt(p.min)}–${fmt(p.max)}, baseline ${fmt(b.min)}–${fmt(b.max)}` });
  await Promise.all([parley.stop(), baseline.stop()]);
}

function table(): string {
  const lines = [
    '| scenario | metric | Parley | baseline | ratio | target | result |',
    '| --- | --- | ---: | ---: | ---: | --- | --- |',
    ...rows.map((r) => `| ${r.scenario} | ${r.metric} | ${fmt(r.parley)} | ${fmt(r.baseline)} | ${r.ratio === null ? '–' : `${r.ratio.toFixed(2)}×`} | ${r.target} | ${r.met ? 'met' : '**missed**'} |`),
  ];
  return lines.join('\n');
}

async function main() {
  const started = Date.now();
  execFileSync(process.execPath, [path.join(root, 'scripts/build.mjs')], { cwd: root, stdio: 'inherit' });
  const model = await FakeModel.start();
  const databases: TestDatabase[] = [];
  const fresh = async () => {
    const db = await createTestDatabase('postgresql');
    databases.push(db);
    // Schema from the committed migrations, as `npm run db:deploy` would.
    const { applyMigrations } = await import('../src/store/migrate.ts');
    await applyMigrations(db.url);
    return db;
  };
  try {
    console.log(`Parley benchmarks (${quick ? 'quick smoke run' : `${RUNS} runs per side`})`);
    for (const [name, scenario] of [
      ['1 cached history', cachedHistory],
      ['2 uncached reads', uncachedReads],
      ['3–5 streaming', streaming],
      ['6 idle subscriptions', idleSubscriptions],
      ['7 sendMessage', sendMessageRoundTrip],
    ] as const) {
      if (only && !name.startsWith(only)) continue;
      console.log(`${name} …`);
      await scenario(await fresh(), model);
    }
  } finally {
    await model.close();
    await Promise.all(databases.map((db) => db.drop()));
    const redis = new Redis(REDIS_URL);
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  }
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`;
  const output = table();
  console.log(`\n${output}\n\n${machine}; ${((Date.now() - started) / 1000).toFixed(0)} s`);
  const resultsDir = path.join(root, 'bench/results');
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(path.join(resultsDir, quick ? 'quick.json' : only ? `only-${only}.json` : 'latest.json'), JSON.stringify({ date: new Date().toISOString(), machine, runs: RUNS, rows, raw }, null, 2));
  if (!quick && !only) {
    const file = path.join(root, 'BENCHMARKS.md');
    const doc = readFileSync(file, 'utf8');
    const start = doc.indexOf('<!-- results -->');
    const end = doc.indexOf('<!-- /results -->');
    if (start >= 0 && end > start) {
      const block = `<!-- results -->\nMeasured ${new Date().toISOString().slice(0, 10)} on ${machine}. Medians of ${RUNS} runs per side.\n\n${output}\n`;
      writeFileSync(file, doc.slice(0, start) + block + doc.slice(end));
    }
  }
  if (rows.some((r) => !Number.isFinite(r.parley))) process.exitCode = 1;
}

await main();
process.exit(process.exitCode ?? 0);
