// Baseline for scenario 2: node:http + pg running the SQL behind
// `conversations(first: 20) { title messageCount messages(last: 5) }` and writing the same JSON.
import { createServer } from 'node:http';
import pg from 'pg';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 10 });
const userId = process.env.BASELINE_USER ?? 'local';

async function answer(): Promise<string> {
  const conversations = await pool.query(
    `SELECT c.id, c.title, (SELECT count(*)::int FROM "Message" m WHERE m."conversationId" = c.id) AS "messageCount"
       FROM "Conversation" c WHERE c."userId" = $1 AND c.archived = false
       ORDER BY c."updatedAt" DESC, c.id DESC LIMIT 21`,
    [userId],
  );
  const rows = conversations.rows.slice(0, 20);
  const messages = await pool.query(
    `SELECT id, "conversationId", role, content, seq FROM (
       SELECT m.*, ROW_NUMBER() OVER (PARTITION BY m."conversationId" ORDER BY m.seq DESC) AS rn
       FROM "Message" m WHERE m."conversationId" = ANY($1)) ranked
     WHERE rn <= 6 ORDER BY seq DESC`,
    [rows.map((r) => r.id)],
  );
  const byConversation = new Map<string, { id: string; role: string; content: string }[]>();
  for (const m of messages.rows) {
    const list = byConversation.get(m.conversationId) ?? [];
    list.push({ id: m.id, role: m.role, content: m.content });
    byConversation.set(m.conversationId, list);
  }
  return JSON.stringify({
    data: {
      conversations: {
        edges: rows.map((c) => ({
          node: { title: c.title, messageCount: c.messageCount, messages: { edges: (byConversation.get(c.id) ?? []).slice(0, 5).reverse().map((node) => ({ node })) } },
        })),
      },
    },
  });
}

createServer((req, res) => {
  if (req.url === '/health') return void res.end('ok');
  req.resume();
  req.on('end', async () => {
    const body = await answer();
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
}).listen(Number(process.env.PORT), '127.0.0.1');
