/**
 * No connect escapes the pool's lifecycle: `disconnectUser`, `removeServer`, `close()` or a config change made
 * while a connect is in its handshake (the server has created the session, the client has not read the answer
 * yet). Counted on the server: once the operation resolves, no session is left that nobody will DELETE.
 */
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { MCPConnectionFactory } from '../../src/MCPConnectionFactory.js';
import { MCPManager } from '../../src/MCPManager.js';
import { startTestMcpServer, type TestMcpServer } from '../../src/testing/testMcpServer.js';
import type { TransportContext } from '../../src/transport/types.js';

const text = (r: CallToolResult) => (r.content[0] as { text: string }).text;

interface Held {
  /** Resolves when an initialize answer is being held (the session exists on the server). */
  reached: Promise<void>;
  release(): void;
}

/** A factory whose streamable HTTP transports hold the answer to `initialize` when asked to. */
function holdingFactory() {
  const holds: { reached(): void; wait: Promise<void> }[] = [];
  const factory = new MCPConnectionFactory({
    createTransport: (ctx: TransportContext) => {
      const fetch = async (url: string | URL, init?: RequestInit) => {
        const res = await ctx.fetch(url, init);
        const h = typeof init?.body === 'string' && init.body.includes('"method":"initialize"') ? holds.shift() : undefined;
        if (h) {
          h.reached();
          await h.wait;
        }
        return res;
      };
      return new StreamableHTTPClientTransport(new URL(ctx.config.type === 'streamable-http' ? ctx.config.url : ''), { fetch });
    },
  });
  return {
    factory,
    /** Holds the next initialize answer: the session exists on the server, the client has not read its id yet. */
    holdNext(): Held {
      let reached!: () => void;
      let release!: () => void;
      const r = new Promise<void>((resolve) => (reached = resolve));
      holds.push({ reached, wait: new Promise<void>((resolve) => (release = resolve)) });
      return { reached: r, release };
    },
  };
}

let server: TestMcpServer;
const cleanups: (() => Promise<unknown>)[] = [];
beforeEach(async () => {
  server = await startTestMcpServer({ transport: 'streamable-http' });
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await server.close();
});

function setup() {
  const h = holdingFactory();
  const manager = new MCPManager({
    servers: { files: { url: server.url, headers: { 'X-User': '{{user.id}}' } } },
    connectionFactory: h.factory,
    circuitBreaker: false,
  });
  cleanups.push(() => h.factory.close());
  cleanups.push(() => manager.close());
  const connects: string[] = [];
  manager.on('connect', (e) => connects.push(e.userId ?? 'app'));
  return { manager, holdNext: h.holdNext, connects };
}

const user = { id: 'erin' };

describe.each([
  ['disconnectUser', (m: MCPManager) => m.disconnectUser('erin')],
  ['removeServer', (m: MCPManager) => m.removeServer('files')],
  ['close()', (m: MCPManager) => m.close()],
])('%s during a connect whose session already exists on the server', (_label, operation) => {
  it('rejects the waiting call, and resolves only once that session is DELETEd', async () => {
    const { manager, holdNext, connects } = setup();
    const hold = holdNext();
    const call = manager.callTool({ user, serverName: 'files', toolName: 'whoami' }).catch((e: unknown) => e);
    await hold.reached;
    expect(server.stats().liveSessions).toBe(1);
    let done = false;
    const op = operation(manager).then(() => (done = true));
    expect(await call).toMatchObject({ code: expect.stringMatching(/^(connection_closed|manager_closed)$/) });
    await new Promise(setImmediate);
    expect(done).toBe(false); // it waits for the handshake it did not cut
    hold.release();
    await op;
    expect(server.stats()).toMatchObject({ liveSessions: 0 });
    expect(server.stats().sessionsClosed).toBe(server.stats().sessionsOpened);
    expect(connects).toEqual([]); // the cancelled connection was never announced, let alone after the operation
    expect(manager.stats()).toMatchObject({ userConnections: 0, pendingConnects: 0 });
  });
});

it('a config change during a connect: waiters get a connection made with the new config; the old session is DELETEd', async () => {
  const { manager, holdNext } = setup();
  const hold = holdNext();
  const first = manager.callTool({ user, serverName: 'files', toolName: 'whoami' });
  await hold.reached;
  manager.upsertServer('files', { url: server.url, headers: { 'X-User': '{{user.id}}', 'X-Version': '2' } });
  const second = manager.callTool({ user, serverName: 'files', toolName: 'whoami' });
  // The first caller asked for this key's connection; it is served by the connect of the current config.
  await expect(second).resolves.toBeDefined();
  await expect(first).resolves.toBeDefined();
  hold.release();
  await manager.close();
  expect(server.stats()).toMatchObject({ liveSessions: 0 });
  expect(server.stats().sessionsClosed).toBe(server.stats().sessionsOpened);
  const configs = server.requests.filter((r) => r.method === 'POST').length;
  expect(configs).toBeGreaterThan(0);
});

it('a warm user connection is reused across calls and closed with its session DELETEd by close()', async () => {
  const { manager } = setup();
  expect(text(await manager.callTool({ user, serverName: 'files', toolName: 'echo', arguments: { text: 'a' } }))).toBe('a');
  expect(text(await manager.callTool({ user, serverName: 'files', toolName: 'echo', arguments: { text: 'b' } }))).toBe('b');
  await manager.close();
  expect(server.stats()).toMatchObject({ sessionsOpened: 1, sessionsClosed: 1, liveSessions: 0 });
});
