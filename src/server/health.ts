// GET /health: whether the database and Redis answer, and how the history cache does.
import type { ServerResponse } from 'node:http';
import type { HistoryCache } from '../cache/history-cache.ts';
import type { RedisConnections } from '../redis.ts';
import type { Database } from '../store/database.ts';

const HEALTH_TIMEOUT_MS = 2000;

export function healthCheck(db: Database, redis: RedisConnections | undefined, cache: HistoryCache) {
  return async (res: ServerResponse): Promise<void> => {
    const [database, redisState] = await Promise.all([probe(() => db.ping()), redis ? probe(() => redis.commands.ping()) : undefined]);
    const ok = database.status === 'up';
    const body: Record<string, unknown> = { status: ok ? (redisState?.status === 'down' ? 'degraded' : 'ok') : 'unavailable', database: { provider: db.provider, ...database } };
    // Redis down degrades streaming across instances; the database still serves everything else.
    if (redisState) body.redis = { ...(redisState.status === 'up' ? redisState : { ...redisState, status: 'degraded' }), historyCache: cache.stats() };
    res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };
}

async function probe(check: () => Promise<unknown>): Promise<{ status: 'up' | 'down'; latencyMs?: number; error?: string }> {
  const started = performance.now();
  try {
    await withTimeout(check(), HEALTH_TIMEOUT_MS);
    return { status: 'up', latencyMs: Math.round((performance.now() - started) * 10) / 10 };
  } catch (error) {
    return { status: 'down', error: error instanceof Error ? error.message.split('\n')[0] : 'unreachable' };
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
