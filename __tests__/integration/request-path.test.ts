/**
 * The request path against real SDK servers on loopback: lost response streams detected by default, size caps
 * at the response (streamable HTTP event stream and JSON, legacy SSE event), the standby GET gate, and
 * `standbyStream: false`.
 */
import { randomUUID } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { pipeline } from 'node:stream';
import { constants as zlibConstants, createBrotliCompress, createGzip } from 'node:zlib';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { z } from 'zod';
import { SwitchboardError } from '../../src/errors.js';
import type { MCPConnectionFactoryOptions } from '../../src/MCPConnectionFactory.js';
import type { MCPConnection } from '../../src/MCPConnection.js';
import { createDefaultTransport } from '../../src/transport/createTransport.js';
import type { Logger } from '../../src/types.js';
import { connectTo, outgoingRequest } from '../support/requestPath.js';
import { listenOnLoopback, type Listening } from '../support/http.js';
import { rejection } from '../support/errors.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Peer extends Listening {
  url: string;
  /** Tool runs, by tool name (counted when the handler starts). */
  runs: Record<string, number>;
  /** GET requests received. */
  gets: number;
  /** `initialize` requests received (sessions opened). */
  initializes: number;
  /** Resolves when the answer to the next `ping` has been sent. */
  nextPing(): Promise<void>;
  /** Resolves when a request for tool `name` arrives. */
  nextCall(name: string): Promise<{ res: ServerResponse }>;
}

/** Called when a tool handler starts (tests wait on it). */
const started = new Map<string, () => void>();
const toolStarted = (name: string) => new Promise<void>((resolve) => started.set(name, resolve));

function mcpServer(runs: Record<string, number>): McpServer {
  const server = new McpServer({ name: 'request-path-test', version: '1.0.0' });
  const count = (name: string) => {
    runs[name] = (runs[name] ?? 0) + 1;
    started.get(name)?.();
  };
  server.registerTool('echo', { inputSchema: { text: z.string() } }, async ({ text }) => {
    count('echo');
    return { content: [{ type: 'text', text }] };
  });
  server.registerTool('big', { inputSchema: { bytes: z.number() } }, async ({ bytes }) => {
    count('big');
    return { content: [{ type: 'text', text: 'x'.repeat(bytes) }] };
  });
  server.registerTool('hang', {}, async () => {
    count('hang');
    return new Promise<never>(() => {});
  });
  return server;
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

/**
 * A streamable HTTP peer with sessions. `onGet` answers GETs itself when given (the standby stream); `kill`:
 * tool names whose POST has its socket destroyed right after the event-stream headers.
 */
async function streamablePeer(opts: { json?: boolean; onGet?: (res: ServerResponse) => void; kill?: string[] } = {}): Promise<Peer> {
  const runs: Record<string, number> = {};
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const waiters: { name: string; resolve: (v: { res: ServerResponse }) => void }[] = [];
  const peer = { runs, gets: 0, initializes: 0 } as Peer;
  const pingWaiters: (() => void)[] = [];
  const http = createServer((req, res) => {
    void (async () => {
      if (req.method === 'GET') {
        peer.gets++;
        if (opts.onGet) return opts.onGet(res);
      }
      const body = req.method === 'POST' ? await readBody(req) : undefined;
      const call = body as { method?: string; params?: { name?: string } } | undefined;
      if (call?.method === 'initialize') peer.initializes++;
      if (call?.method === 'ping') for (const w of pingWaiters.splice(0)) res.on('finish', w);
      if (call?.method === 'tools/call') {
        const name = call.params?.name ?? '';
        for (const w of waiters.splice(0)) if (w.name === name) w.resolve({ res });
        if (opts.kill?.includes(name)) {
          // The server "dies" mid-call: headers of an event stream, then the connection drops.
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.flushHeaders();
          setImmediate(() => res.socket?.destroy());
          return;
        }
      }
      const sid = req.headers['mcp-session-id'];
      let transport = typeof sid === 'string' ? transports.get(sid) : undefined;
      if (!transport) {
        const t: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          enableJsonResponse: opts.json ?? false,
          onsessioninitialized: (id) => void transports.set(id, t),
        });
        await mcpServer(runs).connect(t);
        transport = t;
      }
      await transport.handleRequest(req, res, body);
    })();
  });
  const listening = await listenOnLoopback(http);
  Object.assign(peer, listening, {
    url: `${listening.origin}/mcp`,
    nextCall: (name: string) => new Promise((resolve) => waiters.push({ name, resolve })),
    nextPing: () => new Promise<void>((resolve) => pingWaiters.push(resolve)),
    close: async () => {
      for (const t of transports.values()) await t.close().catch(() => {});
      await listening.close();
    },
  });
  cleanups.push(() => peer.close());
  return peer;
}

/** A legacy SSE peer (GET /sse event stream, POST /messages). */
async function ssePeer(): Promise<Peer> {
  const runs: Record<string, number> = {};
  const transports = new Map<string, SSEServerTransport>();
  const peer = { runs, gets: 0 } as Peer;
  const http = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      if (req.method === 'GET' && url.pathname === '/sse') {
        peer.gets++;
        const t = new SSEServerTransport('/messages', res);
        transports.set(t.sessionId, t);
        await mcpServer(runs).connect(t);
        return;
      }
      const t = transports.get(url.searchParams.get('sessionId') ?? '');
      if (!t) return void res.writeHead(404).end();
      await t.handlePostMessage(req, res, await readBody(req));
    })();
  });
  const listening = await listenOnLoopback(http);
  Object.assign(peer, listening, {
    url: `${listening.origin}/sse`,
    nextCall: () => Promise.reject(new Error('not used')),
    close: async () => {
      for (const t of transports.values()) await t.close().catch(() => {});
      await listening.close();
    },
  });
  cleanups.push(() => peer.close());
  return peer;
}

function connect(peer: Peer, type: 'sse' | 'streamable-http', opts: MCPConnectionFactoryOptions = {}): Promise<MCPConnection> {
  return connectTo(peer.url, type, cleanups, opts);
}

const text = (r: { content: unknown[] }) => (r.content[0] as { text: string }).text;
/** A cap small enough for a test: 1 000 bytes of result + the 64 KiB envelope room = 66 536 bytes a message. */
const LIMITS = { maxResultBytes: 1_000 };
const OVER_CAP = 200_000;

describe('lost response stream (on by default)', () => {
  it('streamable HTTP: the response stream of a call is dropped mid-call → retryable transport_error, not a timeout', async () => {
    const peer = await streamablePeer({ kill: ['hang'] });
    const conn = await connect(peer, 'streamable-http');
    // Ten minutes: far past jest's budget, so the call can only settle because the lost stream was seen.
    const err = await rejection(conn.callTool('hang', {}, { timeoutMs: 600_000 }));
    expect(err).toBeInstanceOf(SwitchboardError);
    expect(err).toMatchObject({ code: 'transport_error', retryable: true, serverName: 'svc' });
    expect((err as Error).message).toContain('ended before the response');
  });

  it('streamable HTTP: the server closes with the call in flight → transport_error (the tool had started)', async () => {
    const peer = await streamablePeer();
    const conn = await connect(peer, 'streamable-http', { standbyStream: false });
    const reached = peer.nextCall('hang');
    const running = toolStarted('hang');
    const call = rejection(conn.callTool('hang', {}, { timeoutMs: 600_000 }));
    const { res } = await reached;
    await running;
    // The tool runs: drop the connection as a dying process would.
    res.socket?.destroy();
    expect(await call).toMatchObject({ code: 'transport_error', retryable: true });
  });
});

describe('size caps at the response', () => {
  it.each([
    ['event stream', false],
    ['application/json', true],
  ] as const)('streamable HTTP %s over the cap → too_large; the tool ran once; the connection stays usable', async (_kind, json) => {
    const peer = await streamablePeer({ json });
    const conn = await connect(peer, 'streamable-http', { limits: LIMITS, standbyStream: false });
    const err = await rejection(conn.callTool('big', { bytes: OVER_CAP }, { timeoutMs: 600_000 }));
    expect(err).toBeInstanceOf(SwitchboardError);
    expect(err).toMatchObject({ code: 'too_large', serverName: 'svc' });
    expect(peer.runs.big).toBe(1);
    expect(text(await conn.callTool('echo', { text: 'still here' }))).toBe('still here');
    expect(conn.state).toBe('connected');
    expect(peer.runs.big).toBe(1);
  });

  it('legacy SSE: an event over the cap is dropped and answered too_large; the stream lives on', async () => {
    const peer = await ssePeer();
    const conn = await connect(peer, 'sse', { limits: LIMITS });
    const err = await rejection(conn.callTool('big', { bytes: OVER_CAP }, { timeoutMs: 600_000 }));
    expect(err).toMatchObject({ code: 'too_large', serverName: 'svc' });
    expect(peer.runs.big).toBe(1);
    expect(text(await conn.callTool('echo', { text: 'same stream' }))).toBe('same stream');
    // One event stream for the whole test: it was never cut, so no reconnect opened another.
    expect(peer.gets).toBe(1);
    expect(conn.state).toBe('connected');
  });

  it('a result under the cap passes whole', async () => {
    const peer = await streamablePeer();
    const conn = await connect(peer, 'streamable-http', { limits: LIMITS, standbyStream: false });
    expect(text(await conn.callTool('big', { bytes: 900 }))).toHaveLength(900);
  });
});

/**
 * A proxy in front of `peer` that compresses every response body with `coding` (flushing after each chunk, so
 * events stream as they come), as a compression middleware or a gateway does. Counts what it sent.
 */
async function compressingProxy(peer: Peer, coding: 'gzip' | 'br'): Promise<Peer & { compressed: number }> {
  const target = new URL(peer.url);
  const proxy = { ...peer, compressed: 0 } as Peer & { compressed: number };
  const http = createServer((req, res) => {
    const upstream = httpRequest({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (up) => {
      const headers = { ...up.headers };
      delete headers['content-length'];
      const body = up.statusCode === 202 || up.statusCode === 204 ? undefined : coding === 'gzip' ? createGzip({ flush: zlibConstants.Z_SYNC_FLUSH }) : createBrotliCompress({ flush: zlibConstants.BROTLI_OPERATION_FLUSH });
      if (body) headers['content-encoding'] = coding;
      res.writeHead(up.statusCode ?? 502, headers);
      if (!body) return void up.pipe(res);
      proxy.compressed++;
      // A stream cut upstream is cut here too (pipeline destroys every stream on a premature close).
      pipeline(up, body, res, () => {});
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  const listening = await listenOnLoopback(http);
  cleanups.push(() => listening.close());
  return Object.assign(proxy, { url: `${listening.origin}/mcp` });
}

describe('compressed responses (a gateway that gzips or brotli-encodes)', () => {
  it.each([
    ['gzip', 'event stream', false],
    ['br', 'event stream', false],
    ['gzip', 'application/json', true],
  ] as const)('%s %s: calls are answered, not taken for lost streams, and the watch still sees a dropped stream', async (coding, _kind, json) => {
    const peer = await streamablePeer({ json, kill: ['hang'] });
    const proxy = await compressingProxy(peer, coding);
    const conn = await connect(proxy, 'streamable-http', { standbyStream: false });
    for (let i = 0; i < 3; i++) expect(text(await conn.callTool('echo', { text: `packed ${i}` }))).toBe(`packed ${i}`);
    expect(await conn.listTools()).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'echo' })]));
    expect(proxy.compressed).toBeGreaterThanOrEqual(5);
    expect(peer.runs.echo).toBe(3);
    if (!json) expect(await rejection(conn.callTool('hang', {}, { timeoutMs: 600_000 }))).toMatchObject({ code: 'transport_error', retryable: true });
  });

  it('a compressed answer over the cap is too_large by its decoded size (a small gzip cannot smuggle a big result)', async () => {
    const peer = await streamablePeer();
    const proxy = await compressingProxy(peer, 'gzip');
    const conn = await connect(proxy, 'streamable-http', { limits: LIMITS, standbyStream: false });
    const err = await rejection(conn.callTool('big', { bytes: OVER_CAP }, { timeoutMs: 600_000 }));
    expect(err).toMatchObject({ code: 'too_large', serverName: 'svc' });
    expect(text(await conn.callTool('echo', { text: 'after' }))).toBe('after');
    expect(peer.runs.big).toBe(1);
  });
});

describe('standby GET stream', () => {
  it('a server that ends each standby stream at once gets 1 + maxAttempts GETs, then the stream is off (one warning)', async () => {
    // Each GET: an event stream that asks for a 1 ms retry and ends at once (the storm of the issue).
    const peer = await streamablePeer({
      onGet: (res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end('retry: 1\n\n');
      },
    });
    const warned = new Promise<{ obj: unknown; msg: string }>((resolve) => {
      const logger: Logger = {
        debug: () => {},
        info: () => {},
        error: () => {},
        warn: (obj: unknown, msg?: string) => {
          if (String(msg).includes('standby stream off')) resolve({ obj, msg: String(msg) });
        },
      };
      cleanups.push(async () => void logger);
      void connect(peer, 'streamable-http', { logger, reconnect: { maxAttempts: 3, minDelayMs: 1, baseDelayMs: 1, maxDelayMs: 5, healthyAfterMs: 60_000 } }).then((c) => {
        conns.push(c);
      });
    });
    const conns: MCPConnection[] = [];
    const { obj, msg } = await warned;
    expect(peer.gets).toBe(4);
    expect(JSON.stringify(obj)).not.toContain('127.0.0.1');
    expect(msg).not.toMatch(/Bearer|\?/);
    const conn = conns[0] ?? (await new Promise<never>(() => {}));
    expect(text(await conn.callTool('echo', { text: 'quiet' }))).toBe('quiet');
    expect(peer.gets).toBe(4);
  });

  it('a standby stream lost with its server (every reopening GET fails, 503) is retried under `reconnect`, not the SDK’s 2 retries; then one warning', async () => {
    // The first GET opens the stream and the server drops it (its process died); every GET after that meets a
    // gateway whose backend is gone. The SDK's own loop alone retried twice, 1 s apart and more, then stopped
    // without a word, whatever `reconnect` said.
    let opened = false;
    const peer = await streamablePeer({
      onGet: (res) => {
        if (!opened) {
          opened = true;
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write(': open\n\n', () => res.socket?.destroy());
          return;
        }
        res.writeHead(503, { 'content-type': 'text/plain' }).end('backend down');
      },
    });
    const warnings: string[] = [];
    const warned = new Promise<void>((resolve) => {
      const logger: Logger = {
        debug: () => {},
        info: () => {},
        error: () => {},
        warn: (_obj: unknown, msg?: string) => {
          warnings.push(String(msg));
          if (String(msg).includes('standby stream off')) resolve();
        },
      };
      void connect(peer, 'streamable-http', { logger, reconnect: { maxAttempts: 6, minDelayMs: 1, baseDelayMs: 1, maxDelayMs: 5, healthyAfterMs: 60_000 } });
    });
    await warned;
    // 1 GET that opened the stream + 6 reopening attempts (the policy's budget), then the gate's 405: no more.
    expect(peer.gets).toBe(7);
    expect(warnings.filter((m) => m.includes('standby stream off'))).toHaveLength(1);
  });

  it('a server that refuses the standby GET with 404 but keeps the session: a ping says it lives, no re-initialize', async () => {
    const peer = await streamablePeer({ onGet: (res) => void res.writeHead(404, { 'content-type': 'text/plain' }).end('no GET here') });
    const pinged = peer.nextPing();
    const conn = await connect(peer, 'streamable-http');
    const states: string[] = [];
    conn.on('state', ({ to }: { to: string }) => states.push(to));
    // The refused GET is checked with one ping on the session; the ping is answered, so the session stays.
    await pinged;
    expect(text(await conn.callTool('echo', { text: 'same session' }))).toBe('same session');
    expect(text(await conn.callTool('echo', { text: 'still' }))).toBe('still');
    expect({ initializes: peer.initializes, states }).toEqual({ initializes: 1, states: [] });
  });

  it('standbyStream: false → the connection sends no GET at all', async () => {
    const peer = await streamablePeer();
    const attempts: Promise<Response>[] = [];
    const conn = await connect(peer, 'streamable-http', {
      standbyStream: false,
      createTransport: (ctx) =>
        createDefaultTransport({
          ...ctx,
          fetch: (url, init) => {
            const res = ctx.fetch(url, init);
            if ((init?.method ?? 'GET') === 'GET') attempts.push(res);
            return res;
          },
        }),
    });
    expect(text(await conn.callTool('echo', { text: 'no stream' }))).toBe('no stream');
    // The SDK did ask for its standby stream; the gate answered it without sending anything.
    expect(attempts.length).toBeGreaterThan(0);
    for (const a of attempts) expect((await a).status).toBe(405);
    expect(peer.gets).toBe(0);
  });
});
