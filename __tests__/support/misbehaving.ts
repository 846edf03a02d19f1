/**
 * Real SDK MCP servers on 127.0.0.1 that misbehave the way servers in public bug reports do, and count what
 * they receive, so tests judge the client by what reached the server.
 *
 * `startMisbehavingServer(opts)` runs one `McpServer` per session over the SDK's `StreamableHTTPServerTransport`
 * (endpoint `/mcp`) or the legacy `SSEServerTransport` (stream `/sse`, messages `/messages`) on `node:http`:
 *
 * - `staleSessionStatus`: what a request with an unknown session id gets: 404 `Session not found` (the spec) or
 *   400 `Bad Request: No valid session ID provided` (what the SDK's example servers answer after a restart).
 * - `standby`: how a streamable HTTP `GET` (the standby event stream) is answered: `'sdk'` (the SDK keeps it
 *   open), `'end'` (200 `text/event-stream`, ended at once), `'end-with-retry'` (the same after `retry: 50`).
 * - `repeatCursor`: `tools/list` always answers `nextCursor: 'same'`.
 * - `enableJsonResponse`: POST answers are plain JSON, headers sent only when the result is ready.
 * - `failPosts(status)`: every POST is answered with that HTTP status until `failPosts(undefined)`.
 * - `restart()`: drops every session and socket and listens again on the same port (an in-process restart;
 *   use `keepAlive: false` with it, so no idle pooled socket is cut under the client's next request).
 *
 * Tools of every session: `echo` (`{ text }`), `sleep` (`{ ms }` → `done`; `cancelled` on cancellation),
 * `progress` (`{ everyMs, steps }`: a progress notification every `everyMs` when the call has a progress token,
 * `done` after `steps` ticks), `hang` (never answers; ends only on cancellation). `counts.runs[tool]` counts
 * executions started; `toolStarted(tool)` resolves at the next start.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { ListToolsRequestSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { readJson } from './http.js';

/** How a streamable HTTP standby `GET` is answered. */
export type StandbyMode = 'sdk' | 'end' | 'end-with-retry';

/** Options of {@link startMisbehavingServer}. */
export interface MisbehavingServerOptions {
  /** Default `'streamable-http'`. */
  transport?: 'streamable-http' | 'sse';
  /** Streamable HTTP: answer POSTs with JSON (headers only once the result is ready). Default `false`. */
  enableJsonResponse?: boolean;
  /** Answer to an unknown session id. Default 404. */
  staleSessionStatus?: 400 | 404;
  /** Streamable HTTP standby GET handling. Default `'sdk'`. */
  standby?: StandbyMode;
  /** `tools/list` always returns `nextCursor: 'same'`. */
  repeatCursor?: boolean;
  /** Port to listen on; default ephemeral. */
  port?: number;
  /**
   * `false`: every answer carries `Connection: close`, so the client keeps no idle pooled socket that a
   * `restart()` would cut under its next request (a real restart leaves time to notice). Default `true`.
   */
  keepAlive?: boolean;
}

/** What the server received (live object; see {@link MisbehavingServer.snapshot}). */
export interface ServerCounts {
  posts: number;
  gets: number;
  deletes: number;
  /** `initialize` requests received. */
  initializes: number;
  /** `tools/list` requests received. */
  toolsList: number;
  /** `tools/call` requests received. */
  toolsCall: number;
  sessionsOpened: number;
  /** Requests answered with `staleSessionStatus` for an unknown session. */
  staleAnswers: number;
  /** POSTs answered by `failPosts`. */
  failedPosts: number;
  /** Tool executions started, by tool name. */
  runs: Record<string, number>;
  /** Streamable HTTP GETs, by `Mcp-Session-Id` (`'none'` without one). */
  getsBySession: Record<string, number>;
}

/** A running {@link startMisbehavingServer}. */
export interface MisbehavingServer {
  /** `http://127.0.0.1:PORT/mcp` or `http://127.0.0.1:PORT/sse`. */
  url: string;
  port: number;
  /** Live counters. */
  counts: ServerCounts;
  /** A copy of the counters. */
  snapshot(): ServerCounts;
  /** Resolves with the counters as soon as `predicate` holds (checked on every change). */
  waitFor(predicate: (c: ServerCounts) => boolean): Promise<ServerCounts>;
  /** Resolves at the next start of tool `name`. */
  toolStarted(name: string): Promise<void>;
  /** Answer every POST with `status` from now on; `undefined` answers normally again. */
  failPosts(status: number | undefined): void;
  /** Forgets every session, drops every socket, listens again on the same port. */
  restart(): Promise<void>;
  /** Stops for good. Idempotent. */
  close(): Promise<void>;
}

const STALE_BODY = {
  400: { jsonrpc: '2.0', error: { code: -32000, message: 'Bad Request: No valid session ID provided' }, id: null },
  404: { jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null },
} as const;

const text = (t: string): CallToolResult => ({ content: [{ type: 'text', text: t }] });

/** Starts a misbehaving server; see the module comment. */
export async function startMisbehavingServer(opts: MisbehavingServerOptions = {}): Promise<MisbehavingServer> {
  const kind = opts.transport ?? 'streamable-http';
  const staleStatus = opts.staleSessionStatus ?? 404;
  const standby = opts.standby ?? 'sdk';
  const counts: ServerCounts = {
    posts: 0,
    gets: 0,
    deletes: 0,
    initializes: 0,
    toolsList: 0,
    toolsCall: 0,
    sessionsOpened: 0,
    staleAnswers: 0,
    failedPosts: 0,
    runs: {},
    getsBySession: {},
  };
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const changed = () => events.emit('changed');
  const streamable = new Map<string, StreamableHTTPServerTransport>();
  const sse = new Map<string, SSEServerTransport>();
  const servers = new Set<McpServer>();
  const sockets = new Set<Socket>();
  let failStatus: number | undefined;

  const started = (name: string) => {
    counts.runs[name] = (counts.runs[name] ?? 0) + 1;
    events.emit(`started:${name}`);
    changed();
  };

  const buildServer = (): McpServer => {
    const server = new McpServer({ name: 'misbehaving', version: '1.0.0' });
    servers.add(server);
    server.registerTool('echo', { inputSchema: { text: z.string() } }, async ({ text: t }) => {
      started('echo');
      return text(t);
    });
    server.registerTool('sleep', { inputSchema: { ms: z.number().int().min(0) } }, async ({ ms }, extra) => {
      started('sleep');
      return new Promise<CallToolResult>((resolve) => {
        const onAbort = () => {
          clearTimeout(timer);
          resolve(text('cancelled'));
        };
        const timer = setTimeout(() => {
          extra.signal.removeEventListener('abort', onAbort);
          resolve(text('done'));
        }, ms);
        extra.signal.addEventListener('abort', onAbort, { once: true });
      });
    });
    server.registerTool('progress', { inputSchema: { everyMs: z.number().int().min(1), steps: z.number().int().min(1) } }, async ({ everyMs, steps }, extra) => {
      started('progress');
      const token = extra._meta?.progressToken;
      return new Promise<CallToolResult>((resolve) => {
        let done = 0;
        const onAbort = () => {
          clearInterval(timer);
          resolve(text('cancelled'));
        };
        const timer = setInterval(() => {
          done++;
          if (token !== undefined) {
            void extra
              .sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: done, total: steps } })
              .catch(() => {});
          }
          if (done >= steps) {
            clearInterval(timer);
            extra.signal.removeEventListener('abort', onAbort);
            resolve(text('done'));
          }
        }, everyMs);
        extra.signal.addEventListener('abort', onAbort, { once: true });
      });
    });
    server.registerTool('hang', { description: 'Never answers' }, async (extra) => {
      started('hang');
      return new Promise<CallToolResult>((resolve) => extra.signal.addEventListener('abort', () => resolve(text('cancelled')), { once: true }));
    });
    if (opts.repeatCursor) {
      server.server.setRequestHandler(ListToolsRequestSchema, async () => ({
        tools: [{ name: 'echo', inputSchema: { type: 'object' as const, properties: { text: { type: 'string' } } } }],
        nextCursor: 'same',
      }));
    }
    return server;
  };

  const countMessages = (body: unknown) => {
    for (const msg of Array.isArray(body) ? body : [body]) {
      const method = (msg as { method?: unknown } | undefined)?.method;
      if (method === 'initialize') counts.initializes++;
      else if (method === 'tools/list') counts.toolsList++;
      else if (method === 'tools/call') counts.toolsCall++;
    }
  };

  const stale = (res: ServerResponse) => {
    counts.staleAnswers++;
    changed();
    json(res, staleStatus, STALE_BODY[staleStatus]);
  };

  const handleStreamable = async (req: IncomingMessage, res: ServerResponse, sessionId: string | undefined, body: unknown) => {
    if (req.method === 'GET') {
      const key = sessionId ?? 'none';
      counts.getsBySession[key] = (counts.getsBySession[key] ?? 0) + 1;
      changed();
    }
    if (sessionId) {
      const transport = streamable.get(sessionId);
      if (!transport) return stale(res);
      if (req.method === 'GET' && standby !== 'sdk') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.end(standby === 'end-with-retry' ? 'retry: 50\n\n' : undefined);
        return;
      }
      return transport.handleRequest(req, res, body);
    }
    const isInit = req.method === 'POST' && !!body && !Array.isArray(body) && (body as { method?: unknown }).method === 'initialize';
    if (!isInit) return json(res, 400, STALE_BODY[400]);
    const server = buildServer();
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      enableJsonResponse: opts.enableJsonResponse ?? false,
      onsessioninitialized: (id) => {
        streamable.set(id, transport);
        counts.sessionsOpened++;
        changed();
      },
      onsessionclosed: (id) => void streamable.delete(id),
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  };

  const handleSse = async (req: IncomingMessage, res: ServerResponse, path: string, sessionId: string | undefined, body: unknown) => {
    if (req.method === 'GET' && path === '/sse') {
      const server = buildServer();
      const transport = new SSEServerTransport('/messages', res);
      sse.set(transport.sessionId, transport);
      counts.sessionsOpened++;
      changed();
      res.on('close', () => sse.delete(transport.sessionId));
      await server.connect(transport);
      return;
    }
    if (req.method === 'POST' && path === '/messages') {
      const transport = sessionId ? sse.get(sessionId) : undefined;
      if (!transport) return stale(res);
      await transport.handlePostMessage(req, res, body);
      return;
    }
    json(res, 404, { error: 'not_found' });
  };

  const http: HttpServer = createServer((req, res) => {
    if (opts.keepAlive === false) res.setHeader('Connection', 'close');
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const sessionId = kind === 'sse' ? (url.searchParams.get('sessionId') ?? undefined) : headerOf(req, 'mcp-session-id');
      if (req.method === 'POST') counts.posts++;
      else if (req.method === 'GET') counts.gets++;
      else if (req.method === 'DELETE') counts.deletes++;
      const body = req.method === 'POST' ? await readJson(req) : undefined;
      if (req.method === 'POST' && failStatus !== undefined) {
        counts.failedPosts++;
        changed();
        res.writeHead(failStatus, { 'content-type': 'text/plain' }).end('upstream unavailable');
        return;
      }
      if (req.method === 'POST') countMessages(body);
      changed();
      if (kind === 'sse') await handleSse(req, res, url.pathname, sessionId, body);
      else if (url.pathname !== '/mcp') json(res, 404, { error: 'not_found' });
      else await handleStreamable(req, res, sessionId, body);
    })().catch(() => {
      if (!res.headersSent) json(res, 500, { error: 'internal' });
      else res.end();
    });
  });
  http.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen({ port, host: '127.0.0.1' }, () => {
        http.off('error', reject);
        resolve();
      });
    });

  const dropEverything = async () => {
    const all = [...servers];
    servers.clear();
    streamable.clear();
    sse.clear();
    await Promise.all(all.map((s) => s.close().catch(() => {})));
    const closed = new Promise<void>((resolve) => http.close(() => resolve()));
    http.closeAllConnections();
    for (const s of sockets) s.destroy();
    await closed;
  };

  await listen(opts.port ?? 0);
  const port = (http.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;

  const snapshot = (): ServerCounts => ({ ...counts, runs: { ...counts.runs }, getsBySession: { ...counts.getsBySession } });

  return {
    url: `http://127.0.0.1:${port}${kind === 'sse' ? '/sse' : '/mcp'}`,
    port,
    counts,
    snapshot,
    waitFor(predicate) {
      return new Promise((resolve) => {
        const check = () => {
          if (!predicate(counts)) return;
          events.off('changed', check);
          resolve(snapshot());
        };
        events.on('changed', check);
        check();
      });
    },
    toolStarted(name) {
      return new Promise((resolve) => events.once(`started:${name}`, () => resolve()));
    },
    failPosts(status) {
      failStatus = status;
    },
    async restart() {
      await dropEverything();
      await listen(port);
    },
    close() {
      closing ??= dropEverything().catch(() => {});
      return closing;
    },
  };
}

/** A logger spy (the package's `{ debug, info, warn, error }` taking `(obj, msg)`) keeping every line. */
export function spyLogger() {
  const lines: { level: 'debug' | 'info' | 'warn' | 'error'; obj: unknown; msg: string | undefined }[] = [];
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const at =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (obj: unknown, msg?: string): void => {
      lines.push({ level, obj, msg });
      events.emit('line');
    };
  const textOf = (l: { obj: unknown; msg: string | undefined }) => `${typeof l.obj === 'string' ? l.obj : ''} ${l.msg ?? ''}`;
  const matching = (level: 'debug' | 'info' | 'warn' | 'error', needle: string) =>
    lines.filter((l) => l.level === level && textOf(l).toLowerCase().includes(needle.toLowerCase()));
  return {
    logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') },
    lines,
    /** Lines of `level` whose message contains `needle` (case-insensitive). */
    matching,
    /** Resolves once `n` lines of `level` contain `needle`. */
    waitFor(level: 'debug' | 'info' | 'warn' | 'error', needle: string, n: number): Promise<void> {
      return new Promise((resolve) => {
        const check = () => {
          if (matching(level, needle).length < n) return;
          events.off('line', check);
          resolve();
        };
        events.on('line', check);
        check();
      });
    },
  };
}

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}
