// HTTP throughput load: autocannon in a process of its own (bench/load-worker.ts), pinned to
// LOAD_CPUS while the servers run on SERVER_CPUS. Each run reads the CPU the generator and the
// server used over the measured window, so that a figure the generator capped is never taken
// for the server's.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { cpuSeconds, LOAD_CPUS, pinned, root, waitSeconds, type Service } from './lib.ts';

/** A generator that was runnable this share of the window (on its core or waiting for it) was the bottleneck. */
export const SATURATED_SHARE = 0.9;

export interface CpuUse {
  /** utime + stime over the window, all threads. */
  cpuSeconds: number;
  /** cpuSeconds / wall seconds: the share of one core. */
  share: number;
  /** Share of the window the main thread was runnable but waiting for its core (other load on it). */
  waitShare: number;
}

export interface LoadRun {
  requests: number;
  seconds: number;
  rps: number;
  latencyMs: { p50: number; p99: number };
  generator: CpuUse;
  server: CpuUse;
  /** The generator was runnable ≥ SATURATED_SHARE of the window: rps is its ceiling, not the server's. */
  saturated: boolean;
}

export interface LoadRequest {
  path: string;
  method: 'GET' | 'POST';
  body?: string;
  headers?: Record<string, string>;
  /** Every response must be 2xx with exactly this body; anything else fails the run. */
  expectBody: string;
}

interface WorkerResult {
  requests: number;
  seconds: number;
  ok: number;
  non2xx: number;
  mismatches: number;
  errors: number;
  timeouts: number;
  latencyMs: { p50: number; p99: number };
}

export class LoadGenerator {
  private readonly lines: AsyncIterator<string>;
  private errors = '';

  private constructor(private readonly child: ChildProcess) {
    child.stderr!.on('data', (d) => (this.errors += d));
    this.lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  }

  /** Starts the generator process, pinned to LOAD_CPUS when pinning is possible. */
  static start(): LoadGenerator {
    const loader = pathToFileURL(path.join(root, 'node_modules/tsx/dist/loader.mjs')).href;
    const [command, args] = pinned(LOAD_CPUS, process.execPath, ['--import', loader, path.join(root, 'bench/load-worker.ts')]);
    return new LoadGenerator(spawn(command, args, { cwd: root, env: { PATH: process.env.PATH ?? '' }, stdio: ['pipe', 'pipe', 'pipe'] }));
  }

  private async next<T>(): Promise<T> {
    const { value, done } = await this.lines.next();
    if (done) throw new Error(`the load generator exited: ${this.errors}`);
    return JSON.parse(value) as T;
  }

  /** `connections` keep-alive connections send `request` to `server` for `seconds`, each as soon as its previous answer is in. */
  async run(server: Service, request: LoadRequest, { connections, seconds }: { connections: number; seconds: number }): Promise<LoadRun> {
    const pid = this.child.pid!;
    this.child.stdin!.write(`${JSON.stringify({ url: server.url + request.path, method: request.method, body: request.body, headers: request.headers, expectBody: request.expectBody, connections, duration: seconds })}\n`);
    await this.next<{ started: true }>();
    const before = { at: performance.now(), generator: cpuSeconds(pid), generatorWait: waitSeconds(pid), server: cpuSeconds(server.pid), serverWait: waitSeconds(server.pid) };
    const result = await this.next<WorkerResult>();
    const wall = (performance.now() - before.at) / 1000;
    const use = (cpu: number, wait: number): CpuUse => ({ cpuSeconds: cpu, share: cpu / wall, waitShare: wait / wall });
    const generator = use(cpuSeconds(pid) - before.generator, waitSeconds(pid) - before.generatorWait);
    const serverUse = use(cpuSeconds(server.pid) - before.server, waitSeconds(server.pid) - before.serverWait);
    const wrong = [
      result.non2xx && `${result.non2xx} non-2xx answers`,
      result.mismatches && `${result.mismatches} answers other than the expected body`,
      result.errors && `${result.errors} connection errors (${result.timeouts} timeouts)`,
      result.requests === 0 && 'no answer at all',
    ].filter(Boolean);
    if (wrong.length) throw new Error(`${server.name}: ${wrong.join(', ')} of ${result.requests}`);
    return {
      requests: result.requests,
      seconds: result.seconds,
      rps: result.requests / result.seconds,
      latencyMs: result.latencyMs,
      generator,
      server: serverUse,
      saturated: generator.share + generator.waitShare >= SATURATED_SHARE,
    };
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin!.end();
    await exited;
  }
}
