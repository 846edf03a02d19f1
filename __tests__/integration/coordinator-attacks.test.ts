/**
 * Adversarial review of the multi-replica coordination (issue 13) against a real Redis: fencing of expired lock
 * holders, rotating refresh tokens across replicas, a Redis restart mid-refresh, encryption at rest and on the
 * wire, invalidation forgery and replay, OBO shared-cache separation, and failure modes with Redis down.
 *
 * Eight of them failed against the first version (a lost OAuth refresh across replicas, a rotated refresh token
 * lost in an outage, stalled lock holders, replayed or missed invalidations, a refused OBO token still cached
 * elsewhere, an older shared token overwriting a newer one); all pin properties that must not regress.
 * Each test uses its own key prefix on 127.0.0.1:6379 (deleted afterwards); the restart test runs its own
 * redis-server on an ephemeral port. A lock "expiring" is simulated by deleting the lock key (what its TTL does).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { decodeJwt } from 'jose';
import { createClient } from 'redis';
import { Agent } from 'undici';
import { createOboTokenResolver } from '../../src/auth/oboTokenResolver.js';
import type { OboRequest } from '../../src/auth/oboTypes.js';
import { createUpstreamTokenProvider } from '../../src/auth/upstreamToken.js';
import type { Coordinator, InvalidationEvent } from '../../src/coordination.js';
import { AuthorizationRequiredError, SwitchboardError, UpstreamTokenError } from '../../src/errors.js';
import { MCPManager } from '../../src/MCPManager.js';
import { createRedisCoordinator, type RedisCoordinatorOptions } from '../../src/redis/index.js';
import { startTestIdp, type TestIdp } from '../../src/testing/testIdp.js';
import type { UserContext } from '../../src/types.js';
import { testIdpClient } from '../support/idp.js';
import { closeAndDeleteKeys, freePort, nextEvent, privateRedisPerTest, subscribed } from '../support/coordinator.js';
import { approve, startRelaxedOAuthPeers, type AuthServer, type ProtectedMcpServer } from '../support/oauthPeers.js';

const URL6379 = 'redis://127.0.0.1:6379';
const KEY = randomBytes(32);
type Raw = ReturnType<typeof createClient>;

let raw: Raw;
let idp: TestIdp;
let scope: string;
const prefixes: string[] = [];
const opened: Coordinator[] = [];
const agents: Agent[] = [];
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => void unhandled.push(reason);

function newPrefix(): string {
  const p = `mcpsb-attack:${randomBytes(6).toString('hex')}:`;
  prefixes.push(p);
  return p;
}

function coord(prefix: string, extra: Partial<RedisCoordinatorOptions> = {}): Coordinator {
  const c = createRedisCoordinator({ url: URL6379, keyPrefix: prefix, encryptionKey: KEY, ...extra });
  opened.push(c);
  return c;
}

/** What a lock's TTL does to a holder that did not release it (a GC pause, a stalled event loop). */
async function expireLocks(prefix: string, client: Raw = raw): Promise<number> {
  const keys = await client.keys(`${prefix}lock:*`);
  if (keys.length) await client.del(keys);
  return keys.length;
}

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const settle = <T>(p: Promise<T>) => p.then((value) => ({ value }), (error: unknown) => ({ error }));

/**
 * A fetch for one replica's upstream provider: records the refresh tokens it presents and the IdP's answers, and
 * can hold the first refresh grant `before` it reaches the IdP or `after` the IdP answered (the rotation done).
 */
function replicaFetch(hold?: 'before' | 'after' | 'discovery') {
  const reached = deferred();
  const gate = deferred();
  const presented: string[] = [];
  const answers: { status: number; error?: string }[] = [];
  let armed = hold !== undefined;
  const fetch = async (url: string, init: RequestInit = {}): Promise<Response> => {
    const params = init.method === 'POST' && init.body != null ? new URLSearchParams(String(init.body)) : undefined;
    const rt = params?.get('grant_type') === 'refresh_token' ? params.get('refresh_token') : null;
    if (rt === null && hold === 'discovery' && armed && String(url).includes('/.well-known/')) {
      armed = false;
      reached.resolve();
      await gate.promise;
    }
    if (rt === null) return globalThis.fetch(url, init);
    presented.push(rt);
    const holdThis = armed;
    armed = false;
    if (holdThis && hold === 'before') {
      reached.resolve();
      await gate.promise;
    }
    const res = await globalThis.fetch(url, init);
    const body = await res.arrayBuffer();
    let error: string | undefined;
    try {
      error = (JSON.parse(Buffer.from(body).toString('utf8')) as { error?: string }).error;
    } catch {
      // not JSON
    }
    answers.push({ status: res.status, ...(error ? { error } : {}) });
    if (holdThis && hold === 'after') {
      reached.resolve();
      await gate.promise;
    }
    return new Response(body, { status: res.status, headers: res.headers });
  };
  return { fetch, presented, answers, reached: reached.promise, release: () => gate.resolve() };
}

function upstream(coordinator: Coordinator, fetch: ReturnType<typeof replicaFetch>['fetch'], extra: { timeoutMs?: number } = {}) {
  return createUpstreamTokenProvider({
    issuer: idp.issuer,
    clientId: idp.client.clientId,
    clientSecret: idp.client.clientSecret,
    allowInsecureRequests: true,
    skewMs: 0,
    coordinator,
    fetch: fetch as never,
    ...extra,
  });
}

function oboResolver(coordinator: Coordinator, extra: Record<string, unknown> = {}) {
  const agent = new Agent();
  agents.push(agent);
  return createOboTokenResolver({ ...testIdpClient(idp), retryDelayMs: 0, dispatcher: agent, coordinator, ...extra });
}

async function oboRequest(sub: string, tenantId = 'contoso'): Promise<OboRequest> {
  const assertion = await idp.mintAccessToken({ sub, tenantId });
  return { user: { id: sub, tenantId }, assertion, scopes: [scope], serverName: 'files' };
}

class Replica extends MCPManager {
  urlOf(name: string): Promise<string | undefined> {
    return Promise.resolve(this.resolveServerConfig(name, undefined)).then((c) => (c && 'url' in c ? String(c.url) : undefined));
  }
}

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  raw = createClient({ url: URL6379 });
  raw.on('error', () => {});
  await raw.connect();
  idp = await startTestIdp({ accessTokenTtlSec: 3600 });
  scope = `${idp.downstreamAudience}/.default`;
});

afterEach(() => closeAndDeleteKeys(raw, opened, prefixes));

afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await Promise.all(agents.map((a) => a.close()));
  await idp.close();
  await raw.close();
});

// ---------------------------------------------------------------------------------------------------------

describe('fencing: a refresh lock holder whose lock expired', () => {
  // Premise (revised with the fix): the lock's TTL now outlasts the holder's longest work (discovery and grant
  // aborted after timeoutMs each; TTL 2 × (⌈timeoutMs/1000⌉ s + 1 s) + 5 s, 9 s here), so a lock can only expire
  // under a holder stalled for longer than that, which is outside the contract (no lock renewal: a renewal could
  // not run during such a stall either). Deleting the lock key after the IdP answered A could only be survived by
  // a second marker next to the lock. What is pinned: A stalls after the IdP answered for longer than the old
  // TTL (1.2 s at timeoutMs 400) and B, which used to take the lock over and present RT1, waits and uses RT2's result.
  it('upstream: the IdP rotated the refresh token for the stalled holder; the next replica must not log the user out', async () => {
    const prefix = newPrefix();
    const fa = replicaFetch('after');
    const fb = replicaFetch();
    const a = upstream(coord(prefix), fa.fetch, { timeoutMs: 400 });
    const b = upstream(coord(prefix), fb.fetch, { timeoutMs: 400 });
    const user = { id: `u-${randomBytes(4).toString('hex')}` };
    const s = await idp.startSession({ sub: user.id });
    await a.setSession(user, { ...s, expiresAt: Date.now() - 1_000 });

    const pa = settle(a.getToken(user));
    // the IdP answered A (RT1 consumed, RT2 issued); A stalls before storing it
    await Promise.race([fa.reached, pa.then((r) => Promise.reject(new Error(`A settled before the grant: ${JSON.stringify(r)}`)))]);
    const pb = settle(b.getToken(user));
    await new Promise((r) => setTimeout(r, 1_500)); // longer than the old TTL (3 × timeoutMs)
    expect((await raw.keys(`${prefix}lock:*`)).length).toBe(1); // A still holds the lock
    fa.release();
    const [ra, rb] = await Promise.all([pa, pb]);

    // What happened with the old TTL: B took the expired lock, presented RT1 again (invalid_grant: reuse), deleted
    // the session, and A's compare-and-set then found nothing: both replicas answered reauth_required.
    const outcome = { a: 'error' in ra ? (ra.error as UpstreamTokenError).code : 'ok', b: 'error' in rb ? (rb.error as UpstreamTokenError).code : 'ok' };
    expect(outcome).toEqual({ a: 'ok', b: 'ok' });
    expect('value' in rb && rb.value).toBe('value' in ra && ra.value);
    expect(fb.presented).toHaveLength(0);
    expect(fb.answers.filter((x) => x.error === 'invalid_grant')).toHaveLength(0);
    const stored = await coord(prefix).upstreamSessions.get(a.sessionKey(user));
    expect(stored?.refreshToken).toBeDefined();
    expect(stored?.refreshToken).not.toBe(s.refreshToken);
  });

  // Premise (revised with the fix): the stall is in A's discovery, before the grant is handed to fetch. A stall
  // inside fetch (the grant already handed to the network stack) cannot be undone by any check; it is bounded by
  // the abort after timeoutMs, far within the lock's TTL (see the test above), so another replica cannot take the
  // lock meanwhile unless the process stalls for longer than the TTL.
  it('upstream: a holder stalled before sending must not present a refresh token another replica rotated meanwhile (its stale write is refused)', async () => {
    const prefix = newPrefix();
    const fa = replicaFetch('discovery');
    const fb = replicaFetch();
    const ca = coord(prefix);
    const a = upstream(ca, fa.fetch);
    const b = upstream(coord(prefix), fb.fetch);
    const user = { id: `u-${randomBytes(4).toString('hex')}` };
    const s = await idp.startSession({ sub: user.id });
    await a.setSession(user, { ...s, expiresAt: Date.now() - 1_000 });

    const pa = settle(a.getToken(user));
    await fa.reached; // A holds the lock, discovers the IdP before sending RT1, and stalls
    await expireLocks(prefix);
    const tb = await b.getToken(user); // B takes over: RT1 → RT2
    const afterB = await ca.upstreamSessions.get(a.sessionKey(user));
    fa.release();
    const ra = await pa;

    // Pinned: compareAndSet refuses the stale holder's write; the newer rotated session stays and stays usable.
    expect('value' in ra && ra.value).toBe(tb);
    expect(await ca.upstreamSessions.get(a.sessionKey(user))).toEqual(afterB);
    expect(afterB?.refreshToken).not.toBe(s.refreshToken);
    expect(await b.getToken(user, { forceRefresh: true, rejectedToken: tb })).not.toBe(tb);
    // The bug: A never re-checked the session before sending, so RT1 was presented twice — at an IdP with
    // RFC 9700 reuse detection this revokes the whole grant (RT2 included).
    expect([...fa.presented, ...fb.presented].filter((t) => t === s.refreshToken)).toHaveLength(1);
  });

  it('obo: a stalled exchange holder does not overwrite the newer shared token with its older one', async () => {
    const prefix = newPrefix();
    const inner = coord(prefix);
    const reached = deferred();
    const gate = deferred();
    // Replica A stalls between its exchange and its write to the shared cache (a GC pause).
    const stalled: Coordinator = {
      oauthStore: inner.oauthStore,
      oauthFlowStore: inner.oauthFlowStore,
      upstreamSessions: inner.upstreamSessions,
      oboTokens: {
        get: (k) => inner.oboTokens.get(k),
        delete: (k) => inner.oboTokens.delete(k),
        set: async (k, t, staleAt) => {
          reached.resolve();
          await gate.promise;
          return inner.oboTokens.set(k, t, staleAt);
        },
      },
      acquire: (k, o) => inner.acquire(k, o),
      publish: (e) => inner.publish(e),
      subscribe: (l) => inner.subscribe(l),
      close: () => inner.close(),
    };
    const ra = oboResolver(stalled);
    const rb = oboResolver(coord(prefix));
    const rc = oboResolver(coord(prefix));
    const req = await oboRequest('stale-obo');
    const pa = ra(req);
    await reached.promise;
    expect(await expireLocks(prefix)).toBe(1);
    const tb = await rb({ ...req, forceRefresh: true }); // B replaces the token (e.g. after a 401)
    gate.resolve();
    const ta = await pa;
    expect(ta.accessToken).not.toBe(tb.accessToken);
    // Another replica must now get B's (newer) token, not A's older one written back after B's.
    expect((await rc(req)).accessToken).toBe(tb.accessToken);
  });
});

// ---------------------------------------------------------------------------------------------------------

/** A coordinator on `url` that fails fast while its Redis is down, and reconnects quickly (closed after each test). */
function failFast(url: string): Coordinator {
  const c = createRedisCoordinator({ url, encryptionKey: KEY, commandTimeoutMs: 500, connectTimeoutMs: 300, maxReconnectDelayMs: 50 });
  opened.push(c);
  return c;
}

describe('Redis restarted in the middle of a refresh', () => {
  const redis = privateRedisPerTest({ persist: true });

  it('the rotated refresh token is not lost: after recovery both replicas refresh without invalid_grant', async () => {
    await redis.start();
    const { url } = redis;
    const ca = failFast(url);
    const cb = failFast(url);
    const fa = replicaFetch('after');
    const fb = replicaFetch();
    // The refresh lock (TTL 9 s at timeoutMs 1 000) survives the restart (SHUTDOWN SAVE): B waits for it, and A,
    // which kept RT2 in memory, stores it once Redis is back and releases the lock.
    const a = upstream(ca, fa.fetch, { timeoutMs: 1_000 });
    const b = upstream(cb, fb.fetch, { timeoutMs: 1_000 });
    const user = { id: `u-${randomBytes(4).toString('hex')}` };
    const s = await idp.startSession({ sub: user.id });
    await a.setSession(user, { ...s, expiresAt: Date.now() - 1_000 });

    const pa = settle(a.getToken(user));
    await fa.reached; // RT1 consumed at the IdP, RT2 in A's hands
    const admin = createClient({ url });
    admin.on('error', () => {});
    await admin.connect();
    const exited = new Promise((r) => redis.server!.once('exit', r));
    await admin.sendCommand(['SHUTDOWN', 'SAVE']).catch(() => undefined); // a restart with persistence
    await exited;
    await admin.destroy();
    fa.release();
    const ra = await pa;
    // During the outage: typed and retryable (acceptable).
    expect('error' in ra && ra.error).toMatchObject({ code: 'refresh_failed', retryable: true });

    await redis.start();
    for (let i = 0; i < 200; i++) {
      if (await cb.upstreamSessions.get(b.sessionKey(user)).then(() => true, () => false)) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    // After recovery: today the store still holds RT1 (RT2 was never persisted, and nothing kept it), so the
    // next refresh presents the consumed RT1: invalid_grant, session deleted, user signed out.
    const rb = await settle(b.getToken(user));
    expect('error' in rb ? (rb.error as UpstreamTokenError).code : 'ok').toBe('ok');
    expect(fb.answers.filter((x) => x.error === 'invalid_grant')).toHaveLength(0);
  });
});

describe('invalidations missed while a subscriber reconnects', () => {
  const redis = privateRedisPerTest({ persist: true });

  it('a removeServer published while B’s subscriber reconnects still reaches B', async () => {
    await redis.start();
    const { url } = redis;
    const ca = failFast(url);
    const cb = failFast(url);
    const servers = { s: { url: 'http://127.0.0.1:9/s' } };
    const a = new Replica({ servers, circuitBreaker: false, coordinator: ca });
    const b = new Replica({ servers, circuitBreaker: false, coordinator: cb });
    try {
      await subscribed(cb, ca);
      const admin = createClient({ url });
      admin.on('error', () => {});
      await admin.connect();
      // A network blip on the subscriber connections only (as in a failover or a proxy restart): the pub/sub
      // ones, and the readers blocked in XREAD now that invalidations travel on a stream…
      await admin.sendCommand(['CLIENT', 'KILL', 'TYPE', 'pubsub']);
      const list = await admin.sendCommand<string>(['CLIENT', 'LIST', 'TYPE', 'normal']);
      for (const line of list.split('\n').filter((l) => / cmd=xread /.test(l))) await admin.sendCommand(['CLIENT', 'KILL', 'ID', /^id=(\d+)/.exec(line)![1]!]);
      // …while A removes a server (applied on A, published once).
      await a.removeServer('s');
      await admin.close();
      await subscribed(cb, ca); // B is subscribed again
      expect(a.serverNames()).toEqual([]);
      expect(b.serverNames()).toEqual([]); // today: B keeps serving the removed server, forever
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('encryption at rest and on the wire', () => {
  it('a flipped byte in any stored value reads as absent; a value replayed under another key reads as absent', async () => {
    const prefix = newPrefix();
    const c = coord(prefix);
    const ka = { tenantId: 't', userId: 'alice', serverName: 'linear' };
    const kb = { tenantId: 't', userId: 'bob', serverName: 'linear' };
    const tokens = { access_token: 'AT-alice', token_type: 'Bearer', obtainedAt: Date.now() };
    await c.oauthStore.setTokens(ka, tokens as never);
    await c.oauthStore.setTokens(kb, { ...tokens, access_token: 'AT-bob' } as never);
    await c.oboTokens.set('obo-alice', { accessToken: 'OBO-alice', expiresAt: Date.now() + 600_000 }, Date.now() + 500_000);
    await c.oboTokens.set('obo-bob', { accessToken: 'OBO-bob', expiresAt: Date.now() + 600_000 }, Date.now() + 500_000);
    await c.upstreamSessions.set('sess', { accessToken: 'UAT', refreshToken: 'URT', expiresAt: Date.now() + 600_000 });
    const keys = await raw.keys(`${prefix}*`);
    expect(keys).toHaveLength(5);

    // Replay: bob's values moved onto alice's keys → absent, never bob's token served as alice's.
    const snapshot = new Map(await Promise.all(keys.map(async (k) => [k, (await raw.get(k))!] as const)));
    const byValue = async () => ({
      tA: await c.oauthStore.getTokens(ka),
      tB: await c.oauthStore.getTokens(kb),
      oA: await c.oboTokens.get('obo-alice'),
      oB: await c.oboTokens.get('obo-bob'),
      s: await c.upstreamSessions.get('sess'),
    });
    const before = await byValue();
    // Find which Redis key holds what by decrypting through the coordinator after swapping pairs.
    const oauthKeys = keys.filter((k) => k.includes(':oauth-tokens:'));
    const oboKeys = keys.filter((k) => k.includes(':obo:'));
    await raw.set(oauthKeys[0]!, snapshot.get(oauthKeys[1]!)!);
    await raw.set(oboKeys[0]!, snapshot.get(oboKeys[1]!)!);
    const swapped = await byValue();
    expect([swapped.tA, swapped.tB].filter((x) => x === undefined)).toHaveLength(1);
    expect([swapped.oA, swapped.oB].filter((x) => x === undefined)).toHaveLength(1);
    expect(swapped.tA?.access_token ?? 'AT-alice').toBe('AT-alice');
    expect(swapped.tB?.access_token ?? 'AT-bob').toBe('AT-bob');
    expect(swapped.oA?.accessToken ?? 'OBO-alice').toBe('OBO-alice');
    expect(swapped.oB?.accessToken ?? 'OBO-bob').toBe('OBO-bob');

    // Tamper: flip one byte in the middle of every value (ciphertext, IV or tag) → absent.
    for (const [k, v] of snapshot) {
      const i = Math.floor(v.length * 0.7);
      const flipped = v.slice(0, i) + (v[i] === 'A' ? 'B' : 'A') + v.slice(i + 1);
      await raw.set(k, flipped);
    }
    expect(await byValue()).toEqual({ tA: undefined, tB: undefined, oA: undefined, oB: undefined, s: undefined });
    expect(before.s?.refreshToken).toBe('URT');
  });

  it('no token, secret, PKCE verifier, state, user id or server name in key names or on the wire (MONITOR)', async () => {
    const prefix = newPrefix();
    const c = coord(prefix);
    const sec = (n: string) => `${n}${randomBytes(10).toString('hex')}`;
    const s = {
      user: sec('user-'),
      server: sec('server-'),
      at: sec('at-'),
      rt: sec('rt-'),
      clientSecret: sec('cs-'),
      verifier: sec('pkce-'),
      state: sec('state-'),
      obo: sec('obo-'),
      header: sec('hdr-'),
      uat: sec('uat-'),
      urt: sec('urt-'),
      issuer: `https://${sec('issuer')}.example`,
    };
    const monitor = spawn('redis-cli', ['-h', '127.0.0.1', '-p', '6379', 'monitor'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    const seen = (needle: string) =>
      new Promise<void>((resolve) => {
        const check = () => {
          if (!out.includes(needle)) return;
          monitor.stdout!.off('data', onData);
          resolve();
        };
        const onData = (d: Buffer) => {
          out += d.toString('utf8');
          check();
        };
        monitor.stdout!.on('data', onData);
        check();
      });
    await seen('OK');
    try {
      const key = { tenantId: 'contoso', userId: s.user, serverName: s.server };
      await c.oauthStore.setTokens(key, { access_token: s.at, refresh_token: s.rt, token_type: 'Bearer', obtainedAt: 1 } as never);
      await c.oauthStore.getTokens(key);
      await c.oauthStore.setClient({ serverName: s.server, issuer: s.issuer }, { client_id: 'cid', client_secret: s.clientSecret } as never);
      await c.oauthFlowStore.put(s.state, { key, serverUrl: 'https://mcp.example', codeVerifier: s.verifier, expiresAt: Date.now() + 60_000 } as never);
      await c.oauthFlowStore.take(s.state);
      await c.upstreamSessions.set(`upstream:${s.user}`, { accessToken: s.uat, refreshToken: s.urt, expiresAt: Date.now() + 60_000 });
      await c.upstreamSessions.compareAndSet!(`upstream:${s.user}`, { accessToken: s.uat, refreshToken: s.urt, expiresAt: 0 }, { accessToken: `${s.uat}2`, refreshToken: `${s.urt}2`, expiresAt: Date.now() + 60_000 });
      await c.oboTokens.set(`obo-key-${s.user}`, { accessToken: s.obo, expiresAt: Date.now() + 60_000 }, Date.now() + 30_000);
      await c.oboTokens.get(`obo-key-${s.user}`);
      const lock = await c.acquire(`refresh:${s.user}`, { ttlMs: 300, waitMs: 0 });
      await lock?.release();
      await c.publish({ kind: 'upsertServer', serverName: s.server, config: { url: 'https://mcp.example', headers: { Authorization: `Bearer ${s.header}` }, oauth: { clientSecret: s.clientSecret } } });
      await c.publish({ kind: 'disconnectUser', userId: s.user, tenantId: 'contoso' });
      await c.publish({ kind: 'revokeAuthorization', userId: s.user, serverName: s.server });
      const names = (await raw.keys(`${prefix}*`)).join('\n');
      const end = `${prefix}END-${randomBytes(4).toString('hex')}`;
      const done = seen(end);
      await raw.get(end);
      await done;
      const ours = out.split('\n').filter((l) => l.includes(prefix)).join('\n');
      expect(ours.length).toBeGreaterThan(0);
      for (const [what, v] of Object.entries(s)) {
        expect({ what, inKeys: names.includes(v), onWire: ours.includes(v) }).toEqual({ what, inKeys: false, onWire: false });
      }
    } finally {
      monitor.kill('SIGKILL');
    }
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('invalidation channel', () => {
  const managers: MCPManager[] = [];
  afterEach(async () => {
    await Promise.all(managers.splice(0).map((m) => m.close()));
  });

  it('a forged plaintext event and huge garbage payloads are ignored; the channel keeps working', async () => {
    const prefix = newPrefix();
    const cb = coord(prefix);
    const b = new Replica({ servers: { keep: { url: 'http://127.0.0.1:9/keep' } }, circuitBreaker: false, coordinator: cb });
    managers.push(b);
    const got: InvalidationEvent[] = [];
    cb.subscribe((e) => got.push(e));
    await subscribed(cb);
    got.length = 0;
    const channel = `${prefix}invalidate`;
    await raw.publish(channel, JSON.stringify({ v: 1, event: { kind: 'removeServer', serverName: 'keep' } }));
    await raw.publish(channel, JSON.stringify({ kind: 'upsertServer', serverName: 'evil', config: { url: 'http://127.0.0.1:9/evil' } }));
    await raw.publish(channel, `v1.${'A'.repeat(8 * 1024 * 1024)}`);
    await raw.publish(channel, 'x'.repeat(8 * 1024 * 1024));
    // The same on the stream the invalidations now travel on.
    await raw.xAdd(channel, '*', { m: JSON.stringify({ v: 1, event: { kind: 'removeServer', serverName: 'keep' } }) });
    await raw.xAdd(channel, '*', { m: JSON.stringify({ kind: 'upsertServer', serverName: 'evil', config: { url: 'http://127.0.0.1:9/evil' } }) });
    await raw.xAdd(channel, '*', { m: `v1.${'A'.repeat(8 * 1024 * 1024)}` });
    await raw.xAdd(channel, '*', { m: 'x'.repeat(8 * 1024 * 1024) });
    const marker = nextEvent(cb, (e) => e.kind === 'disconnectUser' && e.userId === 'marker');
    await cb.publish({ kind: 'disconnectUser', userId: 'marker' });
    await marker;
    expect(got.map((e) => e.kind)).toEqual(['disconnectUser']);
    expect(b.serverNames().sort()).toEqual(['keep']);
  });

  it('a captured upsertServer ciphertext re-published later does not roll a server back on the other replicas', async () => {
    const prefix = newPrefix();
    const ca = coord(prefix);
    const cb = coord(prefix);
    const a = new Replica({ servers: {}, circuitBreaker: false, coordinator: ca });
    const b = new Replica({ servers: {}, circuitBreaker: false, coordinator: cb });
    managers.push(a, b);
    await subscribed(ca, cb);
    await subscribed(cb, ca);
    // The invalidations travel on a Redis stream (they used to on a pub/sub channel): the attacker reads the
    // ciphertexts there, and writes the replay on both.
    const channel = `${prefix}invalidate`;
    const urlIs = (u: string) => (e: InvalidationEvent) => e.kind === 'upsertServer' && (e.config as { url?: string }).url === u;
    let seen = nextEvent(cb, urlIs('http://127.0.0.1:9/one'));
    a.upsertServer('s', { url: 'http://127.0.0.1:9/one' });
    await seen;
    const [entry] = await raw.xRevRange(channel, '+', '-', { COUNT: 1 });
    const old = entry!.message.m!;
    seen = nextEvent(cb, urlIs('http://127.0.0.1:9/two'));
    a.upsertServer('s', { url: 'http://127.0.0.1:9/two' });
    await seen;
    expect(await b.urlOf('s')).toBe('http://127.0.0.1:9/two');

    // An attacker with Redis access but not the key replays the old ciphertext.
    const replayed: InvalidationEvent[] = [];
    const off = cb.subscribe((e) => void (urlIs('http://127.0.0.1:9/one')(e) && replayed.push(e)));
    await raw.xAdd(channel, '*', { m: old });
    await raw.publish(channel, old);
    // Everything written before this marker has been read (and refused) by B: the stream is read in order.
    const marker = nextEvent(cb, (e) => e.kind === 'disconnectUser' && e.userId === 'marker');
    await ca.publish({ kind: 'disconnectUser', userId: 'marker' });
    await marker;
    off();
    expect(replayed).toEqual([]);
    expect(await a.urlOf('s')).toBe('http://127.0.0.1:9/two'); // A skips its own older seq...
    expect(await b.urlOf('s')).toBe('http://127.0.0.1:9/two'); // ...B applies the replay: rolled back to /one
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('OBO shared cache across replicas', () => {
  it('never serves one user’s or tenant’s token to another; a hit needs the same assertion (bindCacheToAssertion)', async () => {
    const prefix = newPrefix();
    const r1 = oboResolver(coord(prefix));
    const r2 = oboResolver(coord(prefix));
    idp.resetStats();
    const alice = await oboRequest('alice');
    const bob = await oboRequest('bob');
    const aliceT2 = await oboRequest('alice', 'fabrikam');
    const ta = await r1(alice);
    const tb = await r2(bob);
    const tt = await r2(aliceT2);
    expect(decodeJwt(ta.accessToken).sub).toBe('alice');
    expect(decodeJwt(tb.accessToken).sub).toBe('bob');
    expect(decodeJwt(tt.accessToken)).toMatchObject({ sub: 'alice', tid: 'fabrikam' });
    expect(idp.stats().exchanges).toBe(3);
    // The same assertion on another replica: a shared hit.
    expect((await r2(alice)).accessToken).toBe(ta.accessToken);
    expect(idp.stats().exchanges).toBe(3);
    // Another assertion of the same user (unverified claims naming alice): a shared miss, its own exchange.
    const alice2 = await oboRequest('alice');
    expect((await r2(alice2)).accessToken).not.toBe(ta.accessToken);
    expect(idp.stats().exchanges).toBe(4);
    // A forged assertion naming alice (bad signature) gets nothing of hers.
    const [h, p] = alice.assertion.split('.');
    const forged = { ...alice, assertion: `${h}.${p}.${Buffer.from('forged').toString('base64url')}` };
    await expect(r1(forged)).rejects.toMatchObject({ code: 'obo_exchange_failed' });

    // bindCacheToAssertion: false (hosts that verify assertions): one exchange per user across assertions.
    const u1 = oboResolver(coord(prefix), { bindCacheToAssertion: false });
    const u2 = oboResolver(coord(prefix), { bindCacheToAssertion: false });
    idp.resetStats();
    const carol1 = await oboRequest('carol');
    const carol2 = await oboRequest('carol');
    const c1 = await u1(carol1);
    expect((await u2(carol2)).accessToken).toBe(c1.accessToken);
    expect(idp.stats().exchanges).toBe(1);
  });

  it('a token one replica force-refreshed (rejected by the server) is not served again by another replica’s warm cache', async () => {
    const prefix = newPrefix();
    const r1 = oboResolver(coord(prefix));
    const r2 = oboResolver(coord(prefix));
    const req = await oboRequest('erin');
    const rejected = (await r1(req)).accessToken;
    expect((await r2(req)).accessToken).toBe(rejected); // shared hit, now warm on both
    const renewed = (await r2({ ...req, forceRefresh: true })).accessToken; // the server refused `rejected`
    expect(renewed).not.toBe(rejected);
    // r1's in-process cache still holds the rejected token and sends it until r1 is refused itself.
    expect((await r1(req)).accessToken).toBe(renewed);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('MCP OAuth across replicas, rotating refresh tokens', () => {
  let as: AuthServer;
  let mcp: ProtectedMcpServer;
  let redirect: string;
  beforeAll(async () => {
    ({ as, mcp, redirect } = await startRelaxedOAuthPeers());
  });
  afterAll(async () => {
    await Promise.all([mcp?.close(), as?.close()]);
  });

  it('an expired token used on two replicas at once → one refresh grant, both calls succeed', async () => {
    const prefix = newPrefix();
    const ca = coord(prefix);
    const make = (c: Coordinator) => new MCPManager({ servers: { notes: { url: mcp.url, oauth: {} } }, oauth: { redirectUri: redirect }, coordinator: c });
    const a = make(ca);
    const b = make(coord(prefix));
    try {
      const user: UserContext = { id: `u${randomBytes(4).toString('hex')}` };
      const whoami = async (m: MCPManager) => {
        const r = (await m.callTool({ user, serverName: 'notes', toolName: 'whoami' })) as CallToolResult;
        return JSON.parse((r.content[0] as { text: string }).text) as { sub: string };
      };
      const err = await whoami(a).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(AuthorizationRequiredError);
      await b.completeAuthorization(await approve((err as AuthorizationRequiredError).authorizationUrl, user.id, redirect), { user });
      expect((await whoami(a)).sub).toBe(user.id);
      expect((await whoami(b)).sub).toBe(user.id);
      // The access token expires (on every replica at once: it is shared).
      const key = { serverName: 'notes', userId: user.id };
      const tokens = await ca.oauthStore.getTokens(key);
      expect(tokens?.refresh_token).toBeDefined();
      await ca.oauthStore.setTokens(key, { ...tokens!, obtainedAt: 0 });
      const before = as.grants('refresh_token').length;
      const results = await Promise.allSettled([whoami(a), whoami(b)]);
      // Today: no fleet lock and no compare-and-set on the OAuth store; both replicas present the same refresh
      // token; the loser gets invalid_grant and deletes the winner's freshly stored tokens.
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
      expect(as.grants('refresh_token').length - before).toBe(1);
      expect((await ca.oauthStore.getTokens(key))?.refresh_token).toBeDefined();
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('Redis down: OBO falls back per process; upstream refresh and OAuth fail closed, retryable; close() returns; nothing unhandled', async () => {
    const port = await freePort(); // nothing listens
    const down = createRedisCoordinator({ url: `redis://127.0.0.1:${port}`, encryptionKey: KEY, connectTimeoutMs: 200, maxReconnectDelayMs: 50, commandTimeoutMs: 300 });
    // OBO: per-process exchange.
    idp.resetStats();
    const obo = oboResolver(down);
    expect(decodeJwt((await obo(await oboRequest('dora'))).accessToken).sub).toBe('dora');
    expect(idp.stats().exchanges).toBe(1);
    // Upstream: retryable, nothing sent to the IdP.
    const f = replicaFetch();
    const up = upstream(down, f.fetch);
    const upErr = await up.getToken({ id: 'dora' }).then(() => undefined, (e: unknown) => e);
    expect(upErr).toMatchObject({ code: 'refresh_failed', retryable: true });
    expect(f.presented).toHaveLength(0);
    // OAuth: a call and a callback fail closed with a retryable error (not "authorize again", not "bad state").
    const m = new MCPManager({ servers: { notes: { url: mcp.url, oauth: {} } }, oauth: { redirectUri: redirect }, coordinator: down });
    m.on('error', () => {});
    const callErr = await m.callTool({ user: { id: 'dora' }, serverName: 'notes', toolName: 'whoami' }).then(() => undefined, (e: unknown) => e);
    expect(callErr).toBeInstanceOf(SwitchboardError);
    expect(callErr).not.toBeInstanceOf(AuthorizationRequiredError);
    expect((callErr as SwitchboardError).retryable).toBe(true);
    const cbErr = await m.completeAuthorization(`${redirect}?code=c&state=s`, { user: { id: 'dora' } }).then(() => undefined, (e: unknown) => e);
    expect(cbErr).toBeInstanceOf(SwitchboardError);
    expect({ code: (cbErr as SwitchboardError).code, retryable: (cbErr as SwitchboardError).retryable }).toMatchObject({ retryable: true });
    await m.disconnectUser('dora');
    m.upsertServer('x', { url: 'http://127.0.0.1:9/x' });
    await m.close();
    await down.close();
    await new Promise((r) => setImmediate(r));
    expect(unhandled).toEqual([]);
  });
});
