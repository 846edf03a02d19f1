/**
 * The default transports with the auth-aware fetch against real SDK servers on loopback: the auth provider is
 * asked for every HTTP request the SDK makes (POST, GET streams and their reconnects, DELETE), and its error
 * reaches `client.callTool` unchanged.
 */
import { EventEmitter, once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { Agent } from 'undici';
import { z } from 'zod';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { createAuthFetch } from '../../src/transport/authFetch.js';
import { createDefaultTransport } from '../../src/transport/createTransport.js';
import type { AuthHeaderProvider, AuthHeaderRequest, TransportContext } from '../../src/transport/types.js';
import type { ServerConfig } from '../../src/config/schema.js';
import { listenOnLoopback } from '../support/http.js';

function echoServer(): McpServer {
  const server = new McpServer({ name: 'echo', version: '1.0.0' });
  server.registerTool('echo', { inputSchema: { text: z.string() } }, async ({ text }) => ({ content: [{ type: 'text', text }] }));
  return server;
}

interface Recorded {
  method: string;
  authorization: string | undefined;
}

/** An HTTP server on 127.0.0.1 recording method + Authorization of each request before `route` handles it. */
async function listen(route: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ origin: string; seen: Recorded[]; server: Server; close(): Promise<void> }> {
  const seen: Recorded[] = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', authorization: req.headers.authorization });
    route(req, res);
  });
  const { origin, close } = await listenOnLoopback(server);
  return { origin, seen, server, close };
}

/** An auth provider handing out token-1, token-2, …; emits 'call' per request; `fail` makes it throw. */
function recordingProvider() {
  const events = new EventEmitter();
  const calls: AuthHeaderRequest[] = [];
  let fail: Error | undefined;
  return {
    calls,
    setFailure: (err: Error | undefined) => (fail = err),
    provider: async (req: AuthHeaderRequest) => {
      calls.push(req);
      events.emit('call', req);
      if (fail) throw fail;
      return { Authorization: `Bearer token-${calls.length}` };
    },
    /** Resolves when a call matching `pred` has happened (already or later). */
    waitFor(pred: (r: AuthHeaderRequest) => boolean): Promise<AuthHeaderRequest> {
      const found = calls.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve) => {
        const on = (r: AuthHeaderRequest) => {
          if (pred(r)) {
            events.off('call', on);
            resolve(r);
          }
        };
        events.on('call', on);
      });
    },
  };
}

describe('streamable HTTP with the auth-aware fetch', () => {
  let dispatcher: Agent;
  let http: Awaited<ReturnType<typeof listen>>;
  let mcp: McpServer;
  let serverTransport: StreamableHTTPServerTransport;
  const getStreams: ServerResponse[] = [];

  beforeEach(async () => {
    dispatcher = new Agent();
    mcp = echoServer();
    serverTransport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => 'session-1' });
    await mcp.connect(serverTransport);
    getStreams.length = 0;
    http = await listen((req, res) => {
      if (req.method === 'GET') getStreams.push(res);
      void serverTransport.handleRequest(req, res);
    });
  });
  afterEach(async () => {
    await mcp.close();
    await http.close();
    await dispatcher.close();
  });

  function context(authHeaders: AuthHeaderProvider): TransportContext {
    const config = { type: 'streamable-http', url: `${http.origin}/mcp` } as ServerConfig;
    return { serverName: 'echo', config, fetch: createAuthFetch({ dispatcher, authHeaders }) };
  }

  it('asks the provider for the POSTs, the standalone GET stream and the DELETE; each request carries its own token', async () => {
    const p = recordingProvider();
    const transport = createDefaultTransport(context(p.provider)) as StreamableHTTPClientTransport;
    expect(transport).toBeInstanceOf(StreamableHTTPClientTransport);
    const client = new Client({ name: 'test', version: '1.0.0' });
    await client.connect(transport);
    const result = await client.callTool({ name: 'echo', arguments: { text: 'hi' } });
    expect(result.content).toEqual([{ type: 'text', text: 'hi' }]);
    await p.waitFor((r) => r.method === 'GET');
    await transport.terminateSession();
    await client.close();

    const methods = p.calls.map((c) => c.method);
    expect(methods.filter((m) => m === 'POST').length).toBeGreaterThanOrEqual(3); // initialize, initialized, tools/call
    expect(methods).toContain('GET');
    expect(methods[methods.length - 1]).toBe('DELETE');
    // The server saw exactly the tokens handed out, one per request, none reused.
    const tokens = http.seen.map((s) => s.authorization);
    expect(new Set(tokens).size).toBe(tokens.length);
    expect(tokens.every((t) => /^Bearer token-\d+$/.test(t ?? ''))).toBe(true);
    expect(http.seen.map((s) => s.method).sort()).toEqual([...methods].sort());
  });

  it('asks the provider again when the GET stream reconnects', async () => {
    const p = recordingProvider();
    const authFetch = createAuthFetch({ dispatcher, authHeaders: p.provider });
    const opened = new EventEmitter();
    const transport = new StreamableHTTPClientTransport(new URL(`${http.origin}/mcp`), {
      // Tells the test when the client holds the GET stream's response (headers received).
      fetch: async (url, init) => {
        const res = await authFetch(url, init);
        if (init?.method === 'GET' && res.ok) opened.emit('open');
        return res;
      },
      reconnectionOptions: { initialReconnectionDelay: 1, maxReconnectionDelay: 1, reconnectionDelayGrowFactor: 1, maxRetries: 3 },
    });
    const client = new Client({ name: 'test', version: '1.0.0' });
    client.onerror = () => {}; // the dropped stream is reported here
    const firstOpen = once(opened, 'open');
    await client.connect(transport);
    await firstOpen;
    const reopened = once(opened, 'open');
    getStreams[0]!.destroy(); // the server drops the stream
    await reopened;
    expect(p.calls.filter((c) => c.method === 'GET').map((c) => c.forceRefresh)).toEqual([false, false]);
    expect(http.seen.filter((s) => s.method === 'GET').map((s) => s.authorization)).toHaveLength(2);
    await client.close();
  });

  it('rejects client.callTool with the very error object the provider threw, sending nothing', async () => {
    const p = recordingProvider();
    const client = new Client({ name: 'test', version: '1.0.0' });
    client.onerror = () => {};
    await client.connect(createDefaultTransport(context(p.provider)));
    await p.waitFor((r) => r.method === 'GET');
    const posts = () => http.seen.filter((s) => s.method === 'POST').length;
    const before = posts();
    const boom = new Error('exchange failed');
    p.setFailure(boom);
    const err = await client.callTool({ name: 'echo', arguments: { text: 'x' } }).catch((e: unknown) => e);
    expect(err).toBe(boom);
    expect(posts()).toBe(before);
    p.setFailure(undefined);
    await client.close();
  });
});

describe('SSE with the auth-aware fetch', () => {
  it('asks the provider for the event-stream GET and every POST', async () => {
    const dispatcher = new Agent();
    const mcp = echoServer();
    let sse: SSEServerTransport | undefined;
    const http = await listen((req, res) => {
      if (req.method === 'GET' && req.url === '/sse') {
        sse = new SSEServerTransport('/messages', res);
        void mcp.connect(sse);
      } else if (req.method === 'POST' && req.url?.startsWith('/messages') && sse) {
        void sse.handlePostMessage(req, res);
      } else {
        res.writeHead(404).end();
      }
    });
    try {
      const p = recordingProvider();
      const config = { type: 'sse', url: `${http.origin}/sse` } as ServerConfig;
      const client = new Client({ name: 'test', version: '1.0.0' });
      await client.connect(createDefaultTransport({ serverName: 'echo', config, fetch: createAuthFetch({ dispatcher, authHeaders: p.provider }) }));
      const result = await client.callTool({ name: 'echo', arguments: { text: 'over sse' } });
      expect(result.content).toEqual([{ type: 'text', text: 'over sse' }]);
      await client.close();
      expect(p.calls[0]!.method).toBe('GET');
      expect(p.calls[0]!.url.pathname).toBe('/sse');
      expect(p.calls.filter((c) => c.method === 'POST').length).toBeGreaterThanOrEqual(3);
      expect(http.seen.map((s) => s.authorization)).toEqual(p.calls.map((_c, i) => `Bearer token-${i + 1}`));
    } finally {
      await mcp.close();
      await http.close();
      await dispatcher.close();
    }
  });
});

describe('stdio default transport', () => {
  it('runs server-everything and lists its tools', async () => {
    const entry = join(process.cwd(), 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
    const config = { type: 'stdio', command: process.execPath, args: [entry, 'stdio'], stderr: 'ignore' } as ServerConfig;
    const client = new Client({ name: 'test', version: '1.0.0' });
    await client.connect(createDefaultTransport({ serverName: 'everything', config, fetch: () => Promise.reject(new Error('unused')) }));
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toContain('echo');
    } finally {
      await client.close();
    }
  });
});
