/**
 * The manager's MCP client surface per user, against real servers on loopback:
 * - `@modelcontextprotocol/server-everything` (a child process, streamable HTTP on 127.0.0.1, made user-scoped by
 *   a `{{user.id}}` header, so each user has a session of their own): resources, templates, reads,
 *   subscriptions and `resourceUpdated`, prompts, completions, progress, the log level and `serverLog`, sampling
 *   and roots forwarded to the manager's `onSampling` / `roots` with the right user;
 * - a small SDK server of our own that knows each session's user: two users subscribed to the same URI, each
 *   update reaches the manager as an event naming only the user whose session it came on.
 * See client-surface.test.ts for what server-everything does.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SubscribeRequestSchema, UnsubscribeRequestSchema, type CreateMessageRequest } from '@modelcontextprotocol/sdk/types.js';
import { MCPManager } from '../../src/MCPManager.js';
import type { ServerRequestContext } from '../../src/MCPConnection.js';
import type { MCPManagerEvents } from '../../src/events.js';
import type { UserContext } from '../../src/types.js';
import { firstText, nextManagerEvent } from '../support/mcp.js';
import { startEverythingHttp } from '../support/everything.js';
import { perSessionMcpServer } from '../support/sessionServer.js';



const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const alice: UserContext = { id: 'alice', tenantId: 'contoso' };
const bob: UserContext = { id: 'bob', tenantId: 'fabrikam' };

describe('MCPManager: the client surface per user, against server-everything', () => {
  let manager: MCPManager;
  const sampling: { request: CreateMessageRequest['params']; ctx: ServerRequestContext }[] = [];
  const roots: ServerRequestContext[] = [];
  let onRoots!: () => void;
  const rootsAsked = new Promise<void>((resolve) => (onRoots = resolve));
  const serverName = 'everything';

  beforeAll(async () => {
    const server = await startEverythingHttp();
    cleanups.push(() => server.stop());
    manager = new MCPManager({
      servers: { everything: { type: 'streamable-http', url: `http://127.0.0.1:${server.port}/mcp`, headers: { 'X-User': '{{user.id}}' } } },
      onSampling: async (request, ctx) => {
        sampling.push({ request, ctx });
        return { role: 'assistant', model: 'host-model', content: { type: 'text', text: `host answer for ${ctx.user?.id}` } };
      },
      roots: (ctx) => {
        roots.push(ctx);
        onRoots();
        return [{ uri: `file:///workspace/${ctx.user?.id}`, name: 'workspace' }];
      },
    });
    cleanups.push(() => manager.close());
  });

  it('lists resources and templates and reads resources, on the user connection', async () => {
    const resources = await manager.listResources({ user: alice, serverName });
    expect(resources.length).toBeGreaterThan(0);
    expect(resources.every((r) => r.uri.startsWith('demo://resource/static/document/'))).toBe(true);
    const templates = await manager.listResourceTemplates({ user: alice, serverName, timeoutMs: 10_000 });
    expect(templates.map((t) => t.uriTemplate).sort()).toEqual(['demo://resource/dynamic/blob/{resourceId}', 'demo://resource/dynamic/text/{resourceId}']);
    const doc = await manager.readResource({ user: alice, serverName, uri: resources[0]!.uri });
    expect(doc.contents[0]?.uri).toBe(resources[0]!.uri);
    const text = (await manager.readResource({ user: alice, serverName, uri: 'demo://resource/dynamic/text/7' })).contents[0] as { text: string };
    expect(text.text).toMatch(/^Resource 7: /);
    const s = manager.stats();
    expect([s.userConnections, s.appConnections]).toEqual([1, 0]);
  });

  it('subscribes: resourceUpdated names the server and the user; unsubscribes', async () => {
    const uri = 'demo://resource/static/document/features.md';
    await manager.subscribeResource({ user: alice, serverName, uri });
    const updated = nextManagerEvent(manager, 'resourceUpdated', (e) => e.uri === uri);
    expect(firstText(await manager.callTool({ user: alice, serverName, toolName: 'toggle-subscriber-updates' }))).toMatch(/^Started/);
    expect(await updated).toEqual({ serverName, scope: 'user', userId: 'alice', tenantId: 'contoso', uri });
    expect(firstText(await manager.callTool({ user: alice, serverName, toolName: 'toggle-subscriber-updates' }))).toMatch(/^Stopped/);
    await manager.unsubscribeResource({ user: alice, serverName, uri });
    const conn = await manager.getConnection({ user: alice, serverName });
    expect(conn.subscriptions).toEqual([]);
  });

  it('lists prompts, gets a prompt with arguments, and completes arguments', async () => {
    const prompts = await manager.listPrompts({ user: alice, serverName });
    expect(prompts.map((p) => p.name)).toEqual(expect.arrayContaining(['simple-prompt', 'args-prompt', 'completable-prompt']));
    const weather = await manager.getPrompt({ user: alice, serverName, name: 'args-prompt', arguments: { city: 'Lisbon', state: 'Estremadura' } });
    expect(weather.messages).toEqual([{ role: 'user', content: { type: 'text', text: "What's weather in Lisbon, Estremadura?" } }]);
    const lead = await manager.complete({
      user: alice,
      serverName,
      ref: { type: 'ref/prompt', name: 'completable-prompt' },
      argument: { name: 'name', value: 'A' },
      context: { arguments: { department: 'Engineering' } },
    });
    expect(lead.values).toEqual(['Alice']);
    const id = await manager.complete({ user: alice, serverName, ref: { type: 'ref/resource', uri: 'demo://resource/dynamic/text/{resourceId}' }, argument: { name: 'resourceId', value: '42' } });
    expect(id.values).toEqual(['42']);
  });

  it('passes progress options through callTool', async () => {
    const progress: number[] = [];
    const result = await manager.callTool({
      user: alice,
      serverName,
      toolName: 'trigger-long-running-operation',
      arguments: { duration: 0.3, steps: 3 },
      onProgress: (p) => progress.push(p.progress),
      resetTimeoutOnProgress: true,
      maxTotalTimeoutMs: 20_000,
    });
    expect(firstText(result)).toBe('Long running operation completed. Duration: 0.3 seconds, Steps: 3.');
    expect(progress.slice(0, 2)).toEqual([1, 2]); // the last one may race the result (see client-surface.test.ts)
  });

  it('sets the log level; serverLog names the server and the user', async () => {
    await manager.setLoggingLevel({ user: bob, serverName, level: 'debug' });
    const log = nextManagerEvent(manager, 'serverLog', (e) => e.userId === 'bob' && typeof e.data === 'string' && /level[- ]message/i.test(e.data));
    expect(firstText(await manager.callTool({ user: bob, serverName, toolName: 'toggle-simulated-logging' }))).toMatch(/^Started/);
    expect(await log).toMatchObject({ serverName, scope: 'user', userId: 'bob', tenantId: 'fabrikam' });
    expect(firstText(await manager.callTool({ user: bob, serverName, toolName: 'toggle-simulated-logging' }))).toMatch(/^Stopped/);
  });

  it('forwards each sampling request to onSampling with the user whose session asked', async () => {
    const a = await manager.callTool({ user: alice, serverName, toolName: 'trigger-sampling-request', arguments: { prompt: 'for alice', maxTokens: 7 } });
    const b = await manager.callTool({ user: bob, serverName, toolName: 'trigger-sampling-request', arguments: { prompt: 'for bob', maxTokens: 7 } });
    expect(firstText(a)).toContain('host answer for alice');
    expect(firstText(b)).toContain('host answer for bob');
    expect(sampling.map(({ request, ctx }) => [ctx.serverName, ctx.user?.id, (request.messages[0]?.content as { text: string }).text])).toEqual([
      [serverName, 'alice', 'Resource trigger-sampling-request context: for alice'],
      [serverName, 'bob', 'Resource trigger-sampling-request context: for bob'],
    ]);
  });

  it('answers the roots request from the roots option, with the user of the connection', async () => {
    await rootsAsked;
    expect(roots[0]).toMatchObject({ serverName });
    expect(['alice', 'bob']).toContain(roots[0]!.user?.id);
    const listed = firstText(await manager.callTool({ user: bob, serverName, toolName: 'get-roots-list' }));
    expect(listed).toContain('file:///workspace/bob');
  });

  it('withConnection leases the connection; connection.client is the SDK client', async () => {
    const version = await manager.withConnection({ user: alice, serverName }, async (connection) => {
      await connection.client!.ping();
      return connection.client!.getServerVersion();
    });
    expect(version).toMatchObject({ name: 'mcp-servers/everything' });
  });
});

/** A streamable HTTP server that knows each session's user (from `X-User`); `touch` updates the caller's inbox. */
async function startInboxServer(): Promise<{ port: number; server: Server }> {
  const server = perSessionMcpServer((req) => {
    const user = String(req.headers['x-user']);
    const mcp = new McpServer({ name: 'inbox', version: '1.0.0' }, { capabilities: { resources: { subscribe: true } } });
    const subscribed = new Set<string>();
    mcp.server.setRequestHandler(SubscribeRequestSchema, async (r) => (subscribed.add(r.params.uri), {}));
    mcp.server.setRequestHandler(UnsubscribeRequestSchema, async (r) => (subscribed.delete(r.params.uri), {}));
    mcp.registerResource('inbox', 'mail://inbox', {}, async (uri) => ({ contents: [{ uri: uri.href, text: `inbox of ${user}` }] }));
    mcp.registerTool('touch', {}, async (extra) => {
      // Only to this session, and only when it subscribed.
      if (subscribed.has('mail://inbox')) await extra.sendNotification({ method: 'notifications/resources/updated', params: { uri: 'mail://inbox' } });
      return { content: [{ type: 'text', text: user }] };
    });
    return mcp;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, server };
}

describe('MCPManager: a notification of one user never reaches another', () => {
  it('two users subscribed to the same URI on a user-scoped server: each update names only its own user', async () => {
    const { port, server } = await startInboxServer();
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    );
    const manager = new MCPManager({ servers: { inbox: { url: `http://127.0.0.1:${port}/mcp`, headers: { 'X-User': '{{user.id}}' } } } });
    cleanups.push(() => manager.close());
    const events: MCPManagerEvents['resourceUpdated'][] = [];
    manager.on('resourceUpdated', (e) => events.push(e));
    const uri = 'mail://inbox';
    await manager.subscribeResource({ user: alice, serverName: 'inbox', uri });
    await manager.subscribeResource({ user: bob, serverName: 'inbox', uri });
    expect(manager.stats().userConnections).toBe(2);

    const forAlice = nextManagerEvent(manager, 'resourceUpdated', (e) => e.userId === 'alice');
    expect(firstText(await manager.callTool({ user: alice, serverName: 'inbox', toolName: 'touch' }))).toBe('alice');
    await forAlice;
    const forBob = nextManagerEvent(manager, 'resourceUpdated', (e) => e.userId === 'bob');
    expect(firstText(await manager.callTool({ user: bob, serverName: 'inbox', toolName: 'touch' }))).toBe('bob');
    await forBob;
    const again = nextManagerEvent(manager, 'resourceUpdated', (e) => e.userId === 'alice');
    expect(firstText(await manager.callTool({ user: alice, serverName: 'inbox', toolName: 'touch' }))).toBe('alice');
    await again;
    expect(events).toEqual([
      { serverName: 'inbox', scope: 'user', userId: 'alice', tenantId: 'contoso', uri },
      { serverName: 'inbox', scope: 'user', userId: 'bob', tenantId: 'fabrikam', uri },
      { serverName: 'inbox', scope: 'user', userId: 'alice', tenantId: 'contoso', uri },
    ]);

    // Bob unsubscribes: his touches send nothing any more; Alice's still do, to her alone.
    await manager.unsubscribeResource({ user: bob, serverName: 'inbox', uri });
    expect(firstText(await manager.callTool({ user: bob, serverName: 'inbox', toolName: 'touch' }))).toBe('bob');
    const last = nextManagerEvent(manager, 'resourceUpdated', (e) => e.userId === 'alice');
    expect(firstText(await manager.callTool({ user: alice, serverName: 'inbox', toolName: 'touch' }))).toBe('alice');
    await last;
    expect(events.map((e) => e.userId)).toEqual(['alice', 'bob', 'alice', 'alice']);
  });
});
