/**
 * A loopback MCP server speaking WebSocket (subprotocol `mcp`), for tests. Needs the dev dependency `ws`,
 * imported only when {@link startWebSocketMcpServer} is called.
 * @module
 */
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { JSONRPCMessageSchema, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { importOptional } from './optional.js';

/**
 * The parts of an accepted `ws` socket that {@link WebSocketServerTransport} uses: a `WebSocket` from the `ws`
 * package fits. Declared here so that the kit's types do not need `ws` (or `@types/ws`) installed.
 *
 * @example
 * ```ts
 * wss.on('connection', (socket: ServerSocket) => void mcpServer.connect(new WebSocketServerTransport(socket)));
 * ```
 */
export interface ServerSocket {
  /** Subscribes to `message` (data, isBinary), `error` and `close`. */
  on(event: 'message', listener: (data: unknown, isBinary: boolean) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'close', listener: () => void): unknown;
  /** Sends a text frame; the callback gets the error, if any. */
  send(data: string, cb: (err?: Error) => void): void;
  /** Starts the closing handshake. */
  close(code?: number): void;
}

/** The bits of the `ws` module this file uses. */
interface WsModule {
  WebSocketServer: new (opts: { server: HttpServer; handleProtocols: (protocols: Set<string>) => string | false }) => WsServer;
}
interface WsClient extends ServerSocket {
  readyState: number;
  readonly OPEN: number;
  terminate(): void;
}
interface WsServer {
  clients: Set<WsClient>;
  on(event: 'connection', listener: (socket: WsClient) => void): unknown;
  close(cb: () => void): void;
}

/**
 * The server side of one MCP-over-WebSocket connection: an SDK `Transport` around an accepted `ws` socket.
 *
 * @example
 * ```ts
 * wss.on('connection', (socket) => void mcpServer.connect(new WebSocketServerTransport(socket)));
 * ```
 */
export class WebSocketServerTransport implements Transport {
  /** Called once when the socket closes. */
  onclose?: () => void;
  /** Called on a parse error. */
  onerror?: (error: Error) => void;
  /** Called for each message received. */
  onmessage?: <T extends JSONRPCMessage>(message: T) => void;

  readonly #socket: ServerSocket;
  #closed = false;

  constructor(socket: ServerSocket) {
    this.#socket = socket;
  }

  /** Starts delivering messages (the socket is already open). */
  async start(): Promise<void> {
    this.#socket.on('message', (data: unknown, isBinary: boolean) => {
      let message: JSONRPCMessage;
      try {
        const text = isBinary ? Buffer.from(data as Buffer).toString('utf8') : String(data);
        message = JSONRPCMessageSchema.parse(JSON.parse(text));
      } catch (err) {
        this.onerror?.(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      this.onmessage?.(message);
    });
    this.#socket.on('error', (err: Error) => this.onerror?.(err));
    this.#socket.on('close', () => this.#finish());
  }

  /** Sends one message. */
  send(message: JSONRPCMessage): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#socket.send(JSON.stringify(message), (err?: Error) => (err ? reject(err) : resolve()));
    });
  }

  /** Closes the socket; idempotent. */
  async close(): Promise<void> {
    this.#socket.close(1000);
    this.#finish();
  }

  #finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.onclose?.();
  }
}

/**
 * A running {@link startWebSocketMcpServer} server.
 *
 * @example
 * ```ts
 * const server: WebSocketMcpServer = await startWebSocketMcpServer({ createServer: makeServer });
 * console.log(server.url, server.connections());
 * ```
 */
export interface WebSocketMcpServer {
  /** `ws://127.0.0.1:<port>/mcp`. */
  url: string;
  /** How many client sockets are open now. */
  connections(): number;
  /** Closes every socket and the server. Idempotent. */
  close(): Promise<void>;
}

/**
 * A small server speaking MCP over WebSocket (using the `ws` dev dependency and a server-side Transport you
 * write), on 127.0.0.1 ephemeral port; takes a factory creating an SDK McpServer per connection.
 *
 * @example
 * ```ts
 * import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
 * const server = await startWebSocketMcpServer({
 *   createServer: () => {
 *     const s = new McpServer({ name: 'echo', version: '1.0.0' });
 *     s.registerTool('echo', { inputSchema: { text: z.string() } }, async ({ text }) => ({ content: [{ type: 'text', text }] }));
 *     return s;
 *   },
 * });
 * // … connect with new WebSocketClientTransport(new URL(server.url)) …
 * await server.close();
 * ```
 */
export async function startWebSocketMcpServer(opts: { createServer: () => McpServer }): Promise<WebSocketMcpServer> {
  const { WebSocketServer } = await importOptional<WsModule>('ws', 'startWebSocketMcpServer');
  const http: HttpServer = createServer((_req, res) => res.writeHead(426, { Connection: 'close' }).end());
  const wss = new WebSocketServer({
    server: http,
    handleProtocols: (protocols) => (protocols.has('mcp') ? 'mcp' : false),
  });
  const servers = new Set<McpServer>();
  wss.on('connection', (socket) => {
    const server = opts.createServer();
    servers.add(server);
    socket.on('close', () => servers.delete(server));
    server.connect(new WebSocketServerTransport(socket)).catch(() => socket.terminate());
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = http.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    url: `ws://127.0.0.1:${port}/mcp`,
    connections: () => [...wss.clients].filter((c) => c.readyState === c.OPEN).length,
    close() {
      closing ??= (async () => {
        await Promise.allSettled([...servers].map((s) => s.close()));
        for (const client of wss.clients) client.terminate();
        await new Promise<void>((resolve) => wss.close(() => resolve()));
        http.closeAllConnections();
        await new Promise<void>((resolve) => http.close(() => resolve()));
      })();
      return closing;
    },
  };
}
