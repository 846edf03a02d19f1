/**
 * The client surface of a connection beyond tools, against in-memory servers: resources (paged, cached until
 * list_changed, read within the size cap, subscriptions sent again on a new session), resource templates,
 * prompts, completions, the log level and server logs, progress on any request, and the client capabilities
 * declared from the host's handlers (sampling, roots).
 */
import { getEventListeners } from 'node:events';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import {
  CompleteRequestSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ReadResourceRequestSchema,
  SetLevelRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
  ErrorCode,
  McpError,
  type CreateMessageRequest,
  type JSONRPCMessage,
  type LoggingLevel,
} from '@modelcontextprotocol/sdk/types.js';
import { MCPConnection, type MCPConnectionOptions, type ResourceUpdatedEvent, type ServerLogEvent, type ServerRequestContext } from '../../src/MCPConnection.js';
import { SwitchboardError } from '../../src/errors.js';
import { parseServerConfig } from '../../src/config/index.js';
import { createInMemoryServerFactory, type InMemoryServerFactory } from '../../src/testing/inMemory.js';
import { rejectionOf } from '../support/errors.js';
import { nextState } from '../support/mcp.js';

const config = parseServerConfig('mem', { type: 'stdio', command: 'unused' });
const rejection = (p: Promise<unknown>) => rejectionOf(p, SwitchboardError);

/** What every server of a test saw, across sessions. */
interface Seen {
  /** Requests by method, across every session. */
  requests: Record<string, number>;
  /** subscribe requests of each session (index = session), by URI. */
  subscribes: string[][];
  /** logging/setLevel of each session. */
  levels: (LoggingLevel | undefined)[];
}

/** How the test server pages and sizes things. */
interface Shape {
  /** Items per page of resources, templates and prompts. */
  pageSize: number;
  /** Total resources (and templates, and prompts). */
  total: number;
  /** A cursor the server repeats instead of advancing (page 2 onwards), or none. */
  stuckCursor?: string;
  /** Text of `mem://big`. */
  bigText: string;
}

function page<T>(all: T[], cursor: string | undefined, shape: Shape): { items: T[]; nextCursor?: string } {
  const start = cursor === undefined ? 0 : Number(cursor.replace(/^(c|stuck)/, '')) || 0;
  const items = all.slice(start, start + shape.pageSize);
  const next = start + shape.pageSize;
  if (next >= all.length) return { items };
  return { items, nextCursor: shape.stuckCursor ?? `c${next}` };
}

function makeServer(seen: Seen, shape: Shape, servers: Server[]): Server {
  const session = seen.subscribes.length;
  seen.subscribes.push([]);
  seen.levels.push(undefined);
  const count = (method: string) => (seen.requests[method] = (seen.requests[method] ?? 0) + 1);
  const server = new Server(
    { name: 'surface', version: '1.0.0' },
    { capabilities: { resources: { subscribe: true, listChanged: true }, prompts: { listChanged: true }, completions: {}, logging: {} } },
  );
  const resources = Array.from({ length: shape.total }, (_, i) => ({ uri: `mem://r/${i}`, name: `r${i}` }));
  const templates = Array.from({ length: shape.total }, (_, i) => ({ uriTemplate: `mem://t${i}/{id}`, name: `t${i}` }));
  const prompts = Array.from({ length: shape.total }, (_, i) => ({ name: `p${i}`, arguments: [{ name: 'topic' }] }));
  server.setRequestHandler(ListResourcesRequestSchema, async (req) => {
    count('resources/list');
    const p = page(resources, req.params?.cursor, shape);
    return { resources: p.items, ...(p.nextCursor ? { nextCursor: p.nextCursor } : {}) };
  });
  server.setRequestHandler(ListResourceTemplatesRequestSchema, async (req) => {
    count('resources/templates/list');
    const p = page(templates, req.params?.cursor, shape);
    return { resourceTemplates: p.items, ...(p.nextCursor ? { nextCursor: p.nextCursor } : {}) };
  });
  server.setRequestHandler(ListPromptsRequestSchema, async (req) => {
    count('prompts/list');
    const p = page(prompts, req.params?.cursor, shape);
    return { prompts: p.items, ...(p.nextCursor ? { nextCursor: p.nextCursor } : {}) };
  });
  server.setRequestHandler(ReadResourceRequestSchema, async (req, extra) => {
    count('resources/read');
    const { uri } = req.params;
    const token = extra._meta?.progressToken;
    if (token !== undefined) {
      for (let i = 1; i <= 3; i++) await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: i, total: 3 } });
    }
    if (uri === 'mem://big') return { contents: [{ uri, mimeType: 'text/plain', text: shape.bigText }] };
    if (uri === 'mem://blob') return { contents: [{ uri, mimeType: 'application/octet-stream', blob: Buffer.from('bytes').toString('base64') }] };
    if (uri.startsWith('mem://r/')) return { contents: [{ uri, mimeType: 'text/plain', text: `text of ${uri}` }] };
    throw new McpError(ErrorCode.InvalidParams, 'no such resource');
  });
  server.setRequestHandler(SubscribeRequestSchema, async (req) => {
    count('resources/subscribe');
    seen.subscribes[session]!.push(req.params.uri);
    return {};
  });
  server.setRequestHandler(UnsubscribeRequestSchema, async () => {
    count('resources/unsubscribe');
    return {};
  });
  server.setRequestHandler(GetPromptRequestSchema, async (req) => {
    count('prompts/get');
    const topic = req.params.arguments?.topic ?? 'nothing';
    const text = req.params.name === 'huge' ? shape.bigText : `Tell me about ${topic}`;
    return { messages: [{ role: 'user' as const, content: { type: 'text' as const, text } }] };
  });
  server.setRequestHandler(CompleteRequestSchema, async (req) => {
    count('completion/complete');
    const { ref, argument, context } = req.params;
    const prefix = ref.type === 'ref/prompt' ? `${ref.name}:` : `${ref.uri}:`;
    const dept = context?.arguments?.dept ?? '';
    return { completion: { values: [`${prefix}${argument.name}=${argument.value}${dept}`], total: 1, hasMore: false } };
  });
  server.setRequestHandler(SetLevelRequestSchema, async (req) => {
    count('logging/setLevel');
    seen.levels[session] = req.params.level;
    return {};
  });
  servers.push(server);
  return server;
}

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

interface Setup {
  conn: MCPConnection;
  seen: Seen;
  /** The server object of each session, oldest first. */
  servers: Server[];
  factory: InMemoryServerFactory;
}

function setup(opts: { shape?: Partial<Shape>; extra?: Partial<MCPConnectionOptions>; createTransport?: (f: InMemoryServerFactory) => () => Promise<Transport> } = {}): Setup {
  const seen: Seen = { requests: {}, subscribes: [], levels: [] };
  const shape: Shape = { pageSize: 2, total: 5, bigText: 'x'.repeat(5_000), ...opts.shape };
  const servers: Server[] = [];
  const factory = createInMemoryServerFactory(() => makeServer(seen, shape, servers));
  open.push(factory);
  const conn = new MCPConnection({
    serverName: 'mem',
    config,
    reconnect: { minDelayMs: 0, baseDelayMs: 0, maxDelayMs: 0 },
    createTransport: opts.createTransport ? opts.createTransport(factory) : factory.createTransport,
    ...opts.extra,
  });
  open.push(conn);
  return { conn, seen, servers, factory };
}

/** The next `event` of `conn`, as a promise. */
function nextEvent<K extends 'resourcesChanged' | 'promptsChanged' | 'toolsChanged' | 'resourceUpdated' | 'serverLog'>(conn: MCPConnection, event: K) {
  return new Promise<unknown>((resolve) => conn.once(event, ((...args: unknown[]) => resolve(args[0])) as never));
}

/**
 * A transport factory whose transports look like streamable HTTP after initialize (a session id) and whose next
 * `method` request, once `arm()` is called, is answered by the "HTTP layer" with a 404: the server forgot the
 * session.
 */
function forgetsSessionOn(method: string): { arm(): void; make: (f: InMemoryServerFactory) => () => Promise<Transport> } {
  let armed = false;
  return {
    arm: () => void (armed = true),
    make: (f) => async () => {
      const t = await f.createTransport();
      t.sessionId ??= `session-${f.pairs.length}`;
      const send = t.send.bind(t);
      t.send = async (message: JSONRPCMessage, o) => {
        if (armed && 'method' in message && message.method === method) {
          armed = false;
          throw new StreamableHTTPError(404, 'Session not found');
        }
        return send(message, o);
      };
      return t;
    },
  };
}

describe('MCPConnection: resources', () => {
  it('lists every page, caches the list, shares one listing between concurrent callers, and reads text and blob', async () => {
    const { conn, seen } = setup();
    await conn.connect();
    const [a, b] = await Promise.all([conn.listResources(), conn.listResources()]);
    expect(a.map((r) => r.uri)).toEqual(['mem://r/0', 'mem://r/1', 'mem://r/2', 'mem://r/3', 'mem://r/4']);
    expect(b).toEqual(a);
    expect(seen.requests['resources/list']).toBe(3); // three pages, one walk
    expect(await conn.listResources()).toEqual(a);
    expect(seen.requests['resources/list']).toBe(3);

    const templates = await conn.listResourceTemplates();
    expect(templates.map((t) => t.uriTemplate)).toEqual(['mem://t0/{id}', 'mem://t1/{id}', 'mem://t2/{id}', 'mem://t3/{id}', 'mem://t4/{id}']);
    await conn.listResourceTemplates();
    expect(seen.requests['resources/templates/list']).toBe(3);

    expect((await conn.readResource('mem://r/2')).contents).toEqual([{ uri: 'mem://r/2', mimeType: 'text/plain', text: 'text of mem://r/2' }]);
    const blob = (await conn.readResource('mem://blob')).contents[0] as { blob: string };
    expect(Buffer.from(blob.blob, 'base64').toString()).toBe('bytes');
    const missing = await rejection(conn.readResource('mem://nope'));
    expect(missing).toMatchObject({ code: 'server_error', serverName: 'mem' });
  });

  it('resources/list_changed drops the resource and template caches and emits resourcesChanged; tools and prompts stay cached', async () => {
    const { conn, seen, servers } = setup();
    await conn.connect();
    await conn.listResources();
    await conn.listResourceTemplates();
    await conn.listPrompts();
    expect(seen.requests).toMatchObject({ 'resources/list': 3, 'resources/templates/list': 3, 'prompts/list': 3 });

    const changed = nextEvent(conn, 'resourcesChanged');
    await servers[0]!.sendResourceListChanged();
    expect(await changed).toBeUndefined();
    await conn.listResources();
    await conn.listResourceTemplates();
    await conn.listPrompts();
    expect(seen.requests).toMatchObject({ 'resources/list': 6, 'resources/templates/list': 6, 'prompts/list': 3 });
  });

  it('readResource larger than limits.maxResultBytes is too_large; a smaller one passes', async () => {
    const { conn } = setup({ extra: { limits: { maxResultBytes: 1_000 } } });
    await conn.connect();
    const err = await rejection(conn.readResource('mem://big'));
    expect(err).toMatchObject({ code: 'too_large', serverName: 'mem' });
    expect(err.message).toMatch(/resources\/read .*larger than 1000 bytes/);
    expect((await conn.readResource('mem://r/0')).contents).toHaveLength(1);
    expect(conn.isConnected()).toBe(true);
  });

  it('honours onProgress, and an AbortSignal shared by many calls keeps no listener', async () => {
    const { conn } = setup();
    await conn.connect();
    const seenProgress: number[] = [];
    const result = await conn.readResource('mem://r/1', { onProgress: (p) => seenProgress.push(p.progress), resetTimeoutOnProgress: true });
    expect(result.contents).toHaveLength(1);
    expect(seenProgress).toEqual([1, 2, 3]);
    const session = new AbortController();
    for (let i = 0; i < 20; i++) await conn.readResource(`mem://r/${i % 5}`, { signal: session.signal });
    await conn.listPrompts({ signal: session.signal });
    await conn.complete({ ref: { type: 'ref/prompt', name: 'p0' }, argument: { name: 'topic', value: 'a' } }, { signal: session.signal });
    expect(getEventListeners(session.signal, 'abort')).toHaveLength(0);
  });

  it('subscribes, passes resources/updated on as resourceUpdated, and unsubscribes', async () => {
    const { conn, seen, servers } = setup();
    await conn.connect();
    await conn.subscribeResource('mem://r/1');
    expect(seen.subscribes[0]).toEqual(['mem://r/1']);
    expect(conn.subscriptions).toEqual(['mem://r/1']);
    const updated = nextEvent(conn, 'resourceUpdated');
    await servers[0]!.sendResourceUpdated({ uri: 'mem://r/1' });
    expect((await updated) as ResourceUpdatedEvent).toEqual({ uri: 'mem://r/1' });
    await conn.unsubscribeResource('mem://r/1');
    expect(seen.requests['resources/unsubscribe']).toBe(1);
    expect(conn.subscriptions).toEqual([]);
  });

  it('sends subscriptions and the log level again after a re-initialize (the new session has none), then resends the request', async () => {
    const forget = forgetsSessionOn('resources/read');
    const { conn, seen } = setup({ createTransport: forget.make });
    await conn.connect();
    await conn.subscribeResource('mem://r/1');
    await conn.subscribeResource('mem://r/2');
    await conn.subscribeResource('mem://r/3');
    await conn.unsubscribeResource('mem://r/2');
    await conn.setLoggingLevel('warning');
    expect(seen.subscribes).toEqual([['mem://r/1', 'mem://r/2', 'mem://r/3']]);

    forget.arm();
    const result = await conn.readResource('mem://r/4');
    expect(result.contents[0]).toMatchObject({ text: 'text of mem://r/4' });
    // A second session, which got the remembered subscriptions and log level before the resend.
    expect(seen.subscribes).toHaveLength(2);
    expect([...seen.subscribes[1]!].sort()).toEqual(['mem://r/1', 'mem://r/3']);
    expect(seen.levels).toEqual(['warning', 'warning']);
    expect(seen.requests['resources/read']).toBe(1); // the rejected send never reached a server
  });

  it('sends subscriptions again after a reconnect, and passes on updates from the new session only', async () => {
    const { conn, seen, servers, factory } = setup();
    await conn.connect();
    await conn.subscribeResource('mem://r/0');
    const back = nextState(conn, 'connected');
    await factory.dropLatest();
    await back;
    expect(seen.subscribes).toEqual([['mem://r/0'], ['mem://r/0']]);
    const updates: ResourceUpdatedEvent[] = [];
    conn.on('resourceUpdated', (e) => updates.push(e));
    const updated = nextEvent(conn, 'resourceUpdated');
    await servers[1]!.sendResourceUpdated({ uri: 'mem://r/0' });
    await updated;
    expect(updates).toEqual([{ uri: 'mem://r/0' }]);
  });
});

describe('MCPConnection: paging caps and a repeated cursor', () => {
  it('limits.maxListPages and maxListItems cap resources, templates and prompts with too_large', async () => {
    const pages = setup({ shape: { pageSize: 2, total: 7 }, extra: { limits: { maxListPages: 3 } } });
    await pages.conn.connect();
    for (const list of [() => pages.conn.listResources(), () => pages.conn.listResourceTemplates(), () => pages.conn.listPrompts()]) {
      const err = await rejection(list());
      expect(err).toMatchObject({ code: 'too_large', serverName: 'mem' });
      expect(err.message).toMatch(/over more than 3 pages/);
    }
    expect(pages.seen.requests).toMatchObject({ 'resources/list': 3, 'resources/templates/list': 3, 'prompts/list': 3 });

    const items = setup({ shape: { pageSize: 2, total: 7 }, extra: { limits: { maxListItems: 3 } } });
    await items.conn.connect();
    const err = await rejection(items.conn.listPrompts());
    expect(err).toMatchObject({ code: 'too_large' });
    expect(err.message).toMatch(/lists more than 3 prompts/);
    expect(items.seen.requests['prompts/list']).toBe(2);
  });

  it('the list caps default to the tool caps', async () => {
    const { conn, seen } = setup({ shape: { pageSize: 1, total: 3 }, extra: { limits: { maxToolPages: 2 } } });
    await conn.connect();
    expect((await rejection(conn.listResources())).code).toBe('too_large');
    expect(seen.requests['resources/list']).toBe(2);
    const fewer = setup({ shape: { pageSize: 5, total: 5 }, extra: { limits: { maxTools: 4 } } });
    await fewer.conn.connect();
    expect((await rejection(fewer.conn.listPrompts())).message).toMatch(/lists more than 4 prompts/);
  });

  it('a repeated cursor is a server_error at once, for resources and prompts, and nothing is cached', async () => {
    const { conn, seen } = setup({ shape: { pageSize: 1, total: 10, stuckCursor: 'stuck1' } });
    await conn.connect();
    const err = await rejection(conn.listResources());
    expect(err).toMatchObject({ code: 'server_error', retryable: false, serverName: 'mem' });
    expect(err.message).toMatch(/repeated a resources\/list pagination cursor/);
    expect(seen.requests['resources/list']).toBe(2); // the first page and the cursor's page, which gave the same cursor
    const prompts = await rejection(conn.listPrompts());
    expect(prompts.message).toMatch(/repeated a prompts\/list pagination cursor/);
    await rejection(conn.listResources());
    expect(seen.requests['resources/list']).toBe(4);
  });
});

describe('MCPConnection: prompts, completions, logging', () => {
  it('lists prompts (cached until prompts/list_changed, then promptsChanged) and gets one with arguments', async () => {
    const { conn, seen, servers } = setup();
    await conn.connect();
    expect((await conn.listPrompts()).map((p) => p.name)).toEqual(['p0', 'p1', 'p2', 'p3', 'p4']);
    await conn.listPrompts();
    expect(seen.requests['prompts/list']).toBe(3);
    const changed = nextEvent(conn, 'promptsChanged');
    await servers[0]!.sendPromptListChanged();
    await changed;
    await conn.listPrompts();
    expect(seen.requests['prompts/list']).toBe(6);

    const prompt = await conn.getPrompt('p1', { topic: 'pagination' });
    expect(prompt.messages).toEqual([{ role: 'user', content: { type: 'text', text: 'Tell me about pagination' } }]);
    expect((await conn.getPrompt('p1')).messages[0]!.content).toEqual({ type: 'text', text: 'Tell me about nothing' });
  });

  it('getPrompt larger than limits.maxResultBytes is too_large', async () => {
    const { conn } = setup({ extra: { limits: { maxResultBytes: 1_000 } } });
    await conn.connect();
    expect(await rejection(conn.getPrompt('huge'))).toMatchObject({ code: 'too_large' });
  });

  it('complete returns the completion, for a prompt and a resource template, with context', async () => {
    const { conn } = setup();
    await conn.connect();
    expect(await conn.complete({ ref: { type: 'ref/prompt', name: 'p0' }, argument: { name: 'topic', value: 'pa' } })).toEqual({
      values: ['p0:topic=pa'],
      total: 1,
      hasMore: false,
    });
    const c = await conn.complete({
      ref: { type: 'ref/resource', uri: 'mem://t0/{id}' },
      argument: { name: 'id', value: '4' },
      context: { arguments: { dept: '-eng' } },
    });
    expect(c.values).toEqual(['mem://t0/{id}:id=4-eng']);
  });

  it('setLoggingLevel reaches the server; notifications/message becomes serverLog from the current session only', async () => {
    const { conn, seen, servers } = setup();
    await conn.connect();
    await conn.setLoggingLevel('info');
    expect(seen.levels).toEqual(['info']);
    const log = nextEvent(conn, 'serverLog');
    await servers[0]!.sendLoggingMessage({ level: 'error', logger: 'db', data: { query: 'slow' } });
    expect((await log) as ServerLogEvent).toEqual({ level: 'error', logger: 'db', data: { query: 'slow' } });
    const plain = nextEvent(conn, 'serverLog');
    await servers[0]!.sendLoggingMessage({ level: 'info', data: 'hello' });
    expect(await plain).toEqual({ level: 'info', data: 'hello' });

    // After a reconnect the old session's server is gone; the new one's messages are passed on.
    const back = nextState(conn, 'connected');
    await servers[0]!.close();
    await back;
    expect(seen.levels).toEqual(['info', 'info']);
    const fromNew = nextEvent(conn, 'serverLog');
    await servers[1]!.sendLoggingMessage({ level: 'warning', data: 'new session' });
    expect(await fromNew).toEqual({ level: 'warning', data: 'new session' });
  });

  it('refuses bad arguments with a TypeError naming the option', async () => {
    const { conn } = setup();
    await conn.connect();
    await expect(conn.readResource('')).rejects.toThrow(new TypeError('readResource: uri must be a non-empty string (got an empty string)'));
    await expect(conn.subscribeResource(7 as never)).rejects.toThrow(/subscribeResource: uri must be a non-empty string/);
    await expect(conn.getPrompt('p0', { topic: 3 } as never)).rejects.toThrow(/getPrompt: args\.topic must be a string \(got 3\)/);
    await expect(conn.setLoggingLevel('loud' as never)).rejects.toThrow(/setLoggingLevel: level must be one of 'debug'/);
    await expect(conn.complete({ ref: { type: 'ref/nope' }, argument: { name: 'a', value: '' } } as never)).rejects.toThrow(/complete: ref\.type/);
    await expect(conn.complete({ ref: { type: 'ref/prompt', name: 'p' }, argument: { name: 'a' } } as never)).rejects.toThrow(/complete: argument\.value must be a string/);
    await expect(conn.listResources({ timeoutMs: 0 })).rejects.toThrow(/listResources: timeoutMs must be a number of milliseconds > 0/);
    await expect(conn.listPrompts({ onProgress: 'x' as never })).rejects.toThrow(/listPrompts: onProgress must be a function/);
    await expect(conn.readResource('mem://r/0', { signal: {} as never })).rejects.toThrow(/readResource: signal must be an AbortSignal/);
    expect(() => new MCPConnection({ serverName: 'x', config, createTransport: async () => undefined as never, handlers: { sampling: 'no' as never } })).toThrow(
      /MCPConnection: handlers\.sampling must be a function/,
    );
    expect(() => new MCPConnection({ serverName: 'x', config, createTransport: async () => undefined as never, limits: { maxListPages: 0 } })).toThrow(
      'MCPConnection: limits.maxListPages must be a positive integer (got 0)',
    );
  });
});

describe('MCPConnection: client capabilities from the host handlers', () => {
  it('declares none without handlers; the server sees empty capabilities and its sampling / roots requests are refused', async () => {
    const { conn, servers } = setup();
    await conn.connect();
    const server = servers[0]!;
    expect(server.getClientCapabilities()).toEqual({});
    const sampling = await rejectionOf(
      server.createMessage({ messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }], maxTokens: 5 }),
      McpError,
    );
    expect(sampling.code).toBe(ErrorCode.MethodNotFound);
    expect((await rejectionOf(server.listRoots(), McpError)).code).toBe(ErrorCode.MethodNotFound);
  });

  it('declares sampling and roots when given, and forwards the server requests with the connection context', async () => {
    const samplingCalls: { request: CreateMessageRequest['params']; ctx: ServerRequestContext }[] = [];
    const rootsCalls: ServerRequestContext[] = [];
    const { conn, servers } = setup({
      extra: {
        user: { id: 'u1', tenantId: 't1' },
        handlers: {
          sampling: async (request, ctx) => {
            samplingCalls.push({ request, ctx });
            return { role: 'assistant', model: 'test-model', content: { type: 'text', text: `answer for ${ctx.user?.id}` } };
          },
          roots: (ctx) => {
            rootsCalls.push(ctx);
            return [{ uri: 'file:///workspace', name: 'workspace' }];
          },
        },
      },
    });
    await conn.connect();
    const server = servers[0]!;
    expect(server.getClientCapabilities()).toEqual({ sampling: {}, roots: { listChanged: false } });

    const answer = await server.createMessage({ messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }], maxTokens: 5 });
    expect(answer).toMatchObject({ role: 'assistant', model: 'test-model', content: { type: 'text', text: 'answer for u1' } });
    expect(samplingCalls).toHaveLength(1);
    expect(samplingCalls[0]!.request).toMatchObject({ maxTokens: 5, messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }] });
    expect(samplingCalls[0]!.ctx).toMatchObject({ serverName: 'mem', user: { id: 'u1', tenantId: 't1' } });
    expect(samplingCalls[0]!.ctx.signal.aborted).toBe(false);

    expect(await server.listRoots()).toEqual({ roots: [{ uri: 'file:///workspace', name: 'workspace' }] });
    expect(rootsCalls).toHaveLength(1);
    expect(rootsCalls[0]).toMatchObject({ serverName: 'mem', user: { id: 'u1' } });

    // A handler that fails answers the server with a JSON-RPC error; the connection stays up.
    const only = setup({ extra: { handlers: { roots: async () => Promise.reject(new Error('no roots today')) } } });
    await only.conn.connect();
    expect(only.servers[0]!.getClientCapabilities()).toEqual({ roots: { listChanged: false } });
    await rejectionOf(only.servers[0]!.listRoots(), McpError);
    expect(only.conn.isConnected()).toBe(true);
  });

  it('exposes the SDK client of the current session, a new one after a reconnect, none once closed', async () => {
    const { conn, factory } = setup();
    expect(conn.client).toBeUndefined();
    await conn.connect();
    const first = conn.client;
    expect(first?.getServerVersion()).toEqual({ name: 'surface', version: '1.0.0' });
    const back = nextState(conn, 'connected');
    await factory.dropLatest();
    await back;
    expect(conn.client).toBeDefined();
    expect(conn.client).not.toBe(first);
    await conn.close();
    expect(conn.client).toBeUndefined();
  });
});
