/**
 * Isolation and security: many users calling concurrently with the server checking each request's verified
 * subject against the user the call was made for; OBO never performed for an untrusted config; a redirect
 * to another origin drops credentials; the SSRF guard blocks names resolving to private addresses (custom
 * DNS lookup, no real traffic).
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { LookupAddress } from 'node:dns';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createBearerVerifier } from '../../src/auth/bearerVerifier.js';
import { createOboTokenResolver } from '../../src/auth/oboTokenResolver.js';
import type { OboTokenResolver } from '../../src/auth/oboTypes.js';
import { OboError, SwitchboardError } from '../../src/errors.js';
import { MCPConnectionFactory } from '../../src/MCPConnectionFactory.js';
import { MCPManager } from '../../src/MCPManager.js';
import { startTestIdp, type TestIdp } from '../../src/testing/testIdp.js';
import { startTestMcpServer, type TestMcpServer } from '../../src/testing/testMcpServer.js';
import { createAuthFetch } from '../../src/transport/authFetch.js';
import { HttpClient } from '../../src/transport/httpClient.js';
import type { LookupFunction } from '../../src/transport/ssrf.js';
import type { UserContext } from '../../src/types.js';
import { testIdpClient } from '../support/idp.js';
import { listenOnLoopback } from '../support/http.js';
import { report } from '../support/report.js';

const text = (r: CallToolResult) => (r.content[0] as { text: string }).text;
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Runs every call for every user concurrently and counts calls answered with another user's identity. */
async function crossCheck(m: MCPManager, users: UserContext[], callsPerUser: number, expected: (u: UserContext) => string) {
  const started = performance.now();
  const results = await Promise.all(
    users.flatMap((user) => Array.from({ length: callsPerUser }, () => m.callTool({ user, serverName: 'graph', toolName: 'whoami' }).then((r) => ({ user, got: text(r) })))),
  );
  const mismatches = results.filter((r) => r.got !== expected(r.user)).length;
  return { calls: results.length, mismatches, ms: performance.now() - started };
}

describe('per-user isolation under load', () => {
  // The 1,000 users × 10 calls run (a local signer instead of the IdP) takes ~45 s on 2 cores, too long for
  // this suite: it is `npm run soak` (bench/soak.js). Here: 120 users through real IdP exchanges (user ids 0–19
  // appear in two tenants), which keeps the default suite within its time budget on 2 cores.
  describe('with the real IdP', () => {
    let idp: TestIdp;
    beforeAll(async () => {
      idp = await startTestIdp({ exchangedTokenTtlSec: 600 });
    });
    afterAll(async () => {
      await idp.close();
    });

    it('120 users × 10 concurrent calls through real OBO exchanges: 0 mismatches, one exchange per (user, assertion)', async () => {
      const verifier = createBearerVerifier({ issuer: idp.issuer, audience: idp.downstreamAudience, allowInsecureRequests: true });
      const server = await startTestMcpServer({
        transport: 'streamable-http',
        verifyBearer: async (authorization) => {
          const b = await verifier.verify(authorization);
          return { subject: `${b.tenantId}/${b.subject}` };
        },
      });
      cleanups.push(() => server.close());
      const resolver = createOboTokenResolver({ ...testIdpClient(idp), timeoutMs: 60_000 });
      const m = new MCPManager({ servers: { graph: { url: server.url, obo: { scopes: `${idp.downstreamAudience}/.default` } } }, oboTokenResolver: resolver, circuitBreaker: false });
      cleanups.push(() => m.close());
      const users = await Promise.all(
        Array.from({ length: 120 }, async (_, i) => {
          const tenantId = i % 3 ? 'contoso' : 'fabrikam';
          // Same user id in two tenants: they must never share a connection or a token.
          const id = `user-${i % 100}`;
          return { id, tenantId, upstreamToken: await idp.mintAccessToken({ sub: id, tenantId }) } as UserContext;
        }),
      );
      idp.resetStats();
      const r = await crossCheck(m, users, 10, (u) => `${u.tenantId}/${u.id}`);
      const distinct = new Set(users.map((u) => `${u.tenantId}/${u.id}`)).size;
      report('isolation', `real IdP: ${users.length} users (${distinct} distinct tenant/user) × 10 concurrent calls = ${r.calls} calls in ${(r.ms / 1000).toFixed(1)} s; mismatches ${r.mismatches}; exchanges ${idp.stats().exchanges}`);
      expect(r.mismatches).toBe(0);
      // One exchange per (user, assertion): users listed twice hold two different tokens, and each call carries its own.
      expect(idp.stats().exchanges).toBe(new Set(users.map((u) => u.upstreamToken)).size);
    }, 120_000);
  });
});

describe('OBO trust', () => {
  let server: TestMcpServer;
  let resolverCalls: number;
  const resolver: OboTokenResolver = async () => {
    resolverCalls++;
    return { accessToken: 'minted-token-for-trusted-server', expiresAt: Date.now() + 600_000 };
  };
  beforeEach(async () => {
    resolverCalls = 0;
    server = await startTestMcpServer({ transport: 'streamable-http' });
    cleanups.push(() => server.close());
  });

  it('a user-added OBO server is refused on every call; the resolver is never asked and the server never reached', async () => {
    const m = new MCPManager({ servers: { mine: { url: server.url, obo: { scopes: 'api://x/.default' }, source: 'user' } }, oboTokenResolver: resolver });
    cleanups.push(() => m.close());
    const user = { id: 'u1', upstreamToken: 'assertion' };
    for (let i = 0; i < 5; i++) {
      const err = await m.callTool({ user, serverName: 'mine', toolName: 'whoami' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OboError);
      expect(err).toMatchObject({ reason: 'untrusted', retryable: false });
    }
    await expect(m.listTools({ user, serverName: 'mine' })).rejects.toMatchObject({ reason: 'untrusted' });
    await expect(m.getConnection({ user, serverName: 'mine' })).rejects.toMatchObject({ reason: 'untrusted' });
    // A per-call config the host passes in is checked the same way.
    await expect(
      m.getConnection({ user, serverName: 'adhoc', serverConfig: { url: server.url, obo: { scopes: 'api://x/.default' }, source: 'user' } }),
    ).rejects.toMatchObject({ reason: 'untrusted' });
    expect(resolverCalls).toBe(0);
    expect(server.requests).toHaveLength(0);
  });

  it('a trust checker that refuses, throws or changes its mind is applied on every call, before anything is sent', async () => {
    let verdict: 'yes' | 'no' | 'throw' = 'no';
    const m = new MCPManager({
      servers: { graph: { url: server.url, obo: { scopes: 'api://x/.default' } } },
      oboTokenResolver: resolver,
      oboTrustChecker: () => {
        if (verdict === 'throw') throw new Error('policy store unavailable');
        return verdict === 'yes';
      },
    });
    cleanups.push(() => m.close());
    const user = { id: 'u1', upstreamToken: 'assertion' };
    await expect(m.callTool({ user, serverName: 'graph', toolName: 'whoami' })).rejects.toMatchObject({ reason: 'untrusted' });
    verdict = 'throw';
    await expect(m.callTool({ user, serverName: 'graph', toolName: 'whoami' })).rejects.toMatchObject({ reason: 'untrusted' });
    expect(resolverCalls).toBe(0);
    expect(server.requests).toHaveLength(0);
    verdict = 'yes';
    await m.callTool({ user, serverName: 'graph', toolName: 'whoami' });
    const sent = server.requests.length;
    const asked = resolverCalls;
    verdict = 'no'; // revoked while the connection is warm
    await expect(m.callTool({ user, serverName: 'graph', toolName: 'whoami' })).rejects.toMatchObject({ reason: 'untrusted' });
    expect(server.requests.length).toBe(sent);
    expect(resolverCalls).toBe(asked);
  });
});

describe('redirects', () => {
  async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; origin: string }> {
    const server = createServer(handler);
    const { origin, close } = await listenOnLoopback(server);
    cleanups.push(close);
    return { server, origin };
  }

  async function redirectingPair() {
    const seenAtB: IncomingHttpHeaders[] = [];
    const b = await listen((req, res) => {
      seenAtB.push(req.headers);
      res.writeHead(503).end();
    });
    const seenAtA: IncomingHttpHeaders[] = [];
    // `localhost` and 127.0.0.1 are different origins: the hop goes to B through another host name.
    const target = b.origin.replace('127.0.0.1', 'localhost');
    const a = await listen((req, res) => {
      seenAtA.push(req.headers);
      res.writeHead(307, { location: `${target}/mcp` }).end();
    });
    return { a, seenAtA, seenAtB };
  }

  it('through the manager: a cross-origin redirect is not followed at all; typed error, B never reached', async () => {
    const { a, seenAtA, seenAtB } = await redirectingPair();
    const m = new MCPManager({
      servers: { graph: { url: `${a.origin}/mcp`, obo: { scopes: 'api://x/.default' }, headers: { 'X-Api-Key': 'configured-api-key' } } },
      oboTokenResolver: async () => ({ accessToken: 'obo-token-for-a-only', expiresAt: Date.now() + 600_000 }),
      circuitBreaker: false,
    });
    cleanups.push(() => m.close());
    const err = await m.callTool({ user: { id: 'u1', upstreamToken: 'assertion' }, serverName: 'graph', toolName: 'whoami' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SwitchboardError);
    expect((err as SwitchboardError).code).toBe('connect_failed');
    expect(seenAtA.length).toBeGreaterThan(0);
    expect(seenAtA[0]!.authorization).toBe('Bearer obo-token-for-a-only');
    expect(seenAtB).toHaveLength(0);
  });

  it('the auth-aware fetch following redirects: the hop to another origin carries no Authorization, cookie or configured header, and the provider is not asked for it', async () => {
    const { a, seenAtA, seenAtB } = await redirectingPair();
    const http = new HttpClient();
    cleanups.push(() => http.close());
    let providerCalls = 0;
    const fetch = createAuthFetch({
      dispatcher: http.forConfig({}).dispatcher,
      headers: { 'X-Api-Key': 'configured-api-key', Cookie: 'session=abc' },
      authHeaders: async () => (providerCalls++, { Authorization: 'Bearer obo-token-for-a-only' }),
      retryUnauthorized: true,
    });
    const res = await fetch(`${a.origin}/mcp`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    await res.body?.cancel();
    expect(res.status).toBe(503); // B's answer: the redirect was followed
    expect(seenAtA).toHaveLength(1);
    expect(seenAtA[0]!.authorization).toBe('Bearer obo-token-for-a-only');
    expect(seenAtB).toHaveLength(1);
    expect(seenAtB[0]!.authorization).toBeUndefined();
    expect(seenAtB[0]!.cookie).toBeUndefined();
    expect(seenAtB[0]!['x-api-key']).toBeUndefined();
    expect(seenAtB[0]!['content-type']).toBe('application/json'); // the request's own headers stay
    expect(providerCalls).toBe(1);
    report('isolation', `cross-origin redirect: not followed by the SDK transport; followed by the auth fetch without Authorization, cookie or configured headers`);
  });
});

describe('SSRF guard with a custom DNS lookup (no real traffic)', () => {
  const answers: Record<string, LookupAddress[]> = {
    'loopback.evil.test': [{ address: '127.0.0.1', family: 4 }],
    'ten.evil.test': [{ address: '10.0.0.7', family: 4 }],
    'metadata.evil.test': [{ address: '169.254.169.254', family: 4 }],
    'v6loop.evil.test': [{ address: '::1', family: 6 }],
    'mapped.evil.test': [{ address: '::ffff:127.0.0.1', family: 6 }],
    'mixed.evil.test': [
      { address: '93.184.215.14', family: 4 },
      { address: '10.0.0.1', family: 4 },
    ],
    'allowed.local.test': [{ address: '127.0.0.1', family: 4 }],
  };
  let lookups: string[];
  const lookup: LookupFunction = (hostname, options, callback) => {
    lookups.push(hostname);
    const list = answers[hostname];
    if (!list) return callback(Object.assign(new Error(`ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), '');
    if ((options as { all?: boolean }).all) return callback(null, list);
    return callback(null, list[0]!.address, list[0]!.family);
  };

  beforeEach(() => {
    lookups = [];
  });

  function guardedManager(servers: Record<string, unknown>, allowHosts?: string[]) {
    const httpClient = new HttpClient({ lookup, ...(allowHosts ? { userSsrf: { blockPrivate: true, allowHosts } } : {}) });
    const factory = new MCPConnectionFactory({ httpClient });
    const m = new MCPManager({ servers, connectionFactory: factory, circuitBreaker: false });
    cleanups.push(() => httpClient.close());
    cleanups.push(() => factory.close());
    cleanups.push(() => m.close());
    return m;
  }

  it.each(['loopback.evil.test', 'ten.evil.test', 'metadata.evil.test', 'v6loop.evil.test', 'mapped.evil.test', 'mixed.evil.test'])(
    'a user config whose host %s resolves to a private address is blocked at connect time',
    async (host) => {
      const m = guardedManager({ evil: { url: `http://${host}:8080/mcp`, source: 'user' } });
      const err = await m.callTool({ user: { id: 'u1' }, serverName: 'evil', toolName: 'x' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SwitchboardError);
      expect((err as SwitchboardError).code).toBe('ssrf_blocked');
      expect(lookups).toContain(host);
    },
  );

  it.each(['http://127.0.0.1:8080/mcp', 'http://10.1.2.3/mcp', 'http://169.254.169.254/latest/meta-data', 'http://[::1]:8080/mcp', 'http://localhost:8080/mcp', 'http://[::ffff:a9fe:a9fe]/'])(
    'a literal private address or localhost (%s) is blocked before any lookup or connect',
    async (url) => {
      const m = guardedManager({ evil: { url, source: 'user' } });
      const err = await m.callTool({ user: { id: 'u1' }, serverName: 'evil', toolName: 'x' }).catch((e: unknown) => e);
      expect((err as SwitchboardError).code).toBe('ssrf_blocked');
      expect(lookups).toEqual([]);
    },
  );

  it('the same lookup is really used: an allow-listed name resolving to loopback reaches a real loopback server', async () => {
    const server = await startTestMcpServer({ transport: 'streamable-http' });
    cleanups.push(() => server.close());
    const m = guardedManager({ ok: { url: `http://allowed.local.test:${server.port}/mcp`, source: 'user' } }, ['allowed.local.test']);
    const r = await m.callTool({ user: { id: 'u1' }, serverName: 'ok', toolName: 'echo', arguments: { text: 'through the guard' } });
    expect(text(r)).toBe('through the guard');
    expect(lookups).toContain('allowed.local.test');
  });
});
