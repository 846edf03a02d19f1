/**
 * A real MCP server on loopback (streamable HTTP or SSE) for tests: one SDK `McpServer` per session, a
 * bearer check on every HTTP request, a log of every request, and knobs to expire sessions.
 * @module
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { z } from 'zod';

/**
 * Options of {@link startTestMcpServer}.
 *
 * @example
 * ```ts
 * const opts: TestMcpServerOptions = {
 *   transport: 'streamable-http',
 *   verifyBearer: async (authorization) => ({ subject: (await verifier.verify(authorization)).subject }),
 * };
 * ```
 */
export interface TestMcpServerOptions {
  /** `streamable-http` (endpoint `/mcp`) or `sse` (stream `/sse`, messages `/messages`). */
  transport: 'streamable-http' | 'sse';
  /**
   * Verifies each request's Authorization and returns the subject; `whoami` answers it. Throwing or
   * rejecting → 401 with `WWW-Authenticate: Bearer error="invalid_token"`. Absent: every request is
   * accepted and `whoami` answers `anonymous`.
   */
  verifyBearer?: (authorization: string | undefined, req: { method: string }) => Promise<{ subject: string }>;
  /** Port to listen on (default 0: an ephemeral port). Pass a closed server's port to "restart" it. */
  port?: number;
  /**
   * `false`: answer every request with `Connection: close`, so clients keep no idle pooled sockets (a restart
   * then leaves nothing stale behind in their pools). Default `true`.
   */
  keepAlive?: boolean;
}

/**
 * One HTTP request as the test server saw it.
 *
 * @example
 * ```ts
 * const deletes: TestMcpRequest[] = server.requests.filter((r) => r.method === 'DELETE');
 * ```
 */
export interface TestMcpRequest {
  /** HTTP method. */
  method: string;
  /** Path without the query. */
  path: string;
  /** The Authorization header as received (tests compare values; this is a test kit). */
  authorization?: string;
  /** The `Mcp-Session-Id` header (streamable HTTP) or `sessionId` query parameter (SSE). */
  sessionId?: string;
  /** HTTP status answered (set when the answer is known: 401, 404 from the server itself; else absent). */
  rejectedWith?: 401 | 404;
}

/**
 * Counters of a {@link TestMcpServer}.
 *
 * @example
 * ```ts
 * const stats: TestMcpServerStats = await server.waitForStats((s) => s.liveSessions === 0);
 * ```
 */
export interface TestMcpServerStats {
  /** `initialize` requests received. */
  initializeCount: number;
  /** Sessions currently open. */
  liveSessions: number;
  /** Sessions ever opened. */
  sessionsOpened: number;
  /** Sessions ended by the client: a streamable HTTP DELETE, or the SSE stream closed by the client. */
  sessionsClosed: number;
  /** Sessions dropped by {@link TestMcpServer.expireSessions}. */
  sessionsExpired: number;
  /** Requests answered 404 for an unknown session. */
  unknownSession404s: number;
  /** `slow` calls ended by a cancellation before their time. */
  cancelledCalls: number;
}

/**
 * A running test server; see {@link startTestMcpServer}.
 *
 * @example
 * ```ts
 * const server: TestMcpServer = await startTestMcpServer({ transport: 'sse' });
 * server.expireSessions();
 * await server.close();
 * ```
 */
export interface TestMcpServer {
  /** `http://127.0.0.1:PORT/mcp` (streamable HTTP) or `http://127.0.0.1:PORT/sse` (SSE). */
  url: string;
  /** The port listened on. */
  port: number;
  /** Current counters. */
  stats(): TestMcpServerStats;
  /** Every HTTP request received, in order. */
  requests: TestMcpRequest[];
  /** Resolves with the counters as soon as `predicate` holds for them (checked on every change). */
  waitForStats(predicate: (stats: TestMcpServerStats) => boolean): Promise<TestMcpServerStats>;
  /** Forgets every session (closing its streams): the next request with an old session id gets 404. */
  expireSessions(): void;
  /** Stops listening and closes every session, stream and socket. Idempotent. */
  close(): Promise<void>;
}

interface Session {
  server: McpServer;
  close(): Promise<void>;
}

/**
 * Starts a test MCP server on 127.0.0.1. Tools: `echo` (`{ text }` → the text), `whoami` (the subject
 * `verifyBearer` returned for the request carrying the call, or `anonymous`), `slow` (`{ ms }`: waits, ends
 * early on cancellation), `fail` (`{ mode?: 'result' | 'throw' }`: a result with `isError: true`, or a
 * thrown error, which the SDK's `McpServer` also reports as an `isError` result).
 *
 * @example
 * ```ts
 * import { startTestMcpServer } from 'mcp-switchboard/testing';
 * const server = await startTestMcpServer({ transport: 'streamable-http' });
 * const conn = await factory.create({ serverName: 't', config: parseServerConfig('t', { url: server.url }) });
 * await conn.callTool('echo', { text: 'hi' });
 * await conn.close();
 * console.log(server.stats().sessionsClosed); // 1
 * await server.close();
 * ```
 */
export async function startTestMcpServer(opts: TestMcpServerOptions): Promise<TestMcpServer> {
  if (opts.transport !== 'streamable-http' && opts.transport !== 'sse') {
    throw new TypeError(`startTestMcpServer: transport must be 'streamable-http' or 'sse'`);
  }
  const counters: TestMcpServerStats = {
    initializeCount: 0,
    liveSessions: 0,
    sessionsOpened: 0,
    sessionsClosed: 0,
    sessionsExpired: 0,
    unknownSession404s: 0,
    cancelledCalls: 0,
  };
  const requests: TestMcpRequest[] = [];
  const sessions = new Map<string, Session>();
  const waiters = new Set<() => void>();
  const stats = (): TestMcpServerStats => ({ ...counters, liveSessions: sessions.size });
  const changed = () => {
    for (const check of [...waiters]) check();
  };
  const sockets = new Set<Socket>();
  const sseTransports = new Map<string, SSEServerTransport>();
  const streamableTransports = new Map<string, StreamableHTTPServerTransport>();

  const countInitialize = (body: unknown) => {
    for (const msg of Array.isArray(body) ? body : [body]) {
      if (msg && typeof msg === 'object' && (msg as { method?: unknown }).method === 'initialize') {
        counters.initializeCount++;
        changed();
      }
    }
  };

  const endSession = (id: string, how: 'closed' | 'expired') => {
    const session = sessions.get(id);
    if (!session) return;
    sessions.delete(id);
    streamableTransports.delete(id);
    sseTransports.delete(id);
    if (how === 'closed') counters.sessionsClosed++;
    else counters.sessionsExpired++;
    void session.close();
    changed();
  };

  const handleStreamable = async (req: IncomingMessage & { auth?: AuthInfo }, res: ServerResponse, path: string, sessionId: string | undefined) => {
    if (path !== '/mcp') return notFound(res);
    const body = req.method === 'POST' ? await readJson(req) : undefined;
    if (req.method === 'POST') countInitialize(body);
    if (sessionId) {
      const transport = streamableTransports.get(sessionId);
      if (!transport) return unknownSession(res);
      return transport.handleRequest(req, res, body);
    }
    if (req.method !== 'POST' || !isInitialize(body)) {
      return json(res, 400, { jsonrpc: '2.0', error: { code: -32000, message: 'Bad Request: no session id' }, id: null });
    }
    const server = buildServer(counters, changed);
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        counters.sessionsOpened++;
        streamableTransports.set(id, transport);
        sessions.set(id, { server, close: () => server.close().catch(() => {}) });
        changed();
      },
      onsessionclosed: (id) => endSession(id, 'closed'),
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  };

  const handleSse = async (req: IncomingMessage & { auth?: AuthInfo }, res: ServerResponse, path: string, sessionId: string | undefined) => {
    if (req.method === 'GET' && path === '/sse') {
      const server = buildServer(counters, changed);
      const transport = new SSEServerTransport('/messages', res);
      const id = transport.sessionId;
      sseTransports.set(id, transport);
      sessions.set(id, { server, close: () => server.close().catch(() => {}) });
      counters.sessionsOpened++;
      changed();
      // The client closing its event stream ends the session (SSE has no DELETE).
      res.on('close', () => endSession(id, 'closed'));
      await server.connect(transport);
      return;
    }
    if (req.method === 'POST' && path === '/messages') {
      const transport = sessionId ? sseTransports.get(sessionId) : undefined;
      if (!transport) return unknownSession(res);
      const body = await readJson(req);
      countInitialize(body);
      await transport.handlePostMessage(req, res, body);
      return;
    }
    return notFound(res);
  };

  const unknownSession = (res: ServerResponse) => {
    counters.unknownSession404s++;
    const last = requests.at(-1);
    if (last) last.rejectedWith = 404;
    json(res, 404, { jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null });
  };

  const http: HttpServer = createServer((req: IncomingMessage & { auth?: AuthInfo }, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const sessionId = opts.transport === 'sse' ? (url.searchParams.get('sessionId') ?? undefined) : header(req, 'mcp-session-id');
    const authorization = header(req, 'authorization');
    const entry: TestMcpRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      ...(authorization !== undefined ? { authorization } : {}),
      ...(sessionId !== undefined ? { sessionId } : {}),
    };
    requests.push(entry);
    if (opts.keepAlive === false) res.setHeader('Connection', 'close');
    void (async () => {
      let subject = 'anonymous';
      if (opts.verifyBearer) {
        try {
          subject = (await opts.verifyBearer(authorization, { method: entry.method })).subject;
        } catch {
          entry.rejectedWith = 401;
          res.setHeader('WWW-Authenticate', 'Bearer error="invalid_token"');
          return json(res, 401, { error: 'invalid_token' });
        }
      }
      req.auth = { token: '', clientId: 'test-mcp-server', scopes: [], extra: { subject } };
      if (opts.transport === 'sse') await handleSse(req, res, url.pathname, sessionId);
      else await handleStreamable(req, res, url.pathname, sessionId);
    })().catch(() => {
      if (!res.headersSent) json(res, 500, { error: 'internal' });
      else res.end();
    });
  });
  http.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    // A deep accept queue: load tests open thousands of connections at once (one socket per concurrent
    // request), and Node's default backlog of 511 drops the rest into connect timeouts.
    http.listen({ port: opts.port ?? 0, host: '127.0.0.1', backlog: 4096 }, () => {
      http.off('error', reject);
      resolve();
    });
  });
  const port = (http.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;

  return {
    url: `http://127.0.0.1:${port}${opts.transport === 'sse' ? '/sse' : '/mcp'}`,
    port,
    requests,
    stats,
    waitForStats(predicate) {
      return new Promise((resolve) => {
        const check = () => {
          const now = stats();
          if (!predicate(now)) return;
          waiters.delete(check);
          resolve(now);
        };
        waiters.add(check);
        check();
      });
    },
    expireSessions() {
      for (const id of [...sessions.keys()]) endSession(id, 'expired');
    },
    close() {
      closing ??= (async () => {
        const closingSessions = [...sessions.values()].map((s) => s.close());
        sessions.clear();
        streamableTransports.clear();
        sseTransports.clear();
        await Promise.all(closingSessions);
        const closed = new Promise<void>((resolve) => http.close(() => resolve()));
        http.closeAllConnections();
        for (const socket of sockets) socket.destroy();
        await closed;
      })();
      return closing;
    },
  };
}

/** One McpServer per session, with the test tools; `changed` wakes `waitForStats` waiters. */
function buildServer(counters: TestMcpServerStats, changed: () => void): McpServer {
  const server = new McpServer({ name: 'mcp-switchboard-test-server', version: '1.0.0' });
  server.registerTool(
    'echo',
    { description: 'Returns its text', inputSchema: { text: z.string() } },
    async ({ text }) => ({ content: [{ type: 'text', text }] }),
  );
  server.registerTool('whoami', { description: 'The verified bearer subject of this request' }, async (extra) => {
    const subject = (extra.authInfo?.extra as { subject?: unknown } | undefined)?.subject;
    return { content: [{ type: 'text', text: typeof subject === 'string' ? subject : 'anonymous' }] };
  });
  server.registerTool(
    'slow',
    { description: 'Waits ms milliseconds; ends early when cancelled', inputSchema: { ms: z.number().int().min(0).max(600_000) } },
    async ({ ms }, extra) => {
      const cancelled = await new Promise<boolean>((resolve) => {
        if (extra.signal.aborted) return resolve(true);
        const timer = setTimeout(() => {
          extra.signal.removeEventListener('abort', onAbort);
          resolve(false);
        }, ms);
        timer.unref();
        const onAbort = () => {
          clearTimeout(timer);
          resolve(true);
        };
        extra.signal.addEventListener('abort', onAbort, { once: true });
      });
      if (cancelled) {
        counters.cancelledCalls++;
        changed();
      }
      return { content: [{ type: 'text', text: cancelled ? 'cancelled' : `slept ${ms} ms` }] };
    },
  );
  server.registerTool(
    'fail',
    { description: 'Fails: an isError result, or a thrown error', inputSchema: { mode: z.enum(['result', 'throw']).optional() } },
    async ({ mode }) => {
      if (mode === 'throw') throw new Error('fail tool threw');
      return { isError: true, content: [{ type: 'text', text: 'fail tool failed' }] };
    },
  );
  return server;
}

function isInitialize(body: unknown): boolean {
  return !!body && typeof body === 'object' && !Array.isArray(body) && (body as { method?: unknown }).method === 'initialize';
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 4 * 1024 * 1024) throw new Error('body too large');
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? (JSON.parse(text) as unknown) : undefined;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

function notFound(res: ServerResponse): void {
  json(res, 404, { error: 'not_found' });
}
