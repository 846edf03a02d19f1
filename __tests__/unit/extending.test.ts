/**
 * Every extension point of MCPManager, shown by a subclass or an option, as docs/extending.md describes them:
 * the example classes of docs/examples/extending.ts run here against in-memory MCP servers (one real McpServer
 * per connection, which knows the user its connection was made for), plus a few subclasses of the test's own.
 */
import { jest } from '@jest/globals';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SubscribeRequestSchema, UnsubscribeRequestSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import * as switchboard from '../../src/index.js';
import { MCPManager, type ConnectionCircuitBreaker, type OperationContext, type ToolCallContext } from '../../src/MCPManager.js';
import { MCPConnectionFactory } from '../../src/MCPConnectionFactory.js';
import { ConfigError, OboError, SwitchboardError } from '../../src/errors.js';
import type { TransportContext } from '../../src/transport/types.js';
import type { ServerConfig } from '../../src/config/schema.js';
import type { UserContext } from '../../src/types.js';
import type { OboTokenResolver } from '../../src/auth/oboTypes.js';
import type { CircuitBreakerOptions } from '../../src/pool/CircuitBreaker.js';

// The example imports the package by name: resolve it to the sources (as docs.test.ts does).
jest.unstable_mockModule('mcp-switchboard', () => switchboard, { virtual: true });
const examples = await import('../../docs/examples/extending.js');
type Complete = import('../../docs/examples/extending.js').Complete;

/** In-memory servers: tools, a subscribable resource, logging; sampling and roots asked from tools. */
function inMemoryServers() {
  const state = {
    connects: 0,
    byIdentity: new Map<string, number>(),
    contexts: [] as TransportContext[],
    live: new Set<McpServer>(),
    /** When set, each connect waits for it (after `entered` is called). */
    gate: undefined as Promise<void> | undefined,
    entered: (): void => {},
  };
  const createTransport = async (ctx: TransportContext) => {
    state.connects++;
    state.entered();
    if (state.gate) await state.gate;
    state.contexts.push(ctx);
    const identity = ctx.user ? `${ctx.user.tenantId ?? '-'}/${ctx.user.id}` : 'app';
    const args = ctx.config.type === 'stdio' ? (ctx.config.args ?? []).join(' ') : '';
    state.byIdentity.set(`${identity} ${args}`.trim(), (state.byIdentity.get(`${identity} ${args}`.trim()) ?? 0) + 1);
    const server = new McpServer(
      { name: `mem-${ctx.serverName}`, version: '1.0.0' },
      { capabilities: { resources: { subscribe: true, listChanged: true }, logging: {}, tools: { listChanged: true } }, instructions: `for ${identity}` },
    );
    server.registerTool('whoami', {}, async () => ({ content: [{ type: 'text', text: `${identity} ${args}`.trim() }] }));
    server.registerTool('notify', {}, async (extra) => {
      await extra.sendNotification({ method: 'notifications/tools/list_changed' });
      await extra.sendNotification({ method: 'notifications/resources/updated', params: { uri: 'note://today' } });
      await extra.sendNotification({ method: 'notifications/message', params: { level: 'info', logger: 'mem', data: identity } });
      return { content: [{ type: 'text', text: 'sent' }] };
    });
    server.registerTool('sample', {}, async () => {
      const r = await server.server.createMessage({ messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }], maxTokens: 5 });
      return { content: [{ type: 'text', text: (r.content as { text: string }).text }] };
    });
    server.registerTool('roots', {}, async () => {
      const { roots } = await server.server.listRoots();
      return { content: [{ type: 'text', text: roots.map((r) => r.uri).join(',') }] };
    });
    server.registerTool('caps', {}, async () => ({ content: [{ type: 'text', text: Object.keys(server.server.getClientCapabilities() ?? {}).sort().join(',') }] }));
    server.registerPrompt('summarize', { argsSchema: { style: z.string() } }, ({ style }) => ({
      messages: [{ role: 'user', content: { type: 'text', text: `summarize as ${style} for ${identity}` } }],
    }));
    server.registerResource('today', 'note://today', {}, async (uri) => ({ contents: [{ uri: uri.href, text: `note of ${identity}` }] }));
    server.server.setRequestHandler(SubscribeRequestSchema, async () => ({}));
    server.server.setRequestHandler(UnsubscribeRequestSchema, async () => ({}));
    const [client, srv] = InMemoryTransport.createLinkedPair();
    await server.connect(srv);
    state.live.add(server);
    srv.onclose = () => state.live.delete(server);
    return client;
  };
  return { state, factory: new MCPConnectionFactory({ createTransport }) };
}

const text = (r: CallToolResult) => (r.content[0] as { text: string }).text;
const SERVERS = { crm: { command: 'crm' }, notes: { command: 'notes', args: ['--user', '{{user.id}}'] } };

let managers: MCPManager[] = [];
function track<M extends MCPManager>(m: M): M {
  managers.push(m);
  return m;
}
afterEach(async () => {
  jest.useRealTimers();
  await Promise.all(managers.map((m) => m.close()));
  managers = [];
});

const alice: UserContext = { id: 'alice', tenantId: 't1' };
const bob: UserContext = { id: 'bob', tenantId: 't2' };

describe('resolveServerConfig (async, per tenant)', () => {
  it('serves a config that differs per tenant from each user pool: alternating tenants do not thrash one shared connection', async () => {
    const { state, factory } = inMemoryServers();
    const store = { find: jest.fn(async (tenantId: string) => ({ command: 'crm', args: ['--tenant', tenantId] })) };
    const m = track(new examples.TenantConfigManager({ servers: SERVERS, connectionFactory: factory }, store));
    const seen: string[] = [];
    for (const user of [alice, bob, alice, bob, alice, bob]) seen.push(text(await m.callTool({ user, serverName: 'crm', toolName: 'whoami' })));
    expect(seen).toEqual(['t1/alice --tenant t1', 't2/bob --tenant t2', 't1/alice --tenant t1', 't2/bob --tenant t2', 't1/alice --tenant t1', 't2/bob --tenant t2']);
    // Before: one shared app connection replaced on every call (6 connects, 5 stale evictions).
    expect(state.connects).toBe(2);
    const s = m.stats();
    expect([s.userConnections, s.appConnections, s.userPool.evictions.stale + s.appPool.evictions.stale]).toEqual([2, 0, 0]);
    expect(store.find).toHaveBeenCalledTimes(2); // the example caches the parsed config per (tenant, server)
  });

  it('keeps sharing the registered config: a user whose tenant has no row gets the shared app connection', async () => {
    const { state, factory } = inMemoryServers();
    const m = track(new examples.TenantConfigManager({ servers: SERVERS, connectionFactory: factory }, { find: async () => undefined }));
    expect(text(await m.callTool({ user: alice, serverName: 'crm', toolName: 'whoami' }))).toBe('app');
    expect(text(await m.callTool({ user: bob, serverName: 'crm', toolName: 'whoami' }))).toBe('app');
    expect(state.connects).toBe(1);
  });
});

describe('per-call serverConfig', () => {
  it('is validated (ConfigError naming the field) and used for that call, from the user pool', async () => {
    const { state, factory } = inMemoryServers();
    const m = track(new MCPManager({ servers: SERVERS, connectionFactory: factory }));
    const err = await m.callTool({ user: alice, serverName: 'crm', toolName: 'whoami', serverConfig: { url: 'https://crm.example.com/mcp', timeoutMs: 'x' } }).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).issues.map((i) => i.path)).toEqual(['crm.timeoutMs']);
    expect(state.connects).toBe(0);
    // Caller-supplied: taken as source 'user' whatever it claims.
    const own = { url: 'https://mine.example.com/mcp', source: 'config' };
    expect(text(await m.callTool({ user: alice, serverName: 'crm', toolName: 'whoami', serverConfig: own }))).toBe('t1/alice');
    expect(state.contexts[0]?.config).toMatchObject({ url: 'https://mine.example.com/mcp', source: 'user' });
    expect((await m.listTools({ user: alice, serverName: 'crm', serverConfig: own })).map((t) => t.name)).toContain('whoami');
    expect(text(await m.callTool({ user: alice, serverName: 'crm', toolName: 'whoami' }))).toBe('app');
    expect(state.connects).toBe(2);
  });

  it('callUserServer: a user-sourced per-call config', async () => {
    const { factory, state } = inMemoryServers();
    const m = track(new MCPManager({ servers: {}, connectionFactory: factory }));
    // No server on this address: the in-memory transport answers for every config.
    const r = await examples.callUserServer(m, alice, 'https://my.example.com/mcp', 'whoami');
    expect(text(r)).toBe('t1/alice');
    expect(state.contexts[0]?.config).toMatchObject({ source: 'user', url: 'https://my.example.com/mcp' });
  });
});

describe('createUserPool: a UserConnectionManager subclass takes part in routing and OBO', () => {
  it('leases every user-scoped operation through the subclass; the OBO trust check runs before it', async () => {
    const { factory } = inMemoryServers();
    const m = track(new examples.SuspendingManager({ servers: SERVERS, connectionFactory: factory }));
    expect(m.pool).toBeUndefined(); // made on first use
    expect(text(await m.callTool({ user: alice, serverName: 'notes', toolName: 'whoami' }))).toBe('t1/alice --user alice');
    expect(m.pool).toBeInstanceOf(examples.SuspendablePool);
    await m.pool!.suspend('t1', ['alice']);
    expect(m.stats().userConnections).toBe(0);
    await expect(m.listResources({ user: alice, serverName: 'notes' })).rejects.toBeInstanceOf(examples.TenantSuspendedError);
    await expect(m.withConnection({ user: alice, serverName: 'notes' }, () => 1)).rejects.toBeInstanceOf(examples.TenantSuspendedError);
    expect(text(await m.callTool({ user: bob, serverName: 'notes', toolName: 'whoami' }))).toBe('t2/bob --user bob');
    // Shared servers do not go through the user pool.
    expect(text(await m.callTool({ user: alice, serverName: 'crm', toolName: 'whoami' }))).toBe('app');
  });

  it('an untrusted OBO server is refused before the pool subclass is asked', async () => {
    const acquired: string[] = [];
    class Pool extends switchboard.UserConnectionManager {
      override acquire(...args: Parameters<switchboard.UserConnectionManager['acquire']>) {
        acquired.push(args[1]);
        return super.acquire(...args);
      }
    }
    class M extends MCPManager {
      protected override createUserPool(options: switchboard.UserConnectionManagerOptions) {
        return new Pool(options);
      }
    }
    const { factory } = inMemoryServers();
    const resolver = jest.fn<OboTokenResolver>(async () => ({ accessToken: 'tok' }));
    const m = track(
      new M({ servers: { graph: { url: 'http://127.0.0.1:9/mcp', obo: { scopes: 'api://graph/.default' } } }, oboTokenResolver: resolver, oboTrustChecker: () => false, connectionFactory: factory }),
    );
    await expect(m.readResource({ user: { ...alice, upstreamToken: 'a' }, serverName: 'graph', uri: 'note://today' })).rejects.toBeInstanceOf(OboError);
    expect(acquired).toEqual([]);
  });
});

describe('createAppPool: a wrapper around the shared pool', () => {
  it('sees every shared lease', async () => {
    const { factory } = inMemoryServers();
    const m = track(new examples.SharedPoolMetricsManager({ servers: SERVERS, connectionFactory: factory }));
    await m.callTool({ serverName: 'crm', toolName: 'whoami' });
    await m.listTools({ serverName: 'crm' });
    await m.callTool({ user: alice, serverName: 'notes', toolName: 'whoami' });
    expect(Object.fromEntries(m.sharedAcquires)).toEqual({ crm: 2 });
    expect(m.stats().appConnections).toBe(1);
  });
});

describe('wrapOperation and wrapToolCall', () => {
  it('wraps every operation, and wrapToolCall still wraps tool calls (inside wrapOperation)', async () => {
    const { factory } = inMemoryServers();
    const m = track(new examples.AuditedManager({ servers: SERVERS, connectionFactory: factory }));
    const user = alice;
    const serverName = 'notes';
    const r = await m.callTool({ user, serverName, toolName: 'whoami' });
    expect(r._meta).toEqual({ forUser: 'alice' });
    await m.listTools({ user, serverName });
    await m.listResources({ user, serverName });
    await m.listResourceTemplates({ user, serverName });
    await m.readResource({ user, serverName, uri: 'note://today' });
    await m.subscribeResource({ user, serverName, uri: 'note://today' });
    await m.unsubscribeResource({ user, serverName, uri: 'note://today' });
    await m.listPrompts({ user, serverName });
    const prompt = await m.getPrompt({ user, serverName, name: 'summarize', arguments: { style: 'bullets' } });
    expect(prompt.messages[0]?.content).toEqual({ type: 'text', text: 'summarize as bullets for t1/alice' });
    await expect(m.complete({ user, serverName, ref: { type: 'ref/prompt', name: 'none' }, argument: { name: 'a', value: '' } })).rejects.toBeDefined();
    await m.setLoggingLevel({ user, serverName, level: 'error' });
    await m.withConnection({ user, serverName }, () => undefined);
    expect(m.entries.map((e) => `${e.operation}:${e.ok}`)).toEqual([
      'callTool:true',
      'listTools:true',
      'listResources:true',
      'listResourceTemplates:true',
      'readResource:true',
      'subscribeResource:true',
      'unsubscribeResource:true',
      'listPrompts:true',
      'getPrompt:true',
      'complete:false',
      'setLoggingLevel:true',
      'withConnection:true',
    ]);
    expect(new Set(m.entries.map((e) => `${e.userId}/${e.scope}/${e.serverName}`))).toEqual(new Set(['alice/user/notes']));
  });

  it('gives the hooks the operation, its params, the config and the leased connection', async () => {
    const seen: { op: OperationContext; tool?: ToolCallContext }[] = [];
    class M extends MCPManager {
      protected override wrapOperation<T>(ctx: OperationContext, run: () => Promise<T>): Promise<T> {
        seen.push({ op: ctx });
        expect(ctx.connection.isConnected()).toBe(true);
        return run();
      }
      protected override wrapToolCall(ctx: ToolCallContext, next: () => Promise<CallToolResult>) {
        seen.at(-1)!.tool = ctx;
        return next();
      }
    }
    const { factory } = inMemoryServers();
    const m = track(new M({ servers: SERVERS, connectionFactory: factory }));
    await m.callTool({ user: alice, serverName: 'crm', toolName: 'whoami', arguments: { a: 1 } });
    await m.readResource({ serverName: 'crm', uri: 'note://today' });
    expect(seen[0]!.op).toMatchObject({ operation: 'callTool', params: { toolName: 'whoami', arguments: { a: 1 } }, serverName: 'crm', scope: 'app', user: alice });
    expect(seen[0]!.tool).toMatchObject({ toolName: 'whoami', scope: 'app' });
    expect(seen[1]!.op).toMatchObject({ operation: 'readResource', params: { uri: 'note://today' }, scope: 'app', user: undefined });
    expect((seen[1]!.op.config as ServerConfig & { command: string }).command).toBe('crm');
  });
});

describe('isUserScoped', () => {
  it('can make a registered shared server per user', async () => {
    class M extends MCPManager {
      protected override isUserScoped(serverName: string, config: ServerConfig) {
        return serverName === 'crm' || super.isUserScoped(serverName, config);
      }
    }
    const { factory } = inMemoryServers();
    const m = track(new M({ servers: SERVERS, connectionFactory: factory }));
    expect(text(await m.callTool({ user: alice, serverName: 'crm', toolName: 'whoami' }))).toBe('t1/alice');
  });
});

describe('withConnection and getConnection', () => {
  it('withConnection holds a lease for the callback: idle eviction waits for it; connection.client is the SDK client', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    const { factory } = inMemoryServers();
    const m = track(new MCPManager({ servers: SERVERS, connectionFactory: factory, idleTimeoutMs: 1000 }));
    const evicts: string[] = [];
    m.on('evict', (e) => evicts.push(`${e.userId}:${e.reason}`));
    let proceed!: () => void;
    const held = new Promise<void>((r) => (proceed = r));
    const done = m.withConnection({ user: alice, serverName: 'notes' }, async (connection) => {
      await held;
      return { instructions: connection.client?.getInstructions(), connected: connection.isConnected() };
    });
    await jest.advanceTimersByTimeAsync(5000);
    expect(evicts).toEqual([]);
    proceed();
    expect(await done).toEqual({ instructions: 'for t1/alice', connected: true });
    await jest.advanceTimersByTimeAsync(1001);
    expect(evicts).toEqual(['alice:idle']);
  });

  it('serverInfo: the example reads what the manager does not wrap', async () => {
    const { factory } = inMemoryServers();
    const m = track(new MCPManager({ servers: SERVERS, connectionFactory: factory }));
    expect(await examples.serverInfo(m, bob, 'notes')).toEqual({ version: { name: 'mem-notes', version: '1.0.0' }, instructions: 'for t2/bob' });
  });

  it('getConnection is not leased: the connection it returned is evicted when idle', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    const { factory } = inMemoryServers();
    const m = track(new MCPManager({ servers: SERVERS, connectionFactory: factory, idleTimeoutMs: 1000 }));
    const conn = await m.getConnection({ user: alice, serverName: 'notes' });
    await jest.advanceTimersByTimeAsync(1001);
    expect(conn.isConnected()).toBe(false);
  });
});

describe('subscriptions hold their connection', () => {
  it('a subscribed connection is not evicted when idle; the last unsubscribe lets it go', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    const { factory } = inMemoryServers();
    const m = track(new MCPManager({ servers: SERVERS, connectionFactory: factory, idleTimeoutMs: 1000 }));
    const updates: string[] = [];
    m.on('resourceUpdated', (e) => updates.push(`${e.userId}:${e.uri}`));
    const args = { user: alice, serverName: 'notes', uri: 'note://today' };
    await m.subscribeResource(args);
    await m.subscribeResource(args); // counted: two subscribers
    await jest.advanceTimersByTimeAsync(10_000);
    expect(m.stats().userConnections).toBe(1);
    await m.callTool({ user: alice, serverName: 'notes', toolName: 'notify' });
    expect(updates).toEqual(['alice:note://today']);
    await m.unsubscribeResource(args);
    await jest.advanceTimersByTimeAsync(10_000);
    expect(m.stats().userConnections).toBe(1);
    await m.unsubscribeResource(args);
    await jest.advanceTimersByTimeAsync(1001);
    expect(m.stats().userConnections).toBe(0);
  });

  it('disconnectUser ends the subscription and closes the connection', async () => {
    const { factory, state } = inMemoryServers();
    const m = track(new MCPManager({ servers: SERVERS, connectionFactory: factory }));
    await m.subscribeResource({ user: alice, serverName: 'notes', uri: 'note://today' });
    const closed = new Promise<void>((resolve) => m.once('disconnect', () => resolve()));
    await m.disconnectUser('alice', 't1');
    await closed;
    expect(m.stats().userConnections).toBe(0);
    expect(state.live.size).toBe(0);
  });
});

describe('resolveServerConfig answers', () => {
  it('a raw config (not parsed) is a TypeError naming parseServerConfig, and nothing connects', async () => {
    class M extends MCPManager {
      protected override resolveServerConfig(): ServerConfig {
        return { command: 'notes' } as unknown as ServerConfig; // straight from a database row
      }
    }
    const { factory, state } = inMemoryServers();
    const m = track(new M({ servers: SERVERS, connectionFactory: factory }));
    await expect(m.callTool({ user: alice, serverName: 'notes', toolName: 'whoami' })).rejects.toThrow(
      new TypeError('resolveServerConfig("notes") must return a validated config (parseServerConfig(raw)) or undefined'),
    );
    expect(state.live.size).toBe(0);
  });
});

describe('a config change ends what holds the old connection', () => {
  const V2 = { command: 'notes', args: ['--user', '{{user.id}}', '--v2'] };

  it('a connect in flight during upsertServer serves its waiter, then leaves as stale: a subscribe on it is refused, nothing stays on the old config', async () => {
    const { factory, state } = inMemoryServers();
    let open!: () => void;
    state.gate = new Promise<void>((r) => (open = r));
    const entered = new Promise<void>((r) => (state.entered = r));
    const m = track(new MCPManager({ servers: SERVERS, connectionFactory: factory }));
    const evicts: string[] = [];
    m.on('evict', (e) => evicts.push(`${e.serverName}:${e.userId}:${e.reason}`));
    const closed = new Promise<void>((resolve) => m.once('disconnect', () => resolve()));
    const sub = m.subscribeResource({ user: alice, serverName: 'notes', uri: 'note://today' }).then(
      () => 'subscribed',
      (e: SwitchboardError) => e.code,
    );
    await entered;
    m.upsertServer('notes', V2);
    state.gate = undefined;
    open();
    expect(await sub).toBe('connection_closed');
    expect(evicts).toEqual(['notes:alice:stale']);
    await closed;
    expect(state.live.size).toBe(0);
    // The next call connects with the new config.
    expect(text(await m.callTool({ user: alice, serverName: 'notes', toolName: 'whoami' }))).toBe('t1/alice --user alice --v2');
  });

  it('a call that resolved the old config before upsertServer (async resolveServerConfig) resolves again: no connection is made with the old one', async () => {
    class M extends MCPManager {
      hold: Promise<void> | undefined;
      protected override async resolveServerConfig(serverName: string, user: UserContext | undefined) {
        const config = await super.resolveServerConfig(serverName, user);
        const hold = this.hold;
        this.hold = undefined;
        if (hold) await hold;
        return config;
      }
    }
    const { factory, state } = inMemoryServers();
    const m = track(new M({ servers: SERVERS, connectionFactory: factory }));
    let release!: () => void;
    m.hold = new Promise<void>((r) => (release = r));
    const call = m.callTool({ user: alice, serverName: 'notes', toolName: 'whoami' });
    m.upsertServer('notes', V2);
    release();
    expect(text(await call)).toBe('t1/alice --user alice --v2');
    expect(state.connects).toBe(1);
  });

  it('a breaker whose success() throws loses no connection: the call goes through, the error is an error event', async () => {
    class M extends MCPManager {
      protected override createCircuitBreaker(options: CircuitBreakerOptions): ConnectionCircuitBreaker {
        const breaker = super.createCircuitBreaker(options);
        return {
          check: (n) => breaker.check(n),
          success: () => {
            throw new Error('success-threw');
          },
          failure: (n, p, e, t) => breaker.failure(n, p, e, t),
          reset: (n) => breaker.reset(n),
        };
      }
    }
    const { factory, state } = inMemoryServers();
    const m = new M({ servers: SERVERS, connectionFactory: factory });
    const errors: string[] = [];
    m.on('error', (e) => errors.push((e.error as Error).message));
    expect(text(await m.callTool({ user: alice, serverName: 'notes', toolName: 'whoami' }))).toBe('t1/alice --user alice');
    expect(errors).toEqual(['success-threw']);
    await m.close();
    expect(state.live.size).toBe(0);
  });

  it('upsertServer with a changed config evicts a subscribed connection as stale at once; the next subscribe uses the new config', async () => {
    const { factory, state } = inMemoryServers();
    const m = track(new MCPManager({ servers: SERVERS, connectionFactory: factory }));
    const evicts: string[] = [];
    m.on('evict', (e) => evicts.push(`${e.serverName}:${e.userId}:${e.reason}`));
    const args = { user: alice, serverName: 'notes', uri: 'note://today' };
    await m.subscribeResource(args);
    const old = await m.getConnection({ user: alice, serverName: 'notes' });
    const closed = new Promise<void>((resolve) => m.once('disconnect', () => resolve()));
    m.upsertServer('notes', { command: 'notes', args: ['--user', '{{user.id}}', '--v2'] });
    expect(evicts).toEqual(['notes:alice:stale']);
    await closed;
    expect(old.isConnected()).toBe(false);
    expect(state.live.size).toBe(0);
    // Subscribing again connects with the new config; an unchanged upsert evicts nothing.
    await m.subscribeResource(args);
    expect(state.live.size).toBe(1);
    m.upsertServer('notes', { command: 'notes', args: ['--user', '{{user.id}}', '--v2'] });
    expect(evicts).toEqual(['notes:alice:stale']);
    expect(m.stats().userConnections).toBe(1);
  });
});

describe('events, sampling and roots', () => {
  it('reports notifications with the connection user; one listener per connection, removed when it closes', async () => {
    const { factory } = inMemoryServers();
    const m = track(new MCPManager({ servers: SERVERS, connectionFactory: factory }));
    const pushed: [string, object][] = [];
    examples.forwardServerEvents(m, (userId, message) => pushed.push([userId, message]));
    const logs: object[] = [];
    m.on('serverLog', (e) => logs.push(e));
    for (let i = 0; i < 3; i++) await m.callTool({ user: alice, serverName: 'notes', toolName: 'notify' });
    await m.callTool({ user: bob, serverName: 'notes', toolName: 'notify' });
    expect(pushed.filter(([u]) => u === 'alice')).toHaveLength(6);
    expect(pushed.filter(([u]) => u === 'bob')).toEqual([
      ['bob', { type: 'tools-changed', server: 'notes' }],
      ['bob', { type: 'resource-updated', server: 'notes', uri: 'note://today' }],
    ]);
    expect(logs.at(-1)).toEqual({ serverName: 'notes', scope: 'user', userId: 'bob', tenantId: 't2', level: 'info', logger: 'mem', data: 't2/bob' });

    const conn = await m.getConnection({ user: alice, serverName: 'notes' });
    for (const event of ['toolsChanged', 'resourcesChanged', 'promptsChanged', 'resourceUpdated', 'serverLog'] as const) expect(conn.listenerCount(event)).toBe(1);
    await m.disconnectUser('alice', 't1');
    for (const event of ['toolsChanged', 'resourcesChanged', 'promptsChanged', 'resourceUpdated', 'serverLog'] as const) expect(conn.listenerCount(event)).toBe(0);
  });

  it('forwards sampling and roots requests with the user of the connection; declared only when given', async () => {
    const { factory } = inMemoryServers();
    const complete = jest.fn<Complete>(async ({ userId, serverName }) => `answer for ${userId} from ${serverName}`);
    const m = track(examples.createManagerWithSampling({ servers: SERVERS, connectionFactory: factory }, complete));
    expect(text(await m.callTool({ user: alice, serverName: 'notes', toolName: 'sample' }))).toBe('answer for alice from notes');
    expect(text(await m.callTool({ user: bob, serverName: 'notes', toolName: 'sample' }))).toBe('answer for bob from notes');
    expect(complete.mock.calls.map(([r]) => [r.userId, r.prompt, r.maxTokens])).toEqual([
      ['alice', 'hi', 5],
      ['bob', 'hi', 5],
    ]);
    expect(text(await m.callTool({ user: bob, serverName: 'notes', toolName: 'roots' }))).toBe('file:///workspaces/bob');
    expect(text(await m.callTool({ user: bob, serverName: 'notes', toolName: 'caps' }))).toBe('roots,sampling');

    const plain = track(new MCPManager({ servers: SERVERS, connectionFactory: inMemoryServers().factory }));
    expect(text(await plain.callTool({ user: alice, serverName: 'notes', toolName: 'caps' }))).toBe('');
    const r = await plain.callTool({ user: alice, serverName: 'notes', toolName: 'sample' });
    expect(r.isError).toBe(true);
    expect(text(r)).toMatch(/Method not found/);
  });

  it('refuses a non-function onSampling or roots with a TypeError naming it', () => {
    expect(() => new MCPManager({ servers: {}, onSampling: 1 as never })).toThrow(/MCPManager: onSampling must be a function/);
    expect(() => new MCPManager({ servers: {}, roots: 'x' as never })).toThrow(/MCPManager: roots must be a function/);
  });
});
