/**
 * On-Behalf-Of end to end: a real OIDC provider (oidc-provider) exchanging tokens, a real MCP server over
 * streamable HTTP verifying every request's bearer (signature, issuer, downstream audience), and MCPManager
 * with the openid-client resolver in between. Loopback only.
 */
import { jest } from '@jest/globals';
import diagnosticsChannel from 'node:diagnostics_channel';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createBearerVerifier } from '../../src/auth/bearerVerifier.js';
import { createOboTokenResolver } from '../../src/auth/oboTokenResolver.js';
import type { OboTokenResolver } from '../../src/auth/oboTypes.js';
import { OboError } from '../../src/errors.js';
import { DIAGNOSTICS_CHANNELS, type OboExchangeEvent } from '../../src/events.js';
import { MCPManager, type MCPManagerOptions } from '../../src/MCPManager.js';
import { startTestIdp, type TestIdp } from '../../src/testing/testIdp.js';
import { startTestMcpServer, type TestMcpServer } from '../../src/testing/testMcpServer.js';
import type { UserContext } from '../../src/types.js';
import { testIdpClient, testIdpResolver } from '../support/idp.js';

const text = (r: CallToolResult) => (r.content[0] as { text: string }).text;

let idp: TestIdp;
let server: TestMcpServer;
/** Every bearer the MCP server accepted, with the subject it verified. */
let seen: { token: string; subject: string; method: string }[];
let managers: MCPManager[];

beforeAll(async () => {
  idp = await startTestIdp({ exchangedTokenTtlSec: 300 });
});

afterAll(async () => {
  await idp.close();
});

beforeEach(async () => {
  seen = [];
  managers = [];
  idp.resetStats();
  idp.clearFaults();
  const verifier = createBearerVerifier({ issuer: idp.issuer, audience: idp.downstreamAudience, allowInsecureRequests: true });
  server = await startTestMcpServer({
    transport: 'streamable-http',
    verifyBearer: async (authorization, req) => {
      const b = await verifier.verify(authorization);
      seen.push({ token: b.token, subject: `${b.tenantId ?? '-'}/${b.subject}`, method: req.method });
      return { subject: `${b.tenantId ?? '-'}/${b.subject}` };
    },
  });
});

afterEach(async () => {
  jest.useRealTimers();
  await Promise.all(managers.map((m) => m.close()));
  await server.close();
});

function makeManager(all: Partial<MCPManagerOptions> & { resolver?: OboTokenResolver; now?: () => number } = {}) {
  // `resolver` and `now` are this helper's own; the rest goes to the manager.
  const { resolver: given, now, ...opts } = all;
  const resolver =
    given ??
    testIdpResolver(idp, {
      // These tests count exchanges: a slow, loaded machine must not turn into timeouts and retried exchanges.
      timeoutMs: 60_000,
      ...(now ? { now } : {}),
    });
  const m = new MCPManager({
    servers: { graph: { url: server.url, obo: { scopes: `${idp.downstreamAudience}/.default` }, headers: { Authorization: 'Bearer static-never-sent' } } },
    oboTokenResolver: resolver,
    circuitBreaker: false,
    ...opts,
  });
  managers.push(m);
  return m;
}

async function userFor(sub: string, tenantId = 'contoso'): Promise<UserContext> {
  const token = await idp.mintAccessToken({ sub, tenantId });
  return { id: sub, tenantId, upstreamToken: token };
}

describe('OBO end to end', () => {
  it('puts a valid token for the user on every request, and never the configured static Authorization', async () => {
    const m = makeManager();
    const user = await userFor('alice');
    expect(text(await m.callTool({ user, serverName: 'graph', toolName: 'whoami' }))).toBe('contoso/alice');
    expect(text(await m.callTool({ user, serverName: 'graph', toolName: 'echo', arguments: { text: 'x' } }))).toBe('x');
    await m.close();
    const methods = server.requests.map((r) => r.method);
    expect(methods).toContain('DELETE'); // the closing DELETE carried a token too
    expect(server.requests.every((r) => r.authorization?.startsWith('Bearer ey'))).toBe(true);
    expect(server.requests.some((r) => r.authorization?.includes('static-never-sent'))).toBe(false);
    expect(new Set(seen.map((s) => s.subject))).toEqual(new Set(['contoso/alice']));
    expect(idp.stats().exchanges).toBe(1);
  });

  it('500 concurrent calls of one user on a cold cache → 1 exchange and 1 initialize', async () => {
    const m = makeManager();
    const user = await userFor('bob');
    const results = await Promise.all(Array.from({ length: 500 }, () => m.callTool({ user, serverName: 'graph', toolName: 'whoami' })));
    expect(new Set(results.map(text))).toEqual(new Set(['contoso/bob']));
    expect(idp.stats().exchanges).toBe(1);
    expect(server.stats().initializeCount).toBe(1);
  });

  it('200 users concurrently → 200 exchanges, zero mismatches between caller and verified subject', async () => {
    const m = makeManager();
    const users = await Promise.all(Array.from({ length: 200 }, (_, i) => userFor(`user-${i}`, i % 2 ? 'fabrikam' : 'contoso')));
    const results = await Promise.all(users.map((user) => m.callTool({ user, serverName: 'graph', toolName: 'whoami' })));
    const mismatches = results.filter((r, i) => text(r) !== `${users[i]!.tenantId}/${users[i]!.id}`);
    expect(mismatches).toHaveLength(0);
    expect(idp.stats().exchanges).toBe(200);
    expect(server.stats().initializeCount).toBe(200);
  });

  it('sends a new token after expiry minus skew, without reconnecting', async () => {
    let clock = Date.now();
    const m = makeManager({ now: () => clock });
    const user = await userFor('carol');
    await m.callTool({ user, serverName: 'graph', toolName: 'whoami' });
    const first = seen.at(-1)!.token;
    await m.callTool({ user, serverName: 'graph', toolName: 'whoami' });
    expect(seen.at(-1)!.token).toBe(first);
    clock += 241_000; // 300 s token − 60 s skew has passed
    await m.callTool({ user, serverName: 'graph', toolName: 'whoami' });
    expect(seen.at(-1)!.token).not.toBe(first);
    expect(idp.stats().exchanges).toBe(2);
    expect(server.stats().initializeCount).toBe(1);
  });

  it('reports oboExchange events without any token', async () => {
    const m = makeManager();
    const events: OboExchangeEvent[] = [];
    m.on('oboExchange', (e) => events.push(e));
    const user = await userFor('dave');
    await m.callTool({ user, serverName: 'graph', toolName: 'whoami' });
    expect(events.length).toBeGreaterThan(0);
    expect(events.every((e) => e.ok && e.serverName === 'graph' && e.userId === 'dave' && e.tenantId === 'contoso')).toBe(true);
    // One lookup per HTTP request: the first one exchanged at the IdP, the others came from the cache.
    expect(events[0]!.cacheHit).toBe(false);
    expect(events.slice(1).every((e) => e.cacheHit === true)).toBe(true);
    expect(events.length).toBe(server.requests.length);
    const dump = JSON.stringify(events);
    expect(dump).not.toContain(user.upstreamToken as string);
    for (const s of seen) expect(dump).not.toContain(s.token);
  });

  it('publishes every event on node:diagnostics_channel when someone subscribes', async () => {
    const got: Record<string, object[]> = {};
    const subs = Object.entries(DIAGNOSTICS_CHANNELS).map(([event, name]) => {
      const fn = (msg: unknown) => void (got[event] ??= []).push(msg as object);
      diagnosticsChannel.subscribe(name, fn);
      return () => diagnosticsChannel.unsubscribe(name, fn);
    });
    try {
      const m = makeManager();
      const user = await userFor('dora');
      await m.callTool({ user, serverName: 'graph', toolName: 'whoami' });
      await m.close();
    } finally {
      subs.forEach((u) => u());
    }
    expect(got.connect).toEqual([expect.objectContaining({ serverName: 'graph', scope: 'user', userId: 'dora', tenantId: 'contoso' })]);
    expect(got.oboExchange?.length).toBeGreaterThan(0);
    expect(got.evict).toEqual([expect.objectContaining({ reason: 'closed' })]);
    expect(got.disconnect).toEqual([expect.objectContaining({ reason: 'closed' })]);
  });

  it('IdP 503 once → success after one retry', async () => {
    const m = makeManager();
    const user = await userFor('erin');
    idp.failNext(1, { status: 503, error: 'temporarily_unavailable', grant: 'exchange' });
    expect(text(await m.callTool({ user, serverName: 'graph', toolName: 'whoami' }))).toBe('contoso/erin');
    expect(idp.stats().tokenRequests).toBe(2);
  });

  it('invalid_grant → fails closed, not retried, not cached, and the server sees nothing', async () => {
    const m = makeManager();
    const user = await userFor('frank');
    idp.failNext(1, { status: 400, error: 'invalid_grant', error_description: 'AADSTS50013: assertion failed', grant: 'exchange' });
    const err = await m.callTool({ user, serverName: 'graph', toolName: 'whoami' }).catch((e) => e);
    expect(err).toBeInstanceOf(OboError);
    expect(err).toMatchObject({ reason: 'exchange_failed', retryable: false });
    expect(idp.stats().tokenRequests).toBe(1);
    expect(server.requests).toHaveLength(0);
    expect(JSON.stringify(err)).not.toContain(user.upstreamToken as string);
    // Not cached: the next call exchanges again and succeeds.
    expect(text(await m.callTool({ user, serverName: 'graph', toolName: 'whoami' }))).toBe('contoso/frank');
  });

  it('IdP down → every call fails closed with retryable: true; calls succeed again once it is back', async () => {
    const m = makeManager();
    const users = await Promise.all(['g1', 'g2', 'g3'].map((id) => userFor(id)));
    await idp.down();
    try {
      const errors = await Promise.all(users.map((user) => m.callTool({ user, serverName: 'graph', toolName: 'whoami' }).catch((e) => e)));
      for (const e of errors) {
        expect(e).toBeInstanceOf(OboError);
        expect(e.retryable).toBe(true);
      }
      expect(server.requests).toHaveLength(0);
    } finally {
      await idp.up();
    }
    const results = await Promise.all(users.map((user) => m.callTool({ user, serverName: 'graph', toolName: 'whoami' })));
    expect(results.map(text)).toEqual(['contoso/g1', 'contoso/g2', 'contoso/g3']);
  });

  it('a missing upstream token fails closed with missing_upstream_token, not retryable', async () => {
    const m = makeManager();
    const err = await m.callTool({ user: { id: 'nobody' }, serverName: 'graph', toolName: 'whoami' }).catch((e) => e);
    expect(err).toMatchObject({ reason: 'missing_upstream_token', retryable: false });
    expect(server.requests).toHaveLength(0);
  });

  it('reads a function upstream token for every exchange (a live session, not a snapshot)', async () => {
    let current = await idp.mintAccessToken({ sub: 'hank', tenantId: 'contoso' });
    const getter = jest.fn(async () => current);
    const m = makeManager();
    const user: UserContext = { id: 'hank', tenantId: 'contoso', upstreamToken: getter };
    await m.callTool({ user, serverName: 'graph', toolName: 'whoami' });
    expect(getter).toHaveBeenCalled();
    // The session refreshed: the next request reads the new token, not a snapshot taken earlier.
    current = await idp.mintAccessToken({ sub: 'hank', tenantId: 'contoso', claims: { refreshed: true } });
    const calls = getter.mock.calls.length;
    expect(text(await m.callTool({ user, serverName: 'graph', toolName: 'whoami' }))).toBe('contoso/hank');
    expect(getter.mock.calls.length).toBeGreaterThan(calls);
    expect(await getter.mock.results.at(-1)!.value).toBe(current);
  });

  it('trust revoked mid-session → the next call is refused and the server sees no request', async () => {
    let trusted = true;
    const m = makeManager({ oboTrustChecker: () => trusted });
    const user = await userFor('ivy');
    await m.callTool({ user, serverName: 'graph', toolName: 'whoami' });
    const before = server.requests.length;
    trusted = false;
    await expect(m.callTool({ user, serverName: 'graph', toolName: 'whoami' })).rejects.toMatchObject({ reason: 'untrusted' });
    expect(server.requests.length).toBe(before);
  });

  it('server 401 → drop the cached token, exchange again with forceRefresh, resend once', async () => {
    // A resolver whose first token for a user is one the server does not accept (wrong audience).
    const real = createOboTokenResolver(testIdpClient(idp));
    const bad = await idp.mintAccessToken({ sub: 'jack', tenantId: 'contoso', audience: 'api://somewhere-else' });
    const calls: boolean[] = [];
    let served = false;
    const resolver: OboTokenResolver = async (req) => {
      calls.push(req.forceRefresh === true);
      if (!served && !req.forceRefresh) return { accessToken: bad, expiresAt: Date.now() + 60_000 };
      served = true;
      return real(req);
    };
    const m = makeManager({ resolver });
    const user = await userFor('jack');
    expect(text(await m.callTool({ user, serverName: 'graph', toolName: 'whoami' }))).toBe('contoso/jack');
    expect(calls.slice(0, 2)).toEqual([false, true]);
    expect(server.requests[0]!.authorization).toBe(`Bearer ${bad}`);
  });

  it('a second rejection → OboError rejected_by_server', async () => {
    const bad = await idp.mintAccessToken({ sub: 'kim', tenantId: 'contoso', audience: 'api://somewhere-else' });
    const m = makeManager({ resolver: async () => ({ accessToken: bad }) });
    const user = await userFor('kim');
    const err = await m.callTool({ user, serverName: 'graph', toolName: 'whoami' }).catch((e) => e);
    expect(err).toBeInstanceOf(OboError);
    expect(err).toMatchObject({ reason: 'rejected_by_server', retryable: false });
    expect(server.requests).toHaveLength(2);
  });

  it('a resolver handing back an expired token is refused, never sent', async () => {
    const m = makeManager({ resolver: async () => ({ accessToken: 'abc.def.ghi', expiresAt: Date.now() - 1 }) });
    const user = await userFor('lee');
    await expect(m.callTool({ user, serverName: 'graph', toolName: 'whoami' })).rejects.toMatchObject({ reason: 'exchange_failed' });
    expect(server.requests).toHaveLength(0);
  });
});
