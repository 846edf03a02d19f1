/**
 * Testing a host app with `mcp-switchboard/testing`: the host code under test (`summarize`) and jest tests
 * that run it against in-memory servers, a real OIDC provider and real MCP servers on 127.0.0.1.
 * `__tests__/unit/docs.test.ts` imports this file, so these tests run in CI.
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import {
  createBearerVerifier,
  createOboTokenResolver,
  MCPConnectionFactory,
  MCPManager,
  OboError,
  SwitchboardError,
  type UserContext,
} from 'mcp-switchboard';
import {
  createInMemoryServerFactory,
  startTestIdp,
  startTestMcpServer,
  startWebSocketMcpServer,
  type TestIdp,
  type TestMcpServer,
} from 'mcp-switchboard/testing';

// ---- the host app code under test -------------------------------------------------------------------

/** Host code: asks a server who the user is and reports it, mapping failures to user-facing answers. */
export async function summarize(manager: MCPManager, user: UserContext, serverName: string): Promise<string> {
  try {
    const result = await manager.callTool({ user, serverName, toolName: 'whoami' });
    return `${serverName} knows you as ${textOf(result)}`;
  } catch (err) {
    if (err instanceof OboError && !err.retryable) return `${serverName}: access denied (${err.reason})`;
    if (err instanceof SwitchboardError && err.retryable) return `${serverName}: try again later`;
    throw err;
  }
}

function textOf(result: CallToolResult): string {
  const first = result.content[0];
  return first?.type === 'text' ? first.text : '';
}

// ---- in memory: no sockets, a real McpServer per connection ------------------------------------------

function whoamiServer(identity: string): McpServer {
  const server = new McpServer({ name: 'fake-files', version: '1.0.0' });
  server.registerTool('whoami', {}, async () => ({ content: [{ type: 'text', text: identity }] }));
  server.registerTool('echo', { inputSchema: { text: z.string() } }, async ({ text }) => ({ content: [{ type: 'text', text }] }));
  return server;
}

describe('summarize, in memory', () => {
  it('answers with what the server says', async () => {
    const servers = createInMemoryServerFactory(() => whoamiServer('alice'));
    const connectionFactory = new MCPConnectionFactory({ createTransport: servers.createTransport });
    // The URL is never contacted: every connection goes through createTransport.
    const manager = new MCPManager({ servers: { files: { url: 'https://files.example.test/mcp' } }, connectionFactory });
    try {
      await expect(summarize(manager, { id: 'alice' }, 'files')).resolves.toBe('files knows you as alice');
      expect(servers.pairs).toHaveLength(1);
    } finally {
      await manager.close();
      await connectionFactory.close();
      await servers.close();
    }
  });

  it('says "try again later" when the server cannot be reached', async () => {
    const connectionFactory = new MCPConnectionFactory({
      createTransport: () => {
        throw new SwitchboardError('transport_error', 'connection refused', { retryable: true });
      },
    });
    const manager = new MCPManager({ servers: { files: { url: 'https://files.example.test/mcp' } }, connectionFactory });
    try {
      await expect(summarize(manager, { id: 'alice' }, 'files')).resolves.toBe('files: try again later');
    } finally {
      await manager.close();
      await connectionFactory.close();
    }
  });

  it('gets one connection per user for a user-scoped server', async () => {
    // The transport factory sees the user each connection is for (ctx.user), as a real server sees a bearer.
    const connectionFactory = new MCPConnectionFactory({
      createTransport: (ctx) => createInMemoryServerFactory(() => whoamiServer(ctx.user?.id ?? 'app')).createTransport(),
    });
    const manager = new MCPManager({
      servers: { files: { url: 'https://files.example.test/mcp', headers: { 'X-User': '{{user.id}}' } } },
      connectionFactory,
    });
    try {
      await expect(summarize(manager, { id: 'alice' }, 'files')).resolves.toBe('files knows you as alice');
      await expect(summarize(manager, { id: 'bob' }, 'files')).resolves.toBe('files knows you as bob');
      expect(manager.stats().userConnections).toBe(2);
    } finally {
      await manager.close();
      await connectionFactory.close();
    }
  });
});

// ---- real peers on loopback: an OIDC provider exchanging tokens, an MCP server verifying them ----------

describe('summarize, On-Behalf-Of end to end', () => {
  let idp: TestIdp;
  let files: TestMcpServer;
  let manager: MCPManager;

  beforeAll(async () => {
    idp = await startTestIdp();
    // The MCP server accepts only tokens the IdP minted for the downstream audience.
    const downstream = createBearerVerifier({ issuer: idp.issuer, audience: idp.downstreamAudience, allowInsecureRequests: true });
    files = await startTestMcpServer({
      transport: 'streamable-http',
      verifyBearer: async (authorization) => ({ subject: (await downstream.verify(authorization)).subject }),
    });
    manager = new MCPManager({
      servers: { files: { url: files.url, obo: { scopes: `${idp.downstreamAudience}/.default` } } },
      oboTokenResolver: createOboTokenResolver({
        issuer: idp.issuer,
        clientId: idp.client.clientId,
        clientSecret: idp.client.clientSecret,
        allowInsecureRequests: true, // the test IdP speaks plain http on 127.0.0.1
      }),
    });
  });

  afterAll(async () => {
    await manager.close();
    await files.close();
    await idp.close();
  });

  async function signedIn(id: string): Promise<UserContext> {
    return { id, tenantId: 'contoso', upstreamToken: await idp.mintAccessToken({ sub: id, tenantId: 'contoso' }) };
  }

  it('calls the server as the user', async () => {
    await expect(summarize(manager, await signedIn('alice'), 'files')).resolves.toBe('files knows you as alice');
    expect(idp.stats().exchanges).toBe(1);
  });

  it('reports a refused exchange without calling the server', async () => {
    idp.failNext(1, { status: 400, error: 'invalid_grant', suberror: 'consent_required', error_codes: [65001], grant: 'exchange' });
    const before = files.requests.length;
    await expect(summarize(manager, await signedIn('bob'), 'files')).resolves.toBe('files: access denied (exchange_failed)');
    expect(files.requests.length).toBe(before); // fail closed: nothing was sent
  });

  it('refuses a user without an upstream token', async () => {
    await expect(summarize(manager, { id: 'carol' }, 'files')).resolves.toBe('files: access denied (missing_upstream_token)');
  });
});

// ---- WebSocket ------------------------------------------------------------------------------------------

describe('summarize over WebSocket', () => {
  it('works against a loopback WebSocket MCP server', async () => {
    const ws = await startWebSocketMcpServer({ createServer: () => whoamiServer('ws-app') });
    const manager = new MCPManager({ servers: { live: { url: ws.url } } }); // ws:// → type websocket
    try {
      await expect(summarize(manager, { id: 'alice' }, 'live')).resolves.toBe('live knows you as ws-app');
      expect(manager.stats().appConnections).toBe(1); // no user identity needed: one shared connection
    } finally {
      await manager.close();
      await ws.close();
    }
  });
});
