// Browsers and Parley: one CORS policy on every answer (fast path, Yoga, errors, refusals,
// preflights, /health), the Host check that stops DNS rebinding in single-user mode, the Origin
// check on the graphql-ws upgrade, and no operation run by a POST a browser sends unasked.
import { request } from 'node:http';
import { parse } from 'graphql';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startParley, TEST_JWT_SECRET, tokenFor, type TestServer } from './support/parley.ts';
import { subscribeWs } from './support/subscriptions.ts';

const QUERY = '{ conversations(first: 100) { edges { node { id } } } }';
const CREATE = 'mutation { createConversation(input: { title: "from another page" }) { id } }';
const json = { 'content-type': 'application/json' };

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A request over node:http, which (unlike fetch) sends the Host and Content-Type it is given, or none. */
function raw(url: string, options: { method?: string; headers?: Record<string, string>; body?: string; chunked?: boolean } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers = { ...options.headers };
    if (options.body !== undefined && !options.chunked) headers['content-length'] = String(Buffer.byteLength(options.body));
    const req = request(url, { method: options.method ?? 'GET', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

async function viaFetch(response: Promise<Response>): Promise<Answer> {
  const res = await response;
  const headers: Record<string, string> = {};
  res.headers.forEach((value, name) => (headers[name] = value));
  return { status: res.status, headers, body: await res.text() };
}

/** Every kind of answer Parley gives, each as a browser on `origin` would ask for it. */
async function everyAnswer(server: TestServer, origin: string | undefined, token?: string): Promise<Record<string, Answer>> {
  const base = { ...(origin ? { origin } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) };
  const post = (body: string, headers: Record<string, string> = {}) => viaFetch(fetch(server.graphqlUrl, { method: 'POST', headers: { ...json, ...base, ...headers }, body }));
  const get = (query: string) => viaFetch(fetch(`${server.graphqlUrl}?query=${encodeURIComponent(query)}`, { headers: { accept: 'application/json', ...base } }));
  // Yoga runs a document first; from then on the fast path knows it.
  await post(JSON.stringify({ query: QUERY }));
  const answeredBefore = server.app.fastPathCounts.answered;
  const fastPath = await post(JSON.stringify({ query: QUERY }));
  // The fast path answered it: its answer is the one checked.
  expect(server.app.fastPathCounts.answered).toBe(answeredBefore + 1);
  const sse = await viaFetch(
    fetch(`${server.graphqlUrl}?query=${encodeURIComponent('subscription { serverTime(count: 1, intervalMs: 20) }')}`, { headers: { accept: 'text/event-stream', ...base } }),
  );
  expect(sse.body).toContain('serverTime');
  return {
    'fast-path query': fastPath,
    'SSE subscription': sse,
    'Yoga query': await post(JSON.stringify({ query: QUERY }), { accept: 'application/graphql-response+json' }),
    'GET query': await get(QUERY),
    'validation error': await post(JSON.stringify({ query: '{ nope }' })),
    '400 malformed JSON': await post('{"query": '),
    '405 mutation over GET': await get(CREATE),
    '411 no Content-Length': await raw(server.graphqlUrl, { method: 'POST', headers: { ...json, ...base, 'transfer-encoding': 'chunked' }, body: '{}', chunked: true }),
    '413 body too large': await post(JSON.stringify({ query: QUERY, variables: { pad: 'x'.repeat(5000) } })),
    '415 form POST': await post('query=%7B__typename%7D', { 'content-type': 'application/x-www-form-urlencoded' }),
    '404 other path': await viaFetch(fetch(`${server.url}/nowhere`, { headers: base })),
    '/health': await viaFetch(fetch(`${server.url}/health`, { headers: base })),
    preflight: await viaFetch(
      fetch(server.graphqlUrl, { method: 'OPTIONS', headers: { ...(origin ? { origin } : {}), 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' } }),
    ),
  };
}

const EXPECTED_STATUS: Record<string, number> = {
  'fast-path query': 200,
  'Yoga query': 200,
  'GET query': 200,
  'SSE subscription': 200,
  'validation error': 200,
  '400 malformed JSON': 400,
  '405 mutation over GET': 405,
  '411 no Content-Length': 411,
  '413 body too large': 413,
  '415 form POST': 415,
  '404 other path': 404,
  '/health': 200,
};

function varyOn(answer: Answer): string[] {
  return String(answer.headers.vary ?? '')
    .split(',')
    .map((v) => v.trim().toLowerCase());
}

/** allowOrigin: the expected Access-Control-Allow-Origin, or null for a refused origin. */
async function expectPolicy(server: TestServer, origin: string | undefined, allowOrigin: string | null, token?: string) {
  const answers = await everyAnswer(server, origin, token);
  for (const [kind, answer] of Object.entries(answers)) {
    const label = `${kind} from ${origin ?? 'no origin'}`;
    if (kind === 'preflight') {
      if (origin === undefined) continue;
      expect(answer.status, `${label}: ${answer.body}`).toBe(allowOrigin === null ? 403 : 204);
    } else {
      expect(answer.status, `${label}: ${answer.body}`).toBe(EXPECTED_STATUS[kind]);
    }
    expect(varyOn(answer), label).toContain('origin');
    expect(answer.headers['access-control-allow-origin'], label).toBe(allowOrigin ?? undefined);
    // Parley reads a bearer header, never a cookie: no answer invites credentialed requests.
    expect(answer.headers['access-control-allow-credentials'], label).toBeUndefined();
    if (kind === 'preflight' && allowOrigin !== null) {
      expect(answer.headers['access-control-allow-methods'], label).toBe('GET, POST, OPTIONS');
      expect(answer.headers['access-control-allow-headers'], label).toBe('accept, authorization, content-type');
      expect(answer.headers['access-control-max-age'], label).toBe('600');
    }
  }
}

describe('CORS: single-user mode (default: loopback origins only)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startParley({ env: { MAX_BODY_BYTES: '4096' } });
  });
  afterAll(() => server?.stop());

  it.each(['http://localhost:5173', 'http://127.0.0.1:8080', 'http://[::1]:3000', 'http://localhost'])('allows the loopback origin %s on every answer', async (origin) => {
    await expectPolicy(server, origin, origin);
  });

  it.each(['https://evil.example', 'http://localhost.evil.example:5173', 'http://127.0.0.1.evil.example', 'null'])('refuses %s on every answer', async (origin) => {
    await expectPolicy(server, origin, null);
  });

  it('answers without Origin (not a browser) with Vary: Origin and no CORS header', async () => {
    await expectPolicy(server, undefined, null);
  });
});

describe('CORS: auth on (default: any origin, without credentials)', () => {
  let server: TestServer;
  let token: string;
  beforeAll(async () => {
    server = await startParley({ env: { AUTH_JWT_SECRET: TEST_JWT_SECRET, MAX_BODY_BYTES: '4096' } });
    token = await tokenFor('alice');
  });
  afterAll(() => server?.stop());

  it.each(['https://app.example.com', 'http://localhost:5173', 'null'])('allows %s on every answer with *', async (origin) => {
    await expectPolicy(server, origin, '*', token);
  });
});

describe('CORS_ORIGINS', () => {
  let listed: TestServer;
  let star: TestServer;
  const starLog: string[] = [];
  let token: string;
  beforeAll(async () => {
    token = await tokenFor('alice');
    listed = await startParley({ env: { AUTH_JWT_SECRET: TEST_JWT_SECRET, MAX_BODY_BYTES: '4096', CORS_ORIGINS: 'https://app.example.com, http://localhost:5173' } });
    star = await startParley({ env: { MAX_BODY_BYTES: '4096', CORS_ORIGINS: '*' }, logLines: starLog });
  });
  afterAll(async () => {
    await listed?.stop();
    await star?.stop();
  });

  it.each(['https://app.example.com', 'http://localhost:5173'])('a listed origin (%s) is echoed on every answer', async (origin) => {
    await expectPolicy(listed, origin, origin, token);
  });

  it.each(['https://evil.example', 'http://localhost:3000', 'https://app.example.com.evil.example'])('an origin not listed (%s) is refused on every answer', async (origin) => {
    await expectPolicy(listed, origin, null, token);
  });

  it("Parley's own origin (the Host it was reached at) is allowed: its GraphiQL calls it", async () => {
    await expectPolicy(listed, listed.url, listed.url, token);
  });

  it('`*` opens even a single-user server to every origin, still without credentials, and says so at start', async () => {
    await expectPolicy(star, 'https://evil.example', '*');
    expect(starLog.join('\n')).toContain('CORS_ORIGINS=* in single-user mode');
  });
});

describe('Host check', () => {
  let single: TestServer;
  let singleListed: TestServer;
  let auth: TestServer;
  let authListed: TestServer;
  beforeAll(async () => {
    single = await startParley();
    singleListed = await startParley({ env: { ALLOWED_HOSTS: 'parley.lan, 192.168.1.20' } });
    auth = await startParley({ env: { AUTH_JWT_SECRET: TEST_JWT_SECRET } });
    authListed = await startParley({ env: { AUTH_JWT_SECRET: TEST_JWT_SECRET, ALLOWED_HOSTS: 'parley.example.com' } });
  });
  afterAll(async () => {
    await Promise.all([single, singleListed, auth, authListed].map((server) => server?.stop()));
  });

  const port = (server: TestServer) => new URL(server.url).port;
  /** The answers to /health, a GraphQL POST and a preflight, sent with this Host. */
  const withHost = async (server: TestServer, host: string) => [
    await raw(`${server.url}/health`, { headers: { host } }),
    await raw(server.graphqlUrl, { method: 'POST', headers: { host, ...json }, body: JSON.stringify({ query: QUERY }) }),
    await raw(server.graphqlUrl, { method: 'OPTIONS', headers: { host, origin: 'http://localhost:5173', 'access-control-request-method': 'POST' } }),
  ];

  it('single-user: a request for a name that is not loopback is refused on every path (DNS rebinding)', async () => {
    for (const host of ['evil.example', `evil.example:${port(single)}`, '192.168.1.20', `[fe80::1]:${port(single)}`]) {
      for (const answer of await withHost(single, host)) {
        expect(answer.status, host).toBe(421);
        expect(answer.body, host).toMatch(/ALLOWED_HOSTS/);
        expect(varyOn(answer)).toContain('origin');
      }
    }
  });

  it('single-user: loopback names are answered, with any port', async () => {
    for (const host of ['localhost', `localhost:${port(single)}`, '127.0.0.1:1', `[::1]:${port(single)}`, 'LOCALHOST']) {
      const [health, query, preflight] = await withHost(single, host);
      expect([health!.status, query!.status, preflight!.status], host).toEqual([200, 200, 204]);
    }
  });

  it('single-user: ALLOWED_HOSTS adds names; others stay refused', async () => {
    for (const host of ['parley.lan', `parley.lan:${port(singleListed)}`, 'Parley.LAN', '192.168.1.20:4000', 'localhost']) {
      const [health, query] = await withHost(singleListed, host);
      expect([health!.status, query!.status], host).toEqual([200, 200]);
    }
    for (const host of ['other.lan', 'parley.lan.evil.example', '192.168.1.21']) {
      expect((await raw(`${singleListed.url}/health`, { headers: { host } })).status, host).toBe(421);
    }
  });

  it('auth on: Host is not checked unless ALLOWED_HOSTS is set', async () => {
    expect((await raw(`${auth.url}/health`, { headers: { host: 'evil.example' } })).status).toBe(200);
    expect((await raw(`${authListed.url}/health`, { headers: { host: 'evil.example' } })).status).toBe(421);
    expect((await raw(`${authListed.url}/health`, { headers: { host: 'parley.example.com:443' } })).status).toBe(200);
    expect((await raw(`${authListed.url}/health`, { headers: { host: 'localhost' } })).status).toBe(200);
  });

  it('the WebSocket upgrade is refused for a foreign Host too', async () => {
    expect(await upgrade(single, { host: 'evil.example' })).toBe(421);
    expect(await upgrade(singleListed, { host: 'parley.lan' })).toBe(101);
  });
});

/** The status of a graphql-ws upgrade with these headers: 101 when the socket opened. */
function upgrade(server: TestServer, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(server.graphqlUrl.replace(/^http/, 'ws'), 'graphql-transport-ws', { headers });
    socket.on('open', () => {
      socket.close();
      resolve(101);
    });
    socket.on('unexpected-response', (_req, res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    socket.on('error', reject);
  });
}

/** A graphql-ws client whose browser sits on `origin`. */
function wsClientFrom(server: TestServer, origin: string, token?: string) {
  class FromOrigin extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, { origin });
    }
  }
  return createClient({
    url: server.graphqlUrl.replace(/^http/, 'ws'),
    webSocketImpl: FromOrigin,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
    lazy: true,
  });
}

const TICKS = parse('subscription { serverTime(count: 2, intervalMs: 20) }');

describe('graphql-ws upgrade: Origin checked against the same policy', () => {
  let single: TestServer;
  let listed: TestServer;
  let token: string;
  beforeAll(async () => {
    token = await tokenFor('alice');
    single = await startParley();
    listed = await startParley({ env: { AUTH_JWT_SECRET: TEST_JWT_SECRET, CORS_ORIGINS: 'https://app.example.com' } });
  });
  afterAll(async () => {
    await single?.stop();
    await listed?.stop();
  });

  it('single-user: a foreign Origin gets 403 and no socket; a loopback one and none connect', async () => {
    expect(await upgrade(single, { origin: 'https://evil.example' })).toBe(403);
    expect(await upgrade(single, { origin: 'http://localhost:5173' })).toBe(101);
    expect(await upgrade(single, {})).toBe(101);
  });

  it('single-user: a page on a foreign origin gets no events; one on localhost does', async () => {
    const refused = wsClientFrom(single, 'https://evil.example');
    const denied = subscribeWs<{ serverTime: string }>(refused, TICKS);
    await expect(denied.done).rejects.toBeDefined();
    expect(denied.events).toEqual([]);
    await refused.dispose();

    const allowed = wsClientFrom(single, 'http://localhost:5173');
    const ticks = subscribeWs<{ serverTime: string }>(allowed, TICKS);
    await ticks.done;
    expect(ticks.events).toHaveLength(2);
    await allowed.dispose();
  });

  it('CORS_ORIGINS: a listed origin connects, another gets 403', async () => {
    expect(await upgrade(listed, { origin: 'https://evil.example' })).toBe(403);
    expect(await upgrade(listed, { origin: 'https://app.example.com' })).toBe(101);
    const client = wsClientFrom(listed, 'https://app.example.com', token);
    const ticks = subscribeWs<{ serverTime: string }>(client, TICKS);
    await ticks.done;
    expect(ticks.events).toHaveLength(2);
    await client.dispose();
  });
});

describe('CSRF: a POST a browser sends without a preflight runs nothing', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startParley();
  });
  afterAll(() => server?.stop());

  const count = async () => {
    const answer = await raw(server.graphqlUrl, { method: 'POST', headers: json, body: JSON.stringify({ query: QUERY }) });
    return (JSON.parse(answer.body) as { data: { conversations: { edges: unknown[] } } }).data.conversations.edges.length;
  };
  const operations = JSON.stringify({ query: CREATE });
  const multipart = () => {
    const form = new FormData();
    form.set('operations', operations);
    form.set('map', '{}');
    return form;
  };

  it('the mutation used below does create a conversation when sent as JSON', async () => {
    const before = await count();
    const answer = await raw(server.graphqlUrl, { method: 'POST', headers: { ...json, origin: 'http://localhost:5173' }, body: operations });
    expect(answer.body).toContain('createConversation');
    expect(await count()).toBe(before + 1);
  });

  // Sent from a foreign page and from an allowed one: neither may run an operation unasked.
  it.each(['https://evil.example', 'http://localhost:5173'])('from %s, no simple content type executes the mutation', async (origin) => {
    const simple: [string, () => Promise<Answer>][] = [
      ['form-urlencoded', () => raw(server.graphqlUrl, { method: 'POST', headers: { origin, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ query: CREATE }).toString() })],
      ['multipart', () => viaFetch(fetch(server.graphqlUrl, { method: 'POST', headers: { origin }, body: multipart() }))],
      ['text/plain', () => raw(server.graphqlUrl, { method: 'POST', headers: { origin, 'content-type': 'text/plain;charset=UTF-8' }, body: operations })],
      ['TEXT/PLAIN, application/json', () => raw(server.graphqlUrl, { method: 'POST', headers: { origin, 'content-type': 'TEXT/PLAIN, application/json' }, body: operations })],
      ['no content type', () => raw(server.graphqlUrl, { method: 'POST', headers: { origin }, body: operations })],
      ['GET', () => raw(`${server.graphqlUrl}?query=${encodeURIComponent(CREATE)}`, { headers: { origin, accept: 'application/json' } })],
    ];
    for (const [name, send] of simple) {
      const before = await count();
      const answer = await send();
      expect.soft(answer.status, `${name}: ${answer.body}`).toBeGreaterThanOrEqual(400);
      expect.soft(await count(), `${name} created a conversation`).toBe(before);
    }
  });
});
