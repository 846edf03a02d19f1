/**
 * The manager's injectable collaborators beyond the pools (docs/extending.md, "Your own connection factory" and
 * "Your own circuit breaker"): a subclass's `createCircuitBreaker` is what the manager consults before every
 * connect and tells how each ended, and an `MCPConnectionFactory` subclass injected as `connectionFactory` makes
 * every connection. The examples of docs/examples/extending.ts run here against in-memory MCP servers (one real
 * McpServer per connection, which knows the user its connection was made for).
 */
import { jest } from '@jest/globals';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import * as switchboard from '../../src/index.js';
import { MCPManager, type ConnectionCircuitBreaker, type MCPManagerOptions } from '../../src/MCPManager.js';
import { MCPConnectionFactory } from '../../src/MCPConnectionFactory.js';
import { SwitchboardError } from '../../src/errors.js';
import type { CircuitBreakerOptions } from '../../src/pool/CircuitBreaker.js';
import type { TransportContext } from '../../src/transport/types.js';
import type { UserContext } from '../../src/types.js';
import { rejectionOf } from '../support/errors.js';

// The example imports the package by name: resolve it to the sources (as docs.test.ts does).
jest.unstable_mockModule('mcp-switchboard', () => switchboard, { virtual: true });
const examples = await import('../../docs/examples/extending.js');

/** In-memory servers; `failConnects` makes the next connects fail as an unreachable server would. */
function inMemoryServers() {
  const state = { connects: 0, failConnects: 0, contexts: [] as TransportContext[] };
  const createTransport = async (ctx: TransportContext) => {
    state.connects++;
    state.contexts.push(ctx);
    if (state.failConnects > 0) {
      state.failConnects--;
      throw new SwitchboardError('transport_error', 'connection refused', { retryable: true });
    }
    const identity = ctx.user ? `${ctx.user.tenantId ?? '-'}/${ctx.user.id}` : 'app';
    const server = new McpServer({ name: `mem-${ctx.serverName}`, version: '1.0.0' });
    server.registerTool('whoami', {}, async () => ({ content: [{ type: 'text', text: identity }] }));
    server.registerTool('caps', {}, async () => ({ content: [{ type: 'text', text: Object.keys(server.server.getClientCapabilities() ?? {}).sort().join(',') }] }));
    const [client, srv] = InMemoryTransport.createLinkedPair();
    await server.connect(srv);
    return client;
  };
  return { state, createTransport, factory: new MCPConnectionFactory({ createTransport }) };
}

const text = (r: CallToolResult) => (r.content[0] as { text: string }).text;
const SERVERS = { shared: { command: 'shared-server' }, perUser: { command: 'per-user', args: ['{{user.id}}'] } };
const alice: UserContext = { id: 'alice', tenantId: 't1' };
const bob: UserContext = { id: 'bob', tenantId: 't2' };

let cleanups: (() => Promise<void>)[] = [];
function track<M extends MCPManager>(m: M): M {
  cleanups.push(() => m.close());
  return m;
}
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

/** A breaker of the test's own: records what the manager tells it; `open` servers are refused, `trials` are trials. */
class RecordingManager extends MCPManager {
  // Initialized after super(): a breaker made in the constructor would find these undefined.
  readonly made: CircuitBreakerOptions[] = [];
  readonly log: string[] = [];
  readonly failures: { serverName: string; principal: string; error: unknown; trial: boolean }[] = [];
  readonly open = new Set<string>();
  readonly trials = new Set<string>();

  protected override createCircuitBreaker(options: CircuitBreakerOptions): ConnectionCircuitBreaker {
    this.made.push(options);
    return {
      check: (serverName) => {
        this.log.push(`check ${serverName}`);
        if (this.open.has(serverName)) throw new SwitchboardError('circuit_open', `"${serverName}" is open`, { serverName, retryable: true });
        return this.trials.has(serverName);
      },
      success: (serverName) => void this.log.push(`success ${serverName}`),
      failure: (serverName, principal, error, trial) => {
        this.log.push(`failure ${serverName}`);
        this.failures.push({ serverName, principal, error, trial });
      },
      reset: (serverName) => void this.log.push(`reset ${serverName}`),
    };
  }
}

describe('createCircuitBreaker: the manager consults the breaker a subclass makes', () => {
  it('is made once, at the first connect, from the circuitBreaker option; each connect is checked and its outcome reported', async () => {
    const { factory } = inMemoryServers();
    const m = track(new RecordingManager({ servers: SERVERS, connectionFactory: factory, circuitBreaker: { failureThreshold: 2 } }));
    expect(m.made).toEqual([]); // not in the constructor
    expect(text(await m.callTool({ serverName: 'shared', toolName: 'whoami' }))).toBe('app');
    expect(text(await m.callTool({ user: alice, serverName: 'perUser', toolName: 'whoami' }))).toBe('t1/alice');
    expect(m.log).toEqual(['check shared', 'success shared', 'check perUser', 'success perUser']);
    // Calls on open connections are not the breaker's business: only connects are.
    await m.callTool({ user: alice, serverName: 'perUser', toolName: 'whoami' });
    await m.listTools({ serverName: 'shared' });
    expect(m.log).toHaveLength(4);
    expect(m.made).toEqual([{ failureThreshold: 2 }]);
  });

  it('records each failed connect with its error and a principal per user (and one for the app)', async () => {
    const { factory, state } = inMemoryServers();
    const m = track(new RecordingManager({ servers: SERVERS, connectionFactory: factory }));
    state.failConnects = 4;
    for (const user of [alice, bob, alice]) {
      await expect(m.callTool({ user, serverName: 'perUser', toolName: 'whoami' })).rejects.toMatchObject({ code: 'transport_error' });
    }
    await expect(m.callTool({ serverName: 'shared', toolName: 'whoami' })).rejects.toMatchObject({ code: 'transport_error' });
    expect(m.failures.map((f) => [f.serverName, (f.error as SwitchboardError).code, f.trial])).toEqual([
      ['perUser', 'transport_error', false],
      ['perUser', 'transport_error', false],
      ['perUser', 'transport_error', false],
      ['shared', 'transport_error', false],
    ]);
    const [a1, b, a2, app] = m.failures.map((f) => f.principal);
    expect(a1).toBe(a2);
    expect(new Set([a1, b, app]).size).toBe(3);
    for (const p of [a1, b, app]) expect(typeof p).toBe('string');
    expect(m.log.filter((l) => l.startsWith('success'))).toEqual([]);
  });

  it('an open breaker refuses a connect with its typed error and nothing is tried; open connections keep working', async () => {
    const { factory, state } = inMemoryServers();
    const m = track(new RecordingManager({ servers: SERVERS, connectionFactory: factory }));
    expect(text(await m.callTool({ user: alice, serverName: 'perUser', toolName: 'whoami' }))).toBe('t1/alice');
    m.open.add('perUser');
    const connects = state.connects;
    const err = await rejectionOf(m.callTool({ user: bob, serverName: 'perUser', toolName: 'whoami' }), SwitchboardError);
    expect(err).toMatchObject({ code: 'circuit_open', retryable: true, serverName: 'perUser' });
    expect(state.connects).toBe(connects); // no transport was made
    expect(m.failures).toEqual([]); // a refusal is not a failure of the server
    expect(text(await m.callTool({ user: alice, serverName: 'perUser', toolName: 'whoami' }))).toBe('t1/alice');
    m.open.delete('perUser');
    expect(text(await m.callTool({ user: bob, serverName: 'perUser', toolName: 'whoami' }))).toBe('t2/bob');
  });

  it('hands what check returned back to failure as trial', async () => {
    const { factory, state } = inMemoryServers();
    const m = track(new RecordingManager({ servers: SERVERS, connectionFactory: factory }));
    m.trials.add('shared');
    state.failConnects = 1;
    await expect(m.callTool({ serverName: 'shared', toolName: 'whoami' })).rejects.toMatchObject({ code: 'transport_error' });
    expect(m.failures.map((f) => f.trial)).toEqual([true]);
  });

  it('is reset for a server whose config changes or which is removed', async () => {
    const { factory } = inMemoryServers();
    const m = track(new RecordingManager({ servers: SERVERS, connectionFactory: factory }));
    await m.callTool({ serverName: 'shared', toolName: 'whoami' });
    m.upsertServer('shared', { command: 'shared-server', args: ['--v2'] });
    await m.removeServer('perUser');
    expect(m.log.slice(2)).toEqual(['reset shared', 'reset perUser']);
  });

  it('passes the circuitBreaker option to super.createCircuitBreaker: the manager’s own breaker, with changed options', async () => {
    class StrictManager extends MCPManager {
      protected override createCircuitBreaker(options: CircuitBreakerOptions): ConnectionCircuitBreaker {
        return super.createCircuitBreaker({ ...options, failureThreshold: 1 });
      }
    }
    const { factory, state } = inMemoryServers();
    const m = track(new StrictManager({ servers: SERVERS, connectionFactory: factory, circuitBreaker: { baseBackoffMs: 60_000, maxBackoffMs: 60_000 } }));
    state.failConnects = 1;
    await expect(m.callTool({ serverName: 'shared', toolName: 'whoami' })).rejects.toMatchObject({ code: 'transport_error' });
    const connects = state.connects;
    await expect(m.callTool({ serverName: 'shared', toolName: 'whoami' })).rejects.toMatchObject({ code: 'circuit_open', retryable: true });
    expect(state.connects).toBe(connects);
  });

  it('circuitBreaker: false makes none: connects keep going through', async () => {
    const { factory, state } = inMemoryServers();
    const m = track(new RecordingManager({ servers: SERVERS, connectionFactory: factory, circuitBreaker: false }));
    state.failConnects = 8;
    for (let i = 0; i < 8; i++) await expect(m.callTool({ serverName: 'shared', toolName: 'whoami' })).rejects.toMatchObject({ code: 'transport_error' });
    expect(text(await m.callTool({ serverName: 'shared', toolName: 'whoami' }))).toBe('app');
    expect([m.made, m.log, state.connects]).toEqual([[], [], 9]);
  });

  it('a bad circuitBreaker option is a TypeError from the constructor naming it; a non-breaker from the override one at the first connect', async () => {
    const { factory, state } = inMemoryServers();
    expect(() => new RecordingManager({ servers: SERVERS, connectionFactory: factory, circuitBreaker: { failureThreshold: 0 } })).toThrow(
      new TypeError('MCPManager: circuitBreaker.failureThreshold must be a positive integer'),
    );
    expect(() => new MCPManager({ servers: SERVERS, connectionFactory: factory, circuitBreaker: { baseBackoffMs: 5000, maxBackoffMs: 10 } })).toThrow(/^MCPManager: circuitBreaker\.baseBackoffMs/);
    class Broken extends MCPManager {
      protected override createCircuitBreaker(): ConnectionCircuitBreaker {
        return { check: () => false } as unknown as ConnectionCircuitBreaker;
      }
    }
    const m = track(new Broken({ servers: SERVERS, connectionFactory: factory }));
    await expect(m.callTool({ serverName: 'shared', toolName: 'whoami' })).rejects.toThrow(
      new TypeError('MCPManager: createCircuitBreaker must return a ConnectionCircuitBreaker (its success is not a function)'),
    );
    expect(state.connects).toBe(0);
  });
});

describe('MaintenanceAwareManager (docs/examples/extending.ts)', () => {
  it('refuses connects to a server marked down, as circuit_open, and still backs off a failing one through the manager’s breaker', async () => {
    const { factory, state } = inMemoryServers();
    const down = new Set<string>(['perUser']);
    const m = track(
      new examples.MaintenanceAwareManager({ servers: SERVERS, connectionFactory: factory, circuitBreaker: { failureThreshold: 2, baseBackoffMs: 60_000, maxBackoffMs: 60_000 } }, { isDown: (s) => down.has(s) }),
    );
    const err = await rejectionOf(m.callTool({ user: alice, serverName: 'perUser', toolName: 'whoami' }), SwitchboardError);
    expect(err).toMatchObject({ code: 'circuit_open', retryable: true, serverName: 'perUser' });
    expect(err.message).toMatch(/maintenance/);
    expect(state.connects).toBe(0);
    down.clear();
    expect(text(await m.callTool({ user: alice, serverName: 'perUser', toolName: 'whoami' }))).toBe('t1/alice');

    // Delegated to the manager's own breaker: two failed shared connects open the circuit.
    state.failConnects = 2;
    for (let i = 0; i < 2; i++) await expect(m.callTool({ serverName: 'shared', toolName: 'whoami' })).rejects.toMatchObject({ code: 'transport_error' });
    const connects = state.connects;
    const open = await rejectionOf(m.callTool({ serverName: 'shared', toolName: 'whoami' }), SwitchboardError);
    expect(open.code).toBe('circuit_open');
    expect(open.message).not.toMatch(/maintenance/);
    expect(state.connects).toBe(connects);
  });
});

describe('connectionFactory: an MCPConnectionFactory subclass (TimedConnectionFactory, docs/examples/extending.ts)', () => {
  it('makes every connection, user and shared, with the request the manager built (user, handlers); the manager does not close it', async () => {
    const { createTransport, state } = inMemoryServers();
    const options: MCPManagerOptions = {
      servers: SERVERS,
      onSampling: async () => ({ role: 'assistant', model: 'm', content: { type: 'text', text: '' } }),
    };
    const { manager, factory } = examples.createTimedManager(options, { createTransport });
    cleanups.push(() => factory.close());
    track(manager);
    expect(factory).toBeInstanceOf(MCPConnectionFactory);
    expect(text(await manager.callTool({ user: alice, serverName: 'perUser', toolName: 'whoami' }))).toBe('t1/alice');
    expect(text(await manager.callTool({ user: bob, serverName: 'perUser', toolName: 'whoami' }))).toBe('t2/bob');
    // The manager's handlers reached the connection through create(): sampling is declared.
    expect(text(await manager.callTool({ serverName: 'shared', toolName: 'caps' }))).toBe('sampling');
    state.failConnects = 1;
    await expect(manager.callTool({ user: { id: 'carol' }, serverName: 'perUser', toolName: 'whoami' })).rejects.toMatchObject({ code: 'transport_error' });
    expect(factory.connects.map(({ serverName, userId, ok }) => [serverName, userId, ok])).toEqual([
      ['perUser', 'alice', true],
      ['perUser', 'bob', true],
      ['shared', undefined, true],
      ['perUser', 'carol', false],
    ]);
    expect(factory.connects.every((c) => c.ms >= 0)).toBe(true);
    expect(state.contexts.map((c) => c.user?.id)).toEqual(['alice', 'bob', undefined, 'carol']);

    // Injected, so the host's to close: still usable after the manager closed.
    await manager.close();
    const conn = await factory.create({ serverName: 'shared', config: switchboard.parseServerConfig('shared', SERVERS.shared) });
    expect(text(await conn.callTool('whoami'))).toBe('app');
    await conn.close();
  });
});
