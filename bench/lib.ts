// Shared pieces of the benchmarks: processes to measure, pinning, and statistics.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import { freePort } from '../test/support/process.ts';

export const root = path.resolve(import.meta.dirname, '..');
const tsxLoader = pathToFileURL(path.join(root, 'node_modules/tsx/dist/loader.mjs')).href;
const CLOCK_TICKS = 100;

// Throughput scenarios put the servers under test on one core and the load generator on the
// other, so that neither takes CPU from the other.
export const SERVER_CPUS = '0';
export const LOAD_CPUS = '1';

let pinning: boolean | undefined;
/** Whether `taskset` can pin processes to SERVER_CPUS and LOAD_CPUS here; warns once when not. */
export function canPin(): boolean {
  if (pinning === undefined) {
    const probe = spawnSync('taskset', ['-cp', String(process.pid)], { encoding: 'utf8' });
    // "pid 123's current affinity list: 0-3,6"
    const allowed = new Set<number>();
    for (const part of (probe.stdout ?? '').split(':').at(-1)!.trim().split(',').filter(Boolean)) {
      const [from, to = from] = part.split('-').map(Number);
      for (let cpu = from!; cpu <= to!; cpu++) allowed.add(cpu);
    }
    const wanted = [SERVER_CPUS, LOAD_CPUS].flatMap((list) => list.split(',').map(Number));
    pinning = probe.status === 0 && os.availableParallelism() >= 2 && wanted.every((cpu) => allowed.has(cpu));
    if (!pinning) {
      const why = probe.error ? 'taskset is missing' : probe.status !== 0 ? `taskset failed: ${probe.stderr.trim()}` : `this process may only run on cores ${[...allowed].join(',')}`;
      console.warn(`  warning: ${why}; servers and load generator run unpinned, so they compete for the same cores`);
    }
  }
  return pinning;
}

/** The command and arguments that run `command` on the cores of `cpus` (a taskset list), when it can. */
export function pinned(cpus: string | undefined, command: string, args: string[]): [string, string[]] {
  // taskset execs the command: the child's pid is the command's own, for /proc and signals.
  return cpus !== undefined && canPin() ? ['taskset', ['-c', cpus, command, ...args]] : [command, args];
}

export interface Service {
  name: string;
  url: string;
  pid: number;
  child: ChildProcess;
  stop(): Promise<void>;
  /** Runs a full garbage collection in the process (only with `inspect`), so RSS shows live data. */
  collectGarbage(): Promise<void>;
  /** V8 heap in use plus memory held outside it by JS objects (only with `inspect`). */
  heapBytes(): Promise<number>;
  /** Count and self size of the live objects per type and constructor (only with `inspect`). */
  snapshot(): Promise<Map<string, [count: number, bytes: number]>>;
}

/** A server to start: a TypeScript or JavaScript entry point, and options for node. */
export interface ServerCommand {
  entry: string;
  nodeArgs: string[];
}

/** Parley as `npm start` runs it: the node options and the entry point of package.json's start script. */
export function npmStartCommand(): ServerCommand {
  const start = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start!;
  const [node, ...args] = start.split(' ');
  const entry = args.at(-1);
  if (node !== 'node' || !entry || args.slice(0, -1).some((arg) => !arg.startsWith('--'))) throw new Error(`npm start is not "node [options] <entry>": ${start}`);
  return { entry, nodeArgs: args.slice(0, -1) };
}

// Servers still running when the bench exits, however it exits (a failed check throws): killed
// with it, so that a failed run leaves no server behind to load the next one.
const started = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of started) child.kill('SIGKILL');
});

/**
 * Starts a TypeScript entry point (Parley's main, or a baseline) and waits for `ready` on its port.
 * `cpus` (a taskset list, e.g. SERVER_CPUS) pins the process to those cores.
 */
export async function startService(
  name: string,
  server: string | ServerCommand,
  env: Record<string, string>,
  { ready = '/health', inspect: withInspector = false, cpus }: { ready?: string; inspect?: boolean; cpus?: string } = {},
): Promise<Service> {
  const { entry, nodeArgs } = typeof server === 'string' ? { entry: server, nodeArgs: [] } : server;
  const port = await freePort();
  // BENCH_PROFILE=<dir>: every server writes a V8 CPU profile there when it exits.
  const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
  // The inspector lets the bench trigger a full GC; it does not change how the process allocates.
  const inspector = withInspector ? ['--inspect=127.0.0.1:0'] : [];
  // JavaScript (Parley's build in dist/) runs as is; TypeScript (the baselines) through tsx.
  const loader = entry.endsWith('.ts') ? ['--import', tsxLoader] : [];
  const [command, args] = pinned(cpus, process.execPath, [...nodeArgs, ...profile, ...inspector, ...loader, path.join(root, entry)]);
  const child = spawn(command, args, {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', LOG_LEVEL: 'warn', NODE_ENV: 'production', ...env, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  started.add(child);
  child.once('exit', () => started.delete(child));
  let errors = '';
  child.stderr!.on('data', (d) => (errors += d));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited: ${errors}`);
    const ok = await fetch(`${url}${ready}`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`${name} did not start: ${errors}`);
    await sleep(100);
  }
  /** One call of the Chrome DevTools protocol on the process's inspector. */
  const inspect = async (method: string, params: Record<string, unknown> = {}): Promise<unknown> => {
    const endpoint = /Debugger listening on (ws:\/\/\S+)/.exec(errors)?.[1];
    if (!endpoint) throw new Error(`${name} was not started with inspect`);
    const socket = new WebSocket(endpoint);
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    socket.send(JSON.stringify({ id: 1, method, params }));
    const reply = await new Promise<{ result: unknown }>((resolve) => socket.on('message', (data) => resolve(JSON.parse(String(data)))));
    socket.close();
    return reply.result;
  };
  return {
    name,
    url,
    pid: child.pid!,
    child,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(15_000).then(() => child.kill('SIGKILL'))]);
    },
    collectGarbage: async () => {
      // Twice: the first collection can leave work for finalizers and weak callbacks.
      await inspect('HeapProfiler.collectGarbage');
      await inspect('HeapProfiler.collectGarbage');
    },
    snapshot: async () => {
      // A heap snapshot (V8 collects garbage first), summed per object type and name.
      const endpoint = /Debugger listening on (ws:\/\/\S+)/.exec(errors)?.[1]!;
      const socket = new WebSocket(endpoint, { maxPayload: 1 << 30 });
      await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
      let text = '';
      const done = new Promise<void>((resolve) =>
        socket.on('message', (data) => {
          const message = JSON.parse(String(data));
          if (message.method === 'HeapProfiler.addHeapSnapshotChunk') text += message.params.chunk;
          if (message.id === 1) resolve();
        }),
      );
      socket.send(JSON.stringify({ id: 1, method: 'HeapProfiler.takeHeapSnapshot', params: { reportProgress: false } }));
      await done;
      socket.close();
      const heap = JSON.parse(text);
      const fields: string[] = heap.snapshot.meta.node_fields;
      const types: string[] = heap.snapshot.meta.node_types[0];
      const width = fields.length;
      const [iType, iName, iSize] = [fields.indexOf('type'), fields.indexOf('name'), fields.indexOf('self_size')];
      const byName = new Map<string, [number, number]>();
      for (let i = 0; i < heap.nodes.length; i += width) {
        const key = `${types[heap.nodes[i + iType]]}:${heap.strings[heap.nodes[i + iName]].slice(0, 60)}`;
        const entry = byName.get(key) ?? [0, 0];
        entry[0]++;
        entry[1] += heap.nodes[i + iSize];
        byName.set(key, entry);
      }
      return byName;
    },
    heapBytes: async () => {
      const reply = (await inspect('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })) as { result: { value: string } };
      const usage = JSON.parse(reply.result.value) as { heapUsed: number; external: number };
      return usage.heapUsed + usage.external;
    },
  };
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Seconds a process's main thread spent runnable but waiting for a core (from /proc/<pid>/schedstat). */
export function waitSeconds(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1e9;
}

export function rssBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'))!;
  return Number(line.split(/\s+/)[1]) * 1024;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * p) - 1)]!;
}

export function median(values: number[]): number {
  return percentile(values, 0.5);
}

/** Median, min and max of repeated runs. */
export function spread(values: number[]): { median: number; min: number; max: number } {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

// Keep-alive connections, as many as asked for at once: a burst of requests reaches the server as
// a burst, and node:http costs the bench much less per request than fetch does.
const agent = new http.Agent({ keepAlive: true });

/**
 * POSTs a JSON body over node:http and reads the whole answer. A kept-alive socket that the server
 * closed just as it was reused fails with ECONNRESET: that request is sent again, once, as Node's
 * documentation advises.
 */
export function postJson(url: string, body: string, retried = false): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    request.on('error', (error: NodeJS.ErrnoException) => {
      if (!retried && request.reusedSocket && error.code === 'ECONNRESET') postJson(url, body, true).then(resolve, reject);
      else reject(error);
    });
    request.end(body);
  });
}

/** A GraphQL operation over node:http (see postJson); throws on errors. */
export async function gqlHttp<T = unknown>(url: string, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const { text } = await postJson(`${url}/graphql`, JSON.stringify({ query, variables }));
  const json = JSON.parse(text) as { data?: T; errors?: unknown };
  if (json.errors) throw new Error(JSON.stringify(json.errors));
  return json.data!;
}

export async function gql<T = unknown>(url: string, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) });
  const json = (await res.json()) as { data?: T; errors?: unknown };
  if (json.errors) throw new Error(JSON.stringify(json.errors));
  return json.data!;
}
