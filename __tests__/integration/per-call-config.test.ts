/**
 * Per-call `serverConfig`, configs that differ from the registered one, and subscriptions, against real SDK
 * servers on loopback (Streamable HTTP): a per-call config is never trusted like the operator's (no OBO, SSRF
 * guard), a config of its own never shares a pool key (no moved waiters, no thrashing, subscriptions survive),
 * an unsubscribe ends only the caller's own subscription, a removed server stays removed.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import {
  CallToolRequestSchema,
  ListToolsRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
  type CallToolResult,
} from '@modelcontextprotocol/sdk/types.js';
import { MCPManager, type OperationContext } from '../../src/MCPManager.js';
import { MCPConnectionFactory } from '../../src/MCPConnectionFactory.js';
import { HttpClient } from '../../src/transport/httpClient.js';
import type { ServerConfig } from '../../src/config/schema.js';
import { nextManagerEvent } from '../support/mcp.js';
import type { UserContext } from '../../src/types.js';

interface Seen {
  method: string | undefined;
  headers: IncomingHttpHeaders;
}

/** A loopback MCP server: records every request, answers `whoami` with its name and the session's user. */
interface TestServer {
  name: string;
  url: string;
  seen: Seen[];
  subs: { user: string; uri: string; op: 'sub' | 'unsub' }[];
  /** Set to hold the next `resources/subscribe` until the returned function is called. */
  holdSubscribe: (() => Promise<void>) | undefined;
  close(): Promise<void>;
}

async function startServer(name: string): Promise<TestServer> {
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const t: TestServer = { name, url: '', seen: [], subs: [], holdSubscribe: undefined, close: async () => {} };
  const http = createServer((req, res) => {
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const body = Buffer.concat(chunks).toString('utf8');
      const parsed = body ? (JSON.parse(body) as { method?: string }) : undefined;
      t.seen.push({ method: parsed?.method, headers: req.headers });
      const sid = req.headers['mcp-session-id'];
      let transport = typeof sid === 'string' ? sessions.get(sid) : undefined;
      if (!transport) {
        if (req.method !== 'POST' || sid !== undefined) return void res.writeHead(404).end();
        const user = String(req.headers['x-user'] ?? 'none');
        const server = new Server({ name, version: '1.0.0' }, { capabilities: { tools: {}, resources: { subscribe: true } } });
        const subscribed = new Set<string>();
        server.setRequestHandler(SubscribeRequestSchema, async (r) => {
          const hold = t.holdSubscribe;
          t.holdSubscribe = undefined;
          if (hold) await hold();
          subscribed.add(r.params.uri);
          t.subs.push({ user, uri: r.params.uri, op: 'sub' });
          return {};
        });
        server.setRequestHandler(UnsubscribeRequestSchema, async (r) => {
          subscribed.delete(r.params.uri);
          t.subs.push({ user, uri: r.params.uri, op: 'unsub' });
          return {};
        });
        server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: [{ name: 'whoami', inputSchema: { type: 'object' } }] }));
        server.setRequestHandler(CallToolRequestSchema, async (r, extra) => {
          if (r.params.name === 'touch') {
            for (const uri of subscribed) await extra.sendNotification({ method: 'notifications/resources/updated', params: { uri } });
          }
          return { content: [{ type: 'text', text: `${name}:${user}:${req.headers.authorization ?? ''}` }] };
        });
        const created: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => void sessions.set(id, created),
        });
        created.onclose = () => {
          if (created.sessionId) sessions.delete(created.sessionId);
        };
        await server.connect(created);
        transport = created;
      }
      await transport.handleRequest(req, res, parsed);
    })().catch((e) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(e));
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  t.url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`;
  t.close = () =>
    new Promise<void>((resolve) => {
      http.closeAllConnections();
      http.close(() => resolve());
    });
  return t;
}

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}


const text = (r: CallToolResult) => (r.content[0] as { text: string }).text;
const resolver = async (req: { user: UserContext; scopes: string[] }) => ({ accessToken: `OBO-FOR-${req.user.id}`, expiresAt: Date.now() + 3_600_000 });
const alice: UserContext = { id: 'alice', tenantId: 't1', upstreamToken: 'alice-assertion' };
const bob: UserContext = { id: 'bob', tenantId: 't1', upstreamToken: 'bob-assertion' };
const uri = 'mail://inbox';
const asUser = { 'X-User': '{{user.id}}' };

let good: TestServer;
let evil: TestServer;
let managers: MCPManager[] = [];
let factories: MCPConnectionFactory[] = [];
function track<M extends MCPManager>(m: M): M {
  managers.push(m);
  return m;
}
/** A factory whose SSRF guard for user configs lets loopback through, as if it were a public host. */
function loopbackAllowed(): MCPConnectionFactory {
  const f = new MCPConnectionFactory({ httpClient: new HttpClient({ userSsrf: { allowHosts: ['127.0.0.1'] } }) });
  factories.push(f);
  return f;
}

beforeAll(async () => {
  good = await startServer('good');
  evil = await startServer('evil');
});
afterAll(async () => {
  await good.close();
  await evil.close();
});
beforeEach(() => {
  for (const s of [good, evil]) {
    s.seen.length = 0;
    s.subs.length = 0;
    s.holdSubscribe = undefined;
  }
});
afterEach(async () => {
  await Promise.all(managers.map((m) => m.close()));
  await Promise.all(factories.map((f) => f.close()));
  managers = [];
  factories = [];
});

describe('a per-call serverConfig is never trusted like the operator config', () => {
  it('with an obo block: OboError untrusted, and its server receives nothing (whatever source it claims)', async () => {
    const m = track(new MCPManager({ servers: { graph: { url: good.url, obo: { scopes: 'api://graph/.default' } } }, oboTokenResolver: resolver }));
    for (const claimed of [{}, { source: 'config' }]) {
      const err = await m.callTool({ user: alice, serverName: 'graph', toolName: 'whoami', serverConfig: { url: evil.url, obo: { scopes: 'api://graph/.default' }, ...claimed } }).catch((e) => e);
      expect(err).toMatchObject({ code: 'obo_untrusted' });
    }
    expect(evil.seen).toEqual([]);
    // The registered config is still trusted.
    expect(text(await m.callTool({ user: alice, serverName: 'graph', toolName: 'whoami' }))).toBe('good:none:Bearer OBO-FOR-alice');
  });

  it('a trust checker allowing by name is not bypassed by a per-call config reusing that name', async () => {
    const m = track(
      new MCPManager({
        servers: { graph: { url: good.url, obo: { scopes: 'api://graph/.default' } } },
        oboTokenResolver: resolver,
        oboTrustChecker: ({ serverName, config }) => config.source !== 'user' && serverName === 'graph',
      }),
    );
    const err = await m.callTool({ user: alice, serverName: 'graph', toolName: 'whoami', serverConfig: { url: evil.url, obo: { scopes: 'api://graph/.default' }, source: 'config' } }).catch((e) => e);
    expect(err).toMatchObject({ code: 'obo_untrusted' });
    expect(evil.seen).toEqual([]);
  });

  it('without obo, to a loopback URL: ssrf_blocked unless the host allowlisted it', async () => {
    const m = track(new MCPManager({ servers: { graph: { url: good.url } } }));
    const err = await m.listTools({ user: alice, serverName: 'graph', serverConfig: { url: evil.url, source: 'config' } }).catch((e) => e);
    expect(err).toMatchObject({ code: 'ssrf_blocked' });
    expect(evil.seen).toEqual([]);

    const allowed = track(new MCPManager({ servers: { graph: { url: good.url } }, connectionFactory: loopbackAllowed() }));
    expect(text(await allowed.callTool({ user: alice, serverName: 'graph', toolName: 'whoami', serverConfig: { url: evil.url } }))).toMatch(/^evil:/);
  });

  it('is refused without a user (it is a user config), before anything is sent', async () => {
    const m = track(new MCPManager({ servers: { crm: { url: good.url } }, connectionFactory: loopbackAllowed() }));
    const [registered, perCall] = await Promise.all([
      m.callTool({ serverName: 'crm', toolName: 'secret-op', arguments: { ssn: '123-45-6789' } }),
      m.callTool({ serverName: 'crm', toolName: 'x', serverConfig: { url: evil.url } }).catch((e) => e),
    ]);
    expect(text(registered)).toMatch(/^good:/);
    expect(perCall).toMatchObject({ code: 'user_required' });
    expect(evil.seen).toEqual([]);
  });
});

/** Resolves the registered config, except for calls given an alternative in `alt` (taken in call order). */
class AltConfigManager extends MCPManager {
  readonly alt: (ServerConfig | undefined)[] = [];
  protected override resolveServerConfig(serverName: string, user: UserContext | undefined) {
    return this.alt.shift() ?? super.resolveServerConfig(serverName, user);
  }
}

describe('a config other than the registered one has a connection of its own', () => {
  it('without a user: callers of the registered config never wait on another config’s connect', async () => {
    const m = track(new AltConfigManager({ servers: { crm: { url: good.url } } }));
    const other: ServerConfig = { type: 'streamable-http', url: evil.url };
    m.alt.push(undefined, other); // the first call resolves the registered config, the second the other one
    const [a, b] = await Promise.all([m.callTool({ serverName: 'crm', toolName: 'whoami' }), m.callTool({ serverName: 'crm', toolName: 'whoami' })]);
    expect([text(a), text(b)]).toEqual(['good:none:', 'evil:none:']);
    const s = m.stats();
    expect([s.appPool.connects, s.appPool.evictions.stale, s.appConnections]).toEqual([2, 0, 2]);
  });

  it('without a user: alternating configs evicts nothing, and the shared subscription survives', async () => {
    const m = track(new AltConfigManager({ servers: { crm: { url: good.url } } }));
    const evictions: string[] = [];
    m.on('evict', (e) => evictions.push(e.reason));
    await m.subscribeResource({ serverName: 'crm', uri });
    for (let i = 0; i < 3; i++) {
      m.alt.push({ type: 'streamable-http', url: evil.url });
      await m.listTools({ serverName: 'crm' });
      await m.listTools({ serverName: 'crm' });
    }
    const updated = nextManagerEvent(m, 'resourceUpdated');
    await m.callTool({ serverName: 'crm', toolName: 'touch' });
    expect(await updated).toMatchObject({ serverName: 'crm', scope: 'app', uri });
    expect(evictions).toEqual([]);
    expect(m.stats().appPool.connects).toBe(2);
    // removeServer finds every connection of the server, whatever its config.
    await m.removeServer('crm');
    expect(m.stats().appConnections).toBe(0);
    expect(evictions.sort()).toEqual(['removed', 'removed']);
  });

  it('for a user: alternating the registered and a per-call config evicts nothing; subscriptions survive; disconnectUser finds both', async () => {
    const m = track(new MCPManager({ servers: { inbox: { url: good.url, headers: asUser } }, connectionFactory: loopbackAllowed() }));
    const evictions: string[] = [];
    m.on('evict', (e) => evictions.push(e.reason));
    await m.subscribeResource({ user: alice, serverName: 'inbox', uri });
    for (let i = 0; i < 3; i++) {
      expect((await m.listTools({ user: alice, serverName: 'inbox', serverConfig: { url: evil.url, headers: asUser } })).length).toBe(1);
      expect((await m.listTools({ user: alice, serverName: 'inbox' })).length).toBe(1);
    }
    const updated = nextManagerEvent(m, 'resourceUpdated');
    await m.callTool({ user: alice, serverName: 'inbox', toolName: 'touch' });
    expect(await updated).toMatchObject({ serverName: 'inbox', userId: 'alice', uri });
    const s = m.stats();
    expect([s.userPool.connects, s.userPool.evictions.stale, s.userConnections]).toEqual([2, 0, 2]);
    expect(evictions).toEqual([]);
    await m.disconnectUser('alice', 't1');
    expect(m.stats().userConnections).toBe(0);
    expect(evictions).toEqual(['disconnected', 'disconnected']);
  });

  it('two different per-call configs of one user do not replace each other', async () => {
    const m = track(new MCPManager({ servers: { inbox: { url: good.url, headers: asUser } }, connectionFactory: loopbackAllowed() }));
    for (let i = 0; i < 2; i++) {
      expect(text(await m.callTool({ user: alice, serverName: 'inbox', toolName: 'whoami', serverConfig: { url: evil.url, headers: asUser } }))).toBe('evil:alice:');
      expect(text(await m.callTool({ user: alice, serverName: 'inbox', toolName: 'whoami', serverConfig: { url: good.url, headers: { ...asUser, 'X-V': '2' } } }))).toBe('good:alice:');
    }
    const s = m.stats();
    expect([s.userPool.connects, s.userPool.evictions.stale]).toEqual([2, 0]);
    await m.removeServer('inbox');
    expect(m.stats().userConnections).toBe(0);
  });
});

describe('subscriptions', () => {
  it('an unsubscribe with no subscription of that caller connects to nothing and sends nothing', async () => {
    const m = track(new MCPManager({ servers: { inbox: { url: good.url, headers: asUser } } }));
    await m.unsubscribeResource({ user: alice, serverName: 'inbox', uri: 'never://subscribed' });
    expect(m.stats().userPool.connects).toBe(0);
    expect(good.seen).toEqual([]);
  });

  it('on a shared app connection, one caller cannot end another’s subscription', async () => {
    const m = track(new MCPManager({ servers: { inbox: { url: good.url } } }));
    await m.subscribeResource({ user: alice, serverName: 'inbox', uri });
    await m.unsubscribeResource({ user: bob, serverName: 'inbox', uri }); // bob never subscribed
    await m.unsubscribeResource({ serverName: 'inbox', uri }); // nor did the app
    expect(good.subs.map((x) => x.op)).toEqual(['sub']);
    const updated = nextManagerEvent(m, 'resourceUpdated');
    await m.callTool({ user: alice, serverName: 'inbox', toolName: 'touch' });
    expect(await updated).toMatchObject({ scope: 'app', uri });
    // Both subscribe; the first unsubscribe keeps the other's; the last one is sent.
    await m.subscribeResource({ user: bob, serverName: 'inbox', uri });
    await m.unsubscribeResource({ user: alice, serverName: 'inbox', uri });
    expect(good.subs.map((x) => x.op)).toEqual(['sub']);
    await m.unsubscribeResource({ user: bob, serverName: 'inbox', uri });
    expect(good.subs.map((x) => x.op)).toEqual(['sub', 'unsub']);
  });

  it('a subscribe whose connection is evicted while it is in flight rejects, and holds nothing', async () => {
    const m = track(new MCPManager({ servers: { inbox: { url: good.url, headers: asUser } } }));
    await m.listTools({ user: alice, serverName: 'inbox' });
    const arrived = deferred();
    const release = deferred();
    good.holdSubscribe = () => (arrived.resolve(), release.promise);
    const subscribing = m.subscribeResource({ user: alice, serverName: 'inbox', uri }).then(
      () => 'subscribed',
      (e: { code?: string }) => e.code,
    );
    await arrived.promise;
    const closed = nextManagerEvent(m, 'disconnect', (e) => e.userId === 'alice');
    await m.disconnectUser('alice', 't1');
    release.resolve();
    expect(await subscribing).toBe('connection_closed');
    expect(await closed).toMatchObject({ reason: 'disconnected' }); // its lease ended: it closed
    expect(m.stats().userConnections).toBe(0);
  });

  it('a wrapOperation that throws after run() leaves no subscription (nor its lease) behind', async () => {
    class Throwing extends MCPManager {
      protected override async wrapOperation<T>(ctx: OperationContext, run: () => Promise<T>): Promise<T> {
        const r = await run();
        if (ctx.operation === 'subscribeResource') throw new Error('audit failed');
        return r;
      }
    }
    const m = track(new Throwing({ servers: { inbox: { url: good.url, headers: asUser } }, idleTimeoutMs: 50 }));
    await expect(m.subscribeResource({ user: alice, serverName: 'inbox', uri })).rejects.toThrow('audit failed');
    expect(good.subs.map((x) => x.op)).toEqual(['sub', 'unsub']);
    // Nothing holds the connection: it is evicted when idle.
    const evicted = await nextManagerEvent(m, 'evict');
    expect(evicted.reason).toBe('idle');
    // Nothing recorded: an unsubscribe has nothing to end.
    await m.unsubscribeResource({ user: alice, serverName: 'inbox', uri });
    expect(good.subs.map((x) => x.op)).toEqual(['sub', 'unsub']);
  });
});

describe('the manager rechecks what it awaited', () => {
  it('a server removed while an async resolveServerConfig runs: unknown_server, no connection', async () => {
    const gate = deferred();
    const asked = deferred();
    class Slow extends MCPManager {
      protected override async resolveServerConfig(name: string, user: UserContext | undefined): Promise<ServerConfig | undefined> {
        const c = await super.resolveServerConfig(name, user);
        asked.resolve();
        await gate.promise;
        return c;
      }
    }
    const m = track(new Slow({ servers: { inbox: { url: good.url, headers: asUser } } }));
    const call = m.listTools({ user: alice, serverName: 'inbox' }).catch((e: { code?: string }) => e.code);
    await asked.promise;
    await m.removeServer('inbox');
    gate.resolve();
    expect(await call).toBe('unknown_server');
    const s = m.stats();
    expect([s.userConnections, s.userPool.connects, s.pendingConnects]).toEqual([0, 0, 0]);
    expect(good.seen).toEqual([]);
  });
});

describe('callTool arguments', () => {
  it('must be a plain object or absent: a TypeError naming it, nothing sent', async () => {
    const m = track(new MCPManager({ servers: { crm: { url: good.url } } }));
    for (const bad of ['str', null, [1], 5]) {
      const err = await m.callTool({ serverName: 'crm', toolName: 'whoami', arguments: bad as never }).catch((e) => e);
      expect(err).toBeInstanceOf(TypeError);
      expect((err as Error).message).toMatch(/^callTool: arguments must be a plain object/);
    }
    expect(good.seen).toEqual([]);
    expect(text(await m.callTool({ serverName: 'crm', toolName: 'whoami', arguments: Object.create(null) as Record<string, unknown> }))).toBe('good:none:');
  });
});
