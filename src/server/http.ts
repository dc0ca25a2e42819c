// The HTTP side of one port: the browser policy (CORS, Host, CSRF), /health, the body checks, the
// fast path for known operations (Yoga's plugin chain without its Fetch-API layer), and Yoga for
// everything else (GraphQL over POST/GET, SSE, GraphiQL).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { YogaInitialContext } from 'graphql-yoga';
import { decideRequest, type BrowserPolicy } from './cors.ts';
import { acceptsPlainJson, type FastPath } from './fast-path.ts';
import { sendFetchResponse } from './fetch-response.ts';
import { GRAPHQL_PATH, type ServerContext, type Yoga } from './yoga.ts';

export interface HttpParts {
  yoga: Yoga;
  fastPath: FastPath;
  health: (res: ServerResponse) => Promise<void>;
  maxBodyBytes: number;
  browser: BrowserPolicy;
}

/** The server, and how many requests are in flight (for a draining shutdown). */
export function createHttpServer({ yoga, fastPath, health, maxBodyBytes, browser }: HttpParts) {
  let inFlight = 0;
  let drained: (() => void) | undefined;

  /** Hands a request whose body was already read to Yoga. */
  async function answerWithYoga(req: IncomingMessage, res: ServerResponse, body: string): Promise<void> {
    const headers = new yoga.fetchAPI.Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined && name !== 'content-length') headers.set(name, Array.isArray(value) ? value.join(', ') : value);
    }
    const request = new yoga.fetchAPI.Request(`http://${req.headers.host ?? 'localhost'}${req.url}`, { method: 'POST', headers, body });
    const response = await yoga.handleRequest(request, { req, res } as ServerContext & YogaInitialContext);
    await sendFetchResponse(res, response);
  }

  const server: Server = createServer(async (req, res) => {
    inFlight++;
    res.on('close', () => {
      if (--inFlight === 0) drained?.();
    });
    // Set before any route writes: writeHead keeps them, so every answer carries them (Yoga's own
    // CORS is off).
    const decision = decideRequest(browser, req.method, req.headers);
    for (const [name, value] of Object.entries(decision.headers)) res.setHeader(name, value);
    if (decision.answer) {
      const { answer } = decision;
      if (!('message' in answer)) return void res.writeHead(answer.status, { 'content-length': '0' }).end();
      return plain(res, answer.status, answer.message);
    }
    if (req.url === '/health' || req.url?.startsWith('/health?')) return health(res);
    if (req.method === 'POST') {
      const length = req.headers['content-length'];
      if (length === undefined) return plain(res, 411, 'Content-Length is required');
      if (Number(length) > maxBodyBytes) return plain(res, 413, `request body is larger than ${maxBodyBytes} bytes`);
      if (req.url === GRAPHQL_PATH && req.headers['content-type']?.startsWith('application/json') && acceptsPlainJson(req)) {
        const body = await readBody(req);
        if (body === null) return;
        if (await fastPath.answer(req, res, body)) return;
        return answerWithYoga(req, res, body);
      }
    }
    return yoga(req, res);
  });
  server.keepAliveTimeout = 65_000;

  return {
    server,
    /** Resolves when no request is in flight, or after `ms`. */
    drain(ms: number): Promise<void> {
      if (inFlight === 0) return Promise.resolve();
      return Promise.race([new Promise<void>((resolve) => (drained = resolve)), new Promise<void>((resolve) => setTimeout(resolve, ms).unref())]);
    },
  };
}

/** The whole request body as text, or null when the client went away first. */
function readBody(req: IncomingMessage): Promise<string | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const text = () => Buffer.concat(chunks).toString('utf8');
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(text()));
    req.on('error', () => resolve(null));
    req.on('close', () => resolve(req.complete ? text() : null));
  });
}

function plain(res: ServerResponse, status: number, message: string) {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
  res.end(message);
}
