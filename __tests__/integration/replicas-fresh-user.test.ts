/**
 * "Two replicas" of a chat backend, wired as docs/operations.md ("Several replicas") says: each replica has its
 * own `createRedisCoordinator` (same url, keyPrefix and encryptionKey, as two processes would), its own OBO
 * resolver on that coordinator, and `new MCPManager({ ..., coordinator })`. Judged on the server side (the test
 * IdP's stats, the MCP servers' verified subjects, the authorization server's grants).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createClient } from 'redis';
import { createBearerVerifier } from '../../src/auth/bearerVerifier.js';
import { createOboTokenResolver } from '../../src/auth/oboTokenResolver.js';
import type { Coordinator, InvalidationEvent } from '../../src/coordination.js';
import { AuthorizationError, AuthorizationRequiredError, SwitchboardError } from '../../src/errors.js';
import { MCPManager } from '../../src/MCPManager.js';
import { createRedisCoordinator } from '../../src/redis/index.js';
import { startTestIdp, type TestIdp } from '../../src/testing/testIdp.js';
import { startTestMcpServer, type TestMcpServer } from '../../src/testing/testMcpServer.js';
import type { UserContext } from '../../src/types.js';
import { rejection, rejectionOf } from '../support/errors.js';
import { nextEvent } from '../support/coordinator.js';
import { testIdpClient } from '../support/idp.js';
import { approve, startAuthServer, startProtectedMcpServer, type AuthServer, type ProtectedMcpServer } from '../support/oauthPeers.js';

const REDIS_URL = 'redis://127.0.0.1:6379';
const keyPrefix = `replicas-fresh-user:${randomUUID()}:`;
const encryptionKey = randomBytes(32).toString('base64');

let idp: TestIdp;
let scope: string;
let graph: TestMcpServer;
let mcp: ProtectedMcpServer;
let as: AuthServer;
let redirect: string;
const coordinators: Coordinator[] = [];
const managers: MCPManager[] = [];
let a: MCPManager;
let b: MCPManager;
let coordA: Coordinator;
let coordB: Coordinator;

/** One "process": its own coordinator, its own resolver, its own manager. */
function replica(opts: { url?: string; key?: string } = {}) {
  const coordinator = createRedisCoordinator({ url: opts.url ?? REDIS_URL, keyPrefix, encryptionKey: opts.key ?? encryptionKey });
  coordinators.push(coordinator);
  const oboTokenResolver = createOboTokenResolver({ ...testIdpClient(idp), coordinator });
  const manager = new MCPManager({
    servers: {
      graph: { url: graph.url, obo: { scopes: scope } },
      notes: { url: mcp.url, oauth: {} },
    },
    oboTokenResolver,
    oauth: { redirectUri: redirect },
    coordinator,
  });
  managers.push(manager);
  return { manager, coordinator };
}

const text = (r: unknown) => ((r as CallToolResult).content[0] as { text: string }).text;
const oboUser = async (sub: string): Promise<UserContext> => ({ id: sub, upstreamToken: await idp.mintAccessToken({ sub }) });
/** Resolves with the next invalidation of `kind` that `c` delivers (after the manager subscribed on `c`). */
const delivered = (c: Coordinator, kind: InvalidationEvent['kind']) => nextEvent(c, (e) => e.kind === kind);

beforeAll(async () => {
  idp = await startTestIdp({ accessTokenTtlSec: 3600 });
  scope = `${idp.downstreamAudience}/.default`;
  const verifier = createBearerVerifier({ issuer: idp.issuer, audience: idp.downstreamAudience, allowInsecureRequests: true });
  graph = await startTestMcpServer({
    transport: 'streamable-http',
    verifyBearer: async (authorization) => ({ subject: (await verifier.verify(authorization)).subject }),
  });
  let issuer = '';
  mcp = await startProtectedMcpServer({ issuer: () => issuer });
  as = await startAuthServer({ resource: mcp.url, accessTokenTtlSec: 300 });
  issuer = as.issuer;
  redirect = `${new URL(mcp.url).origin}/callback`;
  ({ manager: a, coordinator: coordA } = replica());
  ({ manager: b, coordinator: coordB } = replica());
});

afterAll(async () => {
  await Promise.all(managers.map((m) => m.close()));
  await Promise.all(coordinators.map((c) => c.close()));
  await Promise.all([graph?.close(), mcp?.close(), as?.close(), idp?.close()]);
  const client = createClient({ url: REDIS_URL });
  await client.connect();
  const keys: string[] = [];
  for await (const batch of client.scanIterator({ MATCH: `${keyPrefix}*`, COUNT: 1000 })) keys.push(...(batch as unknown as string[]));
  if (keys.length) await client.del(keys);
  await client.close();
});

describe('two replicas on one Redis', () => {
  it('OBO: 10 concurrent calls for one user over both replicas → one IdP exchange; the server saw the user', async () => {
    idp.resetStats();
    const carol = await oboUser('carol');
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).callTool({ user: carol, serverName: 'graph', toolName: 'whoami' })),
    );
    expect(results.map(text)).toEqual(Array(10).fill('carol'));
    expect(idp.stats().exchanges).toBe(1);
    const bearers = new Set(graph.requests.filter((r) => r.authorization).map((r) => r.authorization));
    expect(bearers.size).toBe(1);
  });

  it('OAuth: consent started on A, callback on B, then both replicas call with one authorization code grant', async () => {
    const alice = { id: 'alice' };
    const codes0 = as.grants('authorization_code').length;
    const err = await rejectionOf(a.callTool({ user: alice, serverName: 'notes', toolName: 'whoami' }), AuthorizationRequiredError);
    const callback = await approve(err.authorizationUrl, 'alice', redirect);
    expect(await b.completeAuthorization(callback, { user: alice })).toMatchObject({ serverName: 'notes', userId: 'alice' });
    const [onA, onB] = await Promise.all([
      a.callTool({ user: alice, serverName: 'notes', toolName: 'whoami' }),
      b.callTool({ user: alice, serverName: 'notes', toolName: 'whoami' }),
    ]);
    expect(JSON.parse(text(onA)).sub).toBe('alice');
    expect(JSON.parse(text(onB)).sub).toBe('alice');
    expect(as.grants('authorization_code')).toHaveLength(codes0 + 1);
    expect(new Set(mcp.subsSeen())).toEqual(new Set(['alice']));
  });

  it('sign-out: disconnectUser on A closes B’s connection of that user (B’s evict event)', async () => {
    const dave = await oboUser('dave');
    await b.callTool({ user: dave, serverName: 'graph', toolName: 'whoami' });
    const evicted = new Promise<{ userId?: string; reason: string }>((resolve) =>
      b.on('evict', (e: { userId?: string; reason: string }) => {
        if (e.userId === 'dave') resolve(e);
      }),
    );
    await a.disconnectUser('dave');
    expect(await evicted).toMatchObject({ userId: 'dave', reason: 'disconnected' });
  });

  it('upsertServer on A (a new server) becomes callable on B', async () => {
    const upserted = delivered(coordB, 'upsertServer');
    a.upsertServer('extra', { url: graph.url, obo: { scopes: scope } });
    await upserted;
    expect(b.serverNames()).toContain('extra');
    const erin = await oboUser('erin');
    expect(text(await b.callTool({ user: erin, serverName: 'extra', toolName: 'whoami' }))).toBe('erin');
  });

  it('a replica with another encryptionKey: the shared entries read as absent (consent asked again, own OBO exchange)', async () => {
    const { manager: c } = replica({ key: randomBytes(32).toString('base64') });
    const errors: unknown[] = [];
    c.on('error', (e: { error: unknown }) => errors.push(e.error));
    // alice consented through A/B; C cannot read those tokens.
    await rejectionOf(c.callTool({ user: { id: 'alice' }, serverName: 'notes', toolName: 'whoami' }), AuthorizationRequiredError);
    // carol's OBO token is in the shared cache; C cannot read it and exchanges for itself.
    idp.resetStats();
    const carol = await oboUser('carol');
    expect(text(await c.callTool({ user: carol, serverName: 'graph', toolName: 'whoami' }))).toBe('carol');
    expect(idp.stats().exchanges).toBe(1);
    expect(errors).toEqual([]);
  });

  it('Redis unreachable: OBO still works per process; OAuth fails typed and retryable; close() returns', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const { manager: d, coordinator: coordD } = replica({ url: `redis://127.0.0.1:${port}` });
    const frank = await oboUser('frank');
    // docs: "OBO falls back to per-process"
    idp.resetStats();
    expect(text(await d.callTool({ user: frank, serverName: 'graph', toolName: 'whoami' }))).toBe('frank');
    expect(idp.stats().exchanges).toBe(1);
    // docs: "Refresh and OAuth, whose source of truth is Redis, fail closed" (retryable)
    // What arrives is the coordinator's own SwitchboardError('connect_failed'): neither an AuthorizationError (the
    // oauth.md error table) nor an OboError; nothing reaches the protected server.
    const seen = mcp.requests.length;
    const err = await rejection(d.callTool({ user: { id: 'alice' }, serverName: 'notes', toolName: 'whoami' }));
    expect(err).toBeInstanceOf(SwitchboardError);
    expect(err).not.toBeInstanceOf(AuthorizationError);
    expect(err).toMatchObject({ code: 'connect_failed', retryable: true });
    expect(mcp.requests.length).toBe(seen);
    await d.close();
    await coordD.close();
  });
});
