/**
 * Credentials follow the caller, not the connection: driven the way the README tells users to (verify the inbound
 * bearer, `toUserContext(bearer)`, `callTool`), with the assertion as a string and as a function, and with
 * per-user variables. What a request carried is decided by the server that received it.
 */
import { decodeJwt } from 'jose';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createBearerVerifier, type BearerVerifier } from '../../src/auth/bearerVerifier.js';
import { ConfigError, OboError } from '../../src/errors.js';
import { MCPManager } from '../../src/MCPManager.js';
import { startTestIdp, type TestIdp } from '../../src/testing/testIdp.js';
import { startTestMcpServer, type TestMcpServer } from '../../src/testing/testMcpServer.js';
import type { UserContext } from '../../src/types.js';
import { testIdpResolver } from '../support/idp.js';

const text = (r: CallToolResult) => (r.content[0] as { text: string }).text;

let idp: TestIdp;
let inbound: BearerVerifier;
let managers: MCPManager[] = [];
let servers: TestMcpServer[] = [];

beforeAll(async () => {
  idp = await startTestIdp({ exchangedTokenTtlSec: 300 });
  inbound = createBearerVerifier({ issuer: idp.issuer, audience: idp.runtimeAudience, allowInsecureRequests: true });
});
afterAll(async () => {
  await idp.close();
});
afterEach(async () => {
  await Promise.all(managers.map((m) => m.close()));
  await Promise.all(servers.map((s) => s.close()));
  managers = [];
  servers = [];
});

/** A streamable HTTP server that verifies each OBO bearer and records which user token it descends from. */
async function oboServer() {
  const verifier = createBearerVerifier({ issuer: idp.issuer, audience: idp.downstreamAudience, allowInsecureRequests: true });
  const seen: { method: string; subject: string; assertionJti: string | undefined }[] = [];
  const server = await startTestMcpServer({
    transport: 'streamable-http',
    verifyBearer: async (authorization, req) => {
      const b = await verifier.verify(authorization);
      seen.push({ method: req.method, subject: b.subject, assertionJti: b.claims.assertion_jti as string | undefined });
      return { subject: b.subject };
    },
  });
  servers.push(server);
  return { server, seen };
}

/** What the host's request handler does, per the README: verify the caller's bearer, then call as that user. */
async function asInboundRequest(authorization: string): Promise<UserContext> {
  return inbound.toUserContext(await inbound.verify(authorization));
}

describe('the OBO assertion follows each call', () => {
  it.each([
    ['a string (README: toUserContext)', (token: string) => token],
    ['a sync-looking function returning a promise', (token: string) => () => Promise.resolve(token)],
    ['an async function', (token: string) => async () => token],
  ])('as %s: a rotated assertion is exchanged on the next call; the superseded one is never used again', async (_label, form) => {
    const { server, seen } = await oboServer();
    const manager = new MCPManager({
      servers: { graph: { url: server.url, obo: { scopes: `${idp.downstreamAudience}/.default` } } },
      oboTokenResolver: testIdpResolver(idp, { timeoutMs: 60_000 }),
    });
    managers.push(manager);
    const first = await idp.mintAccessToken({ sub: 'alice', tenantId: 'contoso' });
    const second = await idp.mintAccessToken({ sub: 'alice', tenantId: 'contoso' });
    const jti = (t: string) => decodeJwt(t).jti;

    const u1 = await asInboundRequest(`Bearer ${first}`);
    expect(text(await manager.callTool({ user: { ...u1, upstreamToken: form(first) }, serverName: 'graph', toolName: 'whoami' }))).toBe('alice');
    const cut = seen.length;
    const u2 = await asInboundRequest(`Bearer ${second}`);
    expect(text(await manager.callTool({ user: { ...u2, upstreamToken: form(second) }, serverName: 'graph', toolName: 'whoami' }))).toBe('alice');

    const after = seen.slice(cut);
    expect(after.length).toBeGreaterThan(0);
    // Counted by the server: every request after the second call started descends from the second token.
    expect(after.every((r) => r.assertionJti === jti(second))).toBe(true);
    expect(manager.stats().userPool.connects).toBe(1); // same connection, new credential
  });

  it('a user whose first assertion is refused is not locked out: the next call with a good one succeeds on the same connection', async () => {
    const { server, seen } = await oboServer();
    const manager = new MCPManager({
      servers: { graph: { url: server.url, obo: { scopes: `${idp.downstreamAudience}/.default` } } },
      oboTokenResolver: testIdpResolver(idp, { timeoutMs: 60_000 }),
    });
    managers.push(manager);
    const good = await idp.mintAccessToken({ sub: 'bob' });
    expect(text(await manager.callTool({ user: { id: 'bob', upstreamToken: good }, serverName: 'graph', toolName: 'whoami' }))).toBe('bob');
    const expired = await idp.mintAccessToken({ sub: 'bob', expiresInSec: -60 });
    const before = seen.length;
    const failure = await manager.callTool({ user: { id: 'bob', upstreamToken: expired }, serverName: 'graph', toolName: 'whoami' }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(OboError);
    expect(seen.length).toBe(before); // fail closed: nothing reached the server
    const fresh = await idp.mintAccessToken({ sub: 'bob' });
    expect(text(await manager.callTool({ user: { id: 'bob', upstreamToken: fresh }, serverName: 'graph', toolName: 'whoami' }))).toBe('bob');
    expect(seen.at(-1)!.assertionJti).toBe(decodeJwt(fresh).jti);
  });

  it('concurrent calls of one user with different assertions each carry their own', async () => {
    const { server, seen } = await oboServer();
    const manager = new MCPManager({
      servers: { graph: { url: server.url, obo: { scopes: `${idp.downstreamAudience}/.default` } } },
      oboTokenResolver: testIdpResolver(idp, { timeoutMs: 60_000 }),
    });
    managers.push(manager);
    const warm = await idp.mintAccessToken({ sub: 'carol' });
    await manager.callTool({ user: { id: 'carol', upstreamToken: warm }, serverName: 'graph', toolName: 'whoami' });
    const tokens = await Promise.all(Array.from({ length: 6 }, () => idp.mintAccessToken({ sub: 'carol' })));
    const cut = seen.length;
    await Promise.all(tokens.map((t) => manager.callTool({ user: { id: 'carol', upstreamToken: t }, serverName: 'graph', toolName: 'echo', arguments: { text: decodeJwt(t).jti as string } })));
    const posts = seen.slice(cut).filter((r) => r.method === 'POST');
    expect(new Set(posts.map((r) => r.assertionJti))).toEqual(new Set(tokens.map((t) => decodeJwt(t).jti)));
  });
});

describe('per-user variables follow each call', () => {
  async function varsServer() {
    const seen: string[] = [];
    const server = await startTestMcpServer({
      transport: 'streamable-http',
      verifyBearer: async (authorization) => {
        seen.push(authorization ?? '(none)');
        return { subject: 'dave' };
      },
    });
    servers.push(server);
    const manager = new MCPManager({
      servers: { search: { url: server.url, headers: { Authorization: 'Bearer {{var.API_KEY}}' }, customUserVars: { API_KEY: { title: 'API key' } } } },
    });
    managers.push(manager);
    return { server, seen, manager };
  }

  it('a changed key is on the very next request; a removed one is a ConfigError and nothing is sent', async () => {
    const { seen, manager } = await varsServer();
    const call = (vars: Record<string, string>) => manager.callTool({ user: { id: 'dave', vars }, serverName: 'search', toolName: 'whoami' });
    await call({ API_KEY: 'v1' });
    expect(new Set(seen)).toEqual(new Set(['Bearer v1']));
    let cut = seen.length;
    await call({ API_KEY: 'v2' });
    expect(seen.slice(cut)).toEqual(['Bearer v2']);
    cut = seen.length;
    const removed = await call({}).catch((e: unknown) => e);
    expect(removed).toBeInstanceOf(ConfigError);
    expect((removed as ConfigError).issues[0]).toMatchObject({ path: 'search.headers.Authorization', message: expect.stringContaining('API_KEY') });
    expect(seen.length).toBe(cut);
    await call({ API_KEY: 'v3' });
    expect(seen.slice(cut)).toEqual(['Bearer v3']);
    expect(seen).not.toContain('(none)');
    expect(manager.stats().userPool.connects).toBe(1);
  });

  it('the closing DELETE carries the most recent caller’s value, never an old one', async () => {
    const { seen, manager } = await varsServer();
    await manager.callTool({ user: { id: 'dave', vars: { API_KEY: 'old' } }, serverName: 'search', toolName: 'whoami' });
    await manager.callTool({ user: { id: 'dave', vars: { API_KEY: 'new' } }, serverName: 'search', toolName: 'whoami' });
    const cut = seen.length;
    await manager.disconnectUser('dave');
    expect(seen.slice(cut)).not.toContain('Bearer old');
  });
});
