// Where an idle subscription's memory goes: heap snapshots of a Parley process before and after
// N idle graphql-ws subscriptions, diffed per object type and constructor.
// node --import tsx bench/heap-diff.ts [N]
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { applyMigrations } from '../src/store/migrate.ts';
import { createTestDatabase } from '../test/support/databases.ts';
import { FakeModel } from '../test/support/fake-model.ts';
import { REDIS_URL } from '../test/support/redis.ts';
import { gql, npmStartCommand, root, sleep, startService } from './lib.ts';

const count = Number(process.argv[2] ?? 1000);
execFileSync(process.execPath, [path.join(root, 'scripts/build.mjs')], { cwd: root, stdio: 'inherit' });
const database = await createTestDatabase('postgresql');
await applyMigrations(database.url);
const model = await FakeModel.start();
model.setDefault({ tokens: ['never'], stallAfter: 0 });
const parley = await startService(
  'parley',
  npmStartCommand(),
  { DATABASE_URL: database.url, LLM_API_URL: model.url, LLM_MODEL: 'fake-model', GRAPHIQL: 'false', REDIS_URL, REDIS_KEY_PREFIX: `heap-diff:${process.pid}:` },
  { inspect: true },
);
try {
  const sent = await gql<{ sendMessage: { assistantMessage: { id: string } } }>(parley.url, 'mutation { sendMessage(input: { content: "idle" }) { assistantMessage { id } } }');
  const variables = { id: sent.sendMessage.assistantMessage.id };
  const clients: Client[] = [];
  const open = (n: number) => {
    for (let i = 0; i < n; i++) {
      const client = createClient({ url: parley.url.replace('http', 'ws') + '/graphql', webSocketImpl: WebSocket, retryAttempts: 0, lazy: false });
      client.subscribe({ query: 'subscription($id: ID!) { messageStream(messageId: $id) { seq delta done } }', variables }, { next() {}, error() {}, complete() {} });
      clients.push(client);
    }
  };
  open(50);
  await sleep(2000);
  const before = await parley.snapshot();
  for (let opened = 0; opened < count; opened += 100) {
    open(100);
    await sleep(20);
  }
  await sleep(4000);
  const after = await parley.snapshot();
  const rows = [...after].map(([name, [n, bytes]]) => ({ name, n: n - (before.get(name)?.[0] ?? 0), bytes: bytes - (before.get(name)?.[1] ?? 0) }));
  const total = rows.reduce((sum, row) => sum + row.bytes, 0);
  console.log(`${(total / count).toFixed(0)} heap bytes per idle subscription\n\n bytes  objects  type:name (per subscription)`);
  for (const row of rows.sort((a, b) => b.bytes - a.bytes).slice(0, 40)) {
    console.log(`${(row.bytes / count).toFixed(0).padStart(6)} ${(row.n / count).toFixed(2).padStart(8)}  ${row.name}`);
  }
  for (const client of clients) void client.dispose();
} finally {
  await parley.stop();
  await model.close();
  await database.drop();
}
process.exit(0);
