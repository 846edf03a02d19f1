import { SwitchboardError, UpstreamTokenError } from '../../src/errors.js';
import { MemoryUpstreamSessionStore, sameSession, type UpstreamSession, type UpstreamSessionStore } from '../../src/auth/tokenStore.js';
import { createUpstreamTokenProvider, type UpstreamTokenProviderOptions } from '../../src/auth/upstreamToken.js';
import type { FetchLike } from '../../src/transport/types.js';
import { rejectionOf } from '../support/errors.js';

const ISSUER = 'https://idp.test/tenant';
const T0 = Date.UTC(2030, 0, 1);

type TokenAnswer = { status: number; body: Record<string, unknown> } | Error;

/** A fake IdP behind an injected fetch: discovery plus a token endpoint whose answers the test decides. */
class FakeIdp {
  refreshes: URLSearchParams[] = [];
  discoveries = 0;
  failDiscovery = 0;
  next: TokenAnswer[] = [];
  counter = 0;
  /** Resolves the pending token requests one by one when the test says so (none pending by default). */
  hold = false;
  readonly #held: (() => void)[] = [];

  readonly fetch: FetchLike = async (url, init) => {
    const u = new URL(String(url));
    if (u.pathname === '/tenant/.well-known/openid-configuration') {
      this.discoveries++;
      if (this.failDiscovery-- > 0) throw new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } });
      return json(200, { issuer: ISSUER, token_endpoint: 'https://idp.test/tenant/token' });
    }
    if (u.pathname === '/tenant/token') {
      const params = new URLSearchParams(String(init?.body));
      this.refreshes.push(params);
      if (this.hold) await new Promise<void>((r) => this.#held.push(r));
      const answer = this.next.shift() ?? this.#rotate(params);
      if (answer instanceof Error) throw answer;
      return json(answer.status, answer.body);
    }
    return json(404, {});
  };

  release(): void {
    for (const r of this.#held.splice(0)) r();
  }

  #rotate(params: URLSearchParams): TokenAnswer {
    this.counter++;
    return {
      status: 200,
      body: { access_token: `at-${this.counter}-${params.get('refresh_token')}`, refresh_token: `rt-${this.counter}`, token_type: 'Bearer', expires_in: 3600 },
    };
  }
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}

let idp: FakeIdp;
let clock: { t: number };
function make(extra: Partial<UpstreamTokenProviderOptions> = {}) {
  return createUpstreamTokenProvider({ issuer: ISSUER, clientId: 'runtime', clientSecret: 's3cret', fetch: idp.fetch, now: () => clock.t, ...extra });
}
const expired = (refreshToken = 'rt-0'): UpstreamSession => ({ accessToken: 'at-0', refreshToken, expiresAt: clock.t - 1 });

/** The rejection of `p`, checked to be a `UpstreamTokenError`. */
const rejection = (p: Promise<unknown>) => rejectionOf(p, UpstreamTokenError);

beforeEach(() => {
  idp = new FakeIdp();
  clock = { t: T0 };
});

describe('createUpstreamTokenProvider (unit, fake IdP)', () => {
  it('uses the stored token until it is within the skew, then refreshes', async () => {
    const up = make({ skewMs: 30_000 });
    const user = { id: 'u1' };
    await up.setSession(user, { accessToken: 'at-0', refreshToken: 'rt-0', expiresAt: T0 + 60_000 });
    expect(await up.forUser(user)()).toBe('at-0');
    clock.t = T0 + 29_000;
    expect(await up.forUser(user)()).toBe('at-0');
    expect(idp.refreshes).toHaveLength(0);
    clock.t = T0 + 30_000;
    expect(await up.forUser(user)()).toBe('at-1-rt-0');
    expect(idp.refreshes).toHaveLength(1);
    expect(idp.refreshes[0]!.get('grant_type')).toBe('refresh_token');
    expect(idp.discoveries).toBe(1);
  });

  it('shares one request per (tenant, user, refresh token) and never across tenants or users', async () => {
    const up = make();
    idp.hold = true;
    // The same refresh token string in two tenants and for two users: only tenant+user+token coalesce.
    const users = [{ id: 'u1', tenantId: 'a' }, { id: 'u1', tenantId: 'b' }, { id: 'u2', tenantId: 'a' }, { id: 'u1' }];
    for (const u of users) await up.setSession(u, expired('rt-same'));
    const calls = users.flatMap((u) => Array.from({ length: 5 }, () => up.forUser(u)()));
    await waitFor(() => idp.refreshes.length === users.length);
    idp.release();
    const tokens = await Promise.all(calls);
    expect(idp.refreshes).toHaveLength(4);
    expect(new Set(tokens).size).toBe(4);
    for (let i = 0; i < users.length; i++) expect(new Set(tokens.slice(i * 5, i * 5 + 5)).size).toBe(1);
  });

  it('keys sessions unambiguously by issuer, client, tenant and user', () => {
    const up = make();
    const other = make({ clientId: 'other' });
    expect(up.sessionKey({ id: 'a:b' })).not.toBe(up.sessionKey({ id: 'a', tenantId: 'b' }));
    expect(up.sessionKey({ id: 'x', tenantId: 't' })).not.toBe(up.sessionKey({ id: 'x' }));
    expect(up.sessionKey({ id: 'x' })).not.toBe(other.sessionKey({ id: 'x' }));
    expect(() => up.forUser({ id: '' })).toThrow(SwitchboardError);
    expect(() => up.sessionKey({} as { id: string })).toThrow(expect.objectContaining({ code: 'user_required' }));
  });

  it('stores the rotated refresh token before returning the new access token', async () => {
    const inner = new MemoryUpstreamSessionStore();
    let releaseSet!: () => void;
    let setCalled = false;
    const slowStore: UpstreamSessionStore = {
      get: (k) => inner.get(k),
      set: (k, s) => inner.set(k, s),
      delete: (k) => inner.delete(k),
      compareAndSet: async (k, e, n) => {
        setCalled = true;
        await new Promise<void>((r) => (releaseSet = r));
        return inner.compareAndSet(k, e, n);
      },
    };
    const up = make({ store: slowStore });
    const user = { id: 'u1' };
    await up.setSession(user, expired());
    let resolved = false;
    const p = up.forUser(user)().then((t) => ((resolved = true), t));
    await waitFor(() => setCalled);
    await Promise.resolve();
    expect(resolved).toBe(false);
    releaseSet();
    expect(await p).toBe('at-1-rt-0');
    expect((await inner.get(up.sessionKey(user)))?.refreshToken).toBe('rt-1');
  });

  it('keeps a session stored by a sign-in during a refresh', async () => {
    const store = new MemoryUpstreamSessionStore();
    const up = make({ store });
    const user = { id: 'u1' };
    await up.setSession(user, expired());
    idp.hold = true;
    const p = up.forUser(user)();
    await waitFor(() => idp.refreshes.length === 1);
    await up.setSession(user, { accessToken: 'at-login', refreshToken: 'rt-login', expiresAt: T0 + 3_600_000 });
    idp.release();
    expect(await p).toBe('at-login');
    expect(await store.get(up.sessionKey(user))).toEqual({ accessToken: 'at-login', refreshToken: 'rt-login', expiresAt: T0 + 3_600_000 });
  });

  it('works with a store that has no compareAndSet', async () => {
    const inner = new MemoryUpstreamSessionStore();
    const plain: UpstreamSessionStore = { get: (k) => inner.get(k), set: (k, s) => inner.set(k, s), delete: (k) => inner.delete(k) };
    const up = make({ store: plain });
    await up.setSession({ id: 'u1' }, expired());
    expect(await up.forUser({ id: 'u1' })()).toBe('at-1-rt-0');
    expect((await inner.get(up.sessionKey({ id: 'u1' })))?.refreshToken).toBe('rt-1');
    idp.next.push({ status: 400, body: { error: 'invalid_grant' } });
    clock.t += 7_200_000;
    expect((await rejection(up.forUser({ id: 'u1' })())).code).toBe('reauth_required');
    expect(await inner.get(up.sessionKey({ id: 'u1' }))).toBeUndefined();
  });

  it('asks for a new sign-in when there is no session, no refresh token, or the IdP says so', async () => {
    const up = make();
    expect(await rejection(up.forUser({ id: 'nobody' })())).toMatchObject({ code: 'reauth_required', retryable: false });
    await up.setSession({ id: 'u1' }, { accessToken: 'at-0', expiresAt: T0 - 1 });
    expect((await rejection(up.forUser({ id: 'u1' })())).code).toBe('reauth_required');
    expect(idp.refreshes).toHaveLength(0);

    for (const error of ['invalid_grant', 'interaction_required']) {
      await up.setSession({ id: 'u2' }, expired());
      idp.next.push({ status: 400, body: { error, error_description: 'AADSTS70008: expired' } });
      const err = await rejection(up.forUser({ id: 'u2' })());
      expect(err).toMatchObject({ code: 'reauth_required', retryable: false });
      expect(err.cause).toEqual({ status: 400, error, error_description: 'AADSTS70008: expired' });
    }
  });

  it('reports transient failures as retryable refresh_failed and keeps the session', async () => {
    const up = make();
    const user = { id: 'u1' };
    await up.setSession(user, expired());
    idp.next.push({ status: 429, body: { error: 'slow_down' } });
    expect(await rejection(up.forUser(user)())).toMatchObject({ code: 'refresh_failed', retryable: true });
    idp.next.push({ status: 502, body: { oops: true } });
    expect(await rejection(up.forUser(user)())).toMatchObject({ code: 'refresh_failed', retryable: true, cause: { status: 502 } });
    idp.next.push(new TypeError('fetch failed', { cause: { code: 'ECONNRESET' } }));
    expect(await rejection(up.forUser(user)())).toMatchObject({ code: 'refresh_failed', retryable: true, cause: { network: 'ECONNRESET' } });
    idp.next.push({ status: 401, body: { error: 'invalid_client' } });
    expect(await rejection(up.forUser(user)())).toMatchObject({ code: 'refresh_failed', retryable: false });
    expect(await up.forUser(user)()).toBe('at-1-rt-0');
  });

  it('retries discovery after it failed', async () => {
    const up = make();
    await up.setSession({ id: 'u1' }, expired());
    idp.failDiscovery = 1;
    expect(await rejection(up.forUser({ id: 'u1' })())).toMatchObject({ code: 'refresh_failed', retryable: true });
    expect(await up.forUser({ id: 'u1' })()).toBe('at-1-rt-0');
    expect(idp.discoveries).toBe(2);
  });

  it('never puts a token in an error', async () => {
    const up = make();
    await up.setSession({ id: 'u1' }, expired('rt-secret-value'));
    idp.next.push({ status: 400, body: { error: 'invalid_grant' } });
    const err = await rejection(up.forUser({ id: 'u1' })());
    const text = JSON.stringify({ m: err.message, j: err.toJSON(), c: err.cause, s: err.stack });
    expect(text).not.toContain('rt-secret-value');
    expect(text).not.toContain('at-0');
  });

  it('derives the expiry from expires_in, else the JWT exp, else five minutes', async () => {
    const store = new MemoryUpstreamSessionStore();
    const up = make({ store });
    const exp = Math.floor(T0 / 1000) + 900;
    const jwt = `${b64({ alg: 'none' })}.${b64({ exp })}.`;
    idp.next.push({ status: 200, body: { access_token: jwt, token_type: 'Bearer' } });
    await up.setSession({ id: 'u1' }, expired());
    await up.forUser({ id: 'u1' })();
    expect((await store.get(up.sessionKey({ id: 'u1' })))?.expiresAt).toBe(exp * 1000);
    // refresh token kept when the IdP does not rotate
    expect((await store.get(up.sessionKey({ id: 'u1' })))?.refreshToken).toBe('rt-0');

    idp.next.push({ status: 200, body: { access_token: 'opaque', token_type: 'Bearer' } });
    await up.setSession({ id: 'u2' }, expired());
    await up.forUser({ id: 'u2' })();
    expect((await store.get(up.sessionKey({ id: 'u2' })))?.expiresAt).toBe(T0 + 300_000);
  });

  it('sends the configured scope with each refresh', async () => {
    const up = make({ scope: ['api://x/.default', 'offline_access'] });
    await up.setSession({ id: 'u1' }, expired());
    await up.forUser({ id: 'u1' })();
    expect(idp.refreshes[0]!.get('scope')).toBe('api://x/.default offline_access');
  });

  describe('fetchWithFreshToken', () => {
    it('does not replay a streamed body after a 401', async () => {
      const up = make();
      await up.setSession({ id: 'u1' }, { accessToken: 'at-0', refreshToken: 'rt-0', expiresAt: T0 + 3_600_000 });
      const sent: string[] = [];
      const api: FetchLike = async (_url, init) => {
        sent.push(new Headers(init?.headers).get('authorization') ?? '');
        return new Response(null, { status: 401 });
      };
      const body = new ReadableStream({ start: (c) => c.close() });
      const res = await up.fetchWithFreshToken({ id: 'u1' }, api)('https://api.test/x', { method: 'POST', body, duplex: 'half' } as RequestInit);
      expect(res.status).toBe(401);
      expect(sent).toEqual(['Bearer at-0']);
      expect(idp.refreshes).toHaveLength(0);
    });

    it('surfaces reauth_required when the forced refresh is refused', async () => {
      const up = make();
      await up.setSession({ id: 'u1' }, { accessToken: 'at-0', refreshToken: 'rt-0', expiresAt: T0 + 3_600_000 });
      idp.next.push({ status: 400, body: { error: 'invalid_grant' } });
      const api: FetchLike = async () => new Response(null, { status: 401 });
      expect((await rejection(up.fetchWithFreshToken({ id: 'u1' }, api)('https://api.test/x'))).code).toBe('reauth_required');
    });
  });

  it('validates its options', () => {
    expect(() => createUpstreamTokenProvider({ issuer: 'http://idp.test', clientId: 'c' })).toThrow(/allowInsecureRequests/);
    expect(() => createUpstreamTokenProvider({ issuer: 'not a url', clientId: 'c' })).toThrow(TypeError);
    expect(() => createUpstreamTokenProvider({ issuer: ISSUER, clientId: '' })).toThrow(TypeError);
    expect(() => createUpstreamTokenProvider({ issuer: ISSUER, clientId: 'c', skewMs: -1 })).toThrow(TypeError);
    expect(() => createUpstreamTokenProvider({ issuer: new URL('http://127.0.0.1:1'), clientId: 'c', allowInsecureRequests: true })).not.toThrow();
  });
});

describe('MemoryUpstreamSessionStore', () => {
  it('copies sessions in and out, compares-and-sets by tokens, and evicts the least recently used', async () => {
    const store = new MemoryUpstreamSessionStore({ maxEntries: 2 });
    const s = { accessToken: 'a', refreshToken: 'r', expiresAt: 1 };
    await store.set('k', s);
    s.accessToken = 'mutated';
    const got = (await store.get('k'))!;
    expect(got.accessToken).toBe('a');
    got.accessToken = 'mutated';
    expect((await store.get('k'))!.accessToken).toBe('a');

    expect(await store.compareAndSet('k', { accessToken: 'x', refreshToken: 'r', expiresAt: 1 }, undefined)).toBe(false);
    expect(await store.compareAndSet('k', { accessToken: 'a', refreshToken: 'r', expiresAt: 99 }, { accessToken: 'b', expiresAt: 2 })).toBe(true);
    expect(await store.get('k')).toEqual({ accessToken: 'b', expiresAt: 2 });
    expect(await store.compareAndSet('missing', { accessToken: 'b', expiresAt: 2 }, { accessToken: 'c', expiresAt: 3 })).toBe(false);
    expect(await store.compareAndSet('k', { accessToken: 'b', expiresAt: 2 }, undefined)).toBe(true);
    expect(store.size).toBe(0);

    await store.set('1', s);
    await store.set('2', s);
    await store.get('1');
    await store.set('3', s);
    expect(await store.get('2')).toBeUndefined();
    expect(await store.get('1')).toBeDefined();
    expect(sameSession(undefined, undefined)).toBe(false);
    expect(() => new MemoryUpstreamSessionStore({ maxEntries: 0 })).toThrow(TypeError);
  });
});

function b64(o: unknown): string {
  return Buffer.from(JSON.stringify(o)).toString('base64url');
}

/** Waits for a condition that other promises make true, yielding to the event loop between checks (no timers). */
async function waitFor(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise<void>((r) => setImmediate(r));
  if (!cond()) throw new Error('condition not reached');
}
