/**
 * MCPConnection + MCPConnectionFactory against the test kit's MCP server on loopback, over streamable HTTP
 * and SSE, through the real default transports and the auth-aware fetch.
 */
import { MCPConnectionFactory, type MCPConnectionFactoryOptions } from '../../src/MCPConnectionFactory.js';
import type { ConnectionState, MCPConnection } from '../../src/MCPConnection.js';
import { parseServerConfig } from '../../src/config/index.js';
import { ConfigError, OboError, SwitchboardError } from '../../src/errors.js';
import { startTestMcpServer, type TestMcpServer, type TestMcpServerOptions } from '../../src/testing/testMcpServer.js';
import { rejectionOf } from '../support/errors.js';
import { firstText, nextState } from '../support/mcp.js';

type Kind = TestMcpServerOptions['transport'];

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server(opts: TestMcpServerOptions): Promise<TestMcpServer> {
  const s = await startTestMcpServer(opts);
  cleanups.push(() => s.close());
  return s;
}

function factory(opts: MCPConnectionFactoryOptions = {}): MCPConnectionFactory {
  const f = new MCPConnectionFactory({ reconnect: { maxAttempts: 20, baseDelayMs: 10, maxDelayMs: 50 }, ...opts });
  cleanups.push(() => f.close());
  return f;
}

async function connect(f: MCPConnectionFactory, kind: Kind, url: string): Promise<MCPConnection> {
  const conn = await f.create({ serverName: 'test', config: parseServerConfig('test', { type: kind, url }) });
  cleanups.push(() => conn.close());
  return conn;
}

/** The rejection of `p`, checked to be a `SwitchboardError`. */
const rejection = (p: Promise<unknown>) => rejectionOf(p, SwitchboardError);

describe.each<Kind>(['streamable-http', 'sse'])('over %s', (kind) => {
  it('connects, lists and calls tools, and ends the session on close', async () => {
    const s = await server({ transport: kind });
    const f = factory();
    const conn = await connect(f, kind, s.url);
    expect(conn.state).toBe('connected');
    const names = (await conn.listTools()).map((t) => t.name).sort();
    expect(names).toEqual(['echo', 'fail', 'slow', 'whoami']);
    expect(firstText(await conn.callTool('echo', { text: 'hello' }))).toBe('hello');
    expect(firstText(await conn.callTool('whoami'))).toBe('anonymous');
    expect((await conn.callTool('fail')).isError).toBe(true);
    expect((await conn.callTool('fail', { mode: 'throw' })).isError).toBe(true);
    if (kind === 'streamable-http') expect(conn.sessionId).toEqual(expect.any(String));
    const sessionId = conn.sessionId;
    expect(s.stats()).toMatchObject({ initializeCount: 1, liveSessions: 1, sessionsOpened: 1 });

    await conn.close();
    if (kind === 'streamable-http') {
      // The DELETE was answered before close() resolved.
      expect(s.stats()).toMatchObject({ liveSessions: 0, sessionsClosed: 1 });
      expect(s.requests.filter((r) => r.method === 'DELETE')).toEqual([expect.objectContaining({ sessionId })]);
    } else {
      // SSE has no DELETE: the server sees the event stream close.
      await s.waitForStats((st) => st.sessionsClosed === 1);
      expect(s.stats().liveSessions).toBe(0);
    }
  });

  it('an aborted call rejects promptly and a timed-out call with call_timeout; the connection stays usable', async () => {
    const s = await server({ transport: kind });
    const conn = await connect(factory(), kind, s.url);
    const controller = new AbortController();
    const call = conn.callTool('slow', { ms: 60_000 }, { signal: controller.signal });
    controller.abort();
    expect((await rejection(call)).code).toBe('aborted');
    const timedOut = await rejection(conn.callTool('slow', { ms: 60_000 }, { timeoutMs: 100 }));
    expect(timedOut.code).toBe('call_timeout');
    expect(timedOut.retryable).toBe(true);
    expect(firstText(await conn.callTool('echo', { text: 'still here' }))).toBe('still here');
  });

  it('asks the auth header provider for every request: two calls carry two different bearers', async () => {
    let n = 0;
    const s = await server({
      transport: kind,
      verifyBearer: async (authorization) => {
        if (!authorization?.startsWith('Bearer tok-')) throw new Error('bad token');
        return { subject: authorization.slice('Bearer '.length) };
      },
    });
    const methods: string[] = [];
    const f = factory({
      authHeaders: () => async ({ method }) => {
        methods.push(method);
        return { Authorization: `Bearer tok-${++n}` };
      },
    });
    const conn = await connect(f, kind, s.url);
    const first = firstText(await conn.callTool('whoami'));
    const second = firstText(await conn.callTool('whoami'));
    expect(first).toMatch(/^tok-\d+$/);
    expect(second).toMatch(/^tok-\d+$/);
    expect(first).not.toBe(second);
    const seen = s.requests.map((r) => r.authorization);
    expect(seen.every((a) => a?.startsWith('Bearer tok-'))).toBe(true);
    expect(new Set(seen).size).toBe(seen.length);
    expect(methods).toContain('POST');
  });

  it("hands the auth header provider's error to the caller unchanged, at connect and on a call", async () => {
    const s = await server({ transport: kind });
    const refused = new OboError('missing_upstream_token', 'no upstream token');
    const f1 = factory({
      authHeaders: () => async () => {
        throw refused;
      },
    });
    const err = await rejection(f1.create({ serverName: 'test', config: parseServerConfig('test', { type: kind, url: s.url }) }));
    expect(err).toBe(refused);

    let fail = false;
    const later = new OboError('exchange_failed', 'IdP down', { retryable: true });
    const f2 = factory({
      authHeaders: () => async () => {
        if (fail) throw later;
        return { Authorization: 'Bearer ok' };
      },
    });
    const conn = await connect(f2, kind, s.url);
    fail = true;
    expect(await rejection(conn.callTool('echo', { text: 'x' }))).toBe(later);
    fail = false;
    expect(firstText(await conn.callTool('echo', { text: 'y' }))).toBe('y');
  });

  it('reconnects after the server restarts on the same port', async () => {
    // No keep-alive: the restarted server must not meet requests on sockets pooled for the old one (a POST
    // lost on such a socket may or may not have been processed, so it is not resent; see MCPConnection).
    const first = await startTestMcpServer({ transport: kind, keepAlive: false });
    cleanups.push(() => first.close());
    const conn = await connect(factory(), kind, first.url);
    const states: ConnectionState[] = [];
    conn.on('state', ({ to }) => states.push(to));
    expect(firstText(await conn.callTool('echo', { text: 'before' }))).toBe('before');

    // SSE notices the broken event stream at once; streamable HTTP notices on the next request (404).
    const lost = kind === 'sse' ? nextState(conn, 'reconnecting') : Promise.resolve();
    await first.close();
    await lost;
    const second = await server({ transport: kind, port: first.port });
    const reconnected = nextState(conn, 'connected');
    expect(firstText(await conn.callTool('echo', { text: 'after' }))).toBe('after');
    await reconnected;
    expect(second.stats().initializeCount).toBe(1);
    expect(states).toEqual(['reconnecting', 'connected']);
  });
});

describe('streamable HTTP sessions', () => {
  it('re-initializes once after a 404 for an expired session and resends the request', async () => {
    const s = await server({ transport: 'streamable-http' });
    const conn = await connect(factory(), 'streamable-http', s.url);
    const oldSession = conn.sessionId;
    s.expireSessions();
    expect(firstText(await conn.callTool('echo', { text: 'again' }))).toBe('again');
    expect(conn.sessionId).not.toBe(oldSession);
    expect(s.stats()).toMatchObject({ initializeCount: 2, sessionsExpired: 1, liveSessions: 1 });
    const rejected = s.requests.findIndex((r) => r.rejectedWith === 404 && r.method === 'POST');
    expect(rejected).toBeGreaterThanOrEqual(0);
    expect(s.requests[rejected]!.sessionId).toBe(oldSession);
    // After the 404: a new initialize (no session id), then the resent call on the new session. (A ping on the
    // old session may come in between: the standby GET met the expired session too, and a ping confirms that.)
    const after = s.requests.slice(rejected + 1).filter((r) => r.method === 'POST' && r.sessionId !== oldSession);
    expect(after[0]!.sessionId).toBeUndefined();
    expect(after.some((r) => r.sessionId === conn.sessionId)).toBe(true);
  });

  it('a server refusing the bearer fails the connect with a typed error', async () => {
    const s = await server({
      transport: 'streamable-http',
      verifyBearer: async () => {
        throw new Error('nope');
      },
    });
    const err = await rejection(factory().create({ serverName: 't', config: parseServerConfig('t', { type: 'streamable-http', url: s.url }) }));
    expect(err).toBeInstanceOf(SwitchboardError);
    expect(err.code).toBe('connect_failed');
    expect(s.requests[0]!.rejectedWith).toBe(401);
  });
});

describe('MCPConnectionFactory', () => {
  it('resolves placeholders from its env and the user, and a per-create auth wins over the factory hook', async () => {
    const s = await server({ transport: 'streamable-http' });
    const f = factory({ env: { MCP_TOKEN: 'from-env' }, authHeaders: () => async () => ({ Authorization: 'Bearer from-hook' }) });
    const config = parseServerConfig('t', { type: 'streamable-http', url: s.url, headers: { Authorization: 'Bearer ${MCP_TOKEN}' } });

    // The hook's Authorization replaces the static one (the provider is the only source when present).
    const viaHook = await f.create({ serverName: 't', config });
    cleanups.push(() => viaHook.close());
    expect(s.requests.at(-1)!.authorization).toBe('Bearer from-hook');

    const viaCreate = await f.create({
      serverName: 't',
      config,
      user: { id: 'u1' },
      auth: { authHeaders: async () => ({ Authorization: 'Bearer from-create' }) },
    });
    cleanups.push(() => viaCreate.close());
    expect(s.requests.at(-1)!.authorization).toBe('Bearer from-create');
    expect(viaCreate.user?.id).toBe('u1');
    expect(viaCreate.config).toBe(config);

    const plain = factory({ env: { MCP_TOKEN: 'from-env' } });
    const viaHeaders = await plain.create({ serverName: 't', config });
    cleanups.push(() => viaHeaders.close());
    expect(s.requests.at(-1)!.authorization).toBe('Bearer from-env');
  });

  it('refuses an unresolvable placeholder with a ConfigError before connecting, and refuses create() once closed', async () => {
    const s = await server({ transport: 'streamable-http' });
    const f = factory({ env: {} });
    const config = parseServerConfig('t', { type: 'streamable-http', url: s.url, headers: { 'X-Org': '{{var.ORG}}' }, customUserVars: { ORG: { title: 'Organisation' } } });
    const err = await rejection(f.create({ serverName: 't', config, user: { id: 'u1' } }));
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).issues[0]!.path).toBe('t.headers.X-Org');
    expect(s.requests).toHaveLength(0);

    await f.close();
    await f.close();
    expect((await rejection(f.create({ serverName: 't', config, user: { id: 'u1', vars: { ORG: 'a' } } }))).code).toBe('connection_closed');
  });
});
