/**
 * What a connection does when a server misbehaves, at the connection level (in-memory servers, fake timers where
 * time must pass): requests that keep failing, a reconnect budget shared by successive losses, a 400 for a
 * forgotten session, progress-based deadlines, a pagination cursor that repeats, and a caller signal reused by
 * many calls.
 */
import { getEventListeners } from 'node:events';
import { jest } from '@jest/globals';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ListToolsRequestSchema, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { MCPConnection, type ConnectionState } from '../../src/MCPConnection.js';
import { SwitchboardError } from '../../src/errors.js';
import { parseServerConfig } from '../../src/config/index.js';
import { createInMemoryServerFactory, type InMemoryServerFactory } from '../../src/testing/inMemory.js';
import { rejectionOf } from '../support/errors.js';

const config = parseServerConfig('mem', { type: 'stdio', command: 'unused' });
const rejection = (p: Promise<unknown>) => rejectionOf(p, SwitchboardError);

/** Server-side counts. */
interface Counts {
  initialize: number;
  echo: number;
}

function makeServer(counts: Counts): McpServer {
  const server = new McpServer({ name: 'unit', version: '1.0.0' });
  counts.initialize++;
  server.registerTool('echo', { inputSchema: { text: z.string() } }, async ({ text }) => {
    counts.echo++;
    return { content: [{ type: 'text', text }] };
  });
  // Reports progress every 20 ms for `steps` steps, then answers.
  server.registerTool('slow', { inputSchema: { steps: z.number() } }, async ({ steps }, extra) => {
    const token = extra._meta?.progressToken;
    for (let i = 1; i <= steps; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      if (token !== undefined) await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: i, total: steps } });
    }
    return { content: [{ type: 'text', text: 'done' }] };
  });
  return server;
}

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  jest.useRealTimers();
  for (const o of open.splice(0).reverse()) await o.close();
});

/**
 * A transport factory whose `tools/call` sends fail with `error()` while `failing()` says so, and which looks
 * like a streamable HTTP transport after initialize (it has a session id).
 */
function flakyCalls(servers: InMemoryServerFactory, failing: () => boolean, error: () => Error): () => Promise<Transport> {
  return async () => {
    const t = await servers.createTransport();
    const send = t.send.bind(t);
    t.send = async (message: JSONRPCMessage, opts) => {
      if ('method' in message && message.method === 'tools/call' && failing()) throw error();
      // Like a streamable HTTP transport after initialize (set before, the SDK would skip initialize).
      if ('method' in message && message.method === 'notifications/initialized') t.sessionId = 'session-1';
      return send(message, opts);
    };
    return t;
  };
}

function states(conn: MCPConnection): ConnectionState[] {
  const out: ConnectionState[] = [];
  conn.on('state', ({ to }) => out.push(to));
  return out;
}

describe('MCPConnection: requests that keep failing', () => {
  it('leaves `connected` after three retryable transport failures in a row, reconnects, and serves calls again', async () => {
    const counts: Counts = { initialize: 0, echo: 0 };
    const servers = createInMemoryServerFactory(() => makeServer(counts));
    open.push(servers);
    let failing = false;
    const conn = new MCPConnection({
      serverName: 'mem',
      config,
      reconnect: { minDelayMs: 0, baseDelayMs: 0, maxDelayMs: 0 },
      createTransport: flakyCalls(servers, () => failing, () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })),
    });
    open.push(conn);
    await conn.connect();
    const seen = states(conn);
    failing = true;
    for (let i = 0; i < 2; i++) {
      const err = await rejection(conn.callTool('echo', { text: 'x' }));
      expect(err).toMatchObject({ code: 'transport_error', retryable: true });
      expect(conn.state).toBe('connected');
    }
    const third = await rejection(conn.callTool('echo', { text: 'x' }));
    expect(third).toMatchObject({ code: 'transport_error', retryable: true });
    expect(seen).toEqual(['reconnecting']);
    failing = false;
    expect((await conn.callTool('echo', { text: 'back' })).content).toEqual([{ type: 'text', text: 'back' }]);
    expect(seen).toEqual(['reconnecting', 'connected']);
    expect(counts.initialize).toBe(2);
  });

  it('a success in between resets the count: two failures, a success, two failures stay connected', async () => {
    const counts: Counts = { initialize: 0, echo: 0 };
    const servers = createInMemoryServerFactory(() => makeServer(counts));
    open.push(servers);
    let failing = false;
    const conn = new MCPConnection({
      serverName: 'mem',
      config,
      createTransport: flakyCalls(servers, () => failing, () => new Error('fetch failed')),
    });
    open.push(conn);
    await conn.connect();
    const seen = states(conn);
    for (const fail of [true, true, false, true, true]) {
      failing = fail;
      if (fail) await rejection(conn.callTool('echo', { text: 'x' }));
      else await conn.callTool('echo', { text: 'ok' });
    }
    expect(seen).toEqual([]);
    expect(counts.initialize).toBe(1);
  });
});

describe('MCPConnection: a forgotten session', () => {
  it('re-initializes once on a 400 to a request that carried a session id, once a ping confirms it, and the tool runs once', async () => {
    const counts: Counts = { initialize: 0, echo: 0 };
    const servers = createInMemoryServerFactory(() => makeServer(counts));
    open.push(servers);
    let transports = 0;
    const conn = new MCPConnection({
      serverName: 'mem',
      config,
      createTransport: async () => {
        const t = await servers.createTransport();
        const forgotten = ++transports === 1;
        const send = t.send.bind(t);
        let initialized = false;
        // The first session is forgotten after initialize (a restarted server): every request on it is a 400.
        t.send = async (message: JSONRPCMessage, opts) => {
          if (forgotten && initialized && 'method' in message && 'id' in message) throw new StreamableHTTPError(400, 'Bad Request: No valid session ID provided');
          if ('method' in message && message.method === 'notifications/initialized') {
            initialized = true;
            // Like a streamable HTTP transport after initialize (set before, the SDK would skip initialize).
            t.sessionId = `session-${transports}`;
          }
          return send(message, opts);
        };
        return t;
      },
    });
    open.push(conn);
    await conn.connect();
    const results = await Promise.all(Array.from({ length: 5 }, (_, i) => conn.callTool('echo', { text: `again ${i}` })));
    expect(results.map((r) => r.content)).toEqual(Array.from({ length: 5 }, (_, i) => [{ type: 'text', text: `again ${i}` }]));
    expect(counts).toEqual({ initialize: 2, echo: 5 });
  });

  it('a 400 to one request on a live session (a gateway refusing it) fails that request alone: no re-initialize', async () => {
    const counts: Counts = { initialize: 0, echo: 0 };
    const servers = createInMemoryServerFactory(() => makeServer(counts));
    open.push(servers);
    let refuse = true;
    const conn = new MCPConnection({
      serverName: 'mem',
      config,
      createTransport: flakyCalls(servers, () => refuse && !(refuse = false), () => new StreamableHTTPError(400, 'Bad Request: payload refused')),
    });
    open.push(conn);
    await conn.connect();
    const seen = states(conn);
    const [refused, fine] = await Promise.allSettled([conn.callTool('echo', { text: 'refused' }), conn.callTool('echo', { text: 'fine' })]);
    expect(refused.status === 'rejected' && refused.reason).toMatchObject({ code: 'transport_error', retryable: false });
    expect(fine.status === 'fulfilled' && fine.value.content).toEqual([{ type: 'text', text: 'fine' }]);
    expect(seen).toEqual([]);
    expect(counts).toEqual({ initialize: 1, echo: 1 });
  });

  it('a 400 without a session is the server refusing the request: not retryable, no re-initialize', async () => {
    const counts: Counts = { initialize: 0, echo: 0 };
    const servers = createInMemoryServerFactory(() => makeServer(counts));
    open.push(servers);
    const conn = new MCPConnection({
      serverName: 'mem',
      config,
      createTransport: async () => {
        const t = await servers.createTransport();
        const send = t.send.bind(t);
        t.send = async (message: JSONRPCMessage, opts) => {
          if ('method' in message && message.method === 'tools/call') throw new StreamableHTTPError(400, 'Bad Request');
          return send(message, opts);
        };
        return t;
      },
    });
    open.push(conn);
    await conn.connect();
    const err = await rejection(conn.callTool('echo', { text: 'x' }));
    expect(err).toMatchObject({ code: 'transport_error', retryable: false });
    expect(err.message).toContain('HTTP 400');
    expect(counts.initialize).toBe(1);
  });
});

describe('MCPConnection: one reconnect budget', () => {
  it('is shared by successive losses and restored only after the connection stayed healthy for healthyAfterMs', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    const counts: Counts = { initialize: 0, echo: 0 };
    const servers = createInMemoryServerFactory(() => makeServer(counts));
    open.push(servers);
    const conn = new MCPConnection({
      serverName: 'mem',
      config,
      reconnect: { maxAttempts: 2, minDelayMs: 10, baseDelayMs: 10, maxDelayMs: 10, healthyAfterMs: 1_000 },
      createTransport: servers.createTransport,
    });
    open.push(conn);
    const attempts: number[] = [];
    conn.on('reconnect', ({ attempt }) => attempts.push(attempt));
    await conn.connect();
    // A server that drops the connection right after each reconnect: two losses spend the budget of two.
    for (let i = 0; i < 2; i++) {
      await servers.dropLatest();
      await jest.advanceTimersByTimeAsync(10);
      expect(conn.state).toBe('connected');
    }
    const closed = new Promise<SwitchboardError | undefined>((resolve) => conn.once('close', (e) => resolve(e.error)));
    await servers.dropLatest();
    expect((await closed)?.code).toBe('connection_closed');
    expect(attempts).toEqual([1, 1]);

    // Healthy for healthyAfterMs between losses: each loss starts from a full budget.
    const steady = new MCPConnection({
      serverName: 'mem',
      config,
      reconnect: { maxAttempts: 1, minDelayMs: 10, baseDelayMs: 10, maxDelayMs: 10, healthyAfterMs: 1_000 },
      createTransport: servers.createTransport,
    });
    open.push(steady);
    await steady.connect();
    for (let i = 0; i < 3; i++) {
      await jest.advanceTimersByTimeAsync(1_000);
      await servers.dropLatest();
      await jest.advanceTimersByTimeAsync(10);
      expect(steady.state).toBe('connected');
    }
  });
});

describe('MCPConnection: progress-based deadlines', () => {
  async function slowSetup() {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    const counts: Counts = { initialize: 0, echo: 0 };
    const servers = createInMemoryServerFactory(() => makeServer(counts));
    open.push(servers);
    const conn = new MCPConnection({ serverName: 'mem', config, createTransport: servers.createTransport });
    open.push(conn);
    await conn.connect();
    return conn;
  }

  it('without progress handling, a call longer than timeoutMs times out', async () => {
    const conn = await slowSetup();
    const call = rejection(conn.callTool('slow', { steps: 20 }, { timeoutMs: 100 }));
    await jest.advanceTimersByTimeAsync(100);
    expect((await call).code).toBe('call_timeout');
  });

  it('with resetTimeoutOnProgress, a call that keeps reporting progress outlives timeoutMs', async () => {
    const conn = await slowSetup();
    const seen: number[] = [];
    const call = conn.callTool('slow', { steps: 20 }, { timeoutMs: 100, resetTimeoutOnProgress: true, onProgress: (p) => seen.push(p.progress) });
    await jest.advanceTimersByTimeAsync(20 * 20);
    expect((await call).content).toEqual([{ type: 'text', text: 'done' }]);
    expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it('a generous maxTotalTimeoutMs does not shorten a call that progress keeps alive (the documented pattern)', async () => {
    const conn = await slowSetup();
    const seen: number[] = [];
    const call = conn.callTool('slow', { steps: 20 }, { timeoutMs: 100, resetTimeoutOnProgress: true, maxTotalTimeoutMs: 60_000, onProgress: (p) => seen.push(p.progress) });
    await jest.advanceTimersByTimeAsync(20 * 20);
    expect((await call).content).toEqual([{ type: 'text', text: 'done' }]);
    expect(seen).toHaveLength(20);
  });

  it('a zero or negative timeoutMs is a TypeError naming it, not a retryable timeout', async () => {
    const conn = await slowSetup();
    await expect(conn.callTool('slow', { steps: 1 }, { timeoutMs: 0 })).rejects.toThrow(TypeError);
    await expect(conn.callTool('slow', { steps: 1 }, { timeoutMs: -5 })).rejects.toThrow(/callTool: timeoutMs/);
  });

  it('maxTotalTimeoutMs bounds the call however much progress arrives; a throwing onProgress is ignored', async () => {
    const conn = await slowSetup();
    const call = rejection(
      conn.callTool('slow', { steps: 20 }, {
        timeoutMs: 100,
        resetTimeoutOnProgress: true,
        maxTotalTimeoutMs: 200,
        onProgress: () => {
          throw new Error('host bug');
        },
      }),
    );
    await jest.advanceTimersByTimeAsync(200);
    expect((await call).code).toBe('call_timeout');
  });

  it('refuses bad progress options with a TypeError naming the option', async () => {
    const conn = await slowSetup();
    await expect(conn.callTool('slow', { steps: 1 }, { maxTotalTimeoutMs: -1 })).rejects.toThrow(/maxTotalTimeoutMs/);
    await expect(conn.callTool('slow', { steps: 1 }, { onProgress: 'yes' as never })).rejects.toThrow(/onProgress/);
  });
});

describe('MCPConnection: no growth across calls', () => {
  it('one AbortSignal for 200 calls and 20 listings keeps no listener once they settle', async () => {
    const counts: Counts = { initialize: 0, echo: 0 };
    const servers = createInMemoryServerFactory(() => makeServer(counts));
    open.push(servers);
    const conn = new MCPConnection({ serverName: 'mem', config, createTransport: servers.createTransport });
    open.push(conn);
    await conn.connect();
    const session = new AbortController();
    for (let i = 0; i < 200; i++) await conn.callTool('echo', { text: String(i) }, { signal: session.signal });
    await Promise.all(Array.from({ length: 50 }, (_, i) => conn.callTool('echo', { text: String(i) }, { signal: session.signal })));
    for (let i = 0; i < 20; i++) await conn.listTools({ signal: session.signal });
    expect(getEventListeners(session.signal, 'abort')).toHaveLength(0);
    expect(counts.echo).toBe(250);
  });
});

describe('MCPConnection: pagination', () => {
  it('a nextCursor that repeats is a server_error at once, naming the server, after two requests', async () => {
    let lists = 0;
    const servers = createInMemoryServerFactory(() => {
      const server = new Server({ name: 'loop', version: '1.0.0' }, { capabilities: { tools: {} } });
      server.setRequestHandler(ListToolsRequestSchema, async () => {
        lists++;
        return { tools: [{ name: `t${lists}`, inputSchema: { type: 'object' as const } }], nextCursor: 'same' };
      });
      return server;
    });
    open.push(servers);
    const conn = new MCPConnection({ serverName: 'loop', config, createTransport: servers.createTransport });
    open.push(conn);
    await conn.connect();
    const err = await rejection(conn.listTools());
    expect(err).toMatchObject({ code: 'server_error', retryable: false, serverName: 'loop' });
    expect(err.message).toMatch(/"loop" repeated a tools\/list pagination cursor/);
    expect(lists).toBe(2);
    await rejection(conn.listTools());
    expect(lists).toBe(4);
  });
});
