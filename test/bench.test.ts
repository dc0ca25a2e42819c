// The benchmarks cannot rot: every scenario runs briefly, at a tiny size, with its own checks.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect, it } from 'vitest';

it('npm run bench -- --quick runs all eight scenarios and their correctness checks', async () => {
  const root = path.resolve(import.meta.dirname, '..');
  const child = spawn(process.execPath, ['--import', pathToFileURL(path.join(root, 'node_modules/tsx/dist/loader.mjs')).href, 'bench/run.ts', '--quick'], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const code = await new Promise((resolve) => child.on('exit', resolve));
  expect(code, output).toBe(0);
  for (const scenario of ['1 cached history', '2 uncached reads', '3 streaming cost', '3 streaming cost, 200-token replies', '3 streaming cost, 80 tok/s', '4 first-token latency', '4 every-token latency', '5 scale', '6 idle subscriptions', '6 idle conversationEvents', '6 idle viewerEvents', '7 sendMessage', '8 list with a', '8 branched path read, uncached', '8 branched path read, cached']) {
    // A number in the Parley column; the quick run's tiny idle-memory sample may come out negative.
    expect(output).toMatch(new RegExp(`\\| ${scenario}[^|]* \\| [^|]+ \\| -?\\d`));
  }
}, 180_000);
