/**
 * Starts the benchmark MCP server (and optionally a test IdP) in a child process and talks to it over IPC, so
 * that the measured process holds only the client side.
 * @module
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('./serverChild.js', import.meta.url));

/**
 * A running server child; see {@link startServerProcess}.
 *
 * @typedef {object} ServerProcess
 * @property {string} url The streamable HTTP endpoint, `http://127.0.0.1:PORT/mcp`.
 * @property {{ issuer?: string, client?: { clientId: string, clientSecret: string }, downstreamAudience?: string, runtimeAudience?: string }} info
 *   What `start` answered (IdP details when started with `idp: true`).
 * @property {(cmd: string, args?: unknown) => Promise<any>} request Sends one command and waits for its answer.
 * @property {() => Promise<any>} stats The server's counters (sessions, initializes, GET/POST counts, IdP exchanges).
 * @property {(tokens: { sub: string, audience: 'runtime' | 'downstream' }[]) => Promise<string[]>} mint Tokens signed by the child's IdP.
 * @property {() => Promise<void>} close Closes the server and waits for the child to exit. Idempotent.
 */

/**
 * Forks `serverChild.js`, starts a streamable HTTP test MCP server on 127.0.0.1 in it and returns a handle.
 *
 * @param {{ idp?: boolean }} [opts] `idp: true` also starts a test IdP; the server then verifies every bearer.
 * @returns {Promise<ServerProcess>}
 * @example
 * ```js
 * const srv = await startServerProcess();
 * const client = new Client({ name: 'x', version: '1' });
 * await client.connect(new StreamableHTTPClientTransport(new URL(srv.url)));
 * console.log((await srv.stats()).sessionsOpened); // 1
 * await client.close();
 * await srv.close();
 * ```
 */
export async function startServerProcess(opts = {}) {
  const child = fork(CHILD, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
  const waiting = new Map();
  let nextId = 1;
  let exited = false;
  const exit = once(child, 'exit').then(() => {
    exited = true;
    for (const w of waiting.values()) w.reject(new Error('benchmark server process exited'));
    waiting.clear();
  });
  child.on('message', (msg) => {
    const w = waiting.get(msg.id);
    if (!w) return;
    waiting.delete(msg.id);
    if (msg.ok) w.resolve(msg.value);
    else w.reject(new Error(msg.error));
  });
  const request = (cmd, args) =>
    new Promise((resolve, reject) => {
      if (exited) return reject(new Error('benchmark server process exited'));
      const id = nextId++;
      waiting.set(id, { resolve, reject });
      child.send({ id, cmd, args });
    });
  let closing;
  try {
    const info = await request('start', { idp: !!opts.idp });
    return {
      url: info.url,
      info,
      request,
      stats: () => request('stats'),
      mint: (tokens) => request('mint', { tokens }),
      close() {
        closing ??= (async () => {
          if (!exited) await request('close').catch(() => {});
          if (!exited) child.kill();
          await exit;
        })();
        return closing;
      },
    };
  } catch (err) {
    child.kill();
    await exit;
    throw err;
  }
}
