/**
 * A private `redis-server` on an ephemeral loopback port, for runs that stop and restart Redis (the shared one on
 * 6379 is never touched). Its data is kept in an append-only file (`appendfsync always`) in a temporary
 * directory, so a restart on the same port finds what was written before, as a production Redis with
 * persistence would.
 * @module
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A free loopback port (listen on 0, read it, close). */
async function freePort() {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/**
 * Starts `redis-server` (from PATH, or `REDIS_SERVER`) and resolves once it accepts connections.
 *
 * @returns {Promise<{ url: string, port: number, kill(): Promise<void>, restart(): Promise<void>, stop(): Promise<void> }>}
 *   `kill` ends it with SIGKILL (a crash), `restart` starts it again on the same port and data, `stop` kills it and
 *   removes its data. Idempotent where it makes sense.
 * @example
 * ```js
 * const redis = await startRedisServer();
 * await redis.kill(); await redis.restart(); await redis.stop();
 * ```
 */
export async function startRedisServer() {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-redis-'));
  const port = await freePort();
  let child;
  const launch = async () => {
    child = spawn(
      process.env.REDIS_SERVER ?? 'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--protected-mode', 'no'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`redis-server did not start on ${port}: ${out}`)), 10_000);
      child.stdout.on('data', (d) => {
        out += d;
        if (out.includes('Ready to accept connections')) {
          clearTimeout(t);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`redis-server exited (${code}): ${out}`));
      });
    });
    child.stdout.resume();
  };
  const kill = async () => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  };
  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    kill,
    restart: launch,
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
