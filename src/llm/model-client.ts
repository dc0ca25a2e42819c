// Streams a chat completion from any OpenAI-compatible endpoint through the `openai` client, or
// from the built-in local-echo model. openai's own timeout ends at the response headers, so the
// first chunk and every gap between chunks have watchdogs of their own. A user's own endpoint is
// reached only through UserEndpoints' checked connections, and what it answers on failure stays
// in the log: `Message.error` tells the user no more than a status and a generic text.
import OpenAI from 'openai';
import { nodeFetch, type Fetch } from './node-fetch.ts';
import { MalformedChunk, parseChunk, safeText, SafeTextStream } from './model-output.ts';
import { SseDataReader, SseLineTooLong } from './sse-reader.ts';
import { countTokens } from './tokens.ts';
import type { UserEndpoints } from './user-endpoints.ts';

export interface ChatTurn {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface CompletionRequest {
  /** null: the local-echo model. */
  baseUrl: string | null;
  /** true: the user's own endpoint, untrusted; false: one the server is configured with. */
  custom: boolean;
  apiKey?: string;
  model: string;
  messages: ChatTurn[];
  maxTokens: number;
  temperature: number;
}

export interface CompletionResult {
  finishReason: string | null;
  model: string;
  usage?: { promptTokens: number; completionTokens: number };
}

export interface ModelClientOptions {
  /** From the request until the first chunk. */
  timeoutMs: number;
  /** Longest silence between chunks. */
  idleTimeoutMs: number;
  maxRetries: number;
  /** How user endpoints are reached; undefined: custom endpoints are turned off. */
  userEndpoints?: UserEndpoints;
  /** Longest event of the model's stream, in characters. */
  maxEventChars: number;
}

/** A failure of the model call: `message` is fit for `Message.error`, `detail` is for the log. */
export class ModelError extends Error {
  override name = 'ModelError';
  constructor(
    message: string,
    readonly detail: string = message,
  ) {
    super(message);
  }
}

export const CUSTOM_ENDPOINTS_OFF = 'custom endpoints are turned off on this server: clear baseUrl in your settings or pick a preset';

export type CompletionStream = AsyncGenerator<string, CompletionResult>;

export function streamCompletion(request: CompletionRequest, signal: AbortSignal, options: ModelClientOptions): CompletionStream {
  return request.baseUrl === null ? localEcho(request, signal) : openAiStream({ ...request, baseUrl: request.baseUrl }, signal, options);
}

/** The whole answer in one response, for short internal requests such as titles. */
export async function completeText(request: CompletionRequest, signal: AbortSignal, options: ModelClientOptions): Promise<string> {
  if (request.baseUrl === null) {
    let text = '';
    const stream = localEcho(request, signal);
    for (let next = await stream.next(); !next.done; next = await stream.next()) text += next.value;
    return text;
  }
  try {
    const completion = await openAiClient({ ...request, baseUrl: request.baseUrl }, options).chat.completions.create(
      { model: request.model, messages: request.messages, max_tokens: request.maxTokens, temperature: request.temperature },
      { signal, timeout: options.timeoutMs },
    );
    const content: unknown = completion.choices?.[0]?.message?.content;
    return typeof content === 'string' ? safeText(content) : '';
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    if (error instanceof ModelError) throw error;
    throw describe(error, request.custom);
  }
}

// A client holds its own HTTP agent and configuration: building one per reply costs more than
// the reply's chunks. Keyed by the fetch it runs on, endpoint and key, bounded, oldest dropped first.
const MAX_CLIENTS = 200;
const clientsByFetch = new WeakMap<Fetch, Map<string, OpenAI>>();

function openAiClient(request: CompletionRequest & { baseUrl: string }, options: ModelClientOptions): OpenAI {
  let fetch: Fetch = nodeFetch;
  if (request.custom) {
    if (!options.userEndpoints) throw new ModelError(CUSTOM_ENDPOINTS_OFF);
    fetch = options.userEndpoints.fetch;
  }
  let clients = clientsByFetch.get(fetch);
  if (!clients) clientsByFetch.set(fetch, (clients = new Map()));
  const key = JSON.stringify([request.baseUrl, request.apiKey ?? '', options.timeoutMs, options.maxRetries]);
  let client = clients.get(key);
  if (!client) {
    client = new OpenAI({ baseURL: request.baseUrl, apiKey: request.apiKey || 'none', timeout: options.timeoutMs, maxRetries: options.maxRetries, fetch });
    if (clients.size >= MAX_CLIENTS) clients.delete(clients.keys().next().value!);
    clients.set(key, client);
  }
  return client;
}

async function* openAiStream(request: CompletionRequest & { baseUrl: string }, signal: AbortSignal, options: ModelClientOptions): CompletionStream {
  const controller = new AbortController();
  const abort = () => controller.abort();
  signal.addEventListener('abort', abort, { once: true });
  // One timer for the whole call: it first bounds the wait for the first chunk, then the silence
  // between chunks. refresh() per chunk is much cheaper than a new timer per chunk.
  let problem = `the model did not answer within ${options.timeoutMs} ms`;
  let stalled: string | undefined;
  const fire = () => {
    stalled = problem;
    controller.abort();
  };
  let watchdog = setTimeout(fire, options.timeoutMs);
  /** Set at [DONE]: the reply is whole, whatever then happens to the connection. */
  let finished: CompletionResult | undefined;
  try {
    // The request, its headers, retries and HTTP errors are the client's; the event stream is read
    // here. openai's own reader passes every chunk through four nested async generators, which at
    // thousands of tokens a second was the largest per-token cost of the generating instance.
    const response = await openAiClient(request, options)
      .chat.completions.create(
        {
          model: request.model,
          messages: request.messages,
          max_tokens: request.maxTokens,
          temperature: request.temperature,
          stream: true,
          stream_options: { include_usage: true },
        },
        { signal: controller.signal },
      )
      .asResponse();
    if (!response.body) throw new ModelError('the model answered without a body');
    let finishReason: string | null = null;
    let model = request.model;
    let usage: CompletionResult['usage'];
    let first = true;
    const reader = response.body.getReader();
    const events = new SseDataReader(options.maxEventChars);
    const text = new SafeTextStream();
    let ended = false;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) {
          ended = true;
          break;
        }
        // After [DONE] the body is read to its end, so that its connection serves the next request.
        if (finished) continue;
        if (first) {
          first = false;
          problem = `the model stream stalled: no data for ${options.idleTimeoutMs} ms`;
          clearTimeout(watchdog);
          watchdog = setTimeout(fire, options.idleTimeoutMs);
        } else watchdog.refresh();
        for (const data of events.push(value)) {
          if (data === '[DONE]') {
            finished = { finishReason, model, usage };
            // The body's end normally comes with [DONE]; a server that holds it back is let go.
            clearTimeout(watchdog);
            watchdog = setTimeout(() => controller.abort(), DRAIN_AFTER_DONE_MS);
            break;
          }
          const chunk = parseChunk(data);
          if (chunk.error !== undefined) {
            const detail = `the model reported an error: ${firstLine(chunk.error)}`;
            throw new ModelError(request.custom ? 'the model reported an error' : detail, detail);
          }
          if (chunk.model) model = chunk.model;
          if (chunk.usage) usage = chunk.usage;
          if (chunk.finishReason) finishReason = chunk.finishReason;
          const delta = chunk.delta && text.push(chunk.delta);
          if (delta) yield delta;
        }
      }
    } finally {
      if (!ended) void reader.cancel().catch(() => {});
    }
    const rest = text.end();
    if (rest) yield rest;
    if (finished) return finished;
    // A body that ended because the request was aborted must not pass for the end of the reply.
    if (controller.signal.aborted) throw signal.aborted ? signal.reason : new ModelError(stalled ?? 'the model stream was cut off');
    return { finishReason, model, usage };
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    if (finished) return finished;
    if (error instanceof ModelError) throw error;
    if (error instanceof MalformedChunk || error instanceof SseLineTooLong) throw new ModelError(error.message);
    throw stalled ? new ModelError(stalled) : describe(error, request.custom);
  } finally {
    clearTimeout(watchdog);
    signal.removeEventListener('abort', abort);
    controller.abort();
  }
}

const DRAIN_AFTER_DONE_MS = 1000;

/**
 * The ModelError for a failed call. An error body is never shown: it may be anything the endpoint
 * holds. For a user endpoint, a refused address, a refused connection and an unknown name read
 * the same, so that the errors do not map the network behind it.
 */
function describe(error: unknown, custom: boolean): ModelError {
  if (error instanceof OpenAI.APIConnectionTimeoutError) return new ModelError('the model did not answer in time');
  if (error instanceof OpenAI.APIError && error.status) return new ModelError(`the model request failed with HTTP ${error.status}`, `HTTP ${error.status}: ${firstLine(error.message)}`);
  if (error instanceof OpenAI.APIConnectionError) {
    const cause = (error as { cause?: unknown }).cause;
    const detail = `could not reach the model: ${firstLine(String(cause ?? error.message))}${codeOf(cause)}`;
    return new ModelError(custom ? 'could not reach the custom endpoint' : detail, detail);
  }
  const detail = `the model connection failed: ${firstLine(error instanceof Error ? error.message : String(error))}${codeOf(error)}`;
  return new ModelError(custom ? 'could not read the answer of the custom endpoint' : detail, detail);
}

const codeOf = (error: unknown) => {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? ` (${code})` : '';
};

const firstLine = (text: string) => text.split('\n')[0]!.slice(0, 300);

const ECHO_TOKEN_MS = 15;

/** Deterministic and offline: repeats the last user message, a word at a time. */
async function* localEcho(request: CompletionRequest, signal: AbortSignal): CompletionStream {
  const prompt = [...request.messages].reverse().find((m) => m.role === 'user')?.content ?? '';
  const reply = `You said: ${prompt.trim()}\n\n(This reply comes from local-echo, Parley's built-in stand-in model. Set LLM_API_URL and LLM_MODEL to talk to a real one.)`;
  const words = reply.match(/\S+\s*/g) ?? [];
  const limited = words.slice(0, request.maxTokens);
  for (const word of limited) {
    if (signal.aborted) throw signal.reason;
    await new Promise((resolve) => setTimeout(resolve, ECHO_TOKEN_MS));
    yield word;
  }
  const content = limited.join('');
  return {
    finishReason: limited.length < words.length ? 'length' : 'stop',
    model: request.model,
    usage: { promptTokens: request.messages.reduce((n, m) => n + countTokens(m.content), 0), completionTokens: countTokens(content) },
  };
}
