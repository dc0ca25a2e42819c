// The `fetch` the openai client is given: the same request over node:http(s) keep-alive agents.
// Node's built-in fetch (undici's WHATWG implementation) was the largest single cost of a reply
// on the generating instance (BENCHMARKS.md); this path builds only the Response the client
// reads. Bodies it does not know (streams, forms) go to the built-in fetch, unless the agents must
// carry every connection (user endpoints, src/llm/user-endpoints.ts).
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';

// Idle sockets close after 4 s, as the built-in fetch's do, or sooner when the server says so in
// its Keep-Alive header: reusing a socket the server is closing fails the request.
export const AGENT_OPTIONS = { keepAlive: true, timeout: 4000, scheduling: 'lifo' as const };

export interface Agents {
  'http:': http.Agent;
  'https:': https.Agent;
}

export type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

// Responses that must not have a body (the Response constructor rejects one).
const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

export interface NodeFetchOptions {
  /** false: a request these agents cannot carry fails instead of going to the built-in fetch. */
  fallBack: boolean;
}

/** A fetch over `agents`: every connection it opens is one of theirs. */
export function createNodeFetch(agents: Agents, { fallBack }: NodeFetchOptions): Fetch {
  return async (input, init = {}) => {
    const body = init.body;
    const plainBody = body == null || typeof body === 'string' || body instanceof Uint8Array;
    const url = input instanceof Request ? undefined : new URL(input);
    const agent = url && plainBody ? agents[url.protocol as keyof Agents] : undefined;
    if (url && agent) return send(url, init, agent);
    if (fallBack) return fetch(input, init);
    throw new TypeError('this request needs the built-in fetch, which these agents do not carry');
  };
}

/** The fetch for configured endpoints. */
export const nodeFetch = createNodeFetch({ 'http:': new http.Agent(AGENT_OPTIONS), 'https:': new https.Agent(AGENT_OPTIONS) }, { fallBack: true });

async function send(url: URL, init: RequestInit, agent: http.Agent): Promise<Response> {
  const body = init.body as string | Uint8Array | null | undefined;
  const signal = init.signal ?? undefined;
  signal?.throwIfAborted();
  const headers: Record<string, string> = {};
  new Headers(init.headers).forEach((value, name) => (headers[name] = value));
  if (body != null) headers['content-length'] = String(typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength);

  return new Promise<Response>((resolve, reject) => {
    const request = (url.protocol === 'https:' ? https : http).request(url, { method: init.method ?? 'GET', headers, agent, signal }, (res) => {
      try {
        resolve(toResponse(res, url, signal));
      } catch (error) {
        res.destroy();
        reject(error);
      }
    });
    request.on('error', reject);
    request.end(body ?? undefined);
  });
}

function toResponse(res: IncomingMessage, url: URL, signal: AbortSignal | undefined): Response {
  const headers = new Headers();
  for (let i = 0; i < res.rawHeaders.length; i += 2) headers.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
  const status = res.statusCode ?? 0;
  const body = NULL_BODY_STATUS.has(status) ? (res.resume(), null) : bodyStream(res, signal);
  const response = new Response(body, { status, statusText: res.statusMessage, headers });
  Object.defineProperty(response, 'url', { value: url.href });
  return response;
}

/** The response body as a web stream: paused while the reader is behind, failed on a cut. */
function bodyStream(res: IncomingMessage, signal: AbortSignal | undefined): ReadableStream<Uint8Array> {
  const encoding = res.headers['content-encoding']?.trim().toLowerCase();
  const decoder = encoding === 'gzip' || encoding === 'x-gzip' ? zlib.createGunzip() : encoding === 'deflate' ? zlib.createInflate() : encoding === 'br' ? zlib.createBrotliDecompress() : undefined;
  const source: Readable = decoder ? res.pipe(decoder) : res;
  if (decoder) res.on('error', (error) => decoder.destroy(error));
  let settled = false;
  let fail: (error: unknown) => void = () => {};
  const onAbort = () => {
    fail(signal!.reason instanceof Error ? signal!.reason : new DOMException('This operation was aborted', 'AbortError'));
    res.destroy();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  const finish = () => {
    settled = true;
    signal?.removeEventListener('abort', onAbort);
  };
  return new ReadableStream<Uint8Array>({
    start(controller) {
      fail = (error) => {
        if (settled) return;
        finish();
        controller.error(error);
      };
      source.on('data', (chunk: Buffer) => {
        if (settled) return;
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if ((controller.desiredSize ?? 1) <= 0) source.pause();
      });
      source.once('end', () => {
        if (settled) return;
        finish();
        controller.close();
      });
      source.once('error', fail);
      // A connection that closes before the body's end is a failure, not a short body.
      res.once('close', () => {
        if (!res.complete) fail(Object.assign(new Error('the connection closed before the response ended'), { code: 'ECONNRESET' }));
      });
    },
    pull() {
      source.resume();
    },
    cancel() {
      finish();
      res.destroy();
    },
  });
}
