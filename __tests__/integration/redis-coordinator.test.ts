/**
 * The Redis coordinator against a real Redis 7 on 127.0.0.1:6379 (each test under its own random key prefix,
 * whose keys are deleted afterwards), and against a redis-server of its own on an ephemeral port for the
 * outage test (stopped and restarted under the same coordinator).
 */
import { randomBytes } from 'node:crypto';
import { createClient } from 'redis';
import { SwitchboardError } from '../../src/errors.js';
import type { Coordinator, InvalidationEvent } from '../../src/coordination.js';
import { createRedisCoordinator, type RedisCoordinatorOptions } from '../../src/redis/index.js';
import type { PendingAuthorization, StoredOAuthTokens } from '../../src/oauth/store.js';
import { deriveKeys, encrypt } from '../../src/redis/crypto.js';
import { closeAndDeleteKeys, freePort, nextEvent, privateRedisPerTest, stopRedis, subscribed } from '../support/coordinator.js';

const URL = 'redis://127.0.0.1:6379';
type Raw = ReturnType<typeof createClient>;

let raw: Raw;
const prefixes: string[] = [];
const opened: Coordinator[] = [];
const KEY = randomBytes(32);

function coordinator(extra: Partial<RedisCoordinatorOptions> = {}, prefix?: string): Coordinator & { prefix: string } {
  const keyPrefix = prefix ?? `mcpsb-test:${randomBytes(6).toString('hex')}:`;
  if (!prefixes.includes(keyPrefix)) prefixes.push(keyPrefix);
  const c = createRedisCoordinator({ url: URL, keyPrefix, encryptionKey: KEY, ...extra });
  opened.push(c);
  return Object.assign(c, { prefix: keyPrefix });
}

async function rawDump(prefix: string): Promise<string> {
  const keys = await raw.keys(`${prefix}*`);
  const values = await Promise.all(keys.map((k) => raw.get(k)));
  return [...keys, ...values].join('\n');
}

beforeAll(async () => {
  raw = createClient({ url: URL });
  raw.on('error', () => {});
  await raw.connect();
});

afterEach(() => closeAndDeleteKeys(raw, opened, prefixes));

afterAll(async () => {
  await raw.close();
});

const secret = (name: string) => `${name}-${randomBytes(12).toString('hex')}`;

/** Publishes a marker on `via` and resolves once `c` delivered it: everything added to the stream before has been read. */
async function drained(c: Coordinator, via: Coordinator = c): Promise<void> {
  const userId = `marker-${randomBytes(4).toString('hex')}`;
  const got = nextEvent(c, (e) => e.kind === 'disconnectUser' && e.userId === userId);
  await via.publish({ kind: 'disconnectUser', userId });
  await got;
}

/** A stream entry as a publisher holding the key would write it (to forge stale, replayed or out-of-order events). */
function craft(prefix: string, body: Record<string, unknown>): string {
  const stream = `${prefix}invalidate`;
  return encrypt(deriveKeys(KEY).enc, JSON.stringify({ v: 2, ts: Date.now(), nonce: randomBytes(16).toString('base64url'), ...body }), stream);
}

async function lastEntry(prefix: string): Promise<string> {
  const [entry] = await raw.xRevRange(`${prefix}invalidate`, '+', '-', { COUNT: 1 });
  return entry!.message.m!;
}

describe('Redis coordinator stores', () => {
  it('oauthStore: tokens and client registrations, encrypted at rest and under opaque keys', async () => {
    const c = coordinator();
    const key = { tenantId: 'contoso', userId: 'alice@example.com', serverName: 'linear' };
    const tokens: StoredOAuthTokens = { access_token: secret('at'), refresh_token: secret('rt'), token_type: 'Bearer', obtainedAt: Date.now(), issuer: 'https://auth.linear.app' };
    const client = { client_id: secret('cid'), client_secret: secret('csecret') };
    expect(await c.oauthStore.getTokens(key)).toBeUndefined();
    await c.oauthStore.setTokens(key, tokens);
    await c.oauthStore.setClient({ serverName: 'linear', issuer: 'https://auth.linear.app' }, client);
    expect(await c.oauthStore.getTokens(key)).toEqual(tokens);
    expect(await c.oauthStore.getTokens({ ...key, userId: 'bob' })).toBeUndefined();
    expect(await c.oauthStore.getClient({ serverName: 'linear', issuer: 'https://auth.linear.app' })).toEqual(client);

    const dump = await rawDump(c.prefix);
    for (const s of [tokens.access_token, tokens.refresh_token!, client.client_id, client.client_secret, 'alice', 'contoso', 'linear']) expect([s, dump.includes(s)]).toEqual([s, false]);
    const ttl = await raw.pTTL((await raw.keys(`${c.prefix}oauth-tokens:*`))[0]!);
    expect(ttl).toBeGreaterThan(89 * 24 * 3600 * 1000);

    // Another key cannot read them: the names differ (HMAC) and the ciphertext does not open.
    const other = coordinator({ encryptionKey: randomBytes(32).toString('base64') }, c.prefix);
    expect(await other.oauthStore.getTokens(key)).toBeUndefined();
    expect(await other.oauthStore.getClient({ serverName: 'linear', issuer: 'https://auth.linear.app' })).toBeUndefined();

    await c.oauthStore.deleteTokens(key);
    await c.oauthStore.deleteClient({ serverName: 'linear', issuer: 'https://auth.linear.app' });
    expect(await c.oauthStore.getTokens(key)).toBeUndefined();
    expect(await c.oauthStore.getClient({ serverName: 'linear', issuer: 'https://auth.linear.app' })).toBeUndefined();
    expect(await raw.keys(`${c.prefix}*`)).toEqual([]);
  });

  it('a value moved to another key, or tampered with, reads as absent', async () => {
    const c = coordinator();
    await c.oauthStore.setTokens({ userId: 'alice', serverName: 's' }, { access_token: 'a', token_type: 'Bearer', obtainedAt: 1 });
    await c.oauthStore.setTokens({ userId: 'bob', serverName: 's' }, { access_token: 'b', token_type: 'Bearer', obtainedAt: 1 });
    const [k1, k2] = await raw.keys(`${c.prefix}oauth-tokens:*`);
    await raw.set(k2!, (await raw.get(k1!))!);
    const values = await Promise.all([c.oauthStore.getTokens({ userId: 'alice', serverName: 's' }), c.oauthStore.getTokens({ userId: 'bob', serverName: 's' })]);
    expect(values.filter(Boolean)).toHaveLength(1);
  });

  it('oauthFlowStore: put with expiry, has, take once (20 concurrent takes get one flow)', async () => {
    const c = coordinator();
    const flow: PendingAuthorization = { key: { userId: 'alice', serverName: 'linear' }, serverUrl: 'https://mcp.linear.app/mcp', codeVerifier: secret('verifier'), expiresAt: Date.now() + 60_000 };
    const state = secret('state');
    await c.oauthFlowStore.put(state, flow);
    expect(await c.oauthFlowStore.has!(state)).toBe(true);
    const dump = await rawDump(c.prefix);
    expect(dump.includes(flow.codeVerifier) || dump.includes(state)).toBe(false);
    const ttl = await raw.pTTL((await raw.keys(`${c.prefix}*`))[0]!);
    expect(ttl).toBeGreaterThan(55_000);
    expect(ttl).toBeLessThanOrEqual(60_000);

    const other = coordinator({}, c.prefix); // another replica
    const takes = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? c : other).oauthFlowStore.take(state)));
    expect(takes.filter(Boolean)).toEqual([flow]);
    expect(await c.oauthFlowStore.has!(state)).toBe(false);

    await c.oauthFlowStore.put('expired', { ...flow, expiresAt: Date.now() - 1 });
    expect(await c.oauthFlowStore.take('expired')).toBeUndefined();
  });

  it('upstreamSessions: get/set/delete and compareAndSet (20 racing replicas: exactly one wins)', async () => {
    const c = coordinator();
    const replicas = [c, coordinator({}, c.prefix), coordinator({}, c.prefix)];
    const s0 = { accessToken: secret('at0'), refreshToken: secret('rt0'), expiresAt: Date.now() + 1000 };
    expect(await c.upstreamSessions.get('k')).toBeUndefined();
    expect(await c.upstreamSessions.compareAndSet!('k', s0, s0)).toBe(false); // nothing stored
    await c.upstreamSessions.set('k', s0);
    expect(await replicas[1]!.upstreamSessions.get('k')).toEqual(s0);
    expect((await rawDump(c.prefix)).includes(s0.refreshToken)).toBe(false);

    const nexts = Array.from({ length: 20 }, (_, i) => ({ accessToken: `at1-${i}`, refreshToken: `rt1-${i}`, expiresAt: Date.now() + 3_600_000 }));
    const won = await Promise.all(nexts.map((n, i) => replicas[i % 3]!.upstreamSessions.compareAndSet!('k', s0, n)));
    expect(won.filter(Boolean)).toHaveLength(1);
    const winner = nexts[won.indexOf(true)]!;
    expect(await c.upstreamSessions.get('k')).toEqual(winner);

    // The hash covers the refresh token, and its absence.
    expect(await c.upstreamSessions.compareAndSet!('k', { ...winner, refreshToken: undefined }, undefined)).toBe(false);
    expect(await c.upstreamSessions.compareAndSet!('k', { ...winner, expiresAt: 0 }, undefined)).toBe(true);
    expect(await c.upstreamSessions.get('k')).toBeUndefined();

    const noRefresh = { accessToken: 'only', expiresAt: 5 };
    await c.upstreamSessions.set('k2', noRefresh);
    expect(await c.upstreamSessions.get('k2')).toEqual(noRefresh);
    expect(await c.upstreamSessions.compareAndSet!('k2', { ...noRefresh, refreshToken: '' }, undefined)).toBe(false);
    await c.upstreamSessions.delete('k2');
    expect(await c.upstreamSessions.get('k2')).toBeUndefined();
  });

  it('oboTokens: set until staleAt, skipped when already stale, delete', async () => {
    const c = coordinator();
    const token = { accessToken: secret('obo'), expiresAt: Date.now() + 3_600_000, cacheHit: false };
    const hashKey = randomBytes(32).toString('base64url');
    await c.oboTokens.set(hashKey, token, Date.now() + 60_000);
    expect(await c.oboTokens.get(hashKey)).toEqual({ accessToken: token.accessToken, expiresAt: token.expiresAt });
    const dump = await rawDump(c.prefix);
    expect(dump.includes(token.accessToken) || dump.includes(hashKey)).toBe(false);
    const ttl = await raw.pTTL((await raw.keys(`${c.prefix}obo:*`))[0]!);
    expect(ttl).toBeGreaterThan(55_000);

    await c.oboTokens.set('stale', token, Date.now() - 1);
    expect(await c.oboTokens.get('stale')).toBeUndefined();
    expect(await raw.keys(`${c.prefix}obo:*`)).toHaveLength(1);
    await c.oboTokens.delete(hashKey);
    expect(await c.oboTokens.get(hashKey)).toBeUndefined();
  });
});

describe('Redis coordinator locks', () => {
  it('mutual exclusion under 20 contenders, increasing fencing tokens', async () => {
    const c = coordinator({ lockPollMs: 5 });
    const replicas = [c, coordinator({ lockPollMs: 5 }, c.prefix)];
    let inside = 0;
    let maxInside = 0;
    const tokens: number[] = [];
    await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const lock = await replicas[i % 2]!.acquire('refresh:alice', { ttlMs: 5_000, waitMs: 5_000 });
        expect(lock).toBeDefined();
        inside++;
        maxInside = Math.max(maxInside, inside);
        tokens.push(lock!.token);
        await new Promise((r) => setImmediate(r));
        inside--;
        await lock!.release();
      }),
    );
    expect(maxInside).toBe(1);
    expect(tokens).toEqual([...tokens].sort((a, b) => a - b));
    expect(new Set(tokens).size).toBe(20);
  });

  it('a holder that never releases: the next one acquires after ttl; waitMs elapsed → undefined', async () => {
    const c = coordinator({ lockPollMs: 10 });
    const dead = await c.acquire('k', { ttlMs: 200, waitMs: 0 });
    expect(dead).toBeDefined();
    expect(await c.acquire('k', { ttlMs: 200, waitMs: 30 })).toBeUndefined();
    const started = Date.now();
    const next = await coordinator({ lockPollMs: 10 }, c.prefix).acquire('k', { ttlMs: 1_000, waitMs: 2_000 });
    expect(next).toBeDefined();
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
    expect(next!.token).toBeGreaterThan(dead!.token);
    await dead!.release(); // no longer the holder: a no-op
    expect(await c.acquire('k', { ttlMs: 1_000, waitMs: 0 })).toBeUndefined();
    await next!.release();
    await next!.release();
    expect(await c.acquire('k', { ttlMs: 1_000, waitMs: 0 })).toBeDefined();
  });
});

describe('Redis coordinator invalidations', () => {
  it('published on one replica, delivered to both; malformed messages ignored; a passed-in client is not closed', async () => {
    const host = createClient({ url: URL });
    host.on('error', () => {});
    await host.connect();
    const a = coordinator();
    const b = createRedisCoordinator({ client: host, keyPrefix: a.prefix, encryptionKey: KEY.toString('hex') });
    opened.push(b);
    const got: Record<string, InvalidationEvent[]> = { a: [], b: [] };
    const unsubA = a.subscribe((e) => got.a!.push(e));
    b.subscribe((e) => got.b!.push(e));
    await subscribed(a);
    await subscribed(b, a);
    // Both have read every warm-up event once both have read one marker published after them.
    const synced = Promise.all([a, b].map((c) => nextEvent(c, (e) => e.kind === 'disconnectUser' && e.userId === 'sync')));
    await a.publish({ kind: 'disconnectUser', userId: 'sync' });
    await synced;
    got.a!.length = 0;
    got.b!.length = 0;

    const stream = `${a.prefix}invalidate`;
    await raw.xAdd(stream, '*', { m: 'not json' });
    await raw.xAdd(stream, '*', { m: JSON.stringify({ v: 1, event: { kind: 'disconnectUser', userId: 'mallory' } }) });
    await raw.xAdd(stream, '*', { other: 'field' });
    const events: InvalidationEvent[] = [
      { kind: 'disconnectUser', userId: 'alice', tenantId: 'contoso' },
      { kind: 'revokeAuthorization', userId: 'alice', serverName: 'linear' },
      { kind: 'upsertServer', serverName: 'files', config: { url: 'https://files.example.com/mcp' } },
      { kind: 'removeServer', serverName: 'files' },
    ];
    await a.publish(events[0]!);
    await b.publish(events[1]!);
    await a.publish(events[2]!);
    await a.publish(events[3]!);
    while (got.a!.length < 4 || got.b!.length < 4) await new Promise((r) => setTimeout(r, 10));
    expect(got.a).toEqual(events);
    expect(got.b).toEqual(events);
    await expect(a.publish({ kind: 'nope' } as unknown as InvalidationEvent)).rejects.toThrow(TypeError);

    unsubA();
    await b.close();
    await b.close();
    expect(host.isReady).toBe(true);
    expect(await host.ping()).toBe('PONG');
    await host.close();
  });
});

describe('Redis coordinator invalidations: freshness, order, catch-up', () => {
  const userIds = (events: InvalidationEvent[]) => events.filter((e) => e.kind === 'disconnectUser' && !e.userId.startsWith('marker-')).map((e) => (e as { userId: string }).userId);

  it('a replayed stream entry is refused (nonce), config replays included (version)', async () => {
    const a = coordinator();
    const b = coordinator({}, a.prefix);
    const got: InvalidationEvent[] = [];
    b.subscribe((e) => got.push(e));
    await subscribed(b, a);
    await a.publish({ kind: 'disconnectUser', userId: 'alice' });
    await drained(b, a);
    const stream = `${a.prefix}invalidate`;
    // The entry before the marker: alice's.
    const [, aliceEntry] = await raw.xRevRange(stream, '+', '-', { COUNT: 2 });
    await a.publish({ kind: 'upsertServer', serverName: 's', config: { url: 'https://one.example.com' } });
    const one = await lastEntry(a.prefix);
    await a.publish({ kind: 'upsertServer', serverName: 's', config: { url: 'https://two.example.com' } });
    await drained(b, a);
    got.length = 0;

    await raw.xAdd(stream, '*', { m: aliceEntry!.message.m! });
    await raw.xAdd(stream, '*', { m: one });
    await drained(b, a);
    expect(got.filter((e) => !(e.kind === 'disconnectUser' && e.userId.startsWith('marker-')))).toEqual([]);
  });

  it('an event older than eventMaxAgeMs is refused, one from a clock slightly behind is delivered', async () => {
    const a = coordinator();
    const b = coordinator({ eventMaxAgeMs: 2_000 }, a.prefix);
    const got: InvalidationEvent[] = [];
    b.subscribe((e) => got.push(e));
    await subscribed(b, a);
    const stream = `${a.prefix}invalidate`;
    const now = Date.now();
    await raw.xAdd(stream, '*', { m: craft(a.prefix, { ts: now - 60_000, event: { kind: 'disconnectUser', userId: 'stale' } }) });
    await raw.xAdd(stream, '*', { m: craft(a.prefix, { ts: now + 60_000, event: { kind: 'disconnectUser', userId: 'future' } }) });
    await raw.xAdd(stream, '*', { m: craft(a.prefix, { nonce: undefined, event: { kind: 'disconnectUser', userId: 'no-nonce' } }) });
    await raw.xAdd(stream, '*', { m: craft(a.prefix, { ts: now - 500, event: { kind: 'disconnectUser', userId: 'skewed' } }) });
    await drained(b, a);
    expect(userIds(got)).toEqual(['skewed']);
  });

  it('config changes apply only above the last version per server; versions survive a lost counter', async () => {
    const a = coordinator();
    const b = coordinator({}, a.prefix);
    const got: InvalidationEvent[] = [];
    b.subscribe((e) => got.push(e));
    await subscribed(b, a);
    await drained(b, a); // every warm-up event read
    got.length = 0;
    const stream = `${a.prefix}invalidate`;
    const upsert = (url: string, version?: number) => craft(a.prefix, { ...(version === undefined ? {} : { version }), event: { kind: 'upsertServer', serverName: 'x', config: { url } } });
    await raw.xAdd(stream, '*', { m: upsert('https://ten', 10) });
    await raw.xAdd(stream, '*', { m: upsert('https://nine', 9) }); // published earlier, arrived later
    await raw.xAdd(stream, '*', { m: upsert('https://none') }); // no version: refused
    await raw.xAdd(stream, '*', { m: upsert('https://ten-again', 10) });
    await raw.xAdd(stream, '*', { m: craft(a.prefix, { version: 5, event: { kind: 'upsertServer', serverName: 'y', config: { url: 'https://y' } } }) }); // per server
    await raw.xAdd(stream, '*', { m: craft(a.prefix, { version: 11, event: { kind: 'removeServer', serverName: 'x' } }) });
    await drained(b, a);
    const config = got.filter((e) => e.kind === 'upsertServer' || e.kind === 'removeServer');
    expect(config.map((e) => (e.kind === 'upsertServer' ? (e.config as { url: string }).url : `remove ${e.serverName}`))).toEqual(['https://ten', 'https://y', 'remove x']);

    // Real publishes get increasing versions, even when the counter is lost (Redis restarted without its data).
    got.length = 0;
    await a.publish({ kind: 'upsertServer', serverName: 'z', config: { url: 'https://z1' }, origin: 'replica-a', seq: 1 });
    for (const k of await raw.keys(`${a.prefix}config-version:*`)) await raw.del(k);
    await b.publish({ kind: 'upsertServer', serverName: 'z', config: { url: 'https://z2' } });
    await drained(b, a);
    expect(got.filter((e) => e.kind === 'upsertServer')).toEqual([
      { kind: 'upsertServer', serverName: 'z', config: { url: 'https://z1' }, origin: 'replica-a', seq: 1 },
      { kind: 'upsertServer', serverName: 'z', config: { url: 'https://z2' } },
    ]);
  });

  it('close() is prompt while the reader blocks in XREAD', async () => {
    const c = coordinator();
    c.subscribe(() => {});
    await subscribed(c);
    const started = Date.now();
    await c.close();
    expect(Date.now() - started).toBeLessThan(200);
  });
});

describe('Redis coordinator invalidations: catch-up after a reader outage', () => {
  const redis = privateRedisPerTest();

  it('a subscriber kept out of Redis longer than eventMaxAgeMs reads, once and in order, what was published meanwhile', async () => {
    await redis.start();
    const { port } = redis;
    const admin = createClient({ url: `redis://127.0.0.1:${port}` });
    admin.on('error', () => {});
    await admin.connect();
    try {
      await admin.sendCommand(['ACL', 'SETUSER', 'reader', 'on', '>pw', '~*', '&*', '+@all']);
      const a = createRedisCoordinator({ url: `redis://127.0.0.1:${port}`, encryptionKey: KEY });
      const b = createRedisCoordinator({ url: `redis://reader:pw@127.0.0.1:${port}`, encryptionKey: KEY, eventMaxAgeMs: 300, maxReconnectDelayMs: 50 });
      opened.push(a, b);
      const got: InvalidationEvent[] = [];
      b.subscribe((e) => got.push(e));
      await subscribed(b, a);
      await drained(b, a); // every warm-up event read
      got.length = 0;

      // B's connections drop and cannot come back (a failover, a proxy restart, a network partition)…
      await admin.sendCommand(['ACL', 'SETUSER', 'reader', 'off']);
      await admin.sendCommand(['CLIENT', 'KILL', 'USER', 'reader']);
      // …while A, still connected, publishes.
      await a.publish({ kind: 'removeServer', serverName: 's', origin: 'replica-a', seq: 3 });
      await a.publish({ kind: 'disconnectUser', userId: 'alice', tenantId: 'contoso' });
      await new Promise((r) => setTimeout(r, 900)); // longer than B's eventMaxAgeMs
      expect(got).toEqual([]);

      await admin.sendCommand(['ACL', 'SETUSER', 'reader', 'on']);
      await drained(b, a);
      expect(got.filter((e) => !(e.kind === 'disconnectUser' && e.userId.startsWith('marker-')))).toEqual([
        { kind: 'removeServer', serverName: 's', origin: 'replica-a', seq: 3 },
        { kind: 'disconnectUser', userId: 'alice', tenantId: 'contoso' },
      ]);
    } finally {
      await admin.close();
    }
  });
});

describe('Redis down', () => {
  const redis = privateRedisPerTest();

  it('fails fast with a retryable typed error, and recovers on the same coordinator', async () => {
    await redis.start();
    const { port } = redis;
    const coord = createRedisCoordinator({ url: `redis://127.0.0.1:${port}`, encryptionKey: KEY, commandTimeoutMs: 500, maxReconnectDelayMs: 100 });
    opened.push(coord);
    const flow: PendingAuthorization = { key: { serverName: 's' }, serverUrl: 'https://x', codeVerifier: 'v', expiresAt: Date.now() + 60_000 };
    await coord.oauthFlowStore.put('st', flow);
    expect(await coord.oauthFlowStore.has!('st')).toBe(true);
    const received: InvalidationEvent[] = [];
    coord.subscribe((e) => received.push(e));
    while (received.length === 0) {
      await coord.publish({ kind: 'removeServer', serverName: 'before' });
      await new Promise((r) => setTimeout(r, 10));
    }

    await stopRedis(redis.server);
    const started = Date.now();
    const failures = await Promise.all([
      Promise.resolve()
        .then(() => coord.oauthStore.getTokens({ serverName: 's' }))
        .catch((e: unknown) => e),
      coord.upstreamSessions.compareAndSet!('k', { accessToken: 'a', expiresAt: 1 }, undefined).catch((e: unknown) => e),
      coord.acquire('k', { ttlMs: 1000, waitMs: 1000 }).catch((e: unknown) => e),
      coord.publish({ kind: 'removeServer', serverName: 's' }).catch((e: unknown) => e),
      coord.oboTokens.get('k').catch((e: unknown) => e),
    ]);
    expect(Date.now() - started).toBeLessThan(1_000);
    for (const e of failures) {
      expect(e).toBeInstanceOf(SwitchboardError);
      expect(e).toMatchObject({ code: 'connect_failed', retryable: true });
      expect((e as Error).message).toContain(`127.0.0.1:${port}`);
    }

    await redis.start();
    let ok = false;
    for (let i = 0; i < 100 && !ok; i++) {
      ok = await Promise.resolve()
        .then(() => coord.oauthFlowStore.has!('st'))
        .then(
        () => true,
        () => new Promise<boolean>((r) => setTimeout(() => r(false), 30)),
      );
    }
    expect(ok).toBe(true);
    expect(await coord.oauthFlowStore.has!('st')).toBe(false); // a fresh server without persistence
    const lock = await coord.acquire('k', { ttlMs: 1000, waitMs: 0 });
    expect(lock?.token).toBe(1);
    await lock!.release();
    // The subscription came back by itself.
    while (!received.some((e) => e.kind === 'removeServer' && e.serverName === 'after')) {
      await coord.publish({ kind: 'removeServer', serverName: 'after' });
      await new Promise((r) => setTimeout(r, 10));
    }
  });

  it('never reached: fails fast naming no password; close() is prompt', async () => {
    const port = await freePort(); // nothing listens there
    const c = createRedisCoordinator({ url: `redis://user:hunter2@127.0.0.1:${port}`, encryptionKey: KEY, connectTimeoutMs: 300, maxReconnectDelayMs: 100 });
    opened.push(c);
    const err = (await c.oboTokens.get('k').catch((e: unknown) => e)) as SwitchboardError;
    expect(err).toMatchObject({ code: 'connect_failed', retryable: true });
    expect(err.message).not.toContain('hunter2');
    expect(JSON.stringify(err.toJSON())).not.toContain('hunter2');
    // close() does not wait for a connection that never comes.
    c.subscribe(() => {});
    const started = Date.now();
    await c.close();
    expect(Date.now() - started).toBeLessThan(100);
  });
});

describe('options', () => {
  it('validates encryptionKey, url and client', () => {
    expect(() => createRedisCoordinator({ encryptionKey: 'short' })).toThrow(/encryptionKey/);
    expect(() => createRedisCoordinator({ encryptionKey: new Uint8Array(16) })).toThrow(TypeError);
    expect(() => createRedisCoordinator({ encryptionKey: KEY, url: 'http://x' })).toThrow(/url/);
    expect(() => createRedisCoordinator({ encryptionKey: KEY, client: {} })).toThrow(/client/);
    expect(() => createRedisCoordinator({ encryptionKey: KEY, url: URL, client: raw })).toThrow(/not both/);
  });

  it('after close(), operations reject with connection_closed', async () => {
    const c = coordinator();
    await c.close();
    await c.close();
    await expect(c.oboTokens.get('k')).rejects.toMatchObject({ code: 'connection_closed' });
  });
});
