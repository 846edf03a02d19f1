/**
 * Regressions found in review (the adversarial reproductions), each against real SDK servers on 127.0.0.1:
 *
 * 1. response streams cut after a first event with an `id` are resumed (`Last-Event-ID` GET) without spending
 *    the standby stream's retry budget, so many at once all complete;
 * 2. a response whose `id` is the string form of the request's numeric id is taken as the response (the SDK
 *    accepts it), not reported as a lost stream;
 * 3. an over-size server→client request carrying the id of a pending call (on the standby GET stream, and on
 *    stdio) is not taken for that call's response;
 * 4. a stdio server that closes its stdout while it keeps running fails the call in flight at once
 *    (retryable `transport_error`), and the connection reconnects to a new process;
 * 6. the WebSocket transport's size cap follows the factory's `limits.maxResultBytes`.
 *
 * (5, OperationScope and followSignal, is in __tests__/unit/review-regressions.test.ts.)
 *
 * Where a server must misbehave at the byte level, a real SDK server is used and only its bytes are touched
 * (a rewritten `id`, a raw `transport.send` of a hand-ordered request); nothing waits on a timer.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport, type EventStore } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { CallToolResult, JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { MCPConnectionFactory } from '../../src/MCPConnectionFactory.js';
import { MCPManager } from '../../src/MCPManager.js';
import type { ConnectionState } from '../../src/MCPConnection.js';
import { SwitchboardError } from '../../src/errors.js';
import { startWebSocketMcpServer } from '../../src/testing/websocketServer.js';
import { deferred } from '../support/deferred.js';
import { rejectionOf } from '../support/errors.js';
import { firstText } from '../support/mcp.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

const text = (t: string): CallToolResult => ({ content: [{ type: 'text', text: t }] });

/** A manager over one server `svc` through `factory` (both closed after the test). */
function managerOf(config: Record<string, unknown>, factory: MCPConnectionFactory): MCPManager {
  cleanups.push(() => factory.close());
  const manager = new MCPManager({ servers: { svc: config }, circuitBreaker: false, connectionFactory: factory });
  cleanups.push(() => manager.close());
  return manager;
}

/** An event store whose ids keep the order events were stored in (the SDK example's sorts by clock + random). */
class OrderedEventStore implements EventStore {
  #seq = 0;
  readonly #events: { id: string; streamId: string; message: JSONRPCMessage }[] = [];

  async storeEvent(streamId: string, message: JSONRPCMessage): Promise<string> {
    const id = `${streamId}.${++this.#seq}`;
    this.#events.push({ id, streamId, message });
    return id;
  }

  async replayEventsAfter(lastEventId: string, { send }: { send: (eventId: string, message: JSONRPCMessage) => Promise<void> }): Promise<string> {
    const at = this.#events.findIndex((e) => e.id === lastEventId);
    if (at < 0) return '';
    const { streamId } = this.#events[at]!;
    for (const e of this.#events.slice(at + 1)) if (e.streamId === streamId) await send(e.id, e.message);
    return streamId;
  }
}

/** One MCP session of {@link startSdkHttpServer}. */
interface Session {
  server: McpServer;
  transport: StreamableHTTPServerTransport;
  /** Resolves once the standby GET stream is answered 200 (the SDK has registered it by then). */
  standbyOpen: Promise<void>;
}

interface SdkHttpOptions {
  /** Registers the tools of each session. */
  tools(server: McpServer, session: Session): void;
  /** An event store (so every POST stream opens with a primed event `id`) and `retry: 10`. */
  resumable?: boolean;
  /** Rewrites the bytes of every answer to a `tools/call` POST before they are sent. */
  rewriteCallAnswer?: (text: string) => string;
}

/** What a {@link startSdkHttpServer} server received. */
interface HttpCounts {
  toolsCall: number;
  gets: number;
  /** GETs carrying `Last-Event-ID`. */
  resumes: number;
  /** Chunks of `tools/call` answers that `rewriteCallAnswer` changed. */
  rewritten: number;
}

/** The SDK's streamable HTTP server (one `McpServer` and transport per session) on 127.0.0.1, port 0. */
async function startSdkHttpServer(opts: SdkHttpOptions): Promise<{ url: string; counts: HttpCounts; close(): Promise<void> }> {
  const counts: HttpCounts = { toolsCall: 0, gets: 0, resumes: 0, rewritten: 0 };
  const sessions = new Map<string, Session & { opened: { resolve(): void } }>();
  const sockets = new Set<Socket>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = req.method === 'POST' ? await readJson(req) : undefined;
    const sessionId = req.headers['mcp-session-id'] as string | undefined;
    const method = (body as { method?: unknown } | undefined)?.method;
    if (method === 'tools/call') {
      counts.toolsCall++;
      if (opts.rewriteCallAnswer) rewriteWrites(res, opts.rewriteCallAnswer, () => counts.rewritten++);
    }
    if (sessionId !== undefined) {
      const session = sessions.get(sessionId);
      if (!session) return void res.writeHead(404).end();
      if (req.method === 'GET') {
        counts.gets++;
        if (req.headers['last-event-id'] !== undefined) counts.resumes++;
        else onStatus(res, 200, session.opened);
      }
      return session.transport.handleRequest(req, res, body);
    }
    if (method !== 'initialize') return void res.writeHead(400).end();
    const opened = deferred<void>();
    const server = new McpServer({ name: 'review', version: '1.0.0' });
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      ...(opts.resumable ? { eventStore: new OrderedEventStore(), retryInterval: 10 } : {}),
      onsessioninitialized: (id) => void sessions.set(id, session),
    });
    const session: Session & { opened: typeof opened } = { server, transport, standbyOpen: opened.promise, opened };
    opts.tools(server, session);
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  };

  const http = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  http.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', () => resolve()));
  const { port } = http.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    counts,
    async close() {
      for (const s of sessions.values()) await s.server.close().catch(() => {});
      const closed = new Promise<void>((resolve) => http.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

/** Calls `then` once `res` is answered with `status` (headers are written once, with `writeHead`). */
function onStatus(res: ServerResponse, status: number, then: { resolve(): void }): void {
  const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
  res.writeHead = ((...args: unknown[]) => {
    const out = writeHead(...args);
    if (res.statusCode === status) then.resolve();
    return out;
  }) as typeof res.writeHead;
}

/** Passes every chunk written to `res` through `rewrite` (dropping a `content-length` the rewrite would break). */
function rewriteWrites(res: ServerResponse, rewrite: (text: string) => string, onChange: () => void): void {
  const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
  res.writeHead = ((status: number, headers?: unknown) => {
    if (headers === undefined || typeof headers !== 'object' || Array.isArray(headers)) return writeHead(status);
    const { 'content-length': _dropped, ...rest } = headers as Record<string, unknown>;
    return writeHead(status, rest);
  }) as typeof res.writeHead;
  const write = res.write.bind(res) as (...args: unknown[]) => boolean;
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    if (typeof chunk !== 'string' && !(chunk instanceof Uint8Array)) return write(chunk, ...rest);
    const before = Buffer.from(chunk).toString('utf8');
    const after = rewrite(before);
    if (after !== before) onChange();
    return write(Buffer.from(after), ...rest);
  }) as typeof res.write;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const t = Buffer.concat(chunks).toString('utf8');
  return t ? (JSON.parse(t) as unknown) : undefined;
}

describe('resumed response streams (Last-Event-ID)', () => {
  // Guards standbyGate: resumption GETs bypass the standby retry budget (floor delay only), so concurrent cut streams all resume.
  it.each([true, false])('8 concurrent calls whose POST streams are cut after a primed event all succeed (standbyStream %s)', async (standbyStream) => {
    const runs = new Map<number, number>();
    const server = await startSdkHttpServer({
      resumable: true,
      tools: (s) => {
        s.registerTool('work', { inputSchema: { n: z.number().int() } }, async ({ n }, extra) => {
          runs.set(n, (runs.get(n) ?? 0) + 1);
          // Ends this call's POST stream after its primed event (`id:`), before the response: the client must resume.
          expect(extra.closeSSEStream).toBeDefined();
          extra.closeSSEStream!();
          return text(`done ${n}`);
        });
      },
    });
    cleanups.push(() => server.close());
    const manager = managerOf({ url: server.url }, new MCPConnectionFactory({ standbyStream }));
    await manager.listTools({ serverName: 'svc' });

    const N = 8;
    const outcomes = await Promise.all(
      Array.from({ length: N }, (_, n) =>
        manager.callTool({ serverName: 'svc', toolName: 'work', arguments: { n }, timeoutMs: 10_000 }).then(
          (r) => firstText(r),
          (e: unknown) => (e instanceof SwitchboardError ? `${e.code}: ${e.message}` : String(e)),
        ),
      ),
    );
    expect(outcomes).toEqual(Array.from({ length: N }, (_, n) => `done ${n}`));
    // Each tool ran once: the results came by resumption, not by sending the calls again.
    expect(server.counts.toolsCall).toBe(N);
    expect([...runs.entries()].sort(([a], [b]) => a - b)).toEqual(Array.from({ length: N }, (_, n) => [n, 1]));
    expect(server.counts.resumes).toBeGreaterThanOrEqual(N);
  }, 30_000);
});

describe('a response whose id is the string form of ours', () => {
  // Guards responseWatch.sameId: `"id":"2"` answers request 2 as the SDK matches it, so the ended stream is not "lost".
  it('on a POST event stream that then ends: the call resolves with the result, not transport_error', async () => {
    let runs = 0;
    const server = await startSdkHttpServer({
      // `{"result":…,"jsonrpc":"2.0","id":2}` → `…"id":"2"}`
      rewriteCallAnswer: (t) => t.replace(/"jsonrpc":"2\.0","id":(\d+)\}/g, '"jsonrpc":"2.0","id":"$1"}'),
      tools: (s) => {
        s.registerTool('echo', { inputSchema: { text: z.string() } }, async ({ text: t }) => {
          runs++;
          return text(t);
        });
      },
    });
    cleanups.push(() => server.close());
    const manager = managerOf({ url: server.url }, new MCPConnectionFactory({}));

    const result = await manager.callTool({ serverName: 'svc', toolName: 'echo', arguments: { text: 'string id' }, timeoutMs: 10_000 });
    expect(firstText(result)).toBe('string id');
    expect(server.counts.rewritten).toBe(1);
    expect(runs).toBe(1);
  });
});

/** Over-size server→client requests, in the two orders that SDKs write and an id-first peek misreads. */
const OVERSIZE_ORDERS = [
  ['id first, params before method', (id: string | number, pad: string): JSONRPCMessage => ({ jsonrpc: '2.0', id, params: { pad }, method: 'sampling/createMessage' })],
  ['"method":…,"id":N} at the end', (id: string | number, pad: string): JSONRPCMessage => ({ jsonrpc: '2.0', params: { pad }, method: 'sampling/createMessage', id })],
] as const;

describe('an over-size server→client request with the id of a pending call', () => {
  const MAX = 1_000;
  const CAP = MAX + 64 * 1024;

  // Guards envelopePeek on the standby GET stream: a dropped over-size *request* (top-level method) fails no call of ours.
  it.each(OVERSIZE_ORDERS)('standby GET stream (%s): the call is not failed with too_large and completes', async (_order, build) => {
    let runs = 0;
    const server = await startSdkHttpServer({
      tools: (s, session) => {
        s.registerTool('ask', {}, async (extra) => {
          runs++;
          await session.standbyOpen;
          // On the standby stream (no related request): the over-size request, then a ping. Its answer shows that
          // the client has read past the over-size event before this call is answered.
          await session.transport.send(build(extra.requestId, 'x'.repeat(CAP + 10)));
          await s.server.ping();
          return text('real');
        });
      },
    });
    cleanups.push(() => server.close());
    const manager = managerOf({ url: server.url }, new MCPConnectionFactory({ limits: { maxResultBytes: MAX } }));

    const result = await manager.callTool({ serverName: 'svc', toolName: 'ask', arguments: {}, timeoutMs: 10_000 });
    expect(firstText(result)).toBe('real');
    expect(runs).toBe(1);
  });

  // Guards envelopePeek in the stdio transport: an over-size request line fails no call of ours.
  it.each(OVERSIZE_ORDERS.map(([name], i) => [name, i] as const))('stdio (%s): the call is not failed with too_large and completes', async (_order, variant) => {
    const manager = managerOf(
      {
        type: 'stdio',
        command: process.execPath,
        args: ['--input-type=module', '-e', STDIO_SERVER, 'ask', String(variant), String(CAP + 10)],
        cwd: process.cwd(),
        stderr: 'ignore',
      },
      new MCPConnectionFactory({ limits: { maxResultBytes: MAX } }),
    );
    const result = await manager.callTool({ serverName: 'svc', toolName: 'ask', arguments: {}, timeoutMs: 10_000 });
    expect(firstText(result)).toBe('real');
  });
});

/**
 * A stdio MCP server (the SDK's `StdioServerTransport`), run with `node --input-type=module -e`. Never exits on
 * its own while its stdin is open (a timer keeps it alive). Tools: `pid` → its pid; `close-stdout` → closes fd 1 and never answers;
 * `ask` → writes over-size request argv[2] (0 or 1, the orders of OVERSIZE_ORDERS) of argv[3] bytes of padding
 * with the call's id, pings the client, then answers `real`.
 */
const STDIO_SERVER = `
import { closeSync } from 'node:fs';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
const [, , variant, size] = process.argv;
setInterval(() => {}, 1 << 30);
process.stdin.on('end', () => process.exit(0));
const server = new McpServer({ name: 'review-stdio', version: '1.0.0' });
const transport = new StdioServerTransport();
const text = (t) => ({ content: [{ type: 'text', text: t }] });
server.registerTool('pid', {}, async () => text(String(process.pid)));
server.registerTool('close-stdout', {}, async () => {
  closeSync(1);
  return new Promise(() => {});
});
server.registerTool('ask', {}, async (extra) => {
  const pad = 'x'.repeat(Number(size));
  const id = extra.requestId;
  await transport.send(variant === '0'
    ? { jsonrpc: '2.0', id, params: { pad }, method: 'sampling/createMessage' }
    : { jsonrpc: '2.0', params: { pad }, method: 'sampling/createMessage', id });
  await server.server.ping();
  return text('real');
});
await server.connect(transport);
`;

describe('a stdio server that closes its stdout but keeps running', () => {
  // Guards StdioProcessTransport: stdout 'end' closes the transport, so the call fails now (retryable) and the connection reconnects.
  it('the call in flight fails with a retryable transport_error; the next call succeeds on a new process', async () => {
    const manager = managerOf(
      { type: 'stdio', command: process.execPath, args: ['--input-type=module', '-e', STDIO_SERVER], cwd: process.cwd(), stderr: 'ignore' },
      new MCPConnectionFactory({}),
    );
    let connects = 0;
    manager.on('connect', () => connects++);
    const conn = await manager.getConnection({ serverName: 'svc' });
    const states: ConnectionState[] = [];
    conn.on('state', ({ to }: { to: ConnectionState }) => states.push(to));
    const firstPid = firstText(await manager.callTool({ serverName: 'svc', toolName: 'pid', arguments: {} }));

    // A miss waits out this timeout (longer than the test's): never a call_timeout here.
    const err = await rejectionOf(manager.callTool({ serverName: 'svc', toolName: 'close-stdout', arguments: {}, timeoutMs: 120_000 }), SwitchboardError);
    expect(err.code).toBe('transport_error');
    expect(err.retryable).toBe(true);

    const nextPid = firstText(await manager.callTool({ serverName: 'svc', toolName: 'pid', arguments: {}, timeoutMs: 10_000 }));
    expect(nextPid).toMatch(/^\d+$/);
    expect(nextPid).not.toBe(firstPid);
    // The connection saw the loss itself (it left `connected` at once); the manager's pool replaced it.
    expect(states[0]).toBe('reconnecting');
    expect(connects).toBe(2);
  }, 20_000);
});

describe('WebSocket result cap from the factory limits', () => {
  // Guards createDefaultTransport: the WebSocket transport gets maxMessageBytes = limits.maxResultBytes + 64 KiB (not its 16 MiB default).
  it('a 300 KB result over maxResultBytes 100000 → too_large naming 165536 bytes; the next call succeeds', async () => {
    const runs: Record<string, number> = {};
    const server = await startWebSocketMcpServer({
      createServer: () => {
        const s = new McpServer({ name: 'ws-limits', version: '1.0.0' });
        s.registerTool('big', { inputSchema: { bytes: z.number().int() } }, async ({ bytes }) => {
          runs.big = (runs.big ?? 0) + 1;
          return text('x'.repeat(bytes));
        });
        s.registerTool('echo', { inputSchema: { text: z.string() } }, async ({ text: t }) => {
          runs.echo = (runs.echo ?? 0) + 1;
          return text(t);
        });
        return s;
      },
    });
    cleanups.push(() => server.close());
    const manager = managerOf({ type: 'websocket', url: server.url }, new MCPConnectionFactory({ limits: { maxResultBytes: 100_000 } }));

    const err = await rejectionOf(manager.callTool({ serverName: 'svc', toolName: 'big', arguments: { bytes: 300_000 }, timeoutMs: 10_000 }), SwitchboardError);
    expect(err.code).toBe('too_large');
    expect(err.message).toContain(String(100_000 + 65_536));
    expect(err.message).not.toContain(String(16 * 1024 * 1024 + 65_536));

    const ok = await manager.callTool({ serverName: 'svc', toolName: 'echo', arguments: { text: 'next' }, timeoutMs: 10_000 });
    expect(firstText(ok)).toBe('next');
    expect(runs).toEqual({ big: 1, echo: 1 });
  });
});
