// The fetch the openai client runs on: what it returns must behave like the built-in fetch's
// Response wherever the client reads it, including when the connection fails or is aborted.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeFetch } from '../src/llm/node-fetch.ts';

describe('nodeFetch', () => {
  let server: Server;
  let base: string;
  const connections = new Set<string>();
  let release: () => void = () => {};

  beforeAll(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      connections.add(`${req.socket.remotePort}`);
      let text = '';
      req.on('data', (c) => (text += c));
      req.on('end', () => {
        switch (req.url) {
          case '/echo':
            res.writeHead(201, { 'content-type': 'application/json', 'x-twice': 'a' }).end(JSON.stringify({ method: req.method, body: text, header: req.headers['x-custom'], length: req.headers['content-length'] }));
            return;
          case '/chunks':
            // Three writes, the second only after the client has read the first.
            res.writeHead(200, { 'content-type': 'text/event-stream' });
            res.write('data: 1\n\n');
            release = () => res.end('data: 2\n\ndata: [DONE]\n\n');
            return;
          case '/cut':
            res.writeHead(200, { 'content-type': 'text/event-stream' });
            res.write('data: 1\n\n', () => setTimeout(() => req.socket.destroy(), 20));
            return;
          case '/hang':
            res.writeHead(200, { 'content-type': 'text/event-stream' });
            res.write('data: 1\n\n');
            return;
          case '/gzip':
            res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(gzipSync(JSON.stringify({ zipped: true })));
            return;
          case '/empty':
            res.writeHead(204).end();
            return;
          default:
            res.writeHead(404).end('no');
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('sends the method, headers and body, and answers with status, headers and body', async () => {
    const headers = new Headers({ 'x-custom': 'yes', 'content-type': 'application/json' });
    const response = await nodeFetch(`${base}/echo`, { method: 'POST', headers, body: '{"é":1}' });
    expect(response.status).toBe(201);
    expect(response.ok).toBe(true);
    expect(response.url).toBe(`${base}/echo`);
    expect(response.headers.get('x-twice')).toBe('a');
    expect(await response.json()).toEqual({ method: 'POST', body: '{"é":1}', header: 'yes', length: String(Buffer.byteLength('{"é":1}')) });
  });

  it('reuses a kept-alive connection for the next request', async () => {
    connections.clear();
    for (let i = 0; i < 3; i++) await (await nodeFetch(`${base}/echo`, { method: 'POST', body: 'x' })).text();
    expect(connections.size).toBe(1);
  });

  it('hands each chunk to the reader as it arrives', async () => {
    const response = await nodeFetch(`${base}/chunks`);
    const reader = response.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe('data: 1\n\n');
    release();
    let rest = '';
    for (let next = await reader.read(); !next.done; next = await reader.read()) rest += new TextDecoder().decode(next.value);
    expect(rest).toBe('data: 2\n\ndata: [DONE]\n\n');
  });

  it('fails the body, not ends it, when the connection is cut mid-response', async () => {
    const response = await nodeFetch(`${base}/cut`);
    const reader = response.body!.getReader();
    expect((await reader.read()).done).toBe(false);
    await expect(reader.read()).rejects.toThrow(/closed before the response ended|aborted|reset/i);
  });

  it('fails the body with an AbortError when the signal aborts mid-response', async () => {
    const controller = new AbortController();
    const response = await nodeFetch(`${base}/hang`, { signal: controller.signal });
    const reader = response.body!.getReader();
    await reader.read();
    setTimeout(() => controller.abort(), 10);
    await expect(reader.read()).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('rejects with an AbortError when aborted before the answer, and at once when already aborted', async () => {
    const controller = new AbortController();
    const pending = nodeFetch(`${base}/chunks`, { signal: controller.signal });
    controller.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    await expect(nodeFetch(`${base}/echo`, { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('rejects when nothing listens', async () => {
    await expect(nodeFetch('http://127.0.0.1:1/x')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('decodes a compressed body and gives a null body to a 204', async () => {
    expect(await (await nodeFetch(`${base}/gzip`)).json()).toEqual({ zipped: true });
    const empty = await nodeFetch(`${base}/empty`);
    expect(empty.status).toBe(204);
    expect(empty.body).toBeNull();
  });

  it('passes what it does not handle to the built-in fetch', async () => {
    const response = await nodeFetch(new Request(`${base}/echo`, { method: 'POST', body: 'via Request' }));
    expect(await response.json()).toMatchObject({ body: 'via Request' });
    const stream = new Blob(['via Blob']);
    expect(await (await nodeFetch(`${base}/echo`, { method: 'POST', body: stream })).json()).toMatchObject({ body: 'via Blob' });
  });
});
