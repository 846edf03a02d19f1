/**
 * The client surface of MCPConnection beyond tools, against the reference server
 * `@modelcontextprotocol/server-everything` as a real child process, over stdio and over streamable HTTP on
 * loopback: resources (list, templates, read text / blob, subscribe → resourceUpdated, unsubscribe), prompts
 * (list, get with arguments), completions (prompt and resource template arguments), progress on a long-running
 * tool, the log level and server logs, and the client capabilities declared from the host's handlers (the
 * server registers its sampling and roots tools only for a client that declares them, asks for roots on its
 * own, and asks for sampling from a tool).
 *
 * What server-everything does, as read from its sources: resources are its `docs/` files
 * (`demo://resource/static/document/<name>`) plus two templates (`demo://resource/dynamic/{text,blob}/{id}`);
 * a subscribe is acknowledged with an info log; `toggle-subscriber-updates` sends `resources/updated` for the
 * subscribed URIs at once (then every 5 s until toggled off); `toggle-simulated-logging` sends one log message
 * at once (then every 5 s); 350 ms after `initialized` it asks a client that declares roots for them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent } from 'undici';
import type { CreateMessageRequest, JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { MCPConnection, type ServerLogEvent, type ServerRequestContext } from '../../src/MCPConnection.js';
import { parseServerConfig } from '../../src/config/index.js';
import { createAuthFetch } from '../../src/transport/authFetch.js';
import { createDefaultTransport } from '../../src/transport/createTransport.js';
import type { ServerConfig } from '../../src/config/schema.js';
import { firstText } from '../support/mcp.js';
import { EVERYTHING, EVERYTHING_DIR, startEverythingHttp } from '../support/everything.js';

/** The files server-everything serves as static resources. */
const DOCS = readdirSync(join(EVERYTHING_DIR, 'dist', 'docs')).sort();

/** One connection to server-everything and what was seen on its wire and by its handlers. */
interface Peer {
  conn: MCPConnection;
  /** Requests this client sent, by method. */
  sent: Record<string, number>;
  sampling: { request: CreateMessageRequest['params']; ctx: ServerRequestContext }[];
  roots: ServerRequestContext[];
  /** Resolves at the first roots/list the server sends. */
  rootsAsked: Promise<void>;
}

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A connection with (or without) sampling and roots handlers, counting what it sends. */
async function connect(config: ServerConfig, withHandlers: boolean): Promise<Peer> {
  const dispatcher = new Agent();
  cleanups.push(() => dispatcher.close());
  const fetch = createAuthFetch({ dispatcher });
  const sent: Record<string, number> = {};
  const sampling: Peer['sampling'] = [];
  const roots: Peer['roots'] = [];
  let onRoots!: () => void;
  const rootsAsked = new Promise<void>((resolve) => (onRoots = resolve));
  const conn = new MCPConnection({
    serverName: 'everything',
    config,
    user: { id: 'alice', tenantId: 'contoso' },
    createTransport: async (signal) => {
      const t = createDefaultTransport({ serverName: 'everything', config, fetch, ...(signal ? { signal } : {}) });
      const send = t.send.bind(t);
      t.send = (message: JSONRPCMessage, opts) => {
        if ('method' in message && 'id' in message) sent[message.method] = (sent[message.method] ?? 0) + 1;
        return send(message, opts);
      };
      return t;
    },
    ...(withHandlers
      ? {
          handlers: {
            sampling: async (request, ctx) => {
              sampling.push({ request, ctx });
              return { role: 'assistant' as const, model: 'host-model', content: { type: 'text' as const, text: `host answer for ${ctx.user?.id}` } };
            },
            roots: (ctx) => {
              roots.push(ctx);
              onRoots();
              return [{ uri: 'file:///workspace/alice', name: 'alice-workspace' }];
            },
          },
        }
      : {}),
  });
  cleanups.push(() => conn.close());
  await conn.connect();
  return { conn, sent, sampling, roots, rootsAsked };
}

/** The first `serverLog` event matching `test`, as a promise (listening from now on). */
function serverLog(conn: MCPConnection, test: (e: ServerLogEvent) => boolean): Promise<ServerLogEvent> {
  return new Promise((resolve) => {
    const on = (e: ServerLogEvent) => {
      if (!test(e)) return;
      conn.off('serverLog', on);
      resolve(e);
    };
    conn.on('serverLog', on);
  });
}

describe.each(['stdio', 'streamable-http'] as const)('server-everything over %s: the client surface', (type) => {
  let peer: Peer;
  let bare: Peer;

  beforeAll(async () => {
    let config: ServerConfig;
    if (type === 'stdio') {
      config = parseServerConfig('everything', { type: 'stdio', command: process.execPath, args: [EVERYTHING, 'stdio'], stderr: 'ignore' });
    } else {
      const server = await startEverythingHttp();
      cleanups.push(() => server.stop());
      config = parseServerConfig('everything', { type: 'streamable-http', url: `http://127.0.0.1:${server.port}/mcp` });
    }
    peer = await connect(config, true);
    bare = await connect(config, false);
  });

  it('lists every resource (the server docs) and both templates, cached after the first listing', async () => {
    const resources = await peer.conn.listResources();
    expect(resources.map((r) => r.name).sort()).toEqual(DOCS);
    expect(resources.every((r) => r.uri.startsWith('demo://resource/static/document/'))).toBe(true);
    expect(await peer.conn.listResources()).toEqual(resources);
    expect(peer.sent['resources/list']).toBe(1);

    const templates = await peer.conn.listResourceTemplates();
    expect(templates.map((t) => t.uriTemplate).sort()).toEqual(['demo://resource/dynamic/blob/{resourceId}', 'demo://resource/dynamic/text/{resourceId}']);
    await peer.conn.listResourceTemplates();
    expect(peer.sent['resources/templates/list']).toBe(1);
  });

  it('reads a static text resource (the file as served), a dynamic text resource and a blob resource', async () => {
    const doc = await peer.conn.readResource('demo://resource/static/document/architecture.md');
    expect(doc.contents).toEqual([
      { uri: 'demo://resource/static/document/architecture.md', mimeType: 'text/markdown', text: readFileSync(join(EVERYTHING_DIR, 'dist', 'docs', 'architecture.md'), 'utf8') },
    ]);
    const text = (await peer.conn.readResource('demo://resource/dynamic/text/7')).contents[0] as { text: string };
    expect(text.text).toMatch(/^Resource 7: This is a plaintext resource created at /);
    const blob = (await peer.conn.readResource('demo://resource/dynamic/blob/8')).contents[0] as { blob: string };
    expect(Buffer.from(blob.blob, 'base64').toString('utf8')).toMatch(/^Resource 8: This is a base64 blob created at /);
  });

  it('subscribes, receives resourceUpdated for that uri, and unsubscribes', async () => {
    const uri = 'demo://resource/static/document/features.md';
    const acknowledged = serverLog(peer.conn, (e) => typeof e.data === 'string' && e.data.startsWith(`Received Subscribe Resource request for URI: ${uri}`));
    await peer.conn.subscribeResource(uri);
    expect(peer.conn.subscriptions).toEqual([uri]);
    expect((await acknowledged).level).toBe('info');

    const updated = new Promise<string>((resolve) => peer.conn.once('resourceUpdated', ({ uri: u }) => resolve(u)));
    const toggledOn = await peer.conn.callTool('toggle-subscriber-updates');
    expect(firstText(toggledOn)).toMatch(/^Started simulated resource updated notifications/);
    expect(await updated).toBe(uri);
    expect(firstText(await peer.conn.callTool('toggle-subscriber-updates'))).toMatch(/^Stopped simulated resource updates/);

    await peer.conn.unsubscribeResource(uri);
    expect(peer.conn.subscriptions).toEqual([]);
    expect(peer.sent).toMatchObject({ 'resources/subscribe': 1, 'resources/unsubscribe': 1 });
  });

  it('lists prompts and gets prompts with arguments', async () => {
    const prompts = await peer.conn.listPrompts();
    expect(prompts.map((p) => p.name)).toEqual(expect.arrayContaining(['simple-prompt', 'args-prompt', 'completable-prompt', 'resource-prompt']));
    expect(prompts.find((p) => p.name === 'args-prompt')?.arguments?.map((a) => a.name)).toEqual(['city', 'state']);

    const weather = await peer.conn.getPrompt('args-prompt', { city: 'Lisbon', state: 'Estremadura' });
    expect(weather.messages).toEqual([{ role: 'user', content: { type: 'text', text: "What's weather in Lisbon, Estremadura?" } }]);
    const embedded = await peer.conn.getPrompt('resource-prompt', { resourceType: 'Text', resourceId: '3' });
    expect(embedded.messages[1]?.content).toMatchObject({ type: 'resource', resource: { uri: 'demo://resource/dynamic/text/3', mimeType: 'text/plain' } });
    expect(peer.sent['prompts/get']).toBe(2);
  });

  it('completes prompt arguments (with context) and a resource template argument', async () => {
    const department = await peer.conn.complete({ ref: { type: 'ref/prompt', name: 'completable-prompt' }, argument: { name: 'department', value: 'E' } });
    expect(department.values).toEqual(['Engineering']);
    const lead = await peer.conn.complete({
      ref: { type: 'ref/prompt', name: 'completable-prompt' },
      argument: { name: 'name', value: 'A' },
      context: { arguments: { department: 'Engineering' } },
    });
    expect(lead.values).toEqual(['Alice']);
    const id = await peer.conn.complete({ ref: { type: 'ref/resource', uri: 'demo://resource/dynamic/text/{resourceId}' }, argument: { name: 'resourceId', value: '42' } });
    expect(id.values).toEqual(['42']);
  });

  it('reports progress of a long-running tool, with resetTimeoutOnProgress and a total bound', async () => {
    const progress: { progress: number; total?: number }[] = [];
    const result = await peer.conn.callTool(
      'trigger-long-running-operation',
      { duration: 0.3, steps: 3 },
      { onProgress: (p) => progress.push({ progress: p.progress, total: p.total }), resetTimeoutOnProgress: true, maxTotalTimeoutMs: 20_000 },
    );
    expect(firstText(result)).toBe('Long running operation completed. Duration: 0.3 seconds, Steps: 3.');
    // The last step's progress and the result leave the server back to back: the SDK handles a response at once
    // but a notification on a microtask, so when both arrive in one read the result wins and the SDK drops that
    // last progress (its handler is gone). The steps before it are 100 ms apart from the result.
    expect(progress.slice(0, 2)).toEqual([
      { progress: 1, total: 3 },
      { progress: 2, total: 3 },
    ]);
    expect(progress.slice(2)).toEqual(progress.length === 3 ? [{ progress: 3, total: 3 }] : []);
  });

  it('sets the log level and passes the server logs on as serverLog', async () => {
    await peer.conn.setLoggingLevel('debug');
    const simulated = serverLog(peer.conn, (e) => typeof e.data === 'string' && /level[- ]message/i.test(e.data));
    expect(firstText(await peer.conn.callTool('toggle-simulated-logging'))).toMatch(/^Started simulated, random-leveled logging/);
    const log = await simulated;
    expect(['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency']).toContain(log.level);
    expect(firstText(await peer.conn.callTool('toggle-simulated-logging'))).toMatch(/^Stopped simulated logging/);
    expect(peer.sent['logging/setLevel']).toBe(1);
  });

  it('declares sampling and roots only with handlers: the server offers its sampling and roots tools to that client only', async () => {
    const withHandlers = (await peer.conn.listTools()).map((t) => t.name);
    expect(withHandlers).toEqual(expect.arrayContaining(['trigger-sampling-request', 'get-roots-list']));
    const without = (await bare.conn.listTools()).map((t) => t.name);
    expect(without).not.toContain('trigger-sampling-request');
    expect(without).not.toContain('get-roots-list');
    expect(without).toContain('echo');
    expect(bare.roots).toEqual([]);
  });

  it('forwards the server sampling request (from a tool) to the host handler and returns its answer', async () => {
    const result = await peer.conn.callTool('trigger-sampling-request', { prompt: 'say hi', maxTokens: 7 });
    expect(peer.sampling).toHaveLength(1);
    const [{ request, ctx }] = peer.sampling as [Peer['sampling'][number]];
    expect(request).toMatchObject({ maxTokens: 7, systemPrompt: 'You are a helpful test server.' });
    expect(request.messages[0]?.content).toEqual({ type: 'text', text: 'Resource trigger-sampling-request context: say hi' });
    expect(ctx).toMatchObject({ serverName: 'everything', user: { id: 'alice', tenantId: 'contoso' } });
    expect(firstText(result)).toContain('host answer for alice');
    expect(firstText(result)).toContain('host-model');
  });

  it('answers the server roots request from the host handler; the server reports the roots it got', async () => {
    await peer.rootsAsked; // the server asks on its own shortly after initialize
    expect(peer.roots[0]).toMatchObject({ serverName: 'everything', user: { id: 'alice' } });
    const listed = firstText(await peer.conn.callTool('get-roots-list'));
    expect(listed).toContain('Current MCP Roots (1 total)');
    expect(listed).toContain('alice-workspace');
    expect(listed).toContain('file:///workspace/alice');
  });

  it('exposes the SDK client of the session', () => {
    expect(peer.conn.client?.getServerVersion()).toMatchObject({ name: 'mcp-servers/everything' });
    expect(peer.conn.client?.getServerCapabilities()).toMatchObject({ resources: { subscribe: true }, logging: {} });
  });
});
