/**
 * The `coordinator` option of the three consumers, with the in-process `createMemoryCoordinator` standing in
 * for Redis: several resolvers, providers and managers in this process act as replicas sharing one coordinator,
 * against real loopback peers (the test IdP, a bearer-verifying MCP server, an oidc-provider authorization server).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { Agent } from 'undici';
import { createBearerVerifier } from '../../src/auth/bearerVerifier.js';
import { createOboTokenResolver } from '../../src/auth/oboTokenResolver.js';
import type { OboRequest } from '../../src/auth/oboTypes.js';
import { createUpstreamTokenProvider } from '../../src/auth/upstreamToken.js';
import type { Coordinator, InvalidationEvent } from '../../src/coordination.js';
import { AuthorizationRequiredError, UpstreamTokenError } from '../../src/errors.js';
import type { EvictReason } from '../../src/events.js';
import { MCPManager } from '../../src/MCPManager.js';
import { createMemoryCoordinator, type MemoryCoordinator } from '../../src/testing/memoryCoordinator.js';
import { createRedisCoordinator } from '../../src/redis/index.js';
import { startTestIdp, type TestIdp } from '../../src/testing/testIdp.js';
import { startTestMcpServer, type TestMcpServer } from '../../src/testing/testMcpServer.js';
import type { Logger, UserContext } from '../../src/types.js';
import { rejectionOf } from '../support/errors.js';
import { nextEvent } from '../support/coordinator.js';
import { testIdpClient } from '../support/idp.js';
import { approve, startRelaxedOAuthPeers, type AuthServer, type ProtectedMcpServer } from '../support/oauthPeers.js';

let idp: TestIdp;
let scope: string;
const agents: Agent[] = [];

beforeAll(async () => {
  idp = await startTestIdp({ accessTokenTtlSec: 3600 });
  scope = `${idp.downstreamAudience}/.default`;
});
afterAll(async () => {
  await Promise.all(agents.map((a) => a.close()));
  await idp.close();
});
beforeEach(() => idp.resetStats());

/** A coordinator that counts the calls made to it (what a warm call must not make). */
function counting(inner: Coordinator): { coordinator: Coordinator; calls: () => number } {
  let n = 0;
  const count = <T extends object>(target: T): T =>
    new Proxy(target, {
      get(t, prop, receiver) {
        const v = Reflect.get(t, prop, receiver) as unknown;
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          n++;
          return (v as (...a: unknown[]) => unknown).apply(t, args);
        };
      },
    });
  const coordinator: Coordinator = {
    oauthStore: inner.oauthStore,
    oauthFlowStore: inner.oauthFlowStore,
    upstreamSessions: inner.upstreamSessions,
    oboTokens: count(inner.oboTokens),
    acquire: (key, opts) => {
      n++;
      return inner.acquire(key, opts);
    },
    publish: (e) => inner.publish(e),
    subscribe: (l) => inner.subscribe(l),
    close: () => inner.close(),
  };
  return { coordinator, calls: () => n };
}

/** A replica's resolver: its own dispatcher, sharing `coordinator`. */
function replicaResolver(coordinator: Coordinator) {
  const agent = new Agent();
  agents.push(agent);
  return createOboTokenResolver({ ...testIdpClient(idp), retryDelayMs: 0, timeoutMs: 60_000, dispatcher: agent, coordinator });
}

async function oboRequest(sub: string): Promise<OboRequest> {
  const assertion = await idp.mintAccessToken({ sub, tenantId: 'contoso' });
  return { user: { id: sub, tenantId: 'contoso' }, assertion, scopes: [scope], serverName: 'files' };
}

describe('createOboTokenResolver({ coordinator })', () => {
  it('10 concurrent calls for one user across two replicas → one IdP exchange; warm calls make no coordinator call', async () => {
    const shared = createMemoryCoordinator();
    const { coordinator, calls } = counting(shared);
    const a = replicaResolver(coordinator);
    const b = replicaResolver(coordinator);
    const req = await oboRequest('u-fleet');
    const tokens = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b)(req)));
    expect(new Set(tokens.map((t) => t.accessToken)).size).toBe(1);
    expect(idp.stats().exchanges).toBe(1);

    const before = calls();
    const warm = await Promise.all([a(req), b(req), a(req), b(req)]);
    expect(warm.every((t) => t.cacheHit === true && t.accessToken === tokens[0]!.accessToken)).toBe(true);
    expect(calls()).toBe(before);
    expect(idp.stats().exchanges).toBe(1);
  });

  it('a forced refresh replaces the shared entry: the other replica gets the new token after its own local miss', async () => {
    const coordinator = createMemoryCoordinator();
    const a = replicaResolver(coordinator);
    const b = replicaResolver(coordinator);
    const req = await oboRequest('u-force');
    const first = await a(req);
    const renewed = await a({ ...req, forceRefresh: true });
    expect(renewed.accessToken).not.toBe(first.accessToken);
    expect((await b(req)).accessToken).toBe(renewed.accessToken);
    expect(idp.stats().exchanges).toBe(2);
  });

  it('a forced refresh on B drops the rejected token from A’s warm in-process cache (dropOboToken); B keeps its new one', async () => {
    const coordinator = createMemoryCoordinator();
    const seen: InvalidationEvent[] = [];
    coordinator.subscribe((e) => seen.push(e));
    const a = replicaResolver(coordinator);
    const b = replicaResolver(coordinator);
    const req = await oboRequest('u-drop');
    const rejected = (await a(req)).accessToken;
    expect((await b(req)).accessToken).toBe(rejected);
    const renewed = (await b({ ...req, forceRefresh: true })).accessToken;
    expect(renewed).not.toBe(rejected);
    await new Promise((r) => setImmediate(r));
    expect((await a(req)).accessToken).toBe(renewed);
    // B's own echo does not drop B's new token: a warm hit.
    expect(await b(req)).toMatchObject({ accessToken: renewed, cacheHit: true });
    const drop = seen.find((e) => e.kind === 'dropOboToken');
    expect(drop).toBeDefined();
    expect(JSON.stringify(drop)).not.toContain(req.assertion);
    expect(idp.stats().exchanges).toBe(2);
  });

  it('the shared cache keeps the newer token: a later set of an older one is ignored; delete then set replaces', async () => {
    const { oboTokens } = createMemoryCoordinator();
    const t = Date.now();
    await oboTokens.set('k', { accessToken: 'new', expiresAt: t + 120_000 }, t + 60_000);
    await oboTokens.set('k', { accessToken: 'old', expiresAt: t + 100_000 }, t + 60_000);
    expect((await oboTokens.get('k'))?.accessToken).toBe('new');
    await oboTokens.delete('k');
    await oboTokens.set('k', { accessToken: 'old', expiresAt: t + 100_000 }, t + 60_000);
    expect((await oboTokens.get('k'))?.accessToken).toBe('old');
  });

  it('coordinator down → each replica exchanges for itself, and still gets a token', async () => {
    const coordinator = createMemoryCoordinator();
    coordinator.fail(true);
    const a = replicaResolver(coordinator);
    const b = replicaResolver(coordinator);
    const req = await oboRequest('u-down');
    const [ta, tb] = await Promise.all([a(req), b(req)]);
    expect(ta.accessToken).toBeTruthy();
    expect(tb.accessToken).toBeTruthy();
    expect(idp.stats().exchanges).toBe(2);
  });
});

describe('createUpstreamTokenProvider({ coordinator })', () => {
  const provider = (coordinator: Coordinator) => createUpstreamTokenProvider({ ...testIdpClient(idp), coordinator });

  it('concurrent refreshes of one session on two replicas → one refresh grant, the rotated token stored, no invalid_grant', async () => {
    const coordinator = createMemoryCoordinator();
    const a = provider(coordinator);
    const b = provider(coordinator);
    const user = { id: 'carol', tenantId: 't1' };
    const s = await idp.startSession({ sub: 'carol', tenantId: 't1' });
    await a.setSession(user, { ...s, expiresAt: Date.now() - 1_000 });
    const tokens = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).getToken(user)));
    expect(new Set(tokens).size).toBe(1);
    expect(tokens[0]).not.toBe(s.accessToken);
    expect(idp.stats().refreshes).toBe(1);
    const stored = await coordinator.upstreamSessions.get(a.sessionKey(user));
    expect(stored?.accessToken).toBe(tokens[0]);
    expect(stored?.refreshToken).not.toBe(s.refreshToken);
    // The stored refresh token is the live one: a forced refresh on the other replica works.
    expect(await b.getToken(user, { forceRefresh: true, rejectedToken: tokens[0] })).not.toBe(tokens[0]);
    expect(idp.stats().refreshes).toBe(2);
  });

  it('coordinator down → a refresh rejects retryable (refresh_failed) and nothing reaches the IdP; it recovers after', async () => {
    const coordinator = createMemoryCoordinator();
    const a = provider(coordinator);
    const user = { id: 'dave' };
    const s = await idp.startSession({ sub: 'dave' });
    await a.setSession(user, { ...s, expiresAt: Date.now() - 1_000 });
    coordinator.fail(true);
    const err = await rejectionOf(a.getToken(user), UpstreamTokenError);
    expect(err.code).toBe('refresh_failed');
    expect(err.retryable).toBe(true);
    expect(JSON.stringify(err.toJSON())).not.toContain(s.refreshToken!);
    expect(idp.stats().refreshes).toBe(0);
    coordinator.fail(false);
    expect(await a.getToken(user)).not.toBe(s.accessToken);
    expect(idp.stats().refreshes).toBe(1);
  });

  it('coordinator down right after the IdP rotated the refresh token → the new session is kept, stored on recovery, the old refresh token never presented again', async () => {
    const coordinator = createMemoryCoordinator();
    const presented: string[] = [];
    let failAfterGrant = true;
    const fetch = async (url: string, init: RequestInit = {}) => {
      const rt = init.method === 'POST' ? new URLSearchParams(String(init.body)).get('refresh_token') : null;
      if (rt) presented.push(rt);
      const res = await globalThis.fetch(url, init);
      if (rt && failAfterGrant) {
        failAfterGrant = false;
        coordinator.fail(true); // the IdP answered (RT1 consumed); the store is now down
      }
      return res;
    };
    const a = createUpstreamTokenProvider({ ...testIdpClient(idp), coordinator, fetch: fetch as never });
    const b = provider(coordinator);
    const user = { id: 'erin' };
    const s = await idp.startSession({ sub: 'erin' });
    await a.setSession(user, { ...s, expiresAt: Date.now() - 1_000 });
    const err = await rejectionOf(a.getToken(user), UpstreamTokenError);
    expect({ code: err.code, retryable: err.retryable }).toEqual({ code: 'refresh_failed', retryable: true });
    // Still down: a's calls fail retryably, and nothing more is sent to the IdP.
    expect((await rejectionOf(a.getToken(user), UpstreamTokenError)).retryable).toBe(true);
    coordinator.fail(false);
    const token = await a.getToken(user); // stores the kept session first, then serves it
    expect(token).not.toBe(s.accessToken);
    expect(await b.getToken(user)).toBe(token);
    const stored = await coordinator.upstreamSessions.get(a.sessionKey(user));
    expect(stored?.refreshToken).not.toBe(s.refreshToken);
    expect(presented).toEqual([s.refreshToken]);
    expect(idp.stats().refreshes).toBe(1);
    // The stored refresh token is the live one.
    expect(await b.getToken(user, { forceRefresh: true, rejectedToken: token })).not.toBe(token);
    expect(idp.stats().refreshes).toBe(2);
  });
});

describe('MCPManager({ coordinator })', () => {
  let server: TestMcpServer;
  let managers: MCPManager[];
  beforeEach(async () => {
    managers = [];
    const verifier = createBearerVerifier({ issuer: idp.issuer, audience: idp.downstreamAudience, allowInsecureRequests: true });
    server = await startTestMcpServer({
      transport: 'streamable-http',
      verifyBearer: async (authorization) => ({ subject: (await verifier.verify(authorization)).subject }),
    });
  });
  afterEach(async () => {
    await Promise.all(managers.map((m) => m.close()));
    await server.close();
  });

  function replica(coordinator: MemoryCoordinator, logger?: Logger) {
    const m = new MCPManager({
      servers: { graph: { url: server.url, obo: { scopes: scope } } },
      oboTokenResolver: replicaResolver(coordinator),
      circuitBreaker: false,
      coordinator,
      ...(logger ? { logger } : {}),
    });
    managers.push(m);
    return m;
  }
  const userFor = async (sub: string): Promise<UserContext> => ({ id: sub, upstreamToken: await idp.mintAccessToken({ sub }) });
  /** Resolves with the next invalidation of `kind` that `c` delivers (after the managers, which subscribed first). */
  const delivered = (c: Coordinator, kind: InvalidationEvent['kind']) => nextEvent(c, (e) => e.kind === kind);

  it('disconnectUser on A closes the user’s connection on B; removeServer on A removes the server on B', async () => {
    const coordinator = createMemoryCoordinator();
    const a = replica(coordinator);
    const b = replica(coordinator);
    const alice = await userFor('alice');
    await b.callTool({ user: alice, serverName: 'graph', toolName: 'whoami' });
    expect(b.stats().userConnections).toBe(1);
    const evicted = new Promise<{ userId?: string; reason: EvictReason }>((resolve) => b.once('evict', resolve));
    await a.disconnectUser('alice');
    expect(await evicted).toMatchObject({ userId: 'alice', reason: 'disconnected' });
    expect(b.stats().userConnections).toBe(0);

    await b.callTool({ user: alice, serverName: 'graph', toolName: 'whoami' });
    const removed = delivered(coordinator, 'removeServer');
    await a.removeServer('graph');
    await removed;
    expect(b.serverNames()).not.toContain('graph');
    expect(a.serverNames()).not.toContain('graph');
  });

  it('upsertServer on A reaches B validated; a bad config received is logged and ignored', async () => {
    const coordinator = createMemoryCoordinator();
    const warnings: string[] = [];
    const logger = { debug() {}, info() {}, error() {}, warn: (_o: unknown, msg?: string) => void warnings.push(String(msg)) } as unknown as Logger;
    const a = replica(coordinator);
    const b = replica(coordinator, logger);
    let upserted = delivered(coordinator, 'upsertServer');
    a.upsertServer('extra', { url: server.url, obo: { scopes: scope } });
    await upserted;
    expect(b.serverNames()).toContain('extra');

    upserted = delivered(coordinator, 'upsertServer');
    await coordinator.publish({ kind: 'upsertServer', serverName: 'broken', config: { url: 42 } });
    await upserted;
    expect(b.serverNames()).not.toContain('broken');
    expect(warnings.some((w) => w.includes('invalid upsertServer'))).toBe(true);
  });

  it('two quick upserts on A: the echo of the first does not flip A back to it; B ends on the second', async () => {
    // A channel whose deliveries the test releases one by one, in order, to every subscriber.
    const inner = createMemoryCoordinator();
    const listeners: ((e: InvalidationEvent) => void)[] = [];
    const queued: InvalidationEvent[] = [];
    const coordinator: Coordinator = Object.assign(Object.create(inner) as Coordinator, {
      subscribe: (l: (e: InvalidationEvent) => void) => {
        listeners.push(l);
        return () => void listeners.splice(listeners.indexOf(l), 1);
      },
      publish: async (e: InvalidationEvent) => void queued.push(JSON.parse(JSON.stringify(e)) as InvalidationEvent),
    });
    class Replica extends MCPManager {
      urlOf(name: string): Promise<string | undefined> {
        return Promise.resolve(this.resolveServerConfig(name, undefined)).then((c) => (c && 'url' in c ? c.url : undefined));
      }
    }
    const make = () => new Replica({ servers: {}, circuitBreaker: false, coordinator });
    const a = make();
    const b = make();
    managers.push(a, b);
    a.upsertServer('s', { url: 'http://127.0.0.1:9/one' });
    a.upsertServer('s', { url: 'http://127.0.0.1:9/two' });
    expect(queued.map((e) => (e as { config: { url: string } }).config.url)).toEqual(['http://127.0.0.1:9/one', 'http://127.0.0.1:9/two']);
    const seen: (string | undefined)[] = [];
    for (const e of queued.splice(0)) {
      for (const l of [...listeners]) l(e);
      seen.push(await a.urlOf('s'));
    }
    expect(seen).toEqual(['http://127.0.0.1:9/two', 'http://127.0.0.1:9/two']);
    expect(await b.urlOf('s')).toBe('http://127.0.0.1:9/two');
  });

  it('a publication failure leaves the local change and goes to the error event', async () => {
    const coordinator = createMemoryCoordinator();
    const a = replica(coordinator);
    const errors: Error[] = [];
    a.on('error', (e) => errors.push(e.error));
    const failed = new Promise<void>((resolve) => a.once('error', () => resolve()));
    coordinator.fail(true);
    await a.removeServer('graph');
    await failed;
    expect(a.serverNames()).not.toContain('graph');
    expect(errors[0]).toMatchObject({ code: 'connect_failed', retryable: true });
  });
});

describe('MCPManager({ coordinator }) OAuth across replicas', () => {
  let as: AuthServer;
  let mcp: ProtectedMcpServer;
  let redirect: string;
  beforeAll(async () => {
    ({ as, mcp, redirect } = await startRelaxedOAuthPeers());
  });
  afterAll(async () => {
    await Promise.all([mcp?.close(), as?.close()]);
  });

  // Each replica with its own coordinator object: in memory (one shared instance) and on Redis (one client each,
  // one key prefix), so the flow state really crosses from one connection to the other.
  const coordinators: [string, () => { a: Coordinator; b: Coordinator; close: () => Promise<void> }][] = [
    ['the memory coordinator', () => {
      const c = createMemoryCoordinator();
      return { a: c, b: c, close: async () => {} };
    }],
    ['Redis (two clients)', () => {
      const keyPrefix = `mcp-switchboard-test:${randomUUID()}:`;
      const encryptionKey = randomBytes(32);
      const a = createRedisCoordinator({ url: 'redis://127.0.0.1:6379', keyPrefix, encryptionKey });
      const b = createRedisCoordinator({ url: 'redis://127.0.0.1:6379', keyPrefix, encryptionKey });
      return { a, b, close: async () => void (await Promise.all([a.close(), b.close()])) };
    }],
  ];
  it.each(coordinators)('a flow started on A completes on B; both then call with the shared tokens; a revoke on B reaches A (%s)', async (_name, makeCoordinators) => {
    const shared = makeCoordinators();
    const make = (coordinator: Coordinator) => new MCPManager({ servers: { notes: { url: mcp.url, oauth: {} } }, oauth: { redirectUri: redirect }, coordinator });
    const a = make(shared.a);
    const b = make(shared.b);
    const codes0 = as.grants('authorization_code').length;
    try {
      const alice = { id: 'alice' };
      const whoami = async (m: MCPManager) => {
        const r = (await m.callTool({ user: alice, serverName: 'notes', toolName: 'whoami' })) as CallToolResult;
        return JSON.parse((r.content[0] as { text: string }).text) as { sub: string };
      };
      const err = await rejectionOf(whoami(a), AuthorizationRequiredError);
      const callback = await approve(err.authorizationUrl, 'alice', redirect);
      expect(await b.completeAuthorization(callback, { user: alice })).toMatchObject({ serverName: 'notes', userId: 'alice' });
      expect((await whoami(b)).sub).toBe('alice');
      expect((await whoami(a)).sub).toBe('alice');
      expect(as.grants('authorization_code')).toHaveLength(codes0 + 1);

      const evicted = new Promise<{ userId?: string }>((resolve) => a.once('evict', resolve));
      await b.revokeAuthorization({ user: alice, serverName: 'notes' });
      expect(await evicted).toMatchObject({ userId: 'alice' });
      // A's call after the revoke needs consent again, even when it meets the session end (DELETE, refused without
      // a token) of A's evicted connection in flight.
      await rejectionOf(whoami(a), AuthorizationRequiredError);
    } finally {
      await Promise.all([a.close(), b.close()]);
      await shared.close();
    }
  });
});
