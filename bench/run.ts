// npm run bench [-- --quick]
// Eight scenarios, each against a baseline measured in the same run on the same machine. Every
// server runs in its own process on loopback; CPU and RSS come from /proc. Prints one table of
// medians, writes bench/results/latest.json and the table into BENCHMARKS.md.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import path from 'node:path';
import { createClient, type Client } from 'graphql-ws';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { createTestDatabase, type TestDatabase } from '../test/support/databases.ts';
import { FakeModel, now, tokenStamps } from '../test/support/fake-model.ts';
import { REDIS_URL } from '../test/support/redis.ts';
import { canPin, cpuSeconds, gql, gqlHttp, LOAD_CPUS, postJson, npmStartCommand, percentile, root, rssBytes, SERVER_CPUS, sleep, spread, startService, type Service } from './lib.ts';
import { LoadGenerator, SATURATED_SHARE, type LoadRequest, type LoadRun } from './load.ts';
import { seedConversations as seedTrees } from './seed-tree.ts';

const quick = process.argv.includes('--quick');
// Parley runs as `npm start` runs it: compiled to dist/ (built in main()).
// Parley's build, started with the node options of `npm start`.
const PARLEY = npmStartCommand();
// --only 7: one scenario group (1, 2, 3 for 3–5, 6, 7), e.g. with BENCH_PROFILE to profile it.
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
const RUNS = quick ? 1 : 3;
const size = (full: number, small: number) => (quick ? small : full);
const prefix = `bench:${process.pid}:`;
// Throughput scenarios (1, 2): autocannon's keep-alive connections, and how long each run lasts.
const CONNECTIONS = 50;
const LOAD_SECONDS = size(8, 1);
const WARMUP_SECONDS = size(3, 1);

interface Row {
  scenario: string;
  metric: string;
  parley: number;
  baseline: number | null;
  ratio: number | null;
  target: string;
  met: boolean;
  detail: string;
  /** Why the figures are not a result (the load generator was saturated); such a row fails the run. */
  invalid?: string;
}

const rows: Row[] = [];
const raw: Record<string, unknown> = {};

function record(row: Omit<Row, 'ratio'> & { ratio?: number | null }) {
  const ratio = row.ratio ?? (row.baseline ? row.parley / row.baseline : null);
  rows.push({ ...row, ratio });
  const result = row.invalid ? row.invalid.toUpperCase() : row.met ? 'met' : 'MISSED';
  console.log(`  ${row.scenario}: ${row.metric} parley=${fmt(row.parley)} baseline=${fmt(row.baseline)} ratio=${fmt(ratio)} ${result} (${row.target}); ${row.detail}`);
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
// The coalescing window of the streaming scenarios (3–5).
const STREAM_FLUSH_MS = 25;

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

/** Measures every side RUNS times, the sides in turn, and returns each side's values. */
async function alternate<Side extends string, T>(sides: Record<Side, () => Promise<T>>): Promise<Record<Side, T[]>> {
  const names = Object.keys(sides) as Side[];
  const result = Object.fromEntries(names.map((name) => [name, [] as T[]])) as Record<Side, T[]>;
  for (let i = 0; i < RUNS; i++) for (const name of names) result[name].push(await sides[name]());
  return result;
}

async function compare(parley: () => Promise<number>, baseline: () => Promise<number>): Promise<{ parley: number[]; baseline: number[] }> {
  return alternate({ baseline, parley });
}

const percent = (share: number) => `${(share * 100).toFixed(0)} %`;

/** Throughput runs of one side: rps spread, and the CPU the generator and the server used. */
function throughput(runs: LoadRun[]) {
  const rps = spread(runs.map((r) => r.rps));
  const generator = Math.max(...runs.map((r) => r.generator.share));
  const generatorWait = Math.max(...runs.map((r) => r.generator.waitShare));
  const server = spread(runs.map((r) => r.server.share)).median;
  const serverWait = spread(runs.map((r) => r.server.waitShare)).median;
  return {
    rps,
    saturated: runs.some((r) => r.saturated),
    text: `${fmt(rps.min)}–${fmt(rps.max)} req/s, generator CPU ≤ ${percent(generator)} (+ ${percent(generatorWait)} waiting), server CPU ${percent(server)} (+ ${percent(serverWait)} waiting)`,
  };
}

/** The row for Parley's throughput against one baseline's; generator-bound figures make it invalid. */
function throughputRow(scenario: string, target: number, parleyRuns: LoadRun[], baselineName: string, baselineRuns: LoadRun[], targetText: string) {
  const p = throughput(parleyRuns);
  const b = throughput(baselineRuns);
  const saturated = [p.saturated && 'parley', b.saturated && baselineName].filter(Boolean);
  const pinning = canPin() ? `servers on core ${SERVER_CPUS}, autocannon on core ${LOAD_CPUS}` : 'unpinned';
  record({
    scenario,
    metric: 'requests/s',
    parley: p.rps.median,
    baseline: b.rps.median,
    target: targetText,
    met: p.rps.median / b.rps.median >= target,
    detail: `parley ${p.text}; ${baselineName} ${b.text}; c=${CONNECTIONS}, ${LOAD_SECONDS} s, ${pinning}`,
    ...(saturated.length ? { invalid: `generator saturated (${saturated.join(', ')})` } : {}),
  });
}

/** The text of a server's answer to a GraphQL request body. */
const answerOf = async (url: string, body: string) => (await postJson(`${url}/graphql`, body)).text;

// 1 ─ cached recent history ────────────────────────────────────────────────────────────────
async function cachedHistory(database: TestDatabase, model: FakeModel) {
  const parley = await startService('parley', PARLEY, parleyEnv(database, model, withRedis), { cpus: SERVER_CPUS });
  const [conversationId] = await seedConversations(parley.url, 1, 20);
  const query = JSON.stringify({ query: 'query($id: ID!) { history(conversationId: $id, limit: 20) { role content } }', variables: { id: conversationId } });
  const expected = await answerOf(parley.url, query);
  const redis = new Redis(REDIS_URL);
  const key = `${prefix}baseline:history`;
  await redis.set(key, expected);
  const rawServer = await startService('raw', 'bench/baselines/history-redis.ts', { REDIS_URL, BASELINE_KEY: key }, { cpus: SERVER_CPUS });
  const yoga = await startService('yoga', 'bench/baselines/history-yoga.ts', { REDIS_URL, BASELINE_KEY: key }, { cpus: SERVER_CPUS });
  if ((await answerOf(yoga.url, query)) !== expected) throw new Error('the Yoga baseline answers differently from Parley');
  const generator = LoadGenerator.start();
  const request: LoadRequest = { path: '/graphql', method: 'POST', body: query, headers: { 'content-type': 'application/json' }, expectBody: expected };
  const load = (server: Service, seconds = LOAD_SECONDS) => generator.run(server, request, { connections: CONNECTIONS, seconds });
  for (const server of [parley, rawServer, yoga]) await load(server, WARMUP_SECONDS);
  const runs = await alternate({ raw: () => load(rawServer), yoga: () => load(yoga), parley: () => load(parley) });
  await generator.close();
  const stats = (await (await fetch(`${parley.url}/health`)).json()) as { redis: { historyCache: { hits: number } } };
  raw.cachedHistory = { ...runs, cacheHits: stats.redis.historyCache.hits, rss: { parley: rssBytes(parley.pid), raw: rssBytes(rawServer.pid), yoga: rssBytes(yoga.pid) } };
  throughputRow('1 cached history', 0.6, runs.parley, 'raw', runs.raw, '≥ 0.6× raw baseline');
  throughputRow('1 cached history vs Yoga', 1.2, runs.parley, 'yoga', runs.yoga, '≥ 1.2× default Yoga + graphql-jit');
  await Promise.all([parley.stop(), rawServer.stop(), yoga.stop()]);
  redis.disconnect();
}

// 2 ─ uncached reads on PostgreSQL ──────────────────────────────────────────────────────────
async function uncachedReads(database: TestDatabase, model: FakeModel) {
  const parley = await startService('parley', PARLEY, parleyEnv(database, model), { cpus: SERVER_CPUS });
  await seedConversations(parley.url, size(25, 21), 8);
  const query = JSON.stringify({ query: '{ conversations(first: 20) { edges { node { title messageCount messages(last: 5) { edges { node { id role content } } } } } } }' });
  const baseline = await startService('baseline', 'bench/baselines/pg-reads.ts', { DATABASE_URL: database.url }, { cpus: SERVER_CPUS });
  const expected = await answerOf(parley.url, query);
  if ((await answerOf(baseline.url, query)) !== expected) throw new Error('the pg baseline answers differently from Parley');
  const generator = LoadGenerator.start();
  const request: LoadRequest = { path: '/graphql', method: 'POST', body: query, headers: { 'content-type': 'application/json' }, expectBody: expected };
  const load = (server: Service, seconds = LOAD_SECONDS) => generator.run(server, request, { connections: CONNECTIONS, seconds });
  for (const server of [parley, baseline]) await load(server, WARMUP_SECONDS);
  const runs = await alternate({ baseline: () => load(baseline), parley: () => load(parley) });
  await generator.close();
  raw.uncachedReads = runs;
  throughputRow('2 uncached reads (PostgreSQL)', 0.5, runs.parley, 'baseline', runs.baseline, '≥ 0.5× baseline');
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
  /** Per send: the mutation's round trip, and from the send to the reply's first event (any wait for admission included). */
  sendMs?: number[];
  toFirstEventMs?: number[];
  /** The bench's own event-loop delay over the run, ms: its latency figures include this much of its own. */
  generatorDelay: { p99: number; max: number };
}

/**
 * The streams of a run start in slices, the bench's event loop free in between: a thousand sends
 * still reach the server within milliseconds, but the tokens of the first streams are not read
 * late because the bench was busy starting the rest.
 */
const START_SLICE = 50;
const startSlot = async (i: number) => {
  for (let k = 0; k < Math.floor(i / START_SLICE); k++) await new Promise((resolve) => setImmediate(resolve));
};

/** The bench's own event-loop delay while it generates load. */
function loopDelay(): { stop(): { p99: number; max: number } } {
  const histogram = monitorEventLoopDelay({ resolution: 5 });
  histogram.enable();
  return {
    stop: () => {
      histogram.disable();
      return { p99: histogram.percentile(99) / 1e6, max: histogram.max / 1e6 };
    },
  };
}

/** How long the bench's model takes to answer a streaming request's headers. */
const MODEL_HEADERS_MS = 300;

/** The model's tokens of a bench reply, `tokensPerSecond` apart, each stamped with when it left. */
function streamReply(model: FakeModel, tokens: number, tokensPerSecond: number): void {
  model.setDefault({ tokens: Array.from({ length: tokens }, (_, i) => `w${i} `), delayMs: 1000 / tokensPerSecond, headersDelayMs: MODEL_HEADERS_MS, stamp: true });
}

async function parleyStreams(generator: Service, server: Service, model: FakeModel, streams: number, tokens: number, perConnection = 10, tokensPerSecond = 20): Promise<StreamRun> {
  streamReply(model, tokens, tokensPerSecond);
  const clients: Client[] = Array.from({ length: Math.ceil(streams / perConnection) }, () =>
    createClient({ url: server.url.replace('http', 'ws') + '/graphql', webSocketImpl: WebSocket, retryAttempts: 0, lazy: false }),
  );
  const cpuBefore = cpuSeconds(generator.pid) + cpuSeconds(server.pid);
  const problems: string[] = [];
  const firstTokenMs: number[] = [];
  const tokenMs: number[] = [];
  const sendMs: number[] = [];
  const toFirstEventMs: number[] = [];
  let delivered = 0;
  const benchLoop = loopDelay();
  await Promise.all(
    Array.from({ length: streams }, async (_, i) => {
      await startSlot(i);
      const sentAt = now();
      const sent = await gqlHttp<{ sendMessage: { assistantMessage: { id: string } } }>(generator.url, 'mutation($c: String!) { sendMessage(input: { content: $c }) { assistantMessage { id } } }', { c: `stream ${i}` });
      const id = sent.sendMessage.assistantMessage.id;
      sendMs.push(now() - sentAt);
      const events: { seq: number; delta: string; done: boolean }[] = [];
      await new Promise<void>((resolve) => {
        clients[i % clients.length]!.subscribe<{ messageStream: { seq: number; delta: string; done: boolean } }>(
          { query: 'subscription($id: ID!) { messageStream(messageId: $id) { seq delta done } }', variables: { id } },
          {
            next: ({ data }) => {
              const at = now();
              const event = data!.messageStream;
              if (events.length === 0) toFirstEventMs.push(at - sentAt);
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
  const generatorDelay = benchLoop.stop();
  const cpu = cpuSeconds(generator.pid) + cpuSeconds(server.pid) - cpuBefore;
  if (process.env.BENCH_VERBOSE) console.log(`    ${streams} streams: generator ${cpuSeconds(generator.pid).toFixed(2)} s, subscriber side ${cpuSeconds(server.pid).toFixed(2)} s (cumulative)`);
  await Promise.all(clients.map((c) => c.dispose()));
  return { streams, tokens, delivered, problems, cpuSeconds: cpu, firstTokenMs, tokenMs, sendMs, toFirstEventMs, generatorDelay };
}

async function relayStreams(producer: Service, relay: Service, model: FakeModel, streams: number, tokens: number, tokensPerSecond = 20): Promise<StreamRun> {
  streamReply(model, tokens, tokensPerSecond);
  const cpuBefore = cpuSeconds(producer.pid) + cpuSeconds(relay.pid);
  const problems: string[] = [];
  let delivered = 0;
  const tokenMs: number[] = [];
  const firstTokenMs: number[] = [];
  const toFirstEventMs: number[] = [];
  const benchLoop = loopDelay();
  await Promise.all(
    Array.from({ length: streams }, async (_, i) => {
      await startSlot(i);
      const streamId = `s${i}-${Date.now()}`;
      const startedAt = now();
      const socket = new WebSocket(`${relay.url.replace('http', 'ws')}/?stream=${streamId}`);
      const events: { seq: number; delta: string; done?: boolean }[] = [];
      await new Promise<void>((resolve) => {
        socket.on('message', (data) => {
          const at = now();
          const event = JSON.parse(String(data));
          if (event.subscribed) {
            postJson(`${producer.url}/start`, JSON.stringify({ streamId, modelUrl: model.url })).catch((error) => {
              problems.push(`${streamId}: /start failed: ${error}`);
              resolve();
            });
            return;
          }
          if (events.length === 0) toFirstEventMs.push(at - startedAt);
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
  const generatorDelay = benchLoop.stop();
  return { streams, tokens, delivered, problems, cpuSeconds: cpuSeconds(producer.pid) + cpuSeconds(relay.pid) - cpuBefore, firstTokenMs, tokenMs, toFirstEventMs, generatorDelay };
}

async function streaming(database: TestDatabase, model: FakeModel) {
  const env = parleyEnv(database, model, { ...withRedis, STREAM_FLUSH_MS: String(STREAM_FLUSH_MS) });
  // 3 and 4 compare the streaming path with the relay's at the same number of streams at once:
  // admission is off (MAX_CONCURRENT_REPLIES=0), so Parley runs every reply as soon as it is sent,
  // as the relay does. 5 runs Parley as deployed, on a fresh pair warmed up by one unmeasured round.
  // (Admission with a limit of 200, load gate on, did not lower 4's figures: BENCHMARKS.md.)
  let [a, b] = [await startService('parley-a', PARLEY, { ...env, MAX_CONCURRENT_REPLIES: '0' }), await startService('parley-b', PARLEY, { ...env, MAX_CONCURRENT_REPLIES: '0' })];
  const restart = async (extra: Record<string, string>) => {
    await Promise.all([a.stop(), b.stop()]);
    [a, b] = [await startService('parley-a', PARLEY, { ...env, ...extra }), await startService('parley-b', PARLEY, { ...env, ...extra })];
    await parleyStreams(a, b, model, streams3, size(40, 5));
  };
  const producer = await startService('relay-producer', 'bench/baselines/relay.ts', { REDIS_URL, BASELINE_PREFIX: `${prefix}relay:`, ROLE: 'producer' });
  const relay = await startService('relay', 'bench/baselines/relay.ts', { REDIS_URL, BASELINE_PREFIX: `${prefix}relay:`, ROLE: 'relay' });

  // 3: tokens per server CPU-second at N streams: short replies at 20 tokens/s, then long ones
  // (real replies run 200–1,000 tokens, so per-reply costs weigh less) at 20 and at 80 tokens/s,
  // where the coalescing window merges 2–3 tokens per event.
  const streams3 = size(100, 10);
  // Warm-up, unmeasured: both sides run one full-size round first, so that no median includes a
  // process's first, not yet optimized, thousands of tokens.
  await parleyStreams(a, b, model, streams3, size(40, 5));
  await relayStreams(producer, relay, model, streams3, size(40, 5));
  const streamingCost = async (name: string, tokens: number, tokensPerSecond: number, target: number) => {
    const cost = await compare(
      async () => {
        const run = await parleyStreams(a, b, model, streams3, tokens, 10, tokensPerSecond);
        if (run.problems.length) throw new Error(`streaming: ${run.problems.slice(0, 3).join('; ')}`);
        return run.delivered / run.cpuSeconds;
      },
      async () => {
        const run = await relayStreams(producer, relay, model, streams3, tokens, tokensPerSecond);
        if (run.problems.length) throw new Error(`relay: ${run.problems.slice(0, 3).join('; ')}`);
        return run.delivered / run.cpuSeconds;
      },
    );
    const p3 = spread(cost.parley);
    const b3 = spread(cost.baseline);
    record({
      scenario: name,
      metric: 'tokens per server CPU-s',
      parley: p3.median,
      baseline: b3.median,
      target: `≥ ${target}× relay`,
      met: p3.median >= target * b3.median,
      detail: `${streams3} streams × ${tokens} tokens at ${tokensPerSecond}/s, 2 instances; parley ${fmt(p3.min)}–${fmt(p3.max)}, relay ${fmt(b3.min)}–${fmt(b3.max)}`,
    });
    return cost;
  };
  const [shortTokens, longTokens] = [size(40, 10), size(200, 20)];
  const short = await streamingCost('3 streaming cost', shortTokens, 20, 1);
  const long = await streamingCost('3 streaming cost, 200-token replies', longTokens, 20, 1);
  raw.streamingCostFast = await streamingCost('3 streaming cost, 80 tok/s', longTokens, 80, 2);
  // CPU = replies × per-reply cost + tokens × per-token cost, solved from the short and long runs.
  const split = (side: 'parley' | 'baseline') => {
    const [shortCpu, longCpu] = [(streams3 * shortTokens) / spread(short[side]).median, (streams3 * longTokens) / spread(long[side]).median];
    const perToken = (longCpu - shortCpu) / (streams3 * (longTokens - shortTokens));
    return { perTokenUs: perToken * 1e6, perReplyMs: ((shortCpu - streams3 * shortTokens * perToken) / streams3) * 1e3 };
  };
  const [ps, rs] = [split('parley'), split('baseline')];
  Object.assign(raw, { streamingCost: short, streamingCostLong: long, streamingCostSplit: { parley: ps, relay: rs } });
  console.log(`  3 cost split (both instances, from the ${shortTokens}- and ${longTokens}-token medians): parley ${fmt(ps.perTokenUs)} µs per token + ${fmt(ps.perReplyMs)} ms per reply; relay ${fmt(rs.perTokenUs)} µs + ${fmt(rs.perReplyMs)} ms`);

  // 4: latency at 200 streams, all of them running at once (admission off, as in 3).
  const streams4 = size(200, 10);
  const firsts: number[] = [];
  const everyToken: number[] = [];
  const relayTokens: number[] = [];
  const relayFirsts: number[] = [];
  const benchDelays: number[] = [];
  const toFirst4: number[] = [];
  const relayToFirst4: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const run = await parleyStreams(a, b, model, streams4, size(20, 5));
    if (run.problems.length) throw new Error(`latency: ${run.problems.slice(0, 3).join('; ')}`);
    firsts.push(percentile(run.firstTokenMs, 0.99));
    everyToken.push(percentile(run.tokenMs, 0.99));
    const relayRun = await relayStreams(producer, relay, model, streams4, size(20, 5));
    relayTokens.push(percentile(relayRun.tokenMs, 0.99));
    relayFirsts.push(percentile(relayRun.firstTokenMs, 0.99));
    benchDelays.push(run.generatorDelay.max, relayRun.generatorDelay.max);
    toFirst4.push(percentile(run.toFirstEventMs!, 0.99));
    relayToFirst4.push(percentile(relayRun.toFirstEventMs!, 0.99));
  }
  raw.latency = { firstTokenP99: firsts, tokenP99: everyToken, relayFirstTokenP99: relayFirsts, relayTokenP99: relayTokens, toFirstEventP99: toFirst4, relayToFirstEventP99: relayToFirst4 };
  record({
    scenario: '4 first-token latency',
    metric: 'p99 ms',
    parley: spread(firsts).median,
    baseline: spread(relayFirsts).median,
    ratio: null,
    target: `≤ relay + 5 ms = ${fmt(spread(relayFirsts).median + 5)} ms at ${streams4} streams`,
    met: spread(firsts).median <= spread(relayFirsts).median + 5,
    detail: `model emits → subscriber on the other instance; runs ${firsts.map(fmt).join(', ')}; relay (the floor here) ${relayFirsts.map(fmt).join(', ')}; from the stream's first request to its first event (the model's ${MODEL_HEADERS_MS} ms and any admission wait included), p99 of the medians: parley ${fmt(spread(toFirst4).median)}, relay ${fmt(spread(relayToFirst4).median)} ms; the bench's own event loop was delayed at most ${fmt(Math.max(...benchDelays))} ms in any run`,
  });
  record({ scenario: '4 every-token latency', metric: 'p99 ms', parley: spread(everyToken).median, baseline: spread(relayTokens).median, ratio: null, target: `≤ relay + STREAM_FLUSH_MS = ${fmt(spread(relayTokens).median + STREAM_FLUSH_MS)} ms`, met: spread(everyToken).median <= spread(relayTokens).median + STREAM_FLUSH_MS, detail: `relay (no coalescing) p99 ${relayTokens.map(fmt).join(', ')}` });

  // 5: scale, with the defaults.
  await restart({});
  const streams5 = size(1000, 20);
  const scale = await parleyStreams(a, b, model, streams5, size(20, 5), 25);
  const [sendMs, toFirst] = [scale.sendMs!, scale.toFirstEventMs!];
  raw.scale = {
    ...scale,
    firstTokenMs: undefined,
    tokenMs: undefined,
    sendMs: undefined,
    toFirstEventMs: undefined,
    generatorDelay: scale.generatorDelay,
    tokenP50: percentile(scale.tokenMs, 0.5),
    tokenP99: percentile(scale.tokenMs, 0.99),
    sendP50: percentile(sendMs, 0.5),
    sendP99: percentile(sendMs, 0.99),
    toFirstEventP50: percentile(toFirst, 0.5),
    toFirstEventP99: percentile(toFirst, 0.99),
  };
  record({
    scenario: '5 scale',
    metric: 'chunk p99 ms',
    parley: percentile(scale.tokenMs, 0.99),
    baseline: null,
    target: '≤ 100 ms, no loss (admission on)',
    met: scale.problems.length === 0 && percentile(scale.tokenMs, 0.99) <= 100,
    detail: `${streams5} streams × ${scale.tokens} tokens at 20/s over 2 instances: ${scale.delivered}/${streams5 * scale.tokens} tokens, ${scale.problems.length} problems, p50 ${fmt(percentile(scale.tokenMs, 0.5))} ms; sends: round trip p50 ${fmt(percentile(sendMs, 0.5))} / p99 ${fmt(percentile(sendMs, 0.99))} ms, send to first event (admission wait and the model's ${MODEL_HEADERS_MS} ms included) p50 ${fmt(percentile(toFirst, 0.5))} / p99 ${fmt(percentile(toFirst, 0.99))} ms; the bench's own event loop delay p99 ${fmt(scale.generatorDelay.p99)} / max ${fmt(scale.generatorDelay.max)} ms`,
  });
  await Promise.all([a.stop(), b.stop(), producer.stop(), relay.stop()]);
}

// 6 ─ idle subscriptions ────────────────────────────────────────────────────────────────────
async function idleSubscriptions(database: TestDatabase, model: FakeModel) {
  const count = size(2000, 50);
  // The subscriptions measured: a reply's stream on both transports, and the conversation and
  // viewer events a chat app keeps open per tab, on graphql-ws.
  const kinds = [
    { name: 'messageStream', query: 'subscription($id: ID!) { messageStream(messageId: $id) { seq delta done } }', transports: ['graphql-ws', 'sse'] as const },
    { name: 'conversationEvents', query: 'subscription($conversationId: ID!) { conversationEvents(conversationId: $conversationId) { seq kind } }', transports: ['graphql-ws'] as const },
    { name: 'viewerEvents', query: 'subscription { viewerEvents { seq kind } }', transports: ['graphql-ws'] as const },
  ];
  let query = kinds[0]!.query;
  // A subscription that ended (an error, a completion, a closed socket) holds no memory: the
  // measurement only counts if none did.
  let ended: string[] = [];
  const open = (transport: 'graphql-ws' | 'sse', url: string, variables: Record<string, string>, onOpen: () => void): (() => void) => {
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
        { query, variables },
        { next: (r) => void ended.push(`event ${JSON.stringify(r).slice(0, 200)}`), error: (e) => void ended.push(`error ${JSON.stringify(e).slice(0, 200)}`), complete: () => void (disposed || ended.push('completed')) },
      );
      return () => {
        disposed = true;
        void client.dispose();
      };
    }
    const controller = new AbortController();
    void fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: JSON.stringify({ query, variables }), signal: controller.signal })
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
  const openMany = async (transport: 'graphql-ws' | 'sse', url: string, variables: Record<string, string>, n: number) => {
    let acked = 0;
    const closers: (() => void)[] = [];
    for (let i = 0; i < n; i++) {
      closers.push(open(transport, url, variables, () => acked++));
      if (i % 100 === 99) await sleep(20);
    }
    const deadline = Date.now() + 30_000;
    while (acked < n && Date.now() < deadline) await sleep(100);
    if (acked < n) throw new Error(`idle subscriptions: only ${acked} of ${n} ${transport} subscriptions opened`);
    return () => closers.forEach((close) => close());
  };
  const perSubscription: Record<string, number[]> = {};
  for (let run = 0; run < RUNS; run++) {
    for (const kind of kinds) for (const transport of kind.transports) {
      query = kind.query;
      const parley = await startService('parley', PARLEY, parleyEnv(database, model, withRedis), { inspect: true });
      model.setDefault({ tokens: ['never'], stallAfter: 0 });
      const sent = await gql<{ sendMessage: { conversation: { id: string }; assistantMessage: { id: string } } }>(
        parley.url,
        'mutation { sendMessage(input: { content: "idle" }) { conversation { id } assistantMessage { id } } }',
      );
      const variables: Record<string, string> = kind.name === 'messageStream' ? { id: sent.sendMessage.assistantMessage.id } : kind.name === 'conversationEvents' ? { conversationId: sent.sendMessage.conversation.id } : {};
      ended = [];
      // The cost of one more subscription on a server that already holds `count` of them: the
      // first ones also compile code, fill caches and grow the heap's spaces, which every later
      // one shares. Measured from a fresh process instead, the heap's own resizing made readings
      // swing from -4 to +15 KB.
      const closeFirst = await openMany(transport, parley.url, variables, count);
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
      const closeSecond = await openMany(transport, parley.url, variables, count);
      await sleep(1000);
      await parley.collectGarbage();
      (perSubscription[`${kind.name} ${transport}`] ??= []).push((rssBytes(parley.pid) - before) / count / 1024);
      if (ended.length > 0) throw new Error(`idle subscriptions: ${ended.length} of ${2 * count} ${transport} subscriptions ended early, e.g. ${ended.slice(0, 3).join('; ')}`);
      closeFirst();
      closeSecond();
      await parley.stop();
    }
  }
  raw.idleSubscriptions = perSubscription;
  const ws = spread(perSubscription['messageStream graphql-ws']!);
  const sse = spread(perSubscription['messageStream sse']!);
  record({
    scenario: '6 idle subscriptions',
    metric: 'KB RSS each (graphql-ws)',
    parley: ws.median,
    baseline: null,
    target: '≤ 16 KB',
    met: ws.median > 0 && ws.median <= 16,
    detail: `${count} messageStream subscriptions, RSS after a full GC; graphql-ws ${fmt(ws.min)}–${fmt(ws.max)} KB; SSE ${fmt(sse.median)} KB (${fmt(sse.min)}–${fmt(sse.max)})`,
  });
  // Issue 12: an idle conversation or viewer subscription costs no more than an idle messageStream.
  for (const name of ['conversationEvents', 'viewerEvents']) {
    const each = spread(perSubscription[`${name} graphql-ws`]!);
    record({
      scenario: `6 idle ${name}`,
      metric: 'KB RSS each (graphql-ws)',
      parley: each.median,
      baseline: ws.median,
      target: '≤ 16 KB',
      met: each.median > 0 && each.median <= 16,
      detail: `${count} subscriptions, RSS after a full GC; ${fmt(each.min)}–${fmt(each.max)} KB; baseline = idle messageStream on graphql-ws`,
    });
  }
}

// 7 ─ sendMessage round trip ────────────────────────────────────────────────────────────────
async function sendMessageRoundTrip(database: TestDatabase, model: FakeModel) {
  // The servers on their core as in 1 and 2; the client and the fake model stay in the bench process.
  const parley = await startService('parley', PARLEY, parleyEnv(database, model, withRedis), { cpus: SERVER_CPUS });
  const baseline = await startService('baseline', 'bench/baselines/insert.ts', { DATABASE_URL: database.url }, { cpus: SERVER_CPUS });
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

// 8 ─ a read costs its page, not the conversation ───────────────────────────────────────────
const LIST_QUERY = 'query($after: String) { conversations(first: 20, after: $after) { edges { node { title messageCount messages(last: 5) { edges { node { id role content } } } } } } }';
const PATH_QUERY =
  'query($id: ID!) { conversation(id: $id) { messageCount messages(last: 20) { edges { node { id content siblingIndex } } } } history(conversationId: $id, limit: 20) { role content } }';

async function pageCost(_unused: TestDatabase, model: FakeModel) {
  for (const provider of ['postgresql', 'sqlite'] as const) {
    const database = await createTestDatabase(provider);
    try {
      const { applyMigrations } = await import('../src/store/migrate.ts');
      await applyMigrations(database.url);
      await pageCostOn(provider, database, model);
    } finally {
      await database.drop();
    }
  }
}

async function pageCostOn(provider: string, database: TestDatabase, model: FakeModel) {
  const label = provider === 'postgresql' ? 'PostgreSQL' : 'SQLite';
  const longLength = size(50_000, 2_000);
  const shortCount = size(5_000, 200);
  // The list: one long conversation, newest (first on the first page), and many short ones.
  await seedTrees(database.url, 'local', [{ length: longLength, age: 0 }, ...Array.from({ length: shortCount }, (_, i) => ({ length: 4, age: 10 + i }))]);
  // A path of 4,801 messages with a replaced sibling at 200 points, and a linear one as long as it holds rows.
  const [branched, linear] = await seedTrees(database.url, 'local', [
    { length: 4_801, branchEvery: 24, age: 1_000_000 },
    { length: 5_001, age: 1_000_001 },
  ]);
  const cold = await startService('parley', PARLEY, parleyEnv(database, model), { cpus: SERVER_CPUS });
  const cached = await startService('parley-cached', PARLEY, parleyEnv(database, model, withRedis), { cpus: SERVER_CPUS });
  const { conversations } = await gql<{ conversations: { edges: { cursor: string }[] } }>(cold.url, '{ conversations(first: 21) { edges { cursor } } }');
  const body = (query: string, variables: Record<string, unknown>) => JSON.stringify({ query, variables });
  const requests = {
    onPage: body(LIST_QUERY, {}),
    offPage: body(LIST_QUERY, { after: conversations.edges[20]!.cursor }),
    branched: body(PATH_QUERY, { id: branched }),
    linear: body(PATH_QUERY, { id: linear }),
  };
  const expected = Object.fromEntries(await Promise.all(Object.entries(requests).map(async ([name, text]) => [name, await answerOf(cold.url, text)] as const))) as Record<keyof typeof requests, string>;
  if (!expected.onPage.includes(`"messageCount":${longLength}`)) throw new Error('the long conversation is not on the first page');
  if (expected.offPage.includes(`"messageCount":${longLength}`) || expected.branched.includes('"errors"')) throw new Error('scenario 8 reads the wrong pages');
  const generator = LoadGenerator.start();
  const load = (server: Service, name: keyof typeof requests, seconds = LOAD_SECONDS) =>
    generator.run(server, { path: '/graphql', method: 'POST', body: requests[name], headers: { 'content-type': 'application/json' }, expectBody: expected[name] }, { connections: CONNECTIONS, seconds });
  // One at a time first: 50 cold requests at once would take longer than a quick run's warm-up.
  for (const name of Object.keys(requests) as (keyof typeof requests)[]) {
    for (const server of [cold, cached]) {
      for (let i = 0; i < 20; i++) await answerOf(server.url, requests[name]);
      await load(server, name, WARMUP_SECONDS);
    }
  }
  const list = await alternate({ offPage: () => load(cold, 'offPage'), onPage: () => load(cold, 'onPage') });
  const coldPaths = await alternate({ linear: () => load(cold, 'linear'), branched: () => load(cold, 'branched') });
  const cachedPaths = await alternate({ linear: () => load(cached, 'linear'), branched: () => load(cached, 'branched') });
  await generator.close();
  raw[`pageCost${label}`] = { list, coldPaths, cachedPaths };
  throughputRow(`8 list with a ${fmt(longLength)}-message conversation on the page (${label})`, 0.8, list.onPage, 'page of short ones', list.offPage, '≥ 0.8× a page of short ones');
  throughputRow(`8 branched path read, uncached (${label})`, 1 / 1.2, coldPaths.branched, 'linear path', coldPaths.linear, 'cost ≤ 1.2× linear');
  throughputRow(`8 branched path read, cached (${label})`, 1 / 1.2, cachedPaths.branched, 'linear path', cachedPaths.linear, 'cost ≤ 1.2× linear');
  await Promise.all([cold.stop(), cached.stop()]);
}

function table(): string {
  const lines = [
    '| scenario | metric | Parley | baseline | ratio | target | result |',
    '| --- | --- | ---: | ---: | ---: | --- | --- |',
    ...rows.map((r) => `| ${r.scenario} | ${r.metric} | ${fmt(r.parley)} | ${fmt(r.baseline)} | ${r.ratio === null ? '–' : `${r.ratio.toFixed(2)}×`} | ${r.target} | ${r.invalid ? `**${r.invalid}**` : r.met ? 'met' : '**missed**'} |`),
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
      ['8 page cost', pageCost],
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
  const pinning = canPin() ? { servers: SERVER_CPUS, generator: LOAD_CPUS } : false;
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`;
  const output = table();
  console.log(`\n${output}\n\n${machine}; ${((Date.now() - started) / 1000).toFixed(0)} s`);
  const resultsDir = path.join(root, 'bench/results');
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(path.join(resultsDir, quick ? 'quick.json' : only ? `only-${only}.json` : 'latest.json'), JSON.stringify({ date: new Date().toISOString(), machine, runs: RUNS, pinned: pinning, saturatedShare: SATURATED_SHARE, rows, raw }, null, 2));
  // A generator-bound figure is not a result: it fails the run and stays out of BENCHMARKS.md. The
  // quick smoke run's one-second loads share the machine with the test suite; there it is only shown.
  const invalid = rows.filter((r) => r.invalid);
  if (invalid.length) {
    console.log(`\nThe load generator was runnable ≥ ${percent(SATURATED_SHARE)} of a measured window in: ${invalid.map((r) => `${r.scenario} (${r.invalid})`).join('; ')}.`);
    if (!quick) console.log('Those figures are the generator\'s ceiling, not a result: the run fails and BENCHMARKS.md is left as it was.');
  }
  if (invalid.length && !quick) process.exitCode = 1;
  if (!quick && !only && invalid.length === 0) {
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
