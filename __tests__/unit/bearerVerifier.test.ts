import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { BearerError } from '../../src/errors.js';
import { createBearerVerifier, type BearerVerifierOptions } from '../../src/auth/bearerVerifier.js';
import { JwksCache } from '../../src/auth/jwks.js';
import { checkScopeList, missingScopes, normalizeScopes } from '../../src/auth/scopes.js';
import type { FetchLike } from '../../src/transport/types.js';
import { rejectionOf } from '../support/errors.js';

const ISSUER = 'https://idp.test/tenant/v2.0';
const AUDIENCE = 'api://runtime';
const JWKS_URI = 'https://idp.test/keys';
const T0 = Date.UTC(2030, 0, 1); // fixed clock origin, in ms

type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;

/** RSA key generation is slow: each kid gets one key pair for the whole file (servers stay per test). */
const keyPairs = new Map<string, Promise<KeyPair>>();
function keyPairFor(kid: string): Promise<KeyPair> {
  let p = keyPairs.get(kid);
  if (!p) keyPairs.set(kid, (p = generateKeyPair('RS256', { extractable: true })));
  return p;
}

/** An in-memory key server behind an injected fetch: counts fetches, can go down, can rotate keys. */
class FakeKeyServer {
  keys: { kid: string; pair: KeyPair; jwk: JWK }[] = [];
  fetches = 0;
  down = false;
  readonly fetch: FetchLike = async (url) => {
    this.fetches++;
    if (String(url) !== JWKS_URI) return new Response('nope', { status: 404 });
    if (this.down) throw new TypeError('fetch failed');
    return new Response(JSON.stringify({ keys: this.keys.map((k) => k.jwk) }), { status: 200 });
  };

  async addKey(kid: string): Promise<void> {
    const pair = await keyPairFor(kid);
    this.keys.push({ kid, pair, jwk: { ...(await exportJWK(pair.publicKey)), kid, alg: 'RS256', use: 'sig' } });
  }

  key(kid: string): KeyPair {
    const k = this.keys.find((x) => x.kid === kid);
    if (!k) throw new Error(`no key ${kid}`);
    return k.pair;
  }
}

interface MintOptions {
  kid?: string;
  pair?: KeyPair;
  claims?: Record<string, unknown>;
  iss?: string;
  aud?: string | string[];
  sub?: string | null;
  iat?: number;
  exp?: number | null;
  nbf?: number;
}

class Clock {
  t = T0;
  readonly now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

async function mint(server: FakeKeyServer, clock: Clock, o: MintOptions = {}): Promise<string> {
  const kid = o.kid ?? 'k1';
  const pair = o.pair ?? server.key(kid);
  const nowSec = Math.floor(clock.t / 1000);
  const payload: Record<string, unknown> = { tid: 'tenant-a', scp: 'mcp.tools User.Read', ...o.claims };
  if (o.sub !== null) payload.sub = o.sub ?? 'user-1';
  const jwt = new SignJWT(payload)
    .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
    .setIssuer(o.iss ?? ISSUER)
    .setAudience(o.aud ?? AUDIENCE)
    .setIssuedAt(o.iat ?? nowSec);
  if (o.exp !== null) jwt.setExpirationTime(o.exp ?? nowSec + 3600);
  if (o.nbf !== undefined) jwt.setNotBefore(o.nbf);
  return jwt.sign(pair.privateKey);
}

function b64url(s: string | Uint8Array): string {
  return Buffer.from(s).toString('base64url');
}

/** The rejection of `p`, checked to be a `BearerError`. */
const rejection = (p: Promise<unknown>) => rejectionOf(p, BearerError);

describe('createBearerVerifier (unit, injected fetch and clock)', () => {
  let server: FakeKeyServer;
  let clock: Clock;
  const make = (o: Partial<BearerVerifierOptions> = {}) =>
    createBearerVerifier({ issuer: ISSUER, audience: AUDIENCE, jwksUri: JWKS_URI, fetch: server.fetch, now: clock.now, ...o });

  beforeEach(async () => {
    server = new FakeKeyServer();
    clock = new Clock();
    await server.addKey('k1');
  });

  it('accepts a valid token, with or without the Bearer prefix, and reads subject, tenant and scopes', async () => {
    const v = make();
    const token = await mint(server, clock, { claims: { roles: ['Admin'], email: 'a@b.c' } });
    for (const header of [`Bearer ${token}`, `bearer   ${token}`, token]) {
      const b = await v.verify(header);
      expect(b).toMatchObject({ token, subject: 'user-1', tenantId: 'tenant-a', scopes: ['mcp.tools', 'User.Read', 'Admin'] });
      expect(b.claims.iss).toBe(ISSUER);
    }
    expect(server.fetches).toBe(1); // cached
    const user = v.toUserContext(await v.verify(token));
    expect(user).toEqual({ id: 'user-1', tenantId: 'tenant-a', email: 'a@b.c', upstreamToken: token });
    const provider = async () => 'fresh';
    expect(v.toUserContext(await v.verify(token), { upstreamToken: provider }).upstreamToken).toBe(provider);
  });

  it('reads scopes from scope / scopes claims as a string or an array', async () => {
    const v = make({ requiredScopes: ['a', 'b'] });
    for (const claims of [{ scp: undefined, scope: 'a b' }, { scp: undefined, scopes: ['a', 'b'] }, { scp: ['a'], scopes: 'b' }]) {
      const b = await v.verify(await mint(server, clock, { claims }));
      expect(b.scopes).toEqual(['a', 'b']);
    }
  });

  it('answers a missing token with 401 and a bare challenge, and a foreign scheme the same way', async () => {
    const v = make({ realm: 'runtime' });
    for (const header of [undefined, '', '   ', 'Basic dXNlcjpwYXNz']) {
      const err = await rejection(v.verify(header));
      expect(err.code).toBe('missing_token');
      expect(err.httpStatus).toBe(401);
      expect(err.wwwAuthenticate).toBe('Bearer realm="runtime"');
    }
    expect(server.fetches).toBe(0);
  });

  it('rejects malformed tokens without fetching keys', async () => {
    const v = make();
    for (const header of ['Bearer', 'Bearer not-a-jwt', 'Bearer a.b', 'Bearer a.b.c.d.e', `Bearer ${'a'.repeat(20_000)}.b.c`, 'Bearer @@.@@.@@']) {
      const err = await rejection(v.verify(header));
      expect(err.code).toBe('malformed');
      expect(err.wwwAuthenticate).toMatch(/^Bearer error="invalid_token", error_description="/);
    }
    expect(server.fetches).toBe(0);
  });

  it('rejects alg none and HS256 signed with the RSA public key before any key lookup', async () => {
    const v = make();
    const payload = { iss: ISSUER, aud: AUDIENCE, sub: 'user-1', exp: Math.floor(clock.t / 1000) + 600 };
    const none = `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64url(JSON.stringify(payload))}.`;
    expect((await rejection(v.verify(none))).code).toBe('invalid_signature');

    const publicJwkBytes = new TextEncoder().encode(JSON.stringify(server.keys[0]!.jwk));
    const hs = await new SignJWT(payload).setProtectedHeader({ alg: 'HS256', kid: 'k1' }).sign(publicJwkBytes);
    const err = await rejection(v.verify(hs));
    expect(err.code).toBe('invalid_signature');
    expect(err.httpStatus).toBe(401);
    expect(server.fetches).toBe(0);
  });

  it('rejects a token signed by a different key with the same kid', async () => {
    const v = make();
    const other = await generateKeyPair('RS256');
    const err = await rejection(v.verify(await mint(server, clock, { pair: other })));
    expect(err.code).toBe('invalid_signature');
  });

  it('checks exp and nbf against the injected clock with the tolerance', async () => {
    const v = make({ clockToleranceSec: 30 });
    const nowSec = Math.floor(clock.t / 1000);
    expect((await rejection(v.verify(await mint(server, clock, { exp: nowSec - 31 })))).code).toBe('expired');
    await expect(v.verify(await mint(server, clock, { exp: nowSec - 29 }))).resolves.toBeDefined();
    expect((await rejection(v.verify(await mint(server, clock, { nbf: nowSec + 31 })))).code).toBe('not_yet_valid');
    await expect(v.verify(await mint(server, clock, { nbf: nowSec + 29 }))).resolves.toBeDefined();
    const token = await mint(server, clock, { exp: nowSec + 60 });
    await expect(v.verify(token)).resolves.toBeDefined();
    clock.advance(91_000);
    expect((await rejection(v.verify(token))).code).toBe('expired');
  });

  it('requires exp and a non-empty sub', async () => {
    const v = make();
    expect((await rejection(v.verify(await mint(server, clock, { sub: null })))).code).toBe('missing_subject');
    expect((await rejection(v.verify(await mint(server, clock, { sub: '' })))).code).toBe('missing_subject');
    expect((await rejection(v.verify(await mint(server, clock, { exp: null })))).code).toBe('malformed');
  });

  it('rejects a wrong audience, and a foreign issuer without fetching keys', async () => {
    const v = make();
    expect((await rejection(v.verify(await mint(server, clock, { aud: 'api://other' })))).code).toBe('wrong_audience');
    await expect(v.verify(await mint(server, clock, { aud: ['api://other', AUDIENCE] }))).resolves.toBeDefined();
    const fetches = server.fetches;
    const err = await rejection(v.verify(await mint(server, clock, { iss: 'https://evil.test/' })));
    expect(err.code).toBe('wrong_issuer');
    expect(server.fetches).toBe(fetches);
  });

  it('accepts any of several issuers (Entra v1 and v2)', async () => {
    const v1 = 'https://sts.windows.net/tenant/';
    const v = make({ issuer: [v1, ISSUER] });
    expect((await v.verify(await mint(server, clock, { iss: v1 }))).subject).toBe('user-1');
    expect((await v.verify(await mint(server, clock))).subject).toBe('user-1');
  });

  it('answers missing scopes with 403 insufficient_scope and the scopes needed', async () => {
    const v = make({ requiredScopes: ['mcp.tools', 'Files.Read'] });
    const err = await rejection(v.verify(await mint(server, clock)));
    expect(err.code).toBe('insufficient_scope');
    expect(err.httpStatus).toBe(403);
    expect(err.wwwAuthenticate).toContain('error="insufficient_scope"');
    expect(err.wwwAuthenticate).toContain('scope="mcp.tools Files.Read"');
    await expect(v.verify(await mint(server, clock, { claims: { scp: 'mcp.tools Files.Read' } }))).resolves.toBeDefined();
    // per-call scopes add to the verifier's
    const roles = await mint(server, clock, { claims: { scp: 'mcp.tools Files.Read', roles: ['Admin'] } });
    await expect(v.verify(roles, { requiredScopes: ['Admin'] })).resolves.toBeDefined();
    expect((await rejection(v.verify(roles, { requiredScopes: ['Owner'] }))).code).toBe('insufficient_scope');
  });

  it('never puts the token in an error', async () => {
    const v = make();
    const token = await mint(server, clock, { aud: 'api://other' });
    const err = await rejection(v.verify(token));
    const text = JSON.stringify({ json: err.toJSON(), message: err.message, header: err.wwwAuthenticate, cause: err.cause, stack: err.stack });
    for (const part of token.split('.')) expect(text).not.toContain(part);
  });

  describe('key cache', () => {
    it('refetches for an unknown kid only after the cooldown (key rotation)', async () => {
      const v = make();
      await v.verify(await mint(server, clock));
      expect(server.fetches).toBe(1);
      await server.addKey('k2');
      const rotated = await mint(server, clock, { kid: 'k2' });
      // Within the cooldown of the first load: no refetch, refused.
      clock.advance(10_000);
      expect((await rejection(v.verify(rotated))).code).toBe('invalid_signature');
      expect(server.fetches).toBe(1);
      clock.advance(20_000);
      expect((await v.verify(rotated)).subject).toBe('user-1');
      expect(server.fetches).toBe(2);
    });

    it('lets a burst of made-up kids cause at most one refetch per cooldown', async () => {
      const v = make();
      await v.verify(await mint(server, clock));
      clock.advance(30_000);
      const pair = server.key('k1');
      const forged = await Promise.all(Array.from({ length: 50 }, (_, i) => mint(server, clock, { kid: `spray-${i}`, pair })));
      const errors = await Promise.all(forged.map((t) => rejection(v.verify(t))));
      expect(errors.every((e) => e.code === 'invalid_signature')).toBe(true);
      expect(server.fetches).toBe(2);
      clock.advance(29_000);
      await rejection(v.verify(forged[0]!));
      expect(server.fetches).toBe(2);
      clock.advance(1_000);
      await rejection(v.verify(forged[1]!));
      expect(server.fetches).toBe(3);
    });

    it('keeps serving the last good keys for a bounded time while the endpoint is down', async () => {
      const v = make({ jwksCacheMaxAgeMs: 60_000, jwksStaleMaxAgeMs: 120_000 });
      await v.verify(await mint(server, clock));
      server.down = true;
      clock.advance(61_000); // past freshness: the refetch fails, the old keys serve
      expect((await v.verify(await mint(server, clock))).subject).toBe('user-1');
      expect(server.fetches).toBe(2);
      clock.advance(118_000); // 179 s after the load: still within 60 + 120
      await expect(v.verify(await mint(server, clock))).resolves.toBeDefined();
      clock.advance(2_000); // 181 s: too stale
      const err = await rejection(v.verify(await mint(server, clock)));
      expect(err.code).toBe('jwks_unavailable');
      expect(err.httpStatus).toBe(401);
      expect(err.retryable).toBe(true);
      server.down = false;
      clock.advance(1_000);
      await expect(v.verify(await mint(server, clock))).resolves.toBeDefined();
    });

    it('fails with jwks_unavailable when keys never loaded, and retries at most once a second', async () => {
      server.down = true;
      const v = make();
      const token = await mint(server, clock);
      const errors = await Promise.all(Array.from({ length: 10 }, () => rejection(v.verify(token))));
      expect(errors.map((e) => e.code)).toEqual(Array(10).fill('jwks_unavailable'));
      expect(server.fetches).toBe(1);
      await rejection(v.verify(token));
      expect(server.fetches).toBe(1);
      clock.advance(1_000);
      server.down = false;
      await expect(v.verify(token)).resolves.toBeDefined();
      expect(server.fetches).toBe(2);
    });

    it('tries each key when a kid-less token matches several', async () => {
      await server.addKey('k2');
      const v = make();
      const nowSec = Math.floor(clock.t / 1000);
      const token = await new SignJWT({ sub: 'user-1' })
        .setProtectedHeader({ alg: 'RS256' })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setExpirationTime(nowSec + 60)
        .sign(server.key('k2').privateKey);
      expect((await v.verify(token)).subject).toBe('user-1');
    });
  });

  describe('options', () => {
    it('refuses symmetric or none algorithms, http without allowInsecureRequests, bad values', () => {
      const base = { issuer: ISSUER, audience: AUDIENCE };
      expect(() => createBearerVerifier({ ...base, algorithms: ['RS256', 'HS256'] })).toThrow(TypeError);
      expect(() => createBearerVerifier({ ...base, algorithms: ['none'] })).toThrow(TypeError);
      expect(() => createBearerVerifier({ ...base, issuer: 'http://127.0.0.1:1' })).toThrow(/allowInsecureRequests/);
      expect(() => createBearerVerifier({ ...base, jwksUri: 'http://127.0.0.1:1/keys' })).toThrow(TypeError);
      expect(() => createBearerVerifier({ ...base, issuer: 'http://127.0.0.1:1', allowInsecureRequests: true })).not.toThrow();
      expect(() => createBearerVerifier({ ...base, issuer: [] })).toThrow(TypeError);
      expect(() => createBearerVerifier({ ...base, audience: '' })).toThrow(TypeError);
      expect(() => createBearerVerifier({ ...base, requiredScopes: ['a b'] })).toThrow(TypeError);
      expect(() => createBearerVerifier({ ...base, clockToleranceSec: -1 })).toThrow(TypeError);
      expect(() => createBearerVerifier({ ...base, jwksCooldownMs: 60_000 })).toThrow(/at most 30000/);
    });
  });
});

describe('scopes', () => {
  it('normalises scp, scope, scopes and roles', () => {
    expect(normalizeScopes({ scp: ' a  b ', roles: ['R'], scope: 'b c', scopes: ['d', 5, ''] })).toEqual(['a', 'b', 'c', 'd', 'R']);
    expect(normalizeScopes({ scp: 42, roles: 'X Y' })).toEqual(['X', 'Y']);
    expect(normalizeScopes({})).toEqual([]);
    expect(missingScopes(['a', 'b'], ['a', 'c', 'd'])).toEqual(['c', 'd']);
    expect(checkScopeList(undefined, 'x')).toEqual([]);
    expect(() => checkScopeList('a', 'x')).toThrow(TypeError);
  });
});

describe('JwksCache', () => {
  it('shares one fetch between concurrent first uses', async () => {
    const server = new FakeKeyServer();
    await server.addKey('k1');
    const cache = new JwksCache({ resolveUri: async () => new URL(JWKS_URI), fetch: server.fetch });
    await Promise.all(Array.from({ length: 20 }, () => cache.getKey({ alg: 'RS256', kid: 'k1' })));
    expect(server.fetches).toBe(1);
    expect(cache.fetchCount).toBe(1);
  });

  it('refuses a discovered http: key set URI without allowInsecureRequests', async () => {
    const cache = new JwksCache({ resolveUri: async () => new URL('http://127.0.0.1:1/keys'), fetch: async () => new Response('{}') });
    await expect(cache.getKey({ alg: 'RS256' })).rejects.toMatchObject({ code: 'jwks_unavailable' });
  });
});
