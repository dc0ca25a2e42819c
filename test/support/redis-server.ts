// A redis-server of the test's own, on a free port, that the test may kill, freeze and restart.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './process.ts';

export class TestRedisServer {
  private child?: ChildProcess;
  /** Where SAVE writes its snapshot, which a restart may load. */
  private readonly dir = mkdtempSync(path.join(os.tmpdir(), 'parley-redis-'));

  private constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<TestRedisServer> {
    const server = new TestRedisServer(await freePort());
    await server.boot();
    return server;
  }

  private async boot(): Promise<void> {
    this.child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning', '--dir', this.dir, '--dbfilename', 'dump.rdb'],
      { stdio: 'ignore' },
    );
    const client = new Redis(this.url, { lazyConnect: true, retryStrategy: () => 50, maxRetriesPerRequest: null });
    client.on('error', () => {});
    for (let i = 0; i < 100; i++) {
      try {
        await client.connect().catch(() => {});
        if ((await client.ping()) === 'PONG') break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    client.disconnect();
  }

  /** SIGKILL: the data is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  freeze(): void {
    this.child?.kill('SIGSTOP');
  }

  thaw(): void {
    this.child?.kill('SIGCONT');
  }

  /** A fresh, empty server on the same port. */
  async restart(): Promise<void> {
    await this.kill();
    rmSync(path.join(this.dir, 'dump.rdb'), { force: true });
    await this.boot();
  }

  /** Writes the data set to a snapshot, as a persistent Redis does from time to time. */
  async snapshot(): Promise<void> {
    const client = new Redis(this.url);
    await client.save();
    client.disconnect();
  }

  /** A server on the same port that comes back with the last snapshot's data. */
  async restartFromSnapshot(): Promise<void> {
    await this.kill();
    await this.boot();
  }

  async stop(): Promise<void> {
    this.thaw();
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
