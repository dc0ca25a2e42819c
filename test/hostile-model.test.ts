// A model that sends what no model should: NUL, lone surrogates, 10 MB without a space, fields of
// the wrong type or length, deltas that are not text, a stream without end, garbage for events.
// Parley runs as its own process, as in production (PostgreSQL, Redis, JWT auth), and every reply
// must reach a final status, saved as streamed, while /health keeps answering fast; the process
// must then restart clean, even after a crash in the middle of such a reply.
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../src/store/database.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import { FakeModel, type Script } from './support/fake-model.ts';
import { GraphQLClient, TEST_JWT_SECRET, tokenFor } from './support/parley.ts';
import { spawnParley, waitUntilHealthy, type ParleyProcess } from './support/process.ts';
import { REDIS_URL, redisNamespace } from './support/redis.ts';
import { assertWellFormed, followSse, SendMessage, waitFor } from './support/streams.ts';

const MAX_REPLY_CHARS = 400_000;

/** Polls /health from its own thread, so that the test's own work never shows in the timings. */
/** Probes /health until stopped, and then on until it has `min` answers since `since` (a loaded machine answers fewer). */
function healthProbe(url: string): { stop(since: number, min: number): Promise<{ latencies: number[]; at: number[] }> } {
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const latencies = [];
     const at = [];
     let stop;
     parentPort.on('message', (message) => { stop = message; });
     const done = () => stop !== undefined && at.filter((time) => time >= stop.since).length >= stop.min;
     (async () => {
       while (!done()) {
         const start = performance.now();
         try { const res = await fetch(workerData.url); await res.arrayBuffer(); latencies.push(res.ok ? performance.now() - start : Infinity); }
         catch { latencies.push(Infinity); }
         at.push(Date.now());
         await new Promise((r) => setTimeout(r, 2));
       }
       parentPort.postMessage({ latencies, at });
     })();`,
    { eval: true, workerData: { url: `${url}/health` } },
  );
  return {
    stop: (since, min) =>
      new Promise((resolve) => {
        worker.once('message', (samples: { latencies: number[]; at: number[] }) => void worker.terminate().then(() => resolve(samples)));
        worker.postMessage({ since, min });
      }),
  };
}

const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((p / 100) * values.length))]!;

describe('a hostile model', () => {
  let model: FakeModel;
  let database: TestDatabase;
  let db: Database;
  const namespace = redisNamespace();
  let parley: ParleyProcess;
  let api: GraphQLClient;
  let token: string;
  let probe: ReturnType<typeof healthProbe>;
  const env = () => ({
    DATABASE_URL: database.url,
    REDIS_URL,
    REDIS_KEY_PREFIX: namespace.prefix,
    AUTH_JWT_SECRET: TEST_JWT_SECRET,
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    LLM_API_URL: model.url,
    LLM_MODEL: 'fake-model',
    LLM_MAX_RETRIES: '0',
    LLM_TIMEOUT_MS: '5000',
    LLM_IDLE_TIMEOUT_MS: '3000',
    STREAM_LEASE_MS: '1000',
    // Room for the 1 MB message of one test.
    MAX_CONTENT_CHARS: '1000000',
  });

  beforeAll(async () => {
    model = await FakeModel.start();
    database = await createTestDatabase('postgresql');
    parley = await spawnParley(env(), undefined, process.env.TRACE_GC ? ['--trace-gc'] : []);
    await waitUntilHealthy(parley, 60_000);
    db = await openDatabase({ url: database.url, poolSize: 2 });
    token = await tokenFor('hostile-model-user');
    api = new GraphQLClient(`${parley.url}/graphql`, token);
    // First replies compile what every later one reuses (each query shape, the title, a failure,
    // a follow-up with history): that is start-up, not the run measured.
    const first = await reply({ tokens: ['warm', ' up'] });
    await waitFor(() => db.prisma.conversation.findUniqueOrThrow({ where: { id: first.conversationId } }), (c) => c.title !== null, 10_000);
    await reply({ tokens: ['again'] }, 'a follow-up', first.conversationId);
    await reply({ deltas: ['x', 1] });
    probe = healthProbe(parley.url);
    // The probe's own first requests (its thread, its connection) are not Parley's latency.
    await new Promise((resolve) => setTimeout(resolve, 500));
  });
  afterAll(async () => {
    parley?.child.kill('SIGKILL');
    await parley?.exited;
    await db?.close();
    await model?.close();
    await database?.drop();
    await namespace.cleanup();
  });

  const cases: { name: string; at: number }[] = [];
  beforeEach((context) => void cases.push({ name: context.task.name, at: Date.now() }));

  /** Sends a message answered by `script`; returns what a subscriber saw and what was saved. */
  async function reply(script: Script, content = 'say something', conversationId?: string) {
    model.enqueue(script);
    const sent = await api.ok(SendMessage, { input: { content, conversationId } });
    const id = sent.sendMessage.assistantMessage!.id;
    const followed = followSse(`${parley.url}/graphql`, id, undefined, token);
    await Promise.race([followed.done, new Promise((_, reject) => setTimeout(() => reject(new Error(`no terminal event for ${id}`)), 30_000))]);
    expect(followed.errors).toEqual([]);
    const { content: streamed, terminal } = assertWellFormed(followed.events);
    const saved = terminal.message!;
    expect(saved.status).toBe(terminal.status);
    expect(saved.content).toBe(streamed);
    return { id, conversationId: sent.sendMessage.conversation.id, streamed, terminal, saved, request: model.chatRequests.at(-1)! };
  }

  it('NUL in a delta is saved and streamed as U+FFFD, and the reply completes (PostgreSQL refuses NUL)', async () => {
    const { saved } = await reply({ tokens: ['nul:', '\u0000', ' and\u0000', ' more'] });
    expect(saved).toMatchObject({ status: 'COMPLETE', content: 'nul:\uFFFD and\uFFFD more', finishReason: 'stop' });
  });

  it('lone surrogates become U+FFFD; a surrogate pair split over two deltas is kept whole', async () => {
    const { saved } = await reply({ deltas: ['a\ud83d', '\ude00b', '\udc00', 'c\ud800'] });
    expect(saved).toMatchObject({ status: 'COMPLETE', content: 'a\u{1F600}b\uFFFDc\uFFFD' });
  });

  it('10 MB without a space, in 64 KiB deltas, is cut at LLM_MAX_REPLY_CHARS and the model call ended', async () => {
    const { saved, request } = await reply({ tokens: Array.from({ length: 160 }, () => 'x'.repeat(65_536)) });
    expect(saved).toMatchObject({ status: 'COMPLETE', finishReason: 'max_reply_chars' });
    expect(saved.content).toBe('x'.repeat(MAX_REPLY_CHARS));
    await request.closed;
    expect(request.sent).toBeLessThan(160);
  });

  it('one 10 MB delta is refused as an oversized event: the reply fails with a clear error', async () => {
    const { saved } = await reply({ tokens: ['y'.repeat(10_000_000)] });
    expect(saved).toMatchObject({ status: 'FAILED', content: '' });
    expect(saved.error).toMatch(/^the model sent a line of over \d+ characters$/);
  });

  it('an endless stream is cut at LLM_MAX_REPLY_CHARS and its connection closed', async () => {
    const { saved, request } = await reply({ endless: true, tokens: ['abcd'.repeat(2_500)] });
    expect(saved).toMatchObject({ status: 'COMPLETE', finishReason: 'max_reply_chars' });
    expect(saved.content).toBe('abcd'.repeat(MAX_REPLY_CHARS / 4));
    await request.closed;
  });

  it('over-long model and finish_reason are cut to their columns; usage out of range is replaced by a count', async () => {
    const { saved } = await reply({ tokens: ['Hello', ' there'], model: 'm'.repeat(300), finishReason: 'f'.repeat(100), usage: { prompt_tokens: 2 ** 31, completion_tokens: 1.5 } });
    expect(saved).toMatchObject({ status: 'COMPLETE', content: 'Hello there', model: 'm'.repeat(255), finishReason: 'f'.repeat(64) });
    expect(saved.completionTokens).toBe(2);
    expect(Number.isSafeInteger(saved.promptTokens) && saved.promptTokens! > 0 && saved.promptTokens! < 1000).toBe(true);
  });

  it('mistyped model, finish_reason and usage are ignored', async () => {
    for (const fields of [
      { model: 42, finishReason: { why: 'stop' }, usage: 'lots' },
      { model: ['m'], finishReason: 7, usage: { prompt_tokens: '11', completion_tokens: null } },
      { model: null, finishReason: '', usage: { prompt_tokens: -1, completion_tokens: 3 } },
    ]) {
      const { saved } = await reply({ tokens: ['fine'], ...fields });
      expect(saved, JSON.stringify(fields)).toMatchObject({ status: 'COMPLETE', content: 'fine', model: 'fake-model', finishReason: null, completionTokens: 1 });
    }
  });

  it('a delta that is not text fails the reply, keeping the text before it', async () => {
    for (const bad of [{ a: 1 }, 42, ['x'], true]) {
      const { saved } = await reply({ deltas: ['ok ', bad, 'never'] });
      expect(saved, JSON.stringify(bad)).toMatchObject({ status: 'FAILED', content: 'ok ', error: 'the model sent delta content that is not text' });
    }
  });

  it('garbage events fail the reply with a clear error; lines that are not data are skipped', async () => {
    const cases: [string[], string][] = [
      [['data: {not json\n\n'], 'the model sent an event that is not JSON'],
      [['data: [1, 2]\n\n'], 'the model sent an event that is not a JSON object'],
      [['data: null\n\n'], 'the model sent an event that is not a JSON object'],
      [['data: {"choices":[{"delta":"text"}]}\n\n'], 'the model sent a delta that is not an object'],
    ];
    for (const [raw, error] of cases) {
      const { saved } = await reply({ raw, tokens: ['never'] });
      expect(saved, raw[0]).toMatchObject({ status: 'FAILED', content: '', error });
    }
    const skipped = [': a comment\r\nevent: odd\r\nid: 3\r\nretry: soon\r\n\r\n', '\u0001\u0002 not a field\n\n', 'data: {"choices":"nope"}\n\n', 'data: {"choices":[7]}\n\n'];
    const { saved } = await reply({ raw: skipped, tokens: ['still', ' fine'] });
    expect(saved).toMatchObject({ status: 'COMPLETE', content: 'still fine' });
  });

  it('a 1 MB message of one CJK character is answered within 1 s, and so is a reply of 1 MB of it', async () => {
    // 349,525 × "中" is 1 MB (1,048,575 bytes) of UTF-8, one run without a space.
    const chars = Math.floor((1024 * 1024) / 3);
    const started = performance.now();
    model.enqueue({ tokens: Array.from({ length: 25 }, (_, i) => '中'.repeat(i < 24 ? 14_000 : chars - 24 * 14_000)), usage: false });
    const sent = await api.ok(SendMessage, { input: { content: '中'.repeat(chars) } });
    expect(performance.now() - started).toBeLessThan(1000);
    const id = sent.sendMessage.assistantMessage!.id;
    const saved = await waitFor(
      () => db.prisma.message.findUniqueOrThrow({ where: { id } }),
      (m) => m.status !== 'STREAMING',
      30_000,
    );
    expect(saved).toMatchObject({ status: 'COMPLETE', completionTokens: chars });
    expect(saved.content).toBe('中'.repeat(chars));
    const user = await db.prisma.message.findFirstOrThrow({ where: { conversationId: saved.conversationId, role: 'USER' } });
    expect(user.tokenCount).toBe(chars);
  });

  it('/health kept its p99 under 100 ms through all of it', async () => {
    const samples = await probe.stop(cases[0]!.at, 101);
    // From the first hostile case on.
    const from = samples.at.findIndex((time) => time >= cases[0]!.at);
    const latencies = samples.latencies.slice(from);
    const at = samples.at.slice(from);
    if (process.env.TRACE_GC) console.log(parley.output().split('\n').filter((l) => /Mark-Compact|Scavenge/.test(l) && Number(/ ([\d.]+) \/ [\d.]+ ms/.exec(l)?.[1] ?? 0) > 20).join('\n'));
    expect(latencies.length).toBeGreaterThan(100);
    expect(latencies.filter((l) => l === Infinity)).toEqual([]);
    // Each of the slowest answers, with the case that was running when it came.
    const during = (time: number) => cases.findLast((c) => c.at <= time)?.name ?? 'before the first case';
    const slowest = latencies
      .map((latency, i) => ({ latency, i }))
      .sort((a, b) => b.latency - a.latency)
      .slice(0, 5)
      .map(({ latency, i }) => `${Math.round(latency)} ms during "${during(at[i]! - latency)}"`);
    expect(percentile(latencies, 99), `${latencies.length} answers, slowest: ${slowest.join('; ')}`).toBeLessThan(100);
  });

  it('a crash in the middle of a hostile reply leaves nothing that keeps the next start from ending it', async () => {
    model.enqueue({ endless: true, delayMs: 5, deltas: ['\u0000', '\ud800', 'text '] });
    const sent = await api.ok(SendMessage, { input: { content: 'and now crash' } });
    const id = sent.sendMessage.assistantMessage!.id;
    // Past a checkpoint (a third of the lease), then killed as a crash would.
    await waitFor(() => db.prisma.message.findUniqueOrThrow({ where: { id } }), (m) => m.content.includes('text '), 10_000);
    parley.child.kill('SIGKILL');
    await parley.exited;
    expect(await db.prisma.message.count({ where: { status: 'STREAMING' } })).toBe(1);

    parley = await spawnParley(env());
    await waitUntilHealthy(parley, 60_000);
    api = new GraphQLClient(`${parley.url}/graphql`, token);
    const ended = await waitFor(() => db.prisma.message.findUniqueOrThrow({ where: { id } }), (m) => m.status !== 'STREAMING', 15_000);
    expect(ended.status).toBe('INTERRUPTED');
    // NUL, then the held lone half, each U+FFFD; the log may end between the two.
    expect(ended.content).toMatch(/^(\uFFFD\uFFFDtext )+\uFFFD?$/);
    expect(await db.prisma.message.count({ where: { status: 'STREAMING' } })).toBe(0);
    expect(parley.output()).not.toMatch(/could not start|recovery sweep failed|"level":50/);
    // And it serves: a plain reply, start to end.
    const { saved } = await reply({ tokens: ['back', ' again'] });
    expect(saved).toMatchObject({ status: 'COMPLETE', content: 'back again' });
  });
});
