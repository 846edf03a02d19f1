/**
 * A host app's test, run by scripts/test-packaging.mjs against the packed package with the jest and the
 * vitest configs of this directory (the configs docs/testing.md shows).
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { MCPConnectionFactory, MCPManager } from 'mcp-switchboard';
import { createInMemoryServerFactory, startWebSocketMcpServer } from 'mcp-switchboard/testing';

function whoamiServer(identity: string): McpServer {
  const server = new McpServer({ name: 'fake', version: '1.0.0' });
  server.registerTool('whoami', {}, async () => ({ content: [{ type: 'text', text: identity }] }));
  return server;
}

async function whoami(manager: MCPManager, server: string): Promise<unknown> {
  const result = await manager.callTool({ user: { id: 'alice' }, serverName: server, toolName: 'whoami' });
  return (result.content as { text?: string }[])[0]?.text;
}

describe('a host app on the packed mcp-switchboard', () => {
  it('calls a tool on an in-memory server', async () => {
    const servers = createInMemoryServerFactory(() => whoamiServer('in-memory'));
    const connectionFactory = new MCPConnectionFactory({ createTransport: servers.createTransport });
    const manager = new MCPManager({ servers: { files: { url: 'https://files.example.test/mcp' } }, connectionFactory });
    try {
      await expect(whoami(manager, 'files')).resolves.toBe('in-memory');
    } finally {
      await manager.close();
      await connectionFactory.close();
      await servers.close();
    }
  });

  it('calls a tool on a loopback WebSocket server (ws, loaded on use)', async () => {
    const ws = await startWebSocketMcpServer({ createServer: () => whoamiServer('websocket') });
    const manager = new MCPManager({ servers: { live: { url: ws.url } } });
    try {
      await expect(whoami(manager, 'live')).resolves.toBe('websocket');
    } finally {
      await manager.close();
      await ws.close();
    }
  });
});
