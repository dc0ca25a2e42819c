// Baseline for scenario 3: the simplest relay. One process (ROLE=producer) reads each model
// stream and publishes every token to Redis; another (ROLE=relay) forwards a stream's tokens to
// plain WebSocket clients. No GraphQL, no coalescing, no replay log.
import { createServer } from 'node:http';
import { Redis } from 'ioredis';
import { WebSocketServer, type WebSocket } from 'ws';

const redis = new Redis(process.env.REDIS_URL!);
const prefix = process.env.BASELINE_PREFIX ?? 'relay:';

const server = createServer((req, res) => {
  if (req.url === '/health') return void res.end('ok');
  if (req.method === 'POST' && req.url === '/start') {
    let text = '';
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      const { streamId, modelUrl } = JSON.parse(text) as { streamId: string; modelUrl: string };
      void produce(streamId, modelUrl);
      res.end('ok');
    });
    return;
  }
  res.writeHead(404).end();
});

async function produce(streamId: string, modelUrl: string) {
  const res = await fetch(`${modelUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'fake-model', stream: true, messages: [{ role: 'user', content: streamId }] }),
  });
  const decoder = new TextDecoder();
  let buffered = '';
  let seq = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = buffered.indexOf('\n\n')) >= 0) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
      const delta = JSON.parse(line.slice(6)).choices?.[0]?.delta?.content;
      if (delta) redis.publish(`${prefix}${streamId}`, JSON.stringify({ seq: seq++, delta }));
    }
  }
  redis.publish(`${prefix}${streamId}`, JSON.stringify({ seq: seq++, delta: '', done: true }));
}

if (process.env.ROLE === 'relay') {
  const subscriber = new Redis(process.env.REDIS_URL!);
  const clients = new Map<string, Set<WebSocket>>();
  subscriber.on('message', (channel: string, message: string) => {
    for (const socket of clients.get(channel) ?? []) socket.send(message);
  });
  new WebSocketServer({ server }).on('connection', (socket, req) => {
    const channel = `${prefix}${new URL(req.url!, 'http://x').searchParams.get('stream')}`;
    let set = clients.get(channel);
    if (!set) {
      clients.set(channel, (set = new Set()));
      void subscriber.subscribe(channel).then(() => socket.send('{"subscribed":true}'));
    } else socket.send('{"subscribed":true}');
    set.add(socket);
    socket.on('close', () => set.delete(socket));
  });
}

server.listen(Number(process.env.PORT), '127.0.0.1');
