// Baseline for scenario 1: node:http answering the stored `history` JSON with one Redis GET.
import { createServer } from 'node:http';
import { Redis } from 'ioredis';

const redis = new Redis(process.env.REDIS_URL!);
const key = process.env.BASELINE_KEY!;

createServer((req, res) => {
  if (req.url === '/health') return void res.end('ok');
  req.resume();
  req.on('end', async () => {
    const body = await redis.get(key);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body ?? '') });
    res.end(body);
  });
}).listen(Number(process.env.PORT), '127.0.0.1');
