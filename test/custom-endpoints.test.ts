// Users' own model endpoints (a custom baseUrl) must not turn the server into a proxy into its own
// network: loopback, private, link-local, metadata and other special addresses are refused however
// they are spelled, after DNS resolution and on every connection; what an endpoint answers on
// failure is never shown to the user; and the errors do not tell a refused address from a closed
// port or an unknown host. LLM_ALLOWED_HOSTS lifts the refusal; presets are never checked.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { ForbiddenAddressError, UserEndpoints, type Resolve } from '../src/llm/user-endpoints.ts';
import { graphql } from './generated/gql.ts';
import { FakeModel } from './support/fake-model.ts';
import { errorOf, startParley, tokenFor, TEST_JWT_SECRET, type GraphQLClient, type TestServer } from './support/parley.ts';
import { assertWellFormed, finishedMessage, followWs, SendMessage } from './support/streams.ts';
import { wsClient } from './support/subscriptions.ts';

const SetBaseUrl = graphql(`
  mutation SetBaseUrl($input: UpdateUserConfigInput!) { updateUserConfig(input: $input) { baseUrl } }
`);
const CustomEndpointSetting = graphql(`
  query CustomEndpointSetting { userConfig { baseUrl } }
`);
const ReplyError = graphql(`
  query ReplyError($id: ID!) { conversation(id: $id) { messages(last: 1) { edges { node { id role status content error } } } } }
`);

const SECRET = 'INTERNAL-SECRET: db_password=hunter2-7f3a';
const UNREACHABLE = 'could not reach the custom endpoint';

/** An internal service that must stay out of reach: it answers every request with HTTP 500 and a secret. */
class InternalService {
  connections = 0;
  requests = 0;
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(host = '127.0.0.1'): Promise<InternalService> {
    let service!: InternalService;
    const server = createServer((req, res) => {
      service.requests++;
      req.resume();
      res.writeHead(500, { 'content-type': 'text/plain', connection: 'close' }).end(`${SECRET}\nsecond line`);
    });
    server.on('connection', () => service.connections++);
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    service = new InternalService(server, (server.address() as AddressInfo).port);
    return service;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function startServer(env: Record<string, string>, logLines?: string[]): Promise<TestServer> {
  return startParley({ logLines, env: { AUTH_JWT_SECRET: TEST_JWT_SECRET, LLM_MAX_RETRIES: '0', LLM_TIMEOUT_MS: '3000', ...env } });
}

/** Sends a message and waits for the reply's end; returns the reply as its owner reads it. */
async function reply(server: TestServer, api: GraphQLClient, content: string) {
  const sent = (await api.ok(SendMessage, { input: { content } })).sendMessage;
  await finishedMessage(server.app.db.prisma, sent.assistantMessage.id);
  const read = await api.ok(ReplyError, { id: sent.conversation.id });
  const node = read.conversation!.messages.edges[0]!.node;
  expect(node.id).toBe(sent.assistantMessage.id);
  return { ...node, conversationId: sent.conversation.id };
}

describe('custom endpoints with auth on and ALLOW_CUSTOM_BASE_URL=true', () => {
  let model: FakeModel;
  let internal: InternalService;
  let redirector: Server;
  let redirectorUrl: string;
  let server: TestServer;
  let api: GraphQLClient;
  const logLines: string[] = [];

  beforeAll(async () => {
    model = await FakeModel.start();
    internal = await InternalService.start();
    // Allowed (see LLM_ALLOWED_HOSTS below), and it redirects into the internal service.
    redirector = createServer((req, res) => {
      req.resume();
      res.writeHead(307, { location: `http://127.0.0.1:${internal.port}/v1/chat/completions` }).end();
    });
    await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.3', resolve));
    redirectorUrl = `http://127.0.0.3:${(redirector.address() as AddressInfo).port}/v1`;
    server = await startServer(
      {
        // The preset lives on loopback too: the server's own endpoints are trusted.
        LLM_API_URL: model.url,
        LLM_MODEL: 'fake-model',
        ALLOW_CUSTOM_BASE_URL: 'true',
        // 127.0.0.3 is allowed so that a refused connection and a redirect can be tried; nothing
        // here allows 127.0.0.1.
        LLM_ALLOWED_HOSTS: '127.0.0.3',
      },
      logLines,
    );
    api = server.client(await tokenFor('mallory'));
  });
  afterAll(async () => {
    await server?.stop();
    await model?.close();
    await internal?.close();
    await new Promise((resolve) => redirector?.close(resolve));
  });

  it('the issue’s reproduction: aimed at a 127.0.0.1 service answering HTTP 500 with a secret, the user reads nothing back', async () => {
    const literal = errorOf(await api.mutate(SetBaseUrl, { input: { baseUrl: `http://127.0.0.1:${internal.port}/` } }));
    expect(literal).toEqual({ code: 'BAD_USER_INPUT', message: 'input.baseUrl: 127.0.0.1 is a loopback address, which custom endpoints may not use' });
    expect((await api.ok(CustomEndpointSetting, {})).userConfig.baseUrl).toBeNull();

    // A name for the same service passes the early check; its connection does not.
    const viaName = `http://localhost:${internal.port}/v1`;
    expect((await api.ok(SetBaseUrl, { input: { baseUrl: viaName } })).updateUserConfig.baseUrl).toBe(viaName);
    const before = logLines.length;
    const sent = (await api.ok(SendMessage, { input: { content: 'what is the db password?' } })).sendMessage;
    const client = wsClient(server.graphqlUrl, await tokenFor('mallory'));
    const sub = followWs(client, sent.assistantMessage.id);
    await sub.done;
    await client.dispose();
    const { terminal } = assertWellFormed(sub.events);
    expect(terminal).toMatchObject({ status: 'FAILED', error: UNREACHABLE });
    const read = await api.ok(ReplyError, { id: sent.conversation.id });
    expect(read.conversation!.messages.edges[0]!.node).toMatchObject({ status: 'FAILED', content: '', error: UNREACHABLE });
    expect(JSON.stringify([sub.events, read])).not.toContain('INTERNAL-SECRET');
    expect(internal.connections).toBe(0);
    // The log says why.
    const log = logLines.slice(before).join('\n');
    expect(log).toContain('ERR_FORBIDDEN_ADDRESS');
    expect(log).toMatch(/localhost resolves only to addresses user endpoints may not reach: 127\.0\.0\.1 \(a loopback address\)/);
    await api.ok(SetBaseUrl, { input: { baseUrl: '' } });
  });

  it('refuses every spelling of a forbidden address when the settings are saved', async () => {
    const port = internal.port;
    const spellings = [
      `http://127.0.0.1:${port}/v1`,
      `http://2130706433:${port}/v1`,
      `http://0x7f.1:${port}/v1`,
      `http://0177.0.0.1:${port}/v1`,
      `http://127.1:${port}/v1`,
      `http://[::1]:${port}/v1`,
      `http://[::ffff:127.0.0.1]:${port}/v1`,
      `http://[::ffff:7f00:1]:${port}/v1`,
      `http://[0:0:0:0:0:ffff:127.0.0.1]:${port}/v1`,
      `http://[::127.0.0.1]:${port}/v1`,
      `http://0.0.0.0:${port}/v1`,
      `http://0:${port}/v1`,
      `http://[::]:${port}/v1`,
      server.graphqlUrl, // Parley itself
      'http://10.0.0.1/v1',
      'http://172.16.5.4/v1',
      'http://192.168.1.1/v1',
      'http://100.64.0.1/v1',
      'http://169.254.169.254/latest/meta-data/',
      'http://[::ffff:169.254.169.254]/latest/meta-data/',
      'http://[::ffff:a00:1]/v1',
      'https://[fe80::1]/v1',
      'http://[fd00:ec2::254]/v1',
      'http://[fc00::1]/v1',
      'http://224.0.0.1/v1',
      'http://[ff02::1]/v1',
      'http://255.255.255.255/v1',
      'http://[64:ff9b::7f00:1]/v1',
    ];
    for (const baseUrl of spellings) {
      const error = errorOf(await api.mutate(SetBaseUrl, { input: { baseUrl } }));
      expect(error.code, baseUrl).toBe('BAD_USER_INPUT');
      expect(error.message, baseUrl).toMatch(/^input\.baseUrl: \S+ is (an?|the) .+, which custom endpoints may not use$/);
    }
    expect((await api.ok(SetBaseUrl, { input: {} })).updateUserConfig.baseUrl).toBeNull();
    // A public address and the allowed one pass.
    for (const baseUrl of ['http://93.184.215.14/v1', 'https://[2606:4700::1111]/v1', redirectorUrl]) {
      expect((await api.ok(SetBaseUrl, { input: { baseUrl } })).updateUserConfig.baseUrl).toBe(baseUrl);
    }
    await api.ok(SetBaseUrl, { input: { baseUrl: null } });
  });

  it('a refused address, a refused connection and an unknown host read the same; the log tells them apart', async () => {
    const cases = [
      { baseUrl: `http://localhost:${internal.port}/v1`, logged: 'ERR_FORBIDDEN_ADDRESS' },
      { baseUrl: `http://localhost:${new URL(server.url).port}/graphql`, logged: 'ERR_FORBIDDEN_ADDRESS' },
      // Allowed, but nothing listens on 127.0.0.3 at that port.
      { baseUrl: `http://127.0.0.3:${internal.port}/v1`, logged: 'ECONNREFUSED' },
      { baseUrl: 'http://no-such-host.invalid/v1', logged: 'ENOTFOUND' },
    ];
    for (const { baseUrl, logged } of cases) {
      await api.ok(SetBaseUrl, { input: { baseUrl } });
      const before = logLines.length;
      const ended = await reply(server, api, `try ${baseUrl}`);
      expect(ended, baseUrl).toMatchObject({ status: 'FAILED', error: UNREACHABLE });
      const failure = logLines.slice(before).find((line) => line.includes('the model call failed'));
      expect(failure, baseUrl).toContain(logged);
    }
    expect(internal.connections).toBe(0);
    await api.ok(SetBaseUrl, { input: { baseUrl: '' } });
  });

  it('does not follow a redirect from an allowed endpoint into a forbidden one', async () => {
    await api.ok(SetBaseUrl, { input: { baseUrl: redirectorUrl } });
    const ended = await reply(server, api, 'follow me');
    expect(ended).toMatchObject({ status: 'FAILED', error: 'the model request failed with HTTP 307' });
    expect(internal.requests).toBe(0);
    await api.ok(SetBaseUrl, { input: { baseUrl: '' } });
  });

  it('presets are trusted: the default preset on loopback still answers', async () => {
    const ended = await reply(server, api, 'hello preset');
    expect(ended).toMatchObject({ status: 'COMPLETE', content: 'Hello, world!', error: null });
  });
});

describe('custom endpoints with LLM_ALLOWED_HOSTS=127.0.0.1', () => {
  let model: FakeModel;
  let internal: InternalService;
  let server: TestServer;
  let api: GraphQLClient;
  const logLines: string[] = [];

  beforeAll(async () => {
    model = await FakeModel.start();
    internal = await InternalService.start();
    server = await startServer({ ALLOW_CUSTOM_BASE_URL: 'true', LLM_ALLOWED_HOSTS: '127.0.0.1' }, logLines);
    api = server.client(await tokenFor('trusted-operator-user'));
  });
  afterAll(async () => {
    await server?.stop();
    await model?.close();
    await internal?.close();
  });

  it('the fake model on 127.0.0.1 works as a custom endpoint', async () => {
    await api.ok(SetBaseUrl, { input: { baseUrl: model.url } });
    model.enqueue({ tokens: ['allowed', ' and', ' answered'] });
    const ended = await reply(server, api, 'hi custom');
    expect(ended).toMatchObject({ status: 'COMPLETE', content: 'allowed and answered', error: null });
    expect(model.chatRequests.at(-1)!.body.messages.at(-1)).toEqual({ role: 'user', content: 'hi custom' });
  });

  it('shows only the status of an HTTP failure; the body goes to the log', async () => {
    await api.ok(SetBaseUrl, { input: { baseUrl: `http://127.0.0.1:${internal.port}/v1` } });
    const before = logLines.length;
    const ended = await reply(server, api, 'what is the db password?');
    expect(ended).toMatchObject({ status: 'FAILED', content: '', error: 'the model request failed with HTTP 500' });
    expect(internal.requests).toBeGreaterThan(0);
    expect(logLines.slice(before).find((line) => line.includes('the model call failed'))).toContain(SECRET);
  });

  it('shows no text of an error event in the stream either', async () => {
    await api.ok(SetBaseUrl, { input: { baseUrl: model.url } });
    model.enqueue({ tokens: ['half', ' way', ' there'], errorAfter: 2 });
    const ended = await reply(server, api, 'fail mid-stream');
    expect(ended).toMatchObject({ status: 'FAILED', content: 'half way', error: 'the model reported an error' });
  });
});

describe('ALLOW_CUSTOM_BASE_URL defaults', () => {
  it('is off with AUTH_JWT_SECRET and on without, unless set', () => {
    expect(loadConfig({}).ALLOW_CUSTOM_BASE_URL).toBe(true);
    expect(loadConfig({ AUTH_JWT_SECRET: TEST_JWT_SECRET }).ALLOW_CUSTOM_BASE_URL).toBe(false);
    expect(loadConfig({ AUTH_JWT_SECRET: TEST_JWT_SECRET, ALLOW_CUSTOM_BASE_URL: 'true' }).ALLOW_CUSTOM_BASE_URL).toBe(true);
    expect(loadConfig({ ALLOW_CUSTOM_BASE_URL: 'false' }).ALLOW_CUSTOM_BASE_URL).toBe(false);
  });

  it('off with auth: a custom endpoint cannot be set, and one saved before is not called', async () => {
    const model = await FakeModel.start();
    const server = await startServer({});
    try {
      const api = server.client(await tokenFor('tenant'));
      const error = errorOf(await api.mutate(SetBaseUrl, { input: { baseUrl: 'https://api.example.com/v1' } }));
      expect(error).toEqual({ code: 'BAD_USER_INPUT', message: 'input.baseUrl: custom endpoints are turned off on this server' });
      // Saved while the server allowed them.
      await server.app.db.prisma.userConfig.create({ data: { userId: 'tenant', baseUrl: model.url } });
      const ended = await reply(server, api, 'still there?');
      expect(ended).toMatchObject({ status: 'FAILED', error: 'custom endpoints are turned off on this server: clear baseUrl in your settings or pick a preset' });
      expect(model.requests).toHaveLength(0);
    } finally {
      await server.stop();
      await model.close();
    }
  });

  it('on without auth, with the same address rules', async () => {
    const server = await startParley();
    try {
      const api = server.client();
      expect((await api.ok(SetBaseUrl, { input: { baseUrl: 'https://api.example.com/v1' } })).updateUserConfig.baseUrl).toBe('https://api.example.com/v1');
      expect(errorOf(await api.mutate(SetBaseUrl, { input: { baseUrl: 'http://127.0.0.1:11434/v1' } })).code).toBe('BAD_USER_INPUT');
    } finally {
      await server.stop();
    }
  });

  it('LLM_ALLOWED_HOSTS takes names, addresses and CIDRs, and refuses anything else', () => {
    expect(loadConfig({ LLM_ALLOWED_HOSTS: ' Models.Internal. , 10.1.2.3, [::1], 192.168.0.0/16 , fd00::/8,' }).LLM_ALLOWED_HOSTS).toEqual({
      names: ['models.internal'],
      networks: ['10.1.2.3/32', '::1/128', '192.168.0.0/16', 'fd00::/8'],
    });
    for (const bad of ['http://models.internal', '0x7f.1', '2130706433', '10.0.0.0/33', 'a b']) {
      expect(() => loadConfig({ LLM_ALLOWED_HOSTS: bad }), bad).toThrow(/LLM_ALLOWED_HOSTS: /);
    }
  });
});

describe('UserEndpoints: the check on every connection', () => {
  let internal: InternalService;
  let legit: Server;
  let legitPort: number;
  let legitConnections = 0;

  beforeAll(async () => {
    internal = await InternalService.start('127.0.0.1');
    // Listens on 127.0.0.2 only, on the internal service's port: the two differ by address alone.
    legit = createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' }).end('fine');
    });
    legit.on('connection', () => legitConnections++);
    await new Promise<void>((resolve) => legit.listen(internal.port, '127.0.0.2', resolve));
    legitPort = (legit.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await internal?.close();
    legit?.closeAllConnections();
    await new Promise((resolve) => legit?.close(resolve));
  });

  it('DNS rebinding: a name that resolves elsewhere on the next connection is refused there', async () => {
    const answers = ['127.0.0.2', '127.0.0.1'];
    const resolved: string[] = [];
    const resolve: Resolve = (hostname, callback) => {
      const address = answers[Math.min(resolved.length, answers.length - 1)]!;
      resolved.push(`${hostname}=${address}`);
      setImmediate(() => callback(null, [{ address, family: 4 }]));
    };
    const endpoints = new UserEndpoints({ names: [], networks: ['127.0.0.2/32'] }, resolve);
    const url = `http://rebind.test:${legitPort}/v1`;
    const first = await endpoints.fetch(url);
    expect(first.status).toBe(200);
    expect(await first.text()).toBe('fine');
    // The first answer closed its connection: the next request connects, and resolves, again.
    const second = endpoints.fetch(url);
    await expect(second).rejects.toBeInstanceOf(ForbiddenAddressError);
    await expect(second).rejects.toThrow('rebind.test resolves only to addresses user endpoints may not reach: 127.0.0.1 (a loopback address)');
    expect(resolved).toEqual(['rebind.test=127.0.0.2', 'rebind.test=127.0.0.1']);
    expect(legitConnections).toBe(1);
    expect(internal.connections).toBe(0);
  });

  it('keeps only the allowed addresses of a name that resolves to several', async () => {
    const resolve: Resolve = (_, callback) =>
      callback(null, [
        { address: '127.0.0.1', family: 4 },
        { address: '127.0.0.2', family: 4 },
      ]);
    const endpoints = new UserEndpoints({ names: [], networks: ['127.0.0.2/32'] }, resolve);
    const response = await endpoints.fetch(`http://mixed.test:${legitPort}/`);
    expect(await response.text()).toBe('fine');
    expect(internal.connections).toBe(0);
  });

  it('an allowed name may resolve to anything; a literal address is checked without a lookup', async () => {
    const lookups: string[] = [];
    const resolve: Resolve = (hostname, callback) => {
      lookups.push(hostname);
      callback(null, [{ address: '127.0.0.1', family: 4 }]);
    };
    const endpoints = new UserEndpoints({ names: ['internal.test'], networks: [] }, resolve);
    const allowed = await endpoints.fetch(`http://Internal.Test.:${internal.port}/`);
    expect(allowed.status).toBe(500);
    await allowed.text();
    await expect(endpoints.fetch(`http://127.0.0.1:${internal.port}/`)).rejects.toThrow('127.0.0.1 is a loopback address, which user endpoints may not reach');
    await expect(endpoints.fetch(`https://[::ffff:127.0.0.1]:${internal.port}/`)).rejects.toBeInstanceOf(ForbiddenAddressError);
    expect(lookups).toEqual(['internal.test.']);
    expect(internal.connections).toBe(1);
  });

  it('never hands a request to the built-in fetch', async () => {
    const endpoints = new UserEndpoints({ names: [], networks: [] });
    await expect(endpoints.fetch(new Request(`http://127.0.0.1:${internal.port}/`))).rejects.toThrow(TypeError);
    await expect(endpoints.fetch(`http://127.0.0.1:${internal.port}/`, { method: 'POST', body: new Blob(['x']) })).rejects.toThrow(TypeError);
    expect(internal.connections).toBe(1);
  });

  it('classifies addresses: only public unicast passes unless allowed', () => {
    const endpoints = new UserEndpoints({ names: [], networks: ['10.20.0.0/16', 'fd00:1::/32'] });
    const refused = {
      '127.0.0.1': 'a loopback address',
      '127.255.255.254': 'a loopback address',
      '::1': 'a loopback address',
      '10.0.0.1': 'a private address',
      '172.31.255.255': 'a private address',
      '192.168.0.1': 'a private address',
      '100.127.255.255': 'a shared (CGNAT) address',
      '169.254.169.254': 'a link-local address',
      'fe80::1': 'a link-local address',
      'fe80::1%eth0': 'a link-local address',
      'fc00::1': 'a unique-local address',
      'fd00:ec2::254': 'a unique-local address',
      '224.0.0.251': 'a multicast address',
      'ff02::1': 'a multicast address',
      '0.0.0.0': 'an unspecified address',
      '::': 'an unspecified address',
      '255.255.255.255': 'the broadcast address',
      '::ffff:127.0.0.1': 'a loopback address',
      '::ffff:169.254.169.254': 'a link-local address',
      '::ffff:192.168.1.1': 'a private address',
      '::7f00:1': 'an IPv4-compatible address',
      '64:ff9b::a9fe:a9fe': 'a special-purpose address (rfc6052)',
      '2002:7f00:1::': 'a special-purpose address (6to4)',
      '240.0.0.1': 'a reserved address',
    };
    for (const [address, reason] of Object.entries(refused)) expect(endpoints.addressRefusal(address), address).toBe(reason);
    for (const address of ['93.184.215.14', '8.8.8.8', '2606:4700::1111', '10.20.3.4', '::ffff:10.20.3.4', 'fd00:1::5', '100.63.255.255', '172.32.0.1']) {
      expect(endpoints.addressRefusal(address), address).toBeUndefined();
    }
    expect(endpoints.literalRefusal('http://0x7f.1/')).toBe('a loopback address');
    expect(endpoints.literalRefusal('http://[::ffff:127.0.0.1]:8080/')).toBe('a loopback address');
    expect(endpoints.literalRefusal('http://localhost/')).toBeUndefined();
  });
});
