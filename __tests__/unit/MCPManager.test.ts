import { jest } from '@jest/globals';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { MCPManager, type ToolCallContext } from '../../src/MCPManager.js';
import { MCPConnectionFactory } from '../../src/MCPConnectionFactory.js';
import { ConfigError, OboError, SwitchboardError } from '../../src/errors.js';
import type { TransportContext } from '../../src/transport/types.js';
import type { OboTokenResolver } from '../../src/auth/oboTypes.js';

interface Gate {
  promise: Promise<void>;
  open(): void;
}
function gate(): Gate {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

/**
 * A transport factory over in-memory pairs: one real McpServer per connection, which knows the user the
 * connection was made for (as a server would from its bearer) and counts initializes.
 */
function inMemoryServers() {
  const state = {
    initializes: 0,
    connects: 0,
    live: new Set<McpServer>(),
    hold: undefined as Gate | undefined,
    connectGate: undefined as Gate | undefined,
    failConnects: 0,
    contexts: [] as TransportContext[],
  };
  const createTransport = async (ctx: TransportContext) => {
    state.connects++;
    state.contexts.push(ctx);
    if (state.connectGate) await state.connectGate.promise;
    if (state.failConnects > 0) {
      state.failConnects--;
      throw new SwitchboardError('transport_error', 'connection refused', { retryable: true });
    }
    const server = new McpServer({ name: `mem-${ctx.serverName}`, version: '1.0.0' });
    server.server.oninitialized = () => state.initializes++;
    const identity = ctx.user ? `${ctx.user.tenantId ?? '-'}/${ctx.user.id}` : 'app';
    server.registerTool('whoami', { description: 'who the connection is for' }, async () => ({ content: [{ type: 'text', text: identity }] }));
    server.registerTool('echo', { inputSchema: { text: z.string() } }, async ({ text }) => ({ content: [{ type: 'text', text }] }));
    server.registerTool('hold', {}, async () => {
      await state.hold?.promise;
      return { content: [{ type: 'text', text: 'released' }] };
    });
    const [client, srv] = InMemoryTransport.createLinkedPair();
    await server.connect(srv);
    state.live.add(server);
    srv.onclose = () => state.live.delete(server);
    return client;
  };
  return { state, factory: new MCPConnectionFactory({ createTransport }) };
}

const text = (r: CallToolResult) => (r.content[0] as { text: string }).text;

const SERVERS = {
  shared: { command: 'shared-server' },
  perUser: { command: 'per-user-server', args: ['--user', '{{user.id}}'] },
  other: { command: 'other-server', args: ['{{user.id}}'] },
};

let managers: MCPManager[] = [];
function manager(opts: Partial<ConstructorParameters<typeof MCPManager>[0]> = {}) {
  const mem = inMemoryServers();
  const m = new MCPManager({ servers: SERVERS, connectionFactory: mem.factory, ...opts });
  managers.push(m);
  return { m, ...mem };
}

afterEach(async () => {
  jest.useRealTimers();
  await Promise.all(managers.map((m) => m.close()));
  managers = [];
});

describe('MCPManager routing and pooling', () => {
  it('joins 300 concurrent cold calls of one user into one connect and one initialize', async () => {
    const { m, state } = manager();
    const user = { id: 'alice', tenantId: 't1' };
    const results = await Promise.all(Array.from({ length: 300 }, () => m.callTool({ user, serverName: 'perUser', toolName: 'whoami' })));
    expect(results.map(text)).toEqual(Array(300).fill('t1/alice'));
    expect(state.initializes).toBe(1);
    expect(m.stats()).toMatchObject({ users: 1, userConnections: 1, pendingConnects: 0 });
    expect(m.stats().userPool).toMatchObject({ connects: 1, joins: 299 });
  });

  it('gives 500 parallel users 500 connections, each answering as its own user', async () => {
    const { m, state } = manager();
    const users = Array.from({ length: 500 }, (_, i) => ({ id: `user-${i}`, tenantId: i % 2 ? 'even' : 'odd' }));
    const results = await Promise.all(users.map((user) => m.callTool({ user, serverName: 'perUser', toolName: 'whoami' })));
    const mismatches = results.filter((r, i) => text(r) !== `${users[i]!.tenantId}/${users[i]!.id}`);
    expect(mismatches).toHaveLength(0);
    expect(state.initializes).toBe(500);
    expect(m.stats()).toMatchObject({ users: 500, userConnections: 500 });
  });

  it('keeps two tenants with the same user id apart', async () => {
    const { m } = manager();
    const a = await m.callTool({ user: { id: 'same', tenantId: 'a' }, serverName: 'perUser', toolName: 'whoami' });
    const b = await m.callTool({ user: { id: 'same', tenantId: 'b' }, serverName: 'perUser', toolName: 'whoami' });
    expect([text(a), text(b)]).toEqual(['a/same', 'b/same']);
    expect(m.stats().userConnections).toBe(2);
  });

  it('shares one app connection for servers that need no identity, whoever calls', async () => {
    const { m, state } = manager();
    const results = await Promise.all([
      m.callTool({ serverName: 'shared', toolName: 'whoami' }),
      m.callTool({ user: { id: 'a' }, serverName: 'shared', toolName: 'whoami' }),
      m.callTool({ user: { id: 'b' }, serverName: 'shared', toolName: 'whoami' }),
    ]);
    expect(results.map(text)).toEqual(['app', 'app', 'app']);
    expect(state.initializes).toBe(1);
    expect(m.stats()).toMatchObject({ appConnections: 1, userConnections: 0 });
  });

  it('never serves a user-scoped server from the app pool, even if a subclass says it is shared', async () => {
    class Sharing extends MCPManager {
      protected override isUserScoped(): boolean {
        return false;
      }
    }
    const mem = inMemoryServers();
    const m = new Sharing({ servers: SERVERS, connectionFactory: mem.factory });
    managers.push(m);
    await expect(m.callTool({ serverName: 'perUser', toolName: 'whoami' })).rejects.toMatchObject({ code: 'user_required', serverName: 'perUser' });
    expect(text(await m.callTool({ user: { id: 'u' }, serverName: 'perUser', toolName: 'whoami' }))).toBe('-/u');
    expect(m.stats().appConnections).toBe(0);
  });

  it('fails with typed errors naming the server: no user, blank id, unknown server, closed manager', async () => {
    const { m } = manager();
    await expect(m.callTool({ serverName: 'perUser', toolName: 'whoami' })).rejects.toMatchObject({ code: 'user_required', serverName: 'perUser' });
    await expect(m.callTool({ user: { id: ' ' }, serverName: 'perUser', toolName: 'whoami' })).rejects.toMatchObject({ code: 'user_required' });
    await expect(m.callTool({ serverName: 'nope', toolName: 'x' })).rejects.toMatchObject({ code: 'unknown_server', message: expect.stringContaining('"nope"') });
    await m.close();
    await m.close();
    await expect(m.callTool({ serverName: 'shared', toolName: 'echo' })).rejects.toMatchObject({ code: 'manager_closed', serverName: 'shared' });
  });

  it('validates every config at construction and applies nothing on error', () => {
    let err: unknown;
    try {
      new MCPManager({ servers: { ok: { command: 'x' }, bad: { url: 'nope' }, obo: { url: 'https://x/mcp', obo: { scopes: 's' } } } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).issues.map((i) => i.path)).toEqual(['bad.url', 'obo.obo']);
    // OBO without a resolver is a wiring error too, caught before any request.
    expect(() => new MCPManager({ servers: { obo: { url: 'https://x/mcp', obo: { scopes: 's' } } } })).toThrow(/obo: On-Behalf-Of needs the oboTokenResolver option/);
  });
});

describe('MCPManager lifecycle', () => {
  it('evicts an idle user connection after idleTimeoutMs, never under an in-flight call', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    const { m, state } = manager({ idleTimeoutMs: 1000 });
    const evicts: string[] = [];
    m.on('evict', (e) => evicts.push(`${e.userId}:${e.reason}`));
    const user = { id: 'u1' };
    state.hold = gate();
    const inflight = m.callTool({ user, serverName: 'perUser', toolName: 'hold' });
    await jest.advanceTimersByTimeAsync(10);
    expect(m.stats().userConnections).toBe(1);
    await jest.advanceTimersByTimeAsync(5000);
    expect(evicts).toEqual([]);
    state.hold.open();
    expect(text(await inflight)).toBe('released');
    await jest.advanceTimersByTimeAsync(999);
    expect(m.stats().userConnections).toBe(1);
    await jest.advanceTimersByTimeAsync(2);
    expect(evicts).toEqual(['u1:idle']);
    expect(m.stats().userConnections).toBe(0);
    expect(state.live.size).toBe(0);
  });

  it('replaces stale connections after upsertServer; in-flight calls finish on the old one', async () => {
    const { m, state } = manager();
    const user = { id: 'u1' };
    state.hold = gate();
    const inflight = m.callTool({ user, serverName: 'perUser', toolName: 'hold' });
    await new Promise((r) => setImmediate(r));
    m.upsertServer('perUser', { command: 'per-user-server', args: ['--v2', '{{user.id}}'] });
    expect(text(await m.callTool({ user, serverName: 'perUser', toolName: 'whoami' }))).toBe('-/u1');
    expect(state.connects).toBe(2);
    expect(state.live.size).toBe(2); // the old one is still serving the held call
    state.hold.open();
    expect(text(await inflight)).toBe('released');
    await new Promise((r) => setImmediate(r));
    expect(state.live.size).toBe(1);
    expect(m.stats().userPool.evictions.stale).toBe(1);
    // A bad upsert changes nothing.
    expect(() => m.upsertServer('perUser', { command: '' })).toThrow(ConfigError);
    expect(text(await m.callTool({ user, serverName: 'perUser', toolName: 'whoami' }))).toBe('-/u1');
    expect(state.connects).toBe(2);
  });

  it('forceNew opens a new connection and retires the old one', async () => {
    const { m, state } = manager();
    const user = { id: 'u1' };
    const a = await m.getConnection({ user, serverName: 'perUser' });
    const b = await m.getConnection({ user, serverName: 'perUser', forceNew: true });
    expect(b).not.toBe(a);
    expect(a.isConnected()).toBe(false);
    expect(await m.getConnection({ user, serverName: 'perUser' })).toBe(b);
    expect(state.connects).toBe(2);
  });

  it('uses a per-call serverConfig, validated, for servers the host keeps per user', async () => {
    const { m, state } = manager();
    const user = { id: 'u1' };
    const conn = await m.getConnection({ user, serverName: 'private', serverConfig: { url: 'https://mine.example.com/mcp' } });
    expect(conn.isConnected()).toBe(true);
    expect(state.contexts.at(-1)?.user?.id).toBe('u1');
    // A per-call config is the caller's: treated as written by a user whatever it says.
    expect(state.contexts.at(-1)?.config).toMatchObject({ source: 'user' });
    await expect(m.getConnection({ user, serverName: 'private', serverConfig: { url: 5 } })).rejects.toBeInstanceOf(ConfigError);
    await expect(m.getConnection({ user, serverName: 'private', serverConfig: { command: 'mine' } })).rejects.toThrow(/cannot start a local process/);
  });

  it('enforces maxConnectionsPerUser with a typed error when nothing can be evicted', async () => {
    const { m, state } = manager({ maxConnectionsPerUser: 1 });
    const user = { id: 'u1' };
    state.hold = gate();
    const inflight = m.callTool({ user, serverName: 'perUser', toolName: 'hold' });
    await new Promise((r) => setImmediate(r));
    await expect(m.callTool({ user, serverName: 'other', toolName: 'whoami' })).rejects.toMatchObject({
      code: 'limit_reached',
      message: expect.stringContaining('maxConnectionsPerUser (1)'),
    });
    state.hold.open();
    await inflight;
    expect(text(await m.callTool({ user, serverName: 'other', toolName: 'whoami' }))).toBe('-/u1');
    expect(m.stats().userPool.evictions.limit).toBe(1);
  });

  it('disconnectUser during a pending connect lets the handshake finish, closes that connection, and resolves after', async () => {
    const { m, state } = manager();
    state.connectGate = gate();
    const pending = m.callTool({ user: { id: 'u1' }, serverName: 'perUser', toolName: 'whoami' });
    await new Promise((r) => setImmediate(r));
    expect(m.stats().pendingConnects).toBe(1);
    const disconnected = m.disconnectUser('u1');
    await expect(pending).rejects.toMatchObject({ code: 'connection_closed' });
    state.connectGate.open();
    await disconnected;
    expect(state.live.size).toBe(0);
    expect(m.stats()).toMatchObject({ users: 0, userConnections: 0, pendingConnects: 0 });
  });

  it('removeServer closes its connections and makes it unknown', async () => {
    const { m, state } = manager();
    await m.callTool({ user: { id: 'u1' }, serverName: 'perUser', toolName: 'whoami' });
    await m.callTool({ serverName: 'shared', toolName: 'whoami' });
    await m.removeServer('perUser');
    await m.removeServer('shared');
    expect(state.live.size).toBe(0);
    await expect(m.callTool({ user: { id: 'u1' }, serverName: 'perUser', toolName: 'whoami' })).rejects.toMatchObject({ code: 'unknown_server' });
  });

  it('close() closes every connection and clears every timer', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    const { m, state } = manager({ idleTimeoutMs: 60_000 });
    await Promise.all([
      m.callTool({ user: { id: 'a' }, serverName: 'perUser', toolName: 'whoami' }),
      m.callTool({ user: { id: 'b' }, serverName: 'perUser', toolName: 'whoami' }),
      m.callTool({ serverName: 'shared', toolName: 'whoami' }),
    ]);
    const disconnects: string[] = [];
    m.on('disconnect', (e) => disconnects.push(`${e.scope}:${e.reason}`));
    await m.close();
    expect(state.live.size).toBe(0);
    expect(disconnects.sort()).toEqual(['app:closed', 'user:closed', 'user:closed']);
    expect(jest.getTimerCount()).toBe(0);
  });
});

describe('MCPManager circuit breaker', () => {
  it('backs off a server failing for everyone, but not for one user failing alone', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    const { m, state } = manager({ circuitBreaker: { failureThreshold: 3, minDistinctUsers: 2, baseBackoffMs: 1000 } });
    state.failConnects = 3;
    for (let i = 0; i < 3; i++) {
      await expect(m.callTool({ user: { id: 'solo' }, serverName: 'perUser', toolName: 'whoami' })).rejects.toMatchObject({ code: 'transport_error' });
    }
    // Three failures from one user: the others are not blocked.
    expect(text(await m.callTool({ user: { id: 'other' }, serverName: 'perUser', toolName: 'whoami' }))).toBe('-/other');

    state.failConnects = 3;
    for (const id of ['x', 'y', 'z']) {
      await expect(m.callTool({ user: { id }, serverName: 'perUser', toolName: 'whoami' })).rejects.toMatchObject({ code: 'transport_error' });
    }
    const connectsBefore = state.connects;
    await expect(m.callTool({ user: { id: 'w' }, serverName: 'perUser', toolName: 'whoami' })).rejects.toMatchObject({ code: 'circuit_open', retryable: true });
    expect(state.connects).toBe(connectsBefore); // nothing was tried
    await jest.advanceTimersByTimeAsync(1001);
    expect(text(await m.callTool({ user: { id: 'w' }, serverName: 'perUser', toolName: 'whoami' }))).toBe('-/w');
  });
});

describe('MCPManager extension points and events', () => {
  it('lets a subclass wrap every tool call and resolve configs per user', async () => {
    const audit: string[] = [];
    class Audited extends MCPManager {
      protected override resolveServerConfig(name: string, user?: { id: string }) {
        if (name === 'tenantOnly' && user?.id === 'vip') return super.resolveServerConfig('perUser', user);
        return super.resolveServerConfig(name, user);
      }
      protected override async wrapToolCall(ctx: ToolCallContext, next: () => Promise<CallToolResult>) {
        audit.push(`${ctx.user?.id ?? 'app'}→${ctx.serverName}.${ctx.toolName} (${ctx.scope})`);
        const result = await next();
        return { ...result, _meta: { audited: true } };
      }
    }
    const mem = inMemoryServers();
    const m = new Audited({ servers: SERVERS, connectionFactory: mem.factory });
    managers.push(m);
    const r = await m.callTool({ user: { id: 'vip' }, serverName: 'tenantOnly', toolName: 'echo', arguments: { text: 'hi' } });
    expect(text(r)).toBe('hi');
    expect(r._meta).toEqual({ audited: true });
    await expect(m.callTool({ user: { id: 'pleb' }, serverName: 'tenantOnly', toolName: 'echo' })).rejects.toMatchObject({ code: 'unknown_server' });
    expect(audit).toEqual(['vip→tenantOnly.echo (user)']);
  });

  it('lists tools through the pool', async () => {
    const { m } = manager();
    const tools = await m.listTools({ user: { id: 'u' }, serverName: 'perUser' });
    expect(tools.map((t) => t.name).sort()).toEqual(['echo', 'hold', 'whoami']);
  });
});

describe('MCPManager On-Behalf-Of wiring', () => {
  const OBO_SERVERS = { graph: { url: 'http://127.0.0.1:9/mcp', obo: { scopes: 'api://graph/.default' } } };

  it('refuses untrusted servers before connecting or calling, and re-checks on every call', async () => {
    const resolver = jest.fn<OboTokenResolver>(async () => ({ accessToken: 'tok' }));
    let trusted = true;
    const { m, state } = manager({ servers: OBO_SERVERS, oboTokenResolver: resolver, oboTrustChecker: () => trusted });
    const user = { id: 'u1', upstreamToken: 'assertion' };
    await m.callTool({ user, serverName: 'graph', toolName: 'whoami' });
    expect(state.connects).toBe(1);
    trusted = false;
    const err = await m.callTool({ user, serverName: 'graph', toolName: 'whoami' }).catch((e) => e);
    expect(err).toBeInstanceOf(OboError);
    expect(err).toMatchObject({ reason: 'untrusted', retryable: false });
  });

  it('refuses OBO for user-sourced configs by default', async () => {
    const resolver = jest.fn<OboTokenResolver>(async () => ({ accessToken: 'tok' }));
    const { m, state } = manager({ servers: { mine: { ...OBO_SERVERS.graph, source: 'user' } }, oboTokenResolver: resolver });
    await expect(m.callTool({ user: { id: 'u', upstreamToken: 'a' }, serverName: 'mine', toolName: 'whoami' })).rejects.toMatchObject({ reason: 'untrusted' });
    expect(state.connects).toBe(0);
    expect(resolver).not.toHaveBeenCalled();
  });
});
