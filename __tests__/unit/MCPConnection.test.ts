import { jest } from '@jest/globals';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { CallToolRequestSchema, ListToolsRequestSchema, McpError, ErrorCode, type JSONRPCMessage, type Tool } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { MCPConnection, type ConnectionState, type MCPConnectionOptions } from '../../src/MCPConnection.js';
import { backoffDelay, resolveReconnectOptions } from '../../src/connection/backoff.js';
import { OperationScope } from '../../src/connection/operationScope.js';
import { OboError, SwitchboardError } from '../../src/errors.js';
import { parseServerConfig } from '../../src/config/index.js';
import { createInMemoryServerFactory, type InMemoryServerFactory } from '../../src/testing/inMemory.js';
import { rejectionOf } from '../support/errors.js';

const config = parseServerConfig('mem', { type: 'stdio', command: 'unused' });

/** A promise whose settling the test controls. */
function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Server-side hooks of the test McpServer. */
interface Hooks {
  /** The `block` tool waits on this; replaced by tests. */
  gate: ReturnType<typeof deferred<void>>;
  /** Signals of `block` calls, to see cancellation arrive. */
  blockSignals: AbortSignal[];
  /** Resolves when a `block` call starts. */
  blockStarted: ReturnType<typeof deferred<void>>;
}

function makeServer(hooks: Hooks): McpServer {
  const server = new McpServer({ name: 'unit', version: '1.0.0' });
  server.registerTool('echo', { inputSchema: { text: z.string() } }, async ({ text }) => ({ content: [{ type: 'text', text }] }));
  server.registerTool('block', {}, async (extra) => {
    hooks.blockSignals.push(extra.signal);
    hooks.blockStarted.resolve();
    await Promise.race([hooks.gate.promise, new Promise((resolve) => extra.signal.addEventListener('abort', resolve))]);
    return { content: [{ type: 'text', text: 'released' }] };
  });
  server.registerTool('toolError', {}, async () => ({ isError: true, content: [{ type: 'text', text: 'tool failed' }] }));
  return server;
}

function newHooks(): Hooks {
  return { gate: deferred(), blockSignals: [], blockStarted: deferred() };
}

function recordStates(conn: MCPConnection): ConnectionState[] {
  const states: ConnectionState[] = [conn.state];
  conn.on('state', ({ to }) => states.push(to));
  return states;
}

/** The rejection of `p`, checked to be a `SwitchboardError`. */
const rejection = (p: Promise<unknown>) => rejectionOf(p, SwitchboardError);

/**
 * A transport factory over `servers` whose first `times` tools/call sends (across all its transports) throw
 * `error()` instead of reaching the server; everything else goes through.
 */
function failingToolsCalls(servers: InMemoryServerFactory, times: number, error: () => Error): () => Promise<Transport> {
  let left = times;
  return async () => {
    const t = await servers.createTransport();
    const send = t.send.bind(t);
    t.send = async (message: JSONRPCMessage, opts) => {
      // Like a streamable HTTP transport after initialize: a 404 / 400 means "session unknown" only with a session
      // (set before initialize, the SDK would take the session as resumed and skip initialize).
      if ('method' in message && message.method === 'notifications/initialized') t.sessionId = 'session-1';
      if (left > 0 && 'method' in message && message.method === 'tools/call') {
        left--;
        throw error();
      }
      return send(message, opts);
    };
    return t;
  };
}

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  jest.useRealTimers();
  for (const o of open.splice(0).reverse()) await o.close();
});

function setup(extra: Partial<MCPConnectionOptions> = {}): { conn: MCPConnection; hooks: Hooks; servers: InMemoryServerFactory } {
  const hooks = newHooks();
  const servers = createInMemoryServerFactory(() => makeServer(hooks));
  open.push(servers);
  const conn = new MCPConnection({ serverName: 'mem', config, createTransport: servers.createTransport, ...extra });
  open.push(conn);
  return { conn, hooks, servers };
}

describe('backoffDelay', () => {
  it('is random() * min(max, base * 2^attempt)', () => {
    const opts = { baseDelayMs: 250, maxDelayMs: 10_000 };
    expect(backoffDelay(0, opts, () => 0.5)).toBe(125);
    expect(backoffDelay(3, opts, () => 0.5)).toBe(1000);
    expect(backoffDelay(10, opts, () => 0.5)).toBe(5000);
    expect(backoffDelay(2000, opts, () => 0.999)).toBe(9990);
    expect(backoffDelay(4, opts, () => 0)).toBe(0);
  });

  it('refuses bad options loudly', () => {
    expect(() => resolveReconnectOptions({ maxAttempts: -1 })).toThrow(TypeError);
    expect(() => resolveReconnectOptions({ baseDelayMs: 100, maxDelayMs: 10 })).toThrow(TypeError);
    expect(resolveReconnectOptions()).toEqual({ maxAttempts: 5, minDelayMs: 100, baseDelayMs: 250, maxDelayMs: 10_000, healthyAfterMs: 30_000 });
    expect(resolveReconnectOptions({ baseDelayMs: 10, maxDelayMs: 40 }).minDelayMs).toBe(10);
    expect(() => resolveReconnectOptions({ minDelayMs: 500, maxDelayMs: 100, baseDelayMs: 10 })).toThrow(/reconnect\.maxDelayMs/);
  });
});

describe('OperationScope', () => {
  it('ends on the caller signal, the deadline or close, whichever comes first, and says which', async () => {
    const caller = new AbortController();
    const scope = new OperationScope({ timeoutMs: 60_000, signal: caller.signal, toError: (r) => new Error(r) });
    const pending = scope.race(new Promise(() => {}));
    caller.abort();
    await expect(pending).rejects.toThrow('aborted');
    expect(scope.endedBy).toBe('aborted');
    expect(scope.signal.aborted).toBe(true);

    const closing = new AbortController();
    closing.abort();
    const closed = new OperationScope({ timeoutMs: 60_000, closeSignal: closing.signal, toError: (r) => new Error(r) });
    expect(() => closed.throwIfEnded()).toThrow('closed');
    closed.dispose();

    const timed = new OperationScope({ timeoutMs: 1, toError: (r) => new Error(r) });
    await expect(timed.race(new Promise(() => {}))).rejects.toThrow('timeout');
  });
});

describe('MCPConnection', () => {
  it('goes idle → connecting → connected → closed, and close() is idempotent', async () => {
    const { conn } = setup();
    const states = recordStates(conn);
    const closes: unknown[] = [];
    conn.on('close', (e) => closes.push(e));
    expect(conn.isConnected()).toBe(false);
    await conn.connect();
    expect(conn.isConnected()).toBe(true);
    expect(conn.sessionId).toBeUndefined();
    const a = conn.close();
    const b = conn.close();
    expect(a).toBe(b);
    await a;
    await conn.close();
    expect(states).toEqual(['idle', 'connecting', 'connected', 'closed']);
    expect(closes).toEqual([{}]);
    expect((await rejection(conn.callTool('echo', { text: 'x' }))).code).toBe('connection_closed');
    expect((await rejection(conn.connect())).code).toBe('connection_closed');
  });

  it('refuses calls before connect() with not_connected', async () => {
    const { conn } = setup();
    expect((await rejection(conn.callTool('echo', { text: 'x' }))).code).toBe('not_connected');
  });

  it('calls tools and lists them; a tool failure is a result, a JSON-RPC error a server_error', async () => {
    const { conn } = setup();
    await conn.connect();
    const result = await conn.callTool('echo', { text: 'hello' });
    expect(result.content).toEqual([{ type: 'text', text: 'hello' }]);
    const tools = await conn.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(['block', 'echo', 'toolError']);
    expect((await conn.callTool('toolError')).isError).toBe(true);
  });

  it('wraps a JSON-RPC error answer in server_error, keeping the McpError as cause', async () => {
    const servers = createInMemoryServerFactory(() => {
      const server = new Server({ name: 'rpc', version: '1.0.0' }, { capabilities: { tools: {} } });
      server.setRequestHandler(CallToolRequestSchema, async () => {
        throw new McpError(ErrorCode.InvalidParams, 'nope');
      });
      return server;
    });
    open.push(servers);
    const conn = new MCPConnection({ serverName: 'rpc', config, createTransport: servers.createTransport });
    open.push(conn);
    await conn.connect();
    const err = await rejection(conn.callTool('anything'));
    expect(err).toBeInstanceOf(SwitchboardError);
    expect(err.code).toBe('server_error');
    expect(err.serverName).toBe('rpc');
    expect(err.cause).toBeInstanceOf(McpError);
    expect((err.cause as McpError).code).toBe(ErrorCode.InvalidParams);
    expect(conn.isConnected()).toBe(true);
  });

  it('waits for a connect in progress before calling', async () => {
    const { conn } = setup();
    const connecting = conn.connect();
    const call = conn.callTool('echo', { text: 'early' });
    await connecting;
    expect((await call).content).toEqual([{ type: 'text', text: 'early' }]);
  });

  it('an aborted call rejects promptly with aborted, the server sees the cancellation, the connection stays usable', async () => {
    const { conn, hooks } = setup();
    await conn.connect();
    const controller = new AbortController();
    const call = conn.callTool('block', {}, { signal: controller.signal });
    await hooks.blockStarted.promise;
    controller.abort();
    const err = await rejection(call);
    expect(err.code).toBe('aborted');
    expect(err.retryable).toBe(false);
    // notifications/cancelled reached the server: the handler's signal aborted.
    await new Promise<void>((resolve) => {
      const s = hooks.blockSignals[0]!;
      if (s.aborted) resolve();
      else s.addEventListener('abort', () => resolve());
    });
    expect((await conn.callTool('echo', { text: 'still here' })).content).toEqual([{ type: 'text', text: 'still here' }]);
    expect(conn.state).toBe('connected');
  });

  it('an already aborted signal rejects before anything is sent', async () => {
    const { conn, hooks } = setup();
    await conn.connect();
    const err = await rejection(conn.callTool('block', {}, { signal: AbortSignal.abort() }));
    expect(err.code).toBe('aborted');
    expect(hooks.blockSignals).toHaveLength(0);
  });

  it('a call past its timeout rejects with a retryable call_timeout and cancels on the server', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    const { conn, hooks } = setup();
    await conn.connect();
    const call = conn.callTool('block', {}, { timeoutMs: 5_000 });
    const outcome = rejection(call);
    await hooks.blockStarted.promise;
    await jest.advanceTimersByTimeAsync(4_999);
    expect(hooks.blockSignals[0]!.aborted).toBe(false);
    await jest.advanceTimersByTimeAsync(1);
    const err = await outcome;
    expect(err.code).toBe('call_timeout');
    expect(err.message).toMatch(/timed out after 5000 ms \(timeoutMs\)$/);
    expect(err.retryable).toBe(true);
    expect(hooks.blockSignals[0]!.aborted).toBe(true);
    expect(conn.isConnected()).toBe(true);
    expect((await conn.callTool('echo', { text: 'ok' })).isError).toBeFalsy();
  });

  it('uses config.timeoutMs as the default call timeout', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    const hooks = newHooks();
    const servers = createInMemoryServerFactory(() => makeServer(hooks));
    open.push(servers);
    const conn = new MCPConnection({ serverName: 'mem', config: { ...config, timeoutMs: 300 }, createTransport: servers.createTransport });
    open.push(conn);
    await conn.connect();
    const outcome = rejection(conn.callTool('block'));
    await hooks.blockStarted.promise;
    await jest.advanceTimersByTimeAsync(300);
    expect((await outcome).code).toBe('call_timeout');
  });

  it('connect times out (initTimeoutMs) when initialize is never answered, and the connection closes', async () => {
    const closedTransports: number[] = [];
    const silent = (): Transport => ({
      async start() {},
      async send() {},
      async close() {
        closedTransports.push(1);
        this.onclose?.();
      },
    });
    const conn = new MCPConnection({ serverName: 'silent', config: { ...config, initTimeoutMs: 40 }, createTransport: async () => silent() });
    open.push(conn);
    const states = recordStates(conn);
    const closes: { error?: SwitchboardError }[] = [];
    conn.on('close', (e) => closes.push(e));
    const err = await rejection(conn.connect());
    expect(err.code).toBe('connect_timeout');
    expect(err.retryable).toBe(true);
    expect(states).toEqual(['idle', 'connecting', 'closed']);
    expect(closes[0]?.error).toBe(err);
    expect(closedTransports.length).toBeGreaterThanOrEqual(1);
  });

  it('connect honours its signal, also while the transport is being created', async () => {
    const gate = deferred<Transport>();
    const lateTransportClosed = deferred();
    const conn = new MCPConnection({ serverName: 'slow', config, createTransport: () => gate.promise });
    open.push(conn);
    const controller = new AbortController();
    const connecting = conn.connect({ signal: controller.signal });
    controller.abort();
    expect((await rejection(connecting)).code).toBe('aborted');
    // The transport that arrives late is closed, not leaked.
    gate.resolve({ async start() {}, async send() {}, close: async () => lateTransportClosed.resolve() });
    await lateTransportClosed.promise;
    expect(conn.state).toBe('closed');
  });

  it('passes an auth provider error through unchanged, at connect and on a call', async () => {
    const oboError = new OboError('exchange_failed', 'IdP refused the exchange');
    const failing = new MCPConnection({ serverName: 'obo', config, createTransport: async () => Promise.reject(oboError) });
    open.push(failing);
    expect(await rejection(failing.connect())).toBe(oboError);

    // A transport whose fetch (here: send) throws the provider's error for tools/call only.
    const hooks = newHooks();
    const servers = createInMemoryServerFactory(() => makeServer(hooks));
    open.push(servers);
    const callError = new OboError('missing_upstream_token', 'no upstream token');
    const conn = new MCPConnection({
      serverName: 'obo',
      config,
      createTransport: failingToolsCalls(servers, Infinity, () => callError),
    });
    open.push(conn);
    await conn.connect();
    expect(await rejection(conn.callTool('echo', { text: 'x' }))).toBe(callError);
    expect(conn.isConnected()).toBe(true);
  });

  it('re-initializes once and resends once after a 404 for an expired session', async () => {
    const hooks = newHooks();
    const servers = createInMemoryServerFactory(() => makeServer(hooks));
    open.push(servers);
    const conn = new MCPConnection({
      serverName: 'http',
      config,
      createTransport: failingToolsCalls(servers, 1, () => new StreamableHTTPError(404, 'Session not found')),
    });
    open.push(conn);
    const states = recordStates(conn);
    await conn.connect();
    const result = await conn.callTool('echo', { text: 'again' });
    expect(result.content).toEqual([{ type: 'text', text: 'again' }]);
    expect(servers.pairs).toHaveLength(2);
    expect(states).toEqual(['idle', 'connecting', 'connected', 'reconnecting', 'connected']);
  });

  it('re-initializes an expired session even with reconnecting disabled, and closes on a transport loss', async () => {
    const hooks = newHooks();
    const servers = createInMemoryServerFactory(() => makeServer(hooks));
    open.push(servers);
    const conn = new MCPConnection({
      serverName: 'http',
      config,
      reconnect: { maxAttempts: 0 },
      createTransport: failingToolsCalls(servers, 1, () => new StreamableHTTPError(404, 'Session not found')),
    });
    open.push(conn);
    const closed = new Promise<{ error?: SwitchboardError }>((resolve) => conn.once('close', resolve));
    await conn.connect();
    expect((await conn.callTool('echo', { text: 'x' })).content).toEqual([{ type: 'text', text: 'x' }]);
    await servers.dropLatest();
    expect((await closed).error?.code).toBe('connection_closed');
    expect(conn.state).toBe('closed');
  });

  it('does not resend twice when the new session answers 404 too', async () => {
    const hooks = newHooks();
    const servers = createInMemoryServerFactory(() => makeServer(hooks));
    open.push(servers);
    const conn = new MCPConnection({
      serverName: 'http',
      config,
      createTransport: failingToolsCalls(servers, Infinity, () => new StreamableHTTPError(404, 'Session not found')),
    });
    open.push(conn);
    await conn.connect();
    const err = await rejection(conn.callTool('echo', { text: 'x' }));
    expect(err.code).toBe('transport_error');
    expect(err.cause).toBeInstanceOf(StreamableHTTPError);
    expect(servers.pairs).toHaveLength(2);
  });

  it('reconnects after a transport loss with exponential backoff and full jitter', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    const hooks = newHooks();
    const servers = createInMemoryServerFactory(() => makeServer(hooks));
    open.push(servers);
    let failNext = 0;
    let attempts = 0;
    const conn = new MCPConnection({
      serverName: 'mem',
      config,
      reconnect: { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 1_000 },
      random: () => 0.5,
      createTransport: async () => {
        attempts++;
        if (failNext > 0) {
          failNext--;
          throw new Error('ECONNREFUSED (simulated)');
        }
        return servers.createTransport();
      },
    });
    open.push(conn);
    const states = recordStates(conn);
    const delays: number[] = [];
    conn.on('reconnect', (e) => delays.push(e.delayMs));
    await conn.connect();
    failNext = 2;
    await servers.dropLatest();
    expect(conn.state).toBe('reconnecting');
    // A call made while reconnecting waits for the reconnect.
    const call = conn.callTool('echo', { text: 'after' });
    // Delays are floor + 0.5 × (ceiling − floor), the floor defaulting to baseDelayMs (100) here:
    // attempt 1 after 100 ms (ceiling 100)
    await jest.advanceTimersByTimeAsync(99);
    expect(attempts).toBe(1);
    await jest.advanceTimersByTimeAsync(1);
    expect(attempts).toBe(2);
    // attempt 2 after 100 + 0.5 × 100 = 150 ms, attempt 3 after 100 + 0.5 × 300 = 250 ms
    await jest.advanceTimersByTimeAsync(150);
    expect(attempts).toBe(3);
    await jest.advanceTimersByTimeAsync(249);
    expect(attempts).toBe(3);
    await jest.advanceTimersByTimeAsync(1);
    expect(attempts).toBe(4);
    expect((await call).content).toEqual([{ type: 'text', text: 'after' }]);
    expect(delays).toEqual([100, 150, 250]);
    expect(states).toEqual(['idle', 'connecting', 'connected', 'reconnecting', 'connected']);
  });

  it('gives up after maxAttempts: closed, with a typed connection_closed error for the close event and waiting calls', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    const hooks = newHooks();
    const servers = createInMemoryServerFactory(() => makeServer(hooks));
    open.push(servers);
    let down = false;
    let attempts = 0;
    const conn = new MCPConnection({
      serverName: 'mem',
      config,
      reconnect: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 40 },
      random: () => 1,
      createTransport: async () => {
        attempts++;
        if (down) throw new Error('down');
        return servers.createTransport();
      },
    });
    open.push(conn);
    const closes: { error?: SwitchboardError }[] = [];
    conn.on('close', (e) => closes.push(e));
    await conn.connect();
    down = true;
    await servers.dropLatest();
    const waiting = rejection(conn.callTool('echo', { text: 'x' }));
    await jest.advanceTimersByTimeAsync(10 + 20 + 40);
    expect(attempts).toBe(4);
    expect(conn.state).toBe('closed');
    expect(closes).toHaveLength(1);
    expect(closes[0]!.error).toBeInstanceOf(SwitchboardError);
    expect(closes[0]!.error!.code).toBe('connection_closed');
    expect((closes[0]!.error!.cause as SwitchboardError).code).toBe('connect_failed');
    const err = await waiting;
    expect(err.code).toBe('connection_closed');
    await conn.close();
    expect(closes).toHaveLength(1);
  });

  it('stops reconnecting at once on a non-retryable error and hands that error to waiting calls', async () => {
    const hooks = newHooks();
    const servers = createInMemoryServerFactory(() => makeServer(hooks));
    open.push(servers);
    const refused = new OboError('exchange_failed', 'invalid_grant');
    const refusal = deferred<Transport>();
    let refuse = false;
    let attempts = 0;
    const conn = new MCPConnection({
      serverName: 'mem',
      config,
      reconnect: { minDelayMs: 0 },
      random: () => 0,
      createTransport: async () => {
        attempts++;
        return refuse ? refusal.promise : servers.createTransport();
      },
    });
    open.push(conn);
    await conn.connect();
    refuse = true;
    await servers.dropLatest();
    const waiting = rejection(conn.callTool('echo', { text: 'x' }));
    refusal.reject(refused);
    expect(await waiting).toBe(refused);
    expect(attempts).toBe(2);
    expect(conn.state).toBe('closed');
  });

  it('a call in flight when the transport is lost fails with a retryable transport_error', async () => {
    const { conn, hooks, servers } = setup({ random: () => 0 });
    await conn.connect();
    const call = conn.callTool('block');
    await hooks.blockStarted.promise;
    await servers.dropLatest();
    const err = await rejection(call);
    expect(err.code).toBe('transport_error');
    expect(err.retryable).toBe(true);
  });

  it('close() during reconnect backoff ends it at once, clears the timer and rejects waiting calls', async () => {
    const { conn, servers } = setup({ reconnect: { baseDelayMs: 60_000, maxDelayMs: 60_000 }, random: () => 1 });
    await conn.connect();
    await servers.dropLatest();
    expect(conn.state).toBe('reconnecting');
    const waiting = rejection(conn.callTool('echo', { text: 'x' }));
    await conn.close();
    expect((await waiting).code).toBe('connection_closed');
    expect(servers.pairs).toHaveLength(1);
  });

  it('pending calls reject with connection_closed on close()', async () => {
    const { conn, hooks } = setup();
    await conn.connect();
    const call = conn.callTool('block');
    await hooks.blockStarted.promise;
    await conn.close();
    expect((await rejection(call)).code).toBe('connection_closed');
  });

  it('isStale compares updatedAt with createdAt', () => {
    const conn = new MCPConnection({ serverName: 'mem', config: { ...config, updatedAt: 0 }, createTransport: () => new Promise(() => {}) });
    expect(conn.isStale()).toBe(false);
    expect(conn.isStale(conn.createdAt + 1)).toBe(true);
    expect(conn.isStale(new Date(conn.createdAt - 1000))).toBe(false);
    expect(conn.isStale(new Date(conn.createdAt + 1000).toISOString())).toBe(true);
  });

  it('rejects bad options with a TypeError', () => {
    const ok = { serverName: 'x', config, createTransport: async () => ({}) as Transport };
    expect(() => new MCPConnection({ ...ok, serverName: '' })).toThrow(TypeError);
    expect(() => new MCPConnection({ ...ok, limits: { maxTools: 0 } })).toThrow(TypeError);
    expect(() => new MCPConnection({ ...ok, reconnect: { maxAttempts: 1.5 } })).toThrow(TypeError);
  });
});

describe('MCPConnection.listTools', () => {
  /** A low-level server that pages its tools and counts tools/list requests. */
  function pagedServer(state: { pages: Tool[][]; listCalls: number; server?: Server }) {
    return () => {
      const server = new Server({ name: 'paged', version: '1.0.0' }, { capabilities: { tools: { listChanged: true } } });
      server.setRequestHandler(ListToolsRequestSchema, async (req) => {
        state.listCalls++;
        const index = req.params?.cursor ? Number(req.params.cursor) : 0;
        const next = index + 1 < state.pages.length ? String(index + 1) : undefined;
        return { tools: state.pages[index] ?? [], ...(next ? { nextCursor: next } : {}) };
      });
      server.setRequestHandler(CallToolRequestSchema, async () => ({ content: [] }));
      state.server = server;
      return server;
    };
  }
  const tool = (name: string): Tool => ({ name, inputSchema: { type: 'object' } });

  it('reads every page, caches the list, and drops the cache on tools/list_changed', async () => {
    const state = { pages: [[tool('a'), tool('b')], [tool('c')], [tool('d')]], listCalls: 0 } as { pages: Tool[][]; listCalls: number; server?: Server };
    const servers = createInMemoryServerFactory(pagedServer(state));
    open.push(servers);
    const conn = new MCPConnection({ serverName: 'paged', config, createTransport: servers.createTransport });
    open.push(conn);
    await conn.connect();
    expect((await conn.listTools()).map((t) => t.name)).toEqual(['a', 'b', 'c', 'd']);
    expect(state.listCalls).toBe(3);
    await conn.listTools();
    expect(state.listCalls).toBe(3);

    const changed = new Promise<void>((resolve) => conn.once('toolsChanged', resolve));
    state.pages = [[tool('z')]];
    await state.server!.sendToolListChanged();
    await changed;
    expect((await conn.listTools()).map((t) => t.name)).toEqual(['z']);
    expect(state.listCalls).toBe(4);
  });

  it('refuses more pages than maxToolPages and more tools than maxTools with too_large', async () => {
    const state = { pages: [[tool('a')], [tool('b')], [tool('c')]], listCalls: 0 } as { pages: Tool[][]; listCalls: number; server?: Server };
    const servers = createInMemoryServerFactory(pagedServer(state));
    open.push(servers);
    const byPages = new MCPConnection({ serverName: 'paged', config, createTransport: servers.createTransport, limits: { maxToolPages: 2 } });
    open.push(byPages);
    await byPages.connect();
    const pagesErr = await rejection(byPages.listTools());
    expect(pagesErr.code).toBe('too_large');
    expect(state.listCalls).toBe(2);

    const byCount = new MCPConnection({ serverName: 'paged', config, createTransport: servers.createTransport, limits: { maxTools: 2 } });
    open.push(byCount);
    await byCount.connect();
    expect((await rejection(byCount.listTools())).code).toBe('too_large');
    expect(byCount.isConnected()).toBe(true);
  });

  it('joins concurrent listTools into one listing; one caller aborting does not fail the others', async () => {
    const state = { pages: [[tool('a')], [tool('b')]], listCalls: 0 } as { pages: Tool[][]; listCalls: number; server?: Server };
    const servers = createInMemoryServerFactory(pagedServer(state));
    open.push(servers);
    const conn = new MCPConnection({ serverName: 'paged', config, createTransport: servers.createTransport });
    open.push(conn);
    await conn.connect();
    const ac = new AbortController();
    const aborted = conn.listTools({ signal: ac.signal });
    const others = Array.from({ length: 20 }, () => conn.listTools());
    ac.abort();
    expect((await rejection(aborted)).code).toBe('aborted');
    for (const list of await Promise.all(others)) expect(list.map((t) => t.name)).toEqual(['a', 'b']);
    expect(state.listCalls).toBe(2); // two pages, read once
  });

  it('an aborted listTools leaves the connection usable', async () => {
    const { conn } = setup();
    await conn.connect();
    expect((await rejection(conn.listTools({ signal: AbortSignal.abort() }))).code).toBe('aborted');
    expect((await conn.listTools()).length).toBe(3);
  });
});
