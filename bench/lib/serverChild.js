/**
 * The MCP server side of the HTTP benchmarks, run in a child process so that its heap and its CPU time are not
 * counted against the client being measured. Started by {@link startServerProcess} (see `serverProcess.js`)
 * over an IPC channel; it listens on 127.0.0.1 only.
 *
 * Commands (IPC messages `{ id, cmd, args }`, answered with `{ id, ok, value | error }`):
 * - `start { idp?: boolean }`: starts `startTestMcpServer({ transport: 'streamable-http' })`; with `idp`, also a
 *   test IdP, and the server verifies every request's bearer with `createBearerVerifier` (downstream audience).
 * - `mint { tokens: { sub, audience: 'runtime' | 'downstream' }[] }`: user access tokens signed by the IdP.
 * - `stats`: the server's counters plus the number of GET (event stream) and POST requests seen.
 * - `close`: closes everything; the process then exits.
 * @module
 */
import { createBearerVerifier } from '../../dist/index.js';
import { startTestIdp, startTestMcpServer } from '../../dist/testing/index.js';

/** @type {import('../../dist/testing/index.js').TestMcpServer | undefined} */
let server;
/** @type {import('../../dist/testing/index.js').TestIdp | undefined} */
let idp;
let closing;

const commands = {
  async start({ idp: withIdp = false } = {}) {
    if (withIdp) {
      idp = await startTestIdp({ exchangedTokenTtlSec: 3600, accessTokenTtlSec: 3600 });
      const verifier = createBearerVerifier({ issuer: idp.issuer, audience: idp.downstreamAudience, allowInsecureRequests: true });
      server = await startTestMcpServer({
        transport: 'streamable-http',
        verifyBearer: async (authorization) => ({ subject: (await verifier.verify(authorization)).subject }),
      });
      return {
        url: server.url,
        issuer: idp.issuer,
        client: idp.client,
        downstreamAudience: idp.downstreamAudience,
        runtimeAudience: idp.runtimeAudience,
      };
    }
    server = await startTestMcpServer({ transport: 'streamable-http' });
    return { url: server.url };
  },
  async mint({ tokens }) {
    if (!idp) throw new Error('mint needs start({ idp: true })');
    return Promise.all(
      tokens.map(({ sub, audience }) =>
        idp.mintAccessToken({ sub, audience: audience === 'downstream' ? idp.downstreamAudience : idp.runtimeAudience }),
      ),
    );
  },
  async stats() {
    const s = server.stats();
    let gets = 0;
    let posts = 0;
    let deletes = 0;
    let rejected401 = 0;
    for (const r of server.requests) {
      if (r.method === 'GET') gets++;
      else if (r.method === 'POST') posts++;
      else if (r.method === 'DELETE') deletes++;
      if (r.rejectedWith === 401) rejected401++;
    }
    return { ...s, gets, posts, deletes, rejected401, idpExchanges: idp?.stats().exchanges ?? 0, rssBytes: process.memoryUsage().rss };
  },
  async close() {
    closing ??= Promise.all([server?.close(), idp?.close()]);
    await closing;
    return true;
  },
};

process.on('message', async (msg) => {
  const { id, cmd, args } = msg ?? {};
  try {
    const fn = commands[cmd];
    if (!fn) throw new Error(`unknown command ${String(cmd)}`);
    const value = await fn(args);
    process.send?.({ id, ok: true, value });
    if (cmd === 'close') process.disconnect();
  } catch (err) {
    process.send?.({ id, ok: false, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
  }
});

// The parent went away (crash, Ctrl-C): do not linger.
process.on('disconnect', () => {
  void commands.close().finally(() => process.exit(0));
});
