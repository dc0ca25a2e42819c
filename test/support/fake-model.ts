// An OpenAI-compatible chat-completions server for the tests. It streams SSE chunks in the same
// shape as the real API and can be scripted per request: tokens and pacing, usage, stalls,
// HTTP errors and connection resets. It can also be hostile: any JSON as a delta or a field, raw
// bytes as events, and streams that never end. Parley reaches it through the real `openai` client.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface Script {
  tokens?: readonly string[];
  /** Pause before each token. */
  delayMs?: number;
  /** Pause before the response headers. */
  headersDelayMs?: number;
  /** Send this many tokens, then go silent with the connection open. */
  stallAfter?: number;
  /** Send this many tokens, then destroy the connection. */
  resetAfter?: number;
  /** Answer with this HTTP status and an OpenAI-style error body. */
  status?: number;
  /** Send this many tokens, then an error event in the stream (as OpenAI does mid-stream), then end. */
  errorAfter?: number;
  /** Send [DONE], then end the response this much later (null: never, the connection left open). */
  endAfterDoneMs?: number | null;
  /** false: no usage chunk even when asked for one. Any other value is sent as is. */
  usage?: { prompt_tokens: unknown; completion_tokens: unknown } | false | unknown;
  /** Sent as is, whatever its type. */
  finishReason?: unknown;
  model?: unknown;
  /** Sent as the deltas' `content`, whatever their type, instead of `tokens`. */
  deltas?: readonly unknown[];
  /** Written as is after the first chunk, before any delta: garbage, broken JSON, odd line ends. */
  raw?: readonly string[];
  /** Repeat the tokens until the client goes away. */
  endless?: boolean;
  /** Append `|<emission time in ms>;` to every token, for latency measurements. */
  stamp?: boolean;
}

/** The emission times carried by stamped tokens. */
export function tokenStamps(text: string): number[] {
  return [...text.matchAll(/\|(\d+\.\d+);/g)].map((m) => Number(m[1]));
}

export const now = () => performance.timeOrigin + performance.now();

export interface RecordedRequest {
  body: {
    model: string;
    messages: { role: string; content: string }[];
    stream?: boolean;
    max_tokens?: number;
    temperature?: number;
    stream_options?: { include_usage?: boolean };
  };
  headers: IncomingMessage['headers'];
  /** Resolves when the client closed the connection (or the response ended). */
  closed: Promise<void>;
  /** Tokens written before the connection closed. */
  sent: number;
}

export const TITLE_PROMPT_PREFIX = 'Write a title';

export class FakeModel {
  readonly requests: RecordedRequest[] = [];
  private scripts: Script[] = [];
  private fallback: Script = { tokens: ['Hello', ',', ' world', '!'] };
  /** Pause before answering a title request; how many are open at once, and the most seen. */
  titleDelayMs = 0;
  openTitleRequests = 0;
  mostOpenTitleRequests = 0;
  /** TCP connections accepted so far. */
  connections = 0;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<FakeModel> {
    let model!: FakeModel;
    const server = createServer((req, res) => void model.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    model = new FakeModel(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`);
    server.on('connection', (socket) => {
      model.connections++;
      model.sockets.add(socket);
      socket.on('close', () => model.sockets.delete(socket));
    });
    return model;
  }

  /** Scripts for the next chat requests, in order; later ones get the default. */
  enqueue(...scripts: Script[]): void {
    this.scripts.push(...scripts);
  }

  setDefault(script: Script): void {
    this.fallback = script;
  }

  /** Chat requests, leaving out the conversation-title requests. */
  get chatRequests(): RecordedRequest[] {
    return this.requests.filter((r) => !isTitleRequest(r));
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let text = '';
    for await (const chunk of req) text += chunk;
    if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'not found', type: 'invalid_request_error' } }));
      return;
    }
    let closedResolve!: () => void;
    const recorded: RecordedRequest = { body: JSON.parse(text), headers: req.headers, closed: new Promise((r) => (closedResolve = r)), sent: 0 };
    res.on('close', () => closedResolve());
    this.requests.push(recorded);
    if (isTitleRequest(recorded)) {
      this.mostOpenTitleRequests = Math.max(this.mostOpenTitleRequests, ++this.openTitleRequests);
      res.on('close', () => this.openTitleRequests--);
    }
    const script = isTitleRequest(recorded) ? { tokens: ['Weekend', ' in', ' Lisbon'], headersDelayMs: this.titleDelayMs } : (this.scripts.shift() ?? this.fallback);
    await sleep(script.headersDelayMs);
    if (res.destroyed) return;
    if (script.status) {
      res.writeHead(script.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `scripted failure ${script.status}`, type: 'server_error', param: null, code: null } }));
      return;
    }
    const tokens: readonly unknown[] = script.deltas ?? script.tokens ?? this.fallback.tokens ?? [];
    const model = 'model' in script ? script.model : recorded.body.model;
    const id = `chatcmpl-${this.requests.length}`;
    const created = Math.floor(Date.now() / 1000);
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, system_fingerprint: 'fp_fake', choices, ...extra })}\n\n`;
    const choice = (delta: Record<string, unknown>, finish: unknown = null) => ({ index: 0, delta, logprobs: null, finish_reason: finish });

    if (!recorded.body.stream) {
      const content = tokens.map(String).join('');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id, object: 'chat.completion', created, model, choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }] }));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.write(chunk([choice({ role: 'assistant', content: '', refusal: null })]));
    for (const text of script.raw ?? []) res.write(text);
    for (let i = 0; script.endless ? !res.destroyed : i < tokens.length; i++) {
      const token = tokens[i % tokens.length];
      if (script.stallAfter === i) return; // silence, connection left open
      if (script.errorAfter === i) {
        res.end(`data: ${JSON.stringify({ error: { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: null } })}\n\n`);
        return;
      }
      if (script.resetAfter === i) {
        // Let the tokens already written reach the client, then cut the connection.
        await sleep(Math.max(20, script.delayMs ?? 0));
        res.socket?.destroy();
        return;
      }
      await sleep(script.delayMs);
      if (res.destroyed) return;
      // Backpressure: an endless or huge stream waits for the client instead of filling memory.
      if (!res.write(chunk([choice({ content: script.stamp ? `${token}|${now().toFixed(3)};` : token })]))) await drainOrClose(res);
      recorded.sent++;
    }
    if (res.destroyed) return;
    res.write(chunk([choice({}, 'finishReason' in script ? script.finishReason : 'stop')]));
    if (script.usage !== false && recorded.body.stream_options?.include_usage) {
      const usage = (script.usage ?? { prompt_tokens: 11, completion_tokens: tokens.length }) as { prompt_tokens: unknown; completion_tokens: unknown };
      const total = typeof usage.prompt_tokens === 'number' && typeof usage.completion_tokens === 'number' ? usage.prompt_tokens + usage.completion_tokens : null;
      res.write(chunk([], { usage: typeof usage === 'object' && usage !== null ? { ...usage, total_tokens: total } : usage }));
    }
    if (script.endAfterDoneMs === undefined) return void res.end('data: [DONE]\n\n');
    res.write('data: [DONE]\n\n');
    if (script.endAfterDoneMs !== null) {
      await sleep(script.endAfterDoneMs);
      res.end();
    }
  }
}

function isTitleRequest(request: RecordedRequest): boolean {
  return request.body.messages[0]?.content.startsWith(TITLE_PROMPT_PREFIX) ?? false;
}

const sleep = (ms?: number) => (ms ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve());

/** Resolves when the response can take more, or is gone; the other listener does not stay behind. */
function drainOrClose(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done).off('close', done);
      resolve();
    };
    res.on('drain', done).on('close', done);
  });
}
