/**
 * Credentials follow the caller, with in-memory transports as a host's unit tests use them: the in-memory server
 * sees each request's credentials as its auth info (as an HTTP server's bearer middleware would), an OBO failure
 * fails the call exactly as over HTTP, a changed stdio variable replaces the connection, and a credential
 * failure does not keep a connection alive.
 */
import { jest } from '@jest/globals';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { OboTokenResolver } from '../../src/auth/oboTypes.js';
import { ConfigError, OboError } from '../../src/errors.js';
import { MCPConnectionFactory } from '../../src/MCPConnectionFactory.js';
import { MCPManager } from '../../src/MCPManager.js';
import type { TransportContext } from '../../src/transport/types.js';
import { CallerContext, requestIdOfBody } from '../../src/connection/callerContext.js';

const text = (r: CallToolResult) => (r.content[0] as { text: string }).text;

/** In-memory servers whose `whoami` answers with the bearer and headers the request arrived with. */
function servers() {
  const made: TransportContext[] = [];
  const seen: { token: string; headers: Record<string, string> }[] = [];
  let closed = 0;
  const factory = new MCPConnectionFactory({
    createTransport: async (ctx) => {
      made.push(ctx);
      const server = new McpServer({ name: 'mem', version: '1.0.0' });
      server.registerTool('whoami', {}, async (extra) => {
        const info = extra.authInfo;
        const headers = ((info?.extra as { headers?: Record<string, string> } | undefined)?.headers ?? {}) as Record<string, string>;
        seen.push({ token: info?.token ?? '', headers });
        return { content: [{ type: 'text', text: info?.token ?? '(no auth info)' }] };
      });
      const [client, srv] = InMemoryTransport.createLinkedPair();
      srv.onclose = () => closed++;
      await server.connect(srv);
      return client;
    },
  });
  return { factory, made, seen, closedCount: () => closed };
}

let managers: MCPManager[] = [];
afterEach(async () => {
  jest.useRealTimers();
  await Promise.all(managers.map((m) => m.close()));
  managers = [];
});

describe('in-memory transports get the per-request credentials', () => {
  it('an OBO server in memory: each call carries the token minted from ITS caller’s assertion; a failing resolver fails the call', async () => {
    const s = servers();
    const resolver: OboTokenResolver = async ({ assertion }) => {
      if (assertion === 'bad') throw new OboError('exchange_failed', 'refused by the IdP');
      return { accessToken: `obo-of-${assertion}`, expiresAt: Date.now() + 60_000 };
    };
    const m = new MCPManager({ servers: { graph: { url: 'https://graph.example.test/mcp', obo: { scopes: 'api://graph/.default' } } }, oboTokenResolver: resolver, connectionFactory: s.factory });
    managers.push(m);
    expect(text(await m.callTool({ user: { id: 'u1', upstreamToken: 'a1' }, serverName: 'graph', toolName: 'whoami' }))).toBe('obo-of-a1');
    expect(text(await m.callTool({ user: { id: 'u1', upstreamToken: 'a2' }, serverName: 'graph', toolName: 'whoami' }))).toBe('obo-of-a2');
    const before = s.seen.length;
    await expect(m.callTool({ user: { id: 'u1', upstreamToken: 'bad' }, serverName: 'graph', toolName: 'whoami' })).rejects.toMatchObject({ code: 'obo_exchange_failed' });
    expect(s.seen.length).toBe(before); // nothing reached the server
    await expect(m.callTool({ user: { id: 'u1', upstreamToken: async () => undefined }, serverName: 'graph', toolName: 'whoami' })).rejects.toBeInstanceOf(OboError);
    expect(text(await m.callTool({ user: { id: 'u1', upstreamToken: async () => 'a3' }, serverName: 'graph', toolName: 'whoami' }))).toBe('obo-of-a3');
    expect(s.made).toHaveLength(1);
  });

  it('a resolver that always throws fails every call in memory, as it would over HTTP (no false pass in host tests)', async () => {
    const s = servers();
    const resolver: OboTokenResolver = async () => {
      throw new Error('IdP down');
    };
    const m = new MCPManager({ servers: { graph: { url: 'https://graph.example.test/mcp', obo: { scopes: 'api://graph/.default' } } }, oboTokenResolver: resolver, connectionFactory: s.factory });
    managers.push(m);
    await expect(m.callTool({ user: { id: 'u1', upstreamToken: 't' }, serverName: 'graph', toolName: 'whoami' })).rejects.toBeInstanceOf(OboError);
    expect(s.seen).toHaveLength(0);
  });

  it('templated headers are resolved per request for the caller, and a removed variable is a ConfigError', async () => {
    const s = servers();
    const m = new MCPManager({
      servers: { search: { url: 'https://search.example.test/mcp', headers: { 'X-Api-Key': '{{var.KEY}}', 'X-Static': 'same' }, customUserVars: { KEY: {} } } },
      connectionFactory: s.factory,
    });
    managers.push(m);
    await m.callTool({ user: { id: 'u1', vars: { KEY: 'k1' } }, serverName: 'search', toolName: 'whoami' });
    await m.callTool({ user: { id: 'u1', vars: { KEY: 'k2' } }, serverName: 'search', toolName: 'whoami' });
    expect(s.seen.map((r) => r.headers['X-Api-Key'])).toEqual(['k1', 'k2']);
    expect(s.seen.every((r) => r.headers['X-Static'] === 'same')).toBe(true);
    await expect(m.callTool({ user: { id: 'u1', vars: {} }, serverName: 'search', toolName: 'whoami' })).rejects.toBeInstanceOf(ConfigError);
    expect(s.seen).toHaveLength(2);
  });
});

describe('values a live connection cannot change', () => {
  it('a changed stdio variable replaces the connection once its calls end; a removed one fails before anything starts', async () => {
    const s = servers();
    const m = new MCPManager({ servers: { tool: { command: 'tool-server', env: { TOKEN: '{{var.TOKEN}}' }, customUserVars: { TOKEN: {} } } }, connectionFactory: s.factory });
    managers.push(m);
    await m.callTool({ user: { id: 'u1', vars: { TOKEN: 't1' } }, serverName: 'tool', toolName: 'whoami' });
    await m.callTool({ user: { id: 'u1', vars: { TOKEN: 't1' } }, serverName: 'tool', toolName: 'whoami' });
    expect(s.made).toHaveLength(1);
    await m.callTool({ user: { id: 'u1', vars: { TOKEN: 't2' } }, serverName: 'tool', toolName: 'whoami' });
    expect(s.made.map((c) => (c.config.type === 'stdio' ? c.config.env?.TOKEN : undefined))).toEqual(['t1', 't2']);
    expect(m.stats().userPool.evictions.stale).toBe(1);
    const removed = await m.callTool({ user: { id: 'u1', vars: {} }, serverName: 'tool', toolName: 'whoami' }).catch((e: unknown) => e);
    expect(removed).toBeInstanceOf(ConfigError);
    expect(s.made).toHaveLength(2);
  });

  it('no user value appears in the pool key or the connection fingerprint', async () => {
    const s = servers();
    const secret = 'super-secret-token-value';
    const m = new MCPManager({ servers: { tool: { command: 'tool-server', env: { TOKEN: '{{var.TOKEN}}' }, customUserVars: { TOKEN: {} } } }, connectionFactory: s.factory });
    managers.push(m);
    const events: unknown[] = [];
    for (const e of ['connect', 'evict', 'disconnect'] as const) m.on(e, (ev) => events.push(ev));
    await m.callTool({ user: { id: 'u1', vars: { TOKEN: secret } }, serverName: 'tool', toolName: 'whoami' });
    await m.disconnectUser('u1');
    expect(JSON.stringify(events)).not.toContain(secret);
    expect(JSON.stringify(m.stats())).not.toContain(secret);
  });
});

describe('a credential failure does not keep a connection alive', () => {
  it('failed calls do not restart the idle clock; the connection is evicted on time', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    const s = servers();
    const resolver: OboTokenResolver = async ({ assertion }) => {
      if (assertion === 'expired') throw new OboError('exchange_failed', 'invalid_grant');
      return { accessToken: `obo-${assertion}`, expiresAt: Date.now() + 3_600_000 };
    };
    const m = new MCPManager({
      servers: { graph: { url: 'https://graph.example.test/mcp', obo: { scopes: 'api://graph/.default' } } },
      oboTokenResolver: resolver,
      connectionFactory: s.factory,
      idleTimeoutMs: 10_000,
    });
    managers.push(m);
    const evicted: string[] = [];
    m.on('evict', (e) => evicted.push(e.reason));
    await m.callTool({ user: { id: 'u1', upstreamToken: 'good' }, serverName: 'graph', toolName: 'whoami' });
    for (let i = 0; i < 5; i++) {
      jest.advanceTimersByTime(1_900);
      await expect(m.callTool({ user: { id: 'u1', upstreamToken: 'expired' }, serverName: 'graph', toolName: 'whoami' })).rejects.toBeInstanceOf(OboError);
    }
    expect(evicted).toEqual([]);
    jest.advanceTimersByTime(600); // 10.1 s after the last successful use
    await new Promise(setImmediate);
    expect(evicted).toEqual(['idle']);
  });
});

describe('CallerContext', () => {
  it('reads the JSON-RPC id from the end of an SDK request body only', () => {
    expect(requestIdOfBody('{"method":"tools/call","params":{"name":"x","arguments":{"id":9}},"jsonrpc":"2.0","id":12}')).toBe(12);
    expect(requestIdOfBody('{"method":"x","params":{},"jsonrpc":"2.0","id":"a\\"b"}')).toBe('a"b');
    expect(requestIdOfBody('{"method":"notifications/cancelled","params":{"requestId":3,"id":4},"jsonrpc":"2.0"}')).toBeUndefined();
    expect(requestIdOfBody('{"method":"n","params":{"x":{"id":3}}}')).toBeUndefined();
    expect(requestIdOfBody('[{"id":1}]')).toBeUndefined();
    expect(requestIdOfBody('{"result":{},"jsonrpc":"2.0","id":3}')).toBeUndefined(); // our answer to a server request
    expect(requestIdOfBody(undefined)).toBeUndefined();
  });

  it('ties a request sent inside an issue window to its caller, and everything else to the most recent caller', () => {
    const a = { id: 'u', vars: { K: 'a' } };
    const b = { id: 'u', vars: { K: 'b' } };
    const c = new CallerContext(a);
    expect(c.issue(b, () => c.onSend(1))).toBe(b);
    expect(c.forRequest(1)).toBe(b);
    expect(c.forRequest(2)).toBe(a); // not sent in a window: the most recent caller
    c.observe(b);
    expect(c.onSend(undefined)).toBe(b);
    c.issue(a, () => c.onSend(1)); // a newer client reuses id 1
    c.settle(1, b); // the older request's settle leaves the newer entry alone
    expect(c.forRequest(1)).toBe(a);
    c.settle(1, a);
    c.observe(b);
    expect(c.forRequest(1)).toBe(b);
  });
});
