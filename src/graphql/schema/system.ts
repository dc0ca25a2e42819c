import { setInterval as every } from 'node:timers/promises';
import { abortable } from '../../streaming/abortable.ts';
import { badInput } from '../../errors.ts';
import { builder } from '../builder.ts';

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});

builder.subscriptionField('serverTime', (t) =>
  t.field({
    type: 'DateTime',
    description: 'The server clock, every `intervalMs` milliseconds: a liveness check for both subscription transports.',
    args: {
      intervalMs: t.arg.int({ defaultValue: 1000, required: true }),
      count: t.arg.int({ description: 'Ends after this many events; unbounded when omitted' }),
    },
    subscribe: (_, { intervalMs, count }, ctx) => {
      if (intervalMs < 10 || intervalMs > 60_000) throw badInput('intervalMs', 'must be between 10 and 60000');
      if (count != null && count < 1) throw badInput('count', 'must be at least 1');
      return abortable((stop) => {
        const controller = new AbortController();
        stop.onAbort = () => controller.abort();
        if (stop.aborted) controller.abort();
        return ticks(intervalMs, count ?? Number.POSITIVE_INFINITY, controller.signal);
      }, ctx.shutdown);
    },
    resolve: (time) => time,
  }),
);

async function* ticks(intervalMs: number, count: number, signal: AbortSignal): AsyncGenerator<Date> {
  if (signal.aborted) return;
  let sent = 0;
  try {
    yield new Date();
    for await (const _ of every(intervalMs, undefined, { signal })) {
      if (++sent >= count) return;
      yield new Date();
    }
  } catch (error) {
    if (!signal.aborted) throw error;
  }
}
