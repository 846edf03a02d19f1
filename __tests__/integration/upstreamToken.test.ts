import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt } from 'jose';
import { UpstreamTokenError } from '../../src/errors.js';
import { createBearerVerifier } from '../../src/auth/bearerVerifier.js';
import { MemoryUpstreamSessionStore, type UpstreamSession, type UpstreamSessionStore } from '../../src/auth/tokenStore.js';
import { createUpstreamTokenProvider, type UpstreamTokenProviderOptions } from '../../src/auth/upstreamToken.js';
import { startTestIdp, type TestIdp } from '../../src/testing/testIdp.js';
import { rejectionOf } from '../support/errors.js';
import { testIdpClient } from '../support/idp.js';

let idp: TestIdp;

beforeAll(async () => {
  idp = await startTestIdp({ accessTokenTtlSec: 3600 });
});
afterAll(async () => {
  await idp?.close();
});
beforeEach(() => idp.resetStats());

function provider(extra: Partial<UpstreamTokenProviderOptions> = {}) {
  return createUpstreamTokenProvider({ ...testIdpClient(idp), ...extra });
}

/** A session whose access token is already expired, so the next use must refresh. */
async function expiredSession(sub: string, tenantId?: string): Promise<UpstreamSession> {
  const s = await idp.startSession({ sub, tenantId });
  return { ...s, expiresAt: Date.now() - 1_000 };
}

/** The rejection of `p`, checked to be a `UpstreamTokenError`. */
const rejection = (p: Promise<unknown>) => rejectionOf(p, UpstreamTokenError);

describe('createUpstreamTokenProvider with the test IdP', () => {
  it('returns the stored token while it is valid, without calling the IdP', async () => {
    const up = provider();
    const user = { id: 'alice', tenantId: 't1' };
    const s = await idp.startSession({ sub: 'alice', tenantId: 't1' });
    await up.setSession(user, s);
    expect(await up.forUser(user)()).toBe(s.accessToken);
    expect(idp.stats().refreshes).toBe(0);
  });

  it('coalesces 50 concurrent refreshes into one IdP call and persists the rotated refresh token', async () => {
    const store = new MemoryUpstreamSessionStore();
    const up = provider({ store });
    const user = { id: 'bob', tenantId: 't1' };
    const s = await expiredSession('bob', 't1');
    await up.setSession(user, s);

    const get = up.forUser(user);
    const tokens = await Promise.all(Array.from({ length: 50 }, () => get()));
    expect(new Set(tokens).size).toBe(1);
    expect(tokens[0]).not.toBe(s.accessToken);
    expect(decodeJwt(tokens[0]!)).toMatchObject({ sub: 'bob', tid: 't1' });
    expect(idp.stats().refreshes).toBe(1);

    const stored = await store.get(up.sessionKey(user));
    expect(stored?.accessToken).toBe(tokens[0]);
    expect(stored?.refreshToken).toBeDefined();
    expect(stored?.refreshToken).not.toBe(s.refreshToken); // rotated and persisted
    expect(stored!.expiresAt).toBeGreaterThan(Date.now() + 3_000_000);

    // The persisted refresh token is the live one: a forced refresh with it works, and rotates again.
    const again = await up.getToken(user, { forceRefresh: true });
    expect(again).not.toBe(tokens[0]);
    expect(idp.stats().refreshes).toBe(2);
  });

  it('never coalesces two tenants with the same subject', async () => {
    const up = provider({ clientAuthMethod: 'client_secret_basic' });
    const a = { id: 'carol', tenantId: 'tenant-a' };
    const b = { id: 'carol', tenantId: 'tenant-b' };
    await up.setSession(a, await expiredSession('carol', 'tenant-a'));
    await up.setSession(b, await expiredSession('carol', 'tenant-b'));
    idp.setLatency(50); // keep both refreshes in flight together
    try {
      const [ta, tb] = await Promise.all([up.forUser(a)(), up.forUser(b)()]);
      expect(decodeJwt(ta).tid).toBe('tenant-a');
      expect(decodeJwt(tb).tid).toBe('tenant-b');
      expect(idp.stats().refreshes).toBe(2);
    } finally {
      idp.setLatency(0);
    }
    expect(up.sessionKey(a)).not.toBe(up.sessionKey(b));
  });

  it('turns invalid_grant after a revoke into reauth_required and drops the dead session', async () => {
    const store = new MemoryUpstreamSessionStore();
    const up = provider({ store });
    const user = { id: 'dave' };
    await up.setSession(user, await expiredSession('dave'));
    idp.revokeSessions('dave');
    const err = await rejection(up.forUser(user)());
    expect(err.code).toBe('reauth_required');
    expect(err.retryable).toBe(false);
    expect(err.toJSON()).toMatchObject({ code: 'reauth_required' });
    expect(await store.get(up.sessionKey(user))).toBeUndefined();
    // No session left: no further IdP call.
    expect((await rejection(up.forUser(user)())).code).toBe('reauth_required');
    expect(idp.stats().refreshes).toBe(1);
  });

  it('a race loser (another process rotated the token first) re-reads the store instead of wiping it', async () => {
    const shared = new MemoryUpstreamSessionStore();
    const user = { id: 'erin', tenantId: 't1' };
    const processA = provider({ store: shared });
    const s = await expiredSession('erin', 't1');
    await processA.setSession(user, s);

    // Process B read the session before A refreshed it, and only then calls the IdP with the old refresh token.
    let staleReads = 1;
    const viewOfB: UpstreamSessionStore = {
      get: async (key) => (staleReads-- > 0 ? { ...s } : shared.get(key)),
      set: (key, v) => shared.set(key, v),
      delete: (key) => shared.delete(key),
      compareAndSet: (key, expected, next) => shared.compareAndSet(key, expected, next),
    };
    const processB = provider({ store: viewOfB });

    const tokenA = await processA.forUser(user)();
    const tokenB = await processB.forUser(user)();
    expect(tokenB).toBe(tokenA);
    expect(idp.stats().refreshes).toBe(2); // B's attempt with the rotated-out token got invalid_grant
    const stored = await shared.get(processA.sessionKey(user));
    expect(stored?.accessToken).toBe(tokenA);
    expect(stored?.refreshToken).not.toBe(s.refreshToken);
  });

  it('classifies IdP failures: 503 and unreachable are retryable refresh_failed', async () => {
    const up = provider();
    const user = { id: 'frank' };
    await up.setSession(user, await expiredSession('frank'));
    idp.failNext(1, { status: 503, grant: 'refresh' });
    const err = await rejection(up.forUser(user)());
    expect(err).toMatchObject({ code: 'refresh_failed', retryable: true });
    expect(err.cause).toEqual({ status: 503 });

    idp.failNext(1, { status: 400, error: 'invalid_client', grant: 'refresh' });
    expect(await rejection(up.forUser(user)())).toMatchObject({ code: 'refresh_failed', retryable: false });

    await idp.down();
    try {
      const down = await rejection(up.forUser(user)());
      expect(down).toMatchObject({ code: 'refresh_failed', retryable: true });
    } finally {
      await idp.up();
    }
    // The session survived every transient failure.
    await expect(up.forUser(user)()).resolves.toEqual(expect.any(String));
  });

  describe('fetchWithFreshToken', () => {
    let api: Server;
    let apiUrl: string;
    let seen: string[] = [];
    let rejectFirst = 0;
    let alwaysReject = false;
    /** Tokens the API treats as revoked: a request carrying one gets 401, whenever it arrives. */
    let revoked = new Set<string>();
    const verifier = () => createBearerVerifier({ issuer: idp.issuer, audience: idp.runtimeAudience, allowInsecureRequests: true });
    let verify: ReturnType<typeof verifier>;

    beforeAll(async () => {
      verify = verifier();
      api = createServer((req: IncomingMessage, res: ServerResponse) => {
        const auth = req.headers.authorization ?? '';
        seen.push(auth.replace(/^Bearer /, ''));
        void (async () => {
          let body = '';
          for await (const chunk of req) body += chunk;
          if (alwaysReject || revoked.has(auth.replace(/^Bearer /, '')) || rejectFirst-- > 0) {
            res.writeHead(401, { 'WWW-Authenticate': 'Bearer error="invalid_token"' }).end();
            return;
          }
          try {
            const b = await verify.verify(auth);
            res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ sub: b.subject, body }));
          } catch {
            res.writeHead(401).end();
          }
        })();
      });
      await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
      apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}/me`;
    });
    afterAll(async () => {
      api.closeAllConnections();
      await new Promise<void>((r) => api.close(() => r()));
    });
    beforeEach(() => {
      seen = [];
      rejectFirst = 0;
      alwaysReject = false;
      revoked = new Set();
    });

    it('sends the current token and refreshes proactively inside the skew', async () => {
      const up = provider({ skewMs: 120_000 });
      const user = { id: 'gina', tenantId: 't1' };
      const s = await idp.startSession({ sub: 'gina', tenantId: 't1' });
      await up.setSession(user, s);
      const f = up.fetchWithFreshToken(user);
      const ok = await f(apiUrl);
      expect(await ok.json()).toMatchObject({ sub: 'gina' });
      expect(seen).toEqual([s.accessToken]);
      expect(idp.stats().refreshes).toBe(0);

      await up.setSession(user, { ...s, expiresAt: Date.now() + 60_000 }); // within the 120 s skew
      seen = [];
      expect((await f(apiUrl)).status).toBe(200);
      expect(seen).toHaveLength(1);
      expect(seen[0]).not.toBe(s.accessToken);
      expect(idp.stats().refreshes).toBe(1);
    });

    it('on a 401 forces one refresh and retries once, with a replayed body', async () => {
      const up = provider();
      const user = { id: 'hank' };
      const s = await idp.startSession({ sub: 'hank' });
      await up.setSession(user, s);
      rejectFirst = 1;
      const res = await up.fetchWithFreshToken(user)(apiUrl, { method: 'POST', body: 'payload', headers: { 'x-a': '1' } });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ sub: 'hank', body: 'payload' });
      expect(seen).toHaveLength(2);
      expect(seen[0]).toBe(s.accessToken);
      expect(seen[1]).not.toBe(s.accessToken);
      expect(idp.stats().refreshes).toBe(1);
    });

    it('never retries more than once when the server keeps answering 401', async () => {
      const up = provider();
      const user = { id: 'ivy' };
      await up.setSession(user, await idp.startSession({ sub: 'ivy' }));
      alwaysReject = true;
      const res = await up.fetchWithFreshToken(user)(apiUrl);
      expect(res.status).toBe(401);
      expect(seen).toHaveLength(2);
      expect(idp.stats().refreshes).toBe(1);
    });

    it('shares one forced refresh between concurrent requests rejected with the same token', async () => {
      const up = provider();
      const user = { id: 'jack' };
      const session = await idp.startSession({ sub: 'jack' });
      await up.setSession(user, session);
      // Rejected by token, not by arrival order: however the 10 requests interleave with the refresh, every one
      // sent with the first token gets a 401 and every one sent with the refreshed token is accepted.
      revoked.add(session.accessToken);
      const f = up.fetchWithFreshToken(user);
      idp.setLatency(30);
      try {
        const results = await Promise.all(Array.from({ length: 10 }, () => f(apiUrl)));
        expect(results.map((r) => r.status)).toEqual(Array(10).fill(200));
      } finally {
        idp.setLatency(0);
      }
      expect(seen).toHaveLength(20);
      expect(idp.stats().refreshes).toBe(1);
    });
  });
});
