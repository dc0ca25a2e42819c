// Baseline for scenario 7: node:http + pg saving a user message and a STREAMING assistant
// message in one transaction, under the conversation's row lock, as sendMessage does.
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import pg from 'pg';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 10 });

async function save(conversationId: string, content: string) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query(`UPDATE "Conversation" SET "lastSeq" = "lastSeq" + 2, "updatedAt" = now() WHERE id = $1 AND "userId" = 'local' RETURNING "lastSeq"`, [conversationId]);
    const seq = rows[0].lastSeq as number;
    const insert = `INSERT INTO "Message" (id, "conversationId", "userId", seq, role, content, status, "createdAt", "updatedAt") VALUES ($1, $2, 'local', $3, $4, $5, $6, now(), now()) RETURNING id, seq, role, status`;
    const user = await client.query(insert, [randomUUID(), conversationId, seq - 1, 'USER', content, 'COMPLETE']);
    const assistant = await client.query(insert, [randomUUID(), conversationId, seq, 'ASSISTANT', '', 'STREAMING']);
    await client.query('COMMIT');
    return { userMessage: user.rows[0], assistantMessage: assistant.rows[0] };
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  } finally {
    client.release();
  }
}

createServer((req, res) => {
  if (req.url === '/health') return void res.end('ok');
  let text = '';
  req.on('data', (c) => (text += c));
  req.on('end', async () => {
    const { conversationId, content } = JSON.parse(text) as { conversationId: string; content: string };
    const body = JSON.stringify({ data: { sendMessage: await save(conversationId, content) } });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
}).listen(Number(process.env.PORT), '127.0.0.1');
