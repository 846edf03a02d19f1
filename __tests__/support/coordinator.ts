/**
 * Helpers for tests of a {@link Coordinator}: waiting for its invalidations, and a private `redis-server` on an
 * ephemeral loopback port for the tests that stop and restart Redis (the shared one on 6379 is never touched).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from '@jest/globals';
import type { createClient } from 'redis';
import type { Coordinator, InvalidationEvent } from '../../src/coordination.js';

/**
 * Resolves with the next invalidation on `c` matching `pred` (listeners subscribed earlier, e.g. a manager's,
 * run first).
 */
export function nextEvent(c: Coordinator, pred: (e: InvalidationEvent) => boolean): Promise<InvalidationEvent> {
  return new Promise((resolve) => {
    const off = c.subscribe((e) => {
      if (!pred(e)) return;
      off();
      resolve(e);
    });
  });
}

/**
 * Waits until `c`'s subscription delivers (it starts asynchronously: SUBSCRIBE, or a reader of the stream):
 * publishes a no-op on `via` until it arrives.
 */
export async function subscribed(c: Coordinator, via: Coordinator = c): Promise<void> {
  const name = `warmup-${randomBytes(4).toString('hex')}`;
  const got = nextEvent(c, (e) => e.kind === 'removeServer' && e.serverName === name);
  let done = false;
  void got.then(() => (done = true));
  while (!done) {
    await via.publish({ kind: 'removeServer', serverName: name });
    await Promise.race([got, new Promise((r) => setTimeout(r, 20))]);
  }
}

/**
 * After a test on the shared Redis: closes the coordinators in `opened` and deletes, through `raw`, the keys under
 * each of `prefixes` (both lists emptied).
 */
export async function closeAndDeleteKeys(raw: ReturnType<typeof createClient>, opened: Coordinator[], prefixes: string[]): Promise<void> {
  await Promise.all(opened.splice(0).map((c) => c.close()));
  for (const p of prefixes.splice(0)) {
    const keys = await raw.keys(`${p}*`);
    if (keys.length) await raw.del(keys);
  }
}

/** A free loopback port (listen on 0, read it, close). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/**
 * Starts `redis-server` on 127.0.0.1:`port` without persistence, and resolves once it accepts connections.
 * With `dir`, a `SHUTDOWN SAVE` writes `dir`/dump.rdb, which a restart on the same `dir` loads.
 */
export async function startRedis(port: number, dir?: string): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...(dir ? ['--dir', dir, '--dbfilename', 'dump.rdb'] : [])];
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  for (let i = 0; i < 200; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const sock = netConnect(port, '127.0.0.1', () => {
        sock.destroy();
        resolve(true);
      }).on('error', () => resolve(false));
    });
    if (up) return child;
    await new Promise((r) => setTimeout(r, 10));
  }
  child.kill('SIGKILL');
  throw new Error('redis-server did not start');
}

/** Kills `child` (SIGKILL) and resolves once it exited; nothing when it is absent or already gone. */
export async function stopRedis(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

/** A private redis-server of one test, from {@link privateRedisPerTest}. */
export interface PrivateRedis {
  /** Its port and `redis://127.0.0.1:<port>`, set by the first `start()`. */
  port: number;
  url: string;
  /** The running process (after `start()`). */
  server: ChildProcess | undefined;
  /** Starts it; again on the same port (and, with `persist`, the same data) after it stopped. */
  start(): Promise<void>;
}

/**
 * A private redis-server for each test of the calling `describe` block, on a free port, killed (and its data
 * directory removed) after each test. With `persist`, its data lives in a temporary directory, so a `SHUTDOWN
 * SAVE` then `start()` is a restart with persistence.
 */
export function privateRedisPerTest(opts: { persist?: boolean } = {}): PrivateRedis {
  let dir: string | undefined;
  const own: PrivateRedis = {
    port: 0,
    url: '',
    server: undefined,
    async start() {
      if (!own.port) {
        own.port = await freePort();
        own.url = `redis://127.0.0.1:${own.port}`;
        if (opts.persist) dir = mkdtempSync(join(tmpdir(), 'mcpsb-redis-'));
      }
      own.server = await startRedis(own.port, dir);
    },
  };
  afterEach(async () => {
    await stopRedis(own.server);
    if (dir) rmSync(dir, { recursive: true, force: true });
    Object.assign(own, { port: 0, url: '', server: undefined });
    dir = undefined;
  });
  return own;
}
