import { Agent } from 'undici';
import { z } from 'zod';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SwitchboardError } from '../../src/errors.js';
import { localErrorOf } from '../../src/transport/localAnswer.js';
import { WebSocketClientTransport, WebSocketOpenError } from '../../src/transport/websocketClientTransport.js';
import { createDefaultTransport } from '../../src/transport/createTransport.js';
import { startWebSocketMcpServer, type WebSocketMcpServer } from '../../src/testing/websocketServer.js';
import type { ServerConfig } from '../../src/config/schema.js';

function makeServer(): McpServer {
  const server = new McpServer({ name: 'ws-echo', version: '1.0.0' });
  server.registerTool('echo', { inputSchema: { text: z.string() } }, async ({ text }) => ({ content: [{ type: 'text', text }] }));
  server.registerTool('big', { inputSchema: { bytes: z.number() } }, async ({ bytes }) => ({ content: [{ type: 'text', text: 'x'.repeat(bytes) }] }));
  return server;
}

describe('MCP over WebSocket', () => {
  let server: WebSocketMcpServer;
  const clients: Client[] = [];

  beforeEach(async () => {
    server = await startWebSocketMcpServer({ createServer: makeServer });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await server.close();
  });

  async function connect(transport: WebSocketClientTransport): Promise<Client> {
    const client = new Client({ name: 'test', version: '1.0.0' });
    clients.push(client);
    await client.connect(transport);
    return client;
  }

  it('initializes, lists tools and calls a tool', async () => {
    expect(server.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/mcp$/);
    const client = await connect(new WebSocketClientTransport(new URL(server.url)));
    expect(client.getServerVersion()).toMatchObject({ name: 'ws-echo' });
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(['big', 'echo']);
    const result = await client.callTool({ name: 'echo', arguments: { text: 'over ws' } });
    expect(result.content).toEqual([{ type: 'text', text: 'over ws' }]);
    expect(server.connections()).toBe(1);
  });

  it('connects through a given dispatcher, and via createDefaultTransport', async () => {
    const dispatcher = new Agent();
    try {
      const config = { type: 'websocket', url: server.url } as ServerConfig;
      const transport = createDefaultTransport({ serverName: 'ws', config, fetch: () => Promise.reject(new Error('unused')), dispatcher });
      expect(transport).toBeInstanceOf(WebSocketClientTransport);
      const client = await connect(transport as WebSocketClientTransport);
      expect((await client.listTools()).tools).toHaveLength(2);
      await client.close();
    } finally {
      await dispatcher.close();
    }
  });

  it('fires onclose once when the server closes the socket, and pending calls fail', async () => {
    const transport = new WebSocketClientTransport(new URL(server.url));
    const client = await connect(transport);
    let closes = 0;
    const closed = new Promise<void>((resolve) => {
      client.onclose = () => {
        closes++;
        resolve();
      };
    });
    await server.close();
    await closed;
    expect(closes).toBe(1);
    await expect(client.listTools()).rejects.toThrow();
    await transport.close();
    expect(closes).toBe(1);
  });

  it('fails only the call answered over maxMessageBytes, with too_large; the connection stays open', async () => {
    const transport = new WebSocketClientTransport(new URL(server.url), { maxMessageBytes: 2_000 });
    const client = await connect(transport);
    let closes = 0;
    client.onclose = () => closes++;
    const small = await client.callTool({ name: 'big', arguments: { bytes: 100 } });
    expect(small.content).toHaveLength(1);
    const err = await client.callTool({ name: 'big', arguments: { bytes: 5_000 } }).catch((e: unknown) => e);
    expect(localErrorOf(err)).toMatchObject({ code: 'too_large' });
    const after = await client.callTool({ name: 'echo', arguments: { text: 'after' } });
    expect(after.content).toEqual([{ type: 'text', text: 'after' }]);
    expect(closes).toBe(0);
    expect(server.connections()).toBe(1);
  });

  it('refuses to send a message larger than maxMessageBytes', async () => {
    const transport = new WebSocketClientTransport(new URL(server.url), { maxMessageBytes: 2_000 });
    const client = await connect(transport);
    const err = await client.callTool({ name: 'echo', arguments: { text: 'y'.repeat(5_000) } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SwitchboardError);
    expect((err as SwitchboardError).code).toBe('too_large');
  });

  it('rejects start() when nothing listens, and validates its options', async () => {
    const url = new URL(server.url);
    await server.close();
    const transport = new WebSocketClientTransport(url);
    transport.onerror = () => {};
    // Not yet a SwitchboardError: the connection's classifier makes it a `connect_failed` naming the server.
    await expect(transport.start()).rejects.toBeInstanceOf(WebSocketOpenError);
    await transport.close();
    expect(() => new WebSocketClientTransport(new URL('http://127.0.0.1/'))).toThrow(TypeError);
    expect(() => new WebSocketClientTransport(url, { maxMessageBytes: 0 })).toThrow(TypeError);
  });
});
