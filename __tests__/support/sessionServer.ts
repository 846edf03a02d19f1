/**
 * A streamable HTTP server with one MCP server per session, for tests whose server must know who each session
 * belongs to (from the request that opened it, e.g. an `X-User` header, as a server would from its bearer).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';

/**
 * An HTTP server (not yet listening) that opens a session on each initializing POST, with the `McpServer` that
 * `open` builds from that request (answering POSTs in JSON with `enableJsonResponse`), and routes the session's later requests to it (404 for an unknown session).
 */
export function perSessionMcpServer(open: (req: IncomingMessage) => McpServer, opts: { enableJsonResponse?: boolean } = {}): Server {
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  return createServer((req, res) => {
    void (async () => {
      const sid = req.headers['mcp-session-id'];
      let transport = typeof sid === 'string' ? sessions.get(sid) : undefined;
      if (!transport) {
        if (req.method !== 'POST' || sid !== undefined) {
          res.writeHead(404).end();
          return;
        }
        const mcp = open(req);
        const created: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          enableJsonResponse: opts.enableJsonResponse ?? false,
          onsessioninitialized: (id) => void sessions.set(id, created),
        });
        created.onclose = () => {
          if (created.sessionId) sessions.delete(created.sessionId);
        };
        await mcp.connect(created);
        transport = created;
      }
      await transport.handleRequest(req, res);
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
}
