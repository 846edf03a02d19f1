/**
 * `@modelcontextprotocol/server-everything` for integration tests: its entry point, and a start in an HTTP mode
 * bound to 127.0.0.1 on an ephemeral port (a preload makes its `listen(PORT)` use loopback and print the port).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
/** The package's folder. */
export const EVERYTHING_DIR = dirname(require.resolve('@modelcontextprotocol/server-everything/package.json'));
/** Its entry point: `node EVERYTHING stdio | sse | streamableHttp`. */
export const EVERYTHING = join(EVERYTHING_DIR, 'dist', 'index.js');

const PRELOAD = `
import net from 'node:net';
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' || typeof args[0] === 'string') {
    const cb = args.find((a) => typeof a === 'function');
    this.once('listening', () => process.stderr.write('SWITCHBOARD_TEST_PORT=' + this.address().port + '\\n'));
    return cb ? listen.call(this, Number(args[0]), '127.0.0.1', cb) : listen.call(this, Number(args[0]), '127.0.0.1');
  }
  return listen.apply(this, args);
};`;

/** A running server-everything in an HTTP mode. */
export interface EverythingHttp {
  port: number;
  child: ChildProcess;
  /** Ends it and waits for the exit. */
  stop(): Promise<void>;
}

/** Starts server-everything in `mode` on 127.0.0.1 and resolves once it listens. */
export function startEverythingHttp(mode: 'sse' | 'streamableHttp' = 'streamableHttp'): Promise<EverythingHttp> {
  const child = spawn(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(PRELOAD)}`, EVERYTHING, mode], {
    env: { PATH: process.env.PATH ?? '', PORT: '0' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const m = /SWITCHBOARD_TEST_PORT=(\d+)/.exec(buffered);
      if (!m) return;
      child.stderr!.off('data', onData);
      child.stderr!.resume(); // keep draining the child's log
      resolve({ port: Number(m[1]), child, stop });
    };
    child.stderr!.on('data', onData);
    child.once('exit', (code, signal) => reject(new Error(`server-everything ${mode} exited early (${code ?? signal}): ${buffered}`)));
    child.once('error', reject);
  });
}
