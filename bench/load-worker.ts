// The HTTP load generator, a process of its own so that the bench can pin it to a core and read
// its CPU from /proc. For each line of JSON options on stdin it writes `{"started":true}`, runs
// autocannon with them, and writes the run's figures as one line of JSON.
import autocannon, { type Options } from 'autocannon';
import { createInterface } from 'node:readline';

const say = (message: unknown) => process.stdout.write(`${JSON.stringify(message)}\n`);

for await (const line of createInterface({ input: process.stdin })) {
  const options = JSON.parse(line) as Options;
  say({ started: true });
  const result = await autocannon(options);
  say({
    requests: result.requests.total,
    seconds: result.duration,
    ok: result['2xx'],
    non2xx: result.non2xx,
    mismatches: result.mismatches,
    errors: result.errors,
    timeouts: result.timeouts,
    latencyMs: { p50: result.latency.p50, p99: result.latency.p99 },
  });
}
