import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { decodeJwt } from 'jose';
import { Agent, type Dispatcher } from 'undici';
import { createOboTokenResolver, type OboTokenResolverOptions } from '../../src/auth/oboTokenResolver.js';
import type { OboExchangeEvent } from '../../src/events.js';
import type { OboRequest } from '../../src/auth/oboTypes.js';
import { OboError } from '../../src/errors.js';
import { startTestIdp, type TestIdp } from '../../src/testing/testIdp.js';
import { rejectionOf } from '../support/errors.js';
import { testIdpClient } from '../support/idp.js';

let idp: TestIdp;
const agents: Agent[] = [];
let scope: string;

beforeAll(async () => {
  idp = await startTestIdp();
  scope = `${idp.downstreamAudience}/.default`;
});

afterAll(async () => {
  await Promise.all(agents.map((a) => a.close()));
  await idp.close();
});

beforeEach(() => {
  idp.resetStats();
});

afterEach(async () => {
  idp.clearFaults();
  idp.setLatency(0);
  await idp.up();
});

/** A resolver on its own undici Agent (closed after the file), retrying without delay unless told. */
function resolverFor(extra: Partial<OboTokenResolverOptions> = {}) {
  const agent = new Agent();
  agents.push(agent);
  return createOboTokenResolver({
    ...testIdpClient(idp),
    retryDelayMs: 0,
    dispatcher: agent,
    ...extra,
  });
}

async function requestFor(sub: string, extra: Partial<OboRequest> & { tenantId?: string; expiresInSec?: number } = {}): Promise<OboRequest> {
  const { tenantId = 'tenant-a', expiresInSec, ...rest } = extra;
  const assertion = await idp.mintAccessToken({ sub, tenantId, ...(expiresInSec === undefined ? {} : { expiresInSec }) });
  return { user: { id: sub, tenantId }, assertion, scopes: [scope], serverName: 'files', ...rest };
}

/** The rejection of `p`, checked to be a `OboError`. */
const rejection = (p: Promise<unknown>) => rejectionOf(p, OboError);

describe('createOboTokenResolver against a real IdP', () => {
  it('exchanges with jwt-bearer (client_secret_post by default) for the downstream audience', async () => {
    const resolve = resolverFor();
    const req = await requestFor('u-jwt');
    const before = Date.now();
    const { accessToken, expiresAt } = await resolve(req);
    expect(decodeJwt(accessToken)).toMatchObject({ aud: idp.downstreamAudience, sub: 'u-jwt', tid: 'tenant-a', azp: idp.client.clientId });
    expect(expiresAt).toBeGreaterThanOrEqual(before + 299_000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 300_000);
    expect(idp.stats()).toMatchObject({ discovery: 1, exchanges: 1, tokenRequests: 1 });
  });

  it('exchanges with RFC 8693 token-exchange, sending the audience', async () => {
    const resolve = resolverFor({ grant: 'token-exchange' });
    const { accessToken } = await resolve(await requestFor('u-te', { scopes: ['files.read'], audience: 'api://other' }));
    expect(decodeJwt(accessToken)).toMatchObject({ aud: 'api://other', sub: 'u-te', scp: 'files.read' });
  });

  it('authenticates with client_secret_basic and private_key_jwt too', async () => {
    const basic = resolverFor({ clientAuthMethod: 'client_secret_basic' });
    expect(decodeJwt((await basic(await requestFor('u-basic'))).accessToken).sub).toBe('u-basic');

    const { clientId, privateKey, kid } = idp.privateKeyJwtClient;
    const pk = resolverFor({ clientId, clientSecret: undefined, privateKey: { key: privateKey, kid } });
    expect(decodeJwt((await pk(await requestFor('u-pk'))).accessToken).azp).toBe(clientId);
  });

  it('skips discovery with an explicit token endpoint and uses the given dispatcher', async () => {
    let dispatched = 0;
    class CountingAgent extends Agent {
      override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
        dispatched++;
        return super.dispatch(opts, handler);
      }
    }
    const agent = new CountingAgent();
    agents.push(agent);
    const resolve = resolverFor({ tokenEndpoint: idp.tokenEndpoint, dispatcher: agent });
    await resolve(await requestFor('u-endpoint'));
    expect(idp.stats()).toMatchObject({ discovery: 0, exchanges: 1 });
    expect(dispatched).toBe(1);
  });

  it('serves the second call from the cache without an IdP request', async () => {
    const events: OboExchangeEvent[] = [];
    const resolve = resolverFor({ onExchange: (e) => events.push(e) });
    const req = await requestFor('u-cache');
    const a = await resolve(req);
    const b = await resolve({ ...req, scopes: [scope] });
    expect(b).toEqual({ ...a, cacheHit: true });
    expect(a.cacheHit).toBe(false);
    expect(idp.stats().tokenRequests).toBe(1);
    expect(events.map((e) => e.cacheHit)).toEqual([false, true]);
    expect(events[0]).toMatchObject({ serverName: 'files', userId: 'u-cache', tenantId: 'tenant-a' });
    expect(JSON.stringify(events)).not.toContain(a.accessToken);
  });

  it('makes exactly one IdP exchange (and one discovery) for 500 concurrent calls on a cold cache', async () => {
    const events: OboExchangeEvent[] = [];
    const resolve = resolverFor({ onExchange: (e) => events.push(e) });
    const req = await requestFor('u-burst');
    const tokens = await Promise.all(Array.from({ length: 500 }, () => resolve(req)));
    expect(new Set(tokens.map((t) => t.accessToken)).size).toBe(1);
    expect(idp.stats()).toMatchObject({ discovery: 1, exchanges: 1, tokenRequests: 1 });
    expect(events.filter((e) => !e.cacheHit && !e.coalesced)).toHaveLength(1);
    expect(events.filter((e) => e.coalesced)).toHaveLength(499);
  });

  it('keeps separate entries per user, tenant, scope set and audience; scope order does not matter', async () => {
    const resolve = resolverFor({ grant: 'token-exchange' });
    const base = await requestFor('u-keys', { scopes: ['a', 'b'] });
    await resolve(base);
    await resolve({ ...base, scopes: ['b', 'a'] }); // same entry
    expect(idp.stats().exchanges).toBe(1);
    await resolve(await requestFor('u-keys-other', { scopes: ['a', 'b'] }));
    await resolve({ ...base, scopes: ['a'] });
    await resolve({ ...base, audience: 'api://elsewhere' });
    expect(idp.stats().exchanges).toBe(4);
  });

  it('isolates tenants: the same subject in two tenants gets two exchanges and two tokens', async () => {
    const resolve = resolverFor();
    const t1 = await resolve(await requestFor('same-sub', { tenantId: 'contoso' }));
    const t2 = await resolve(await requestFor('same-sub', { tenantId: 'fabrikam' }));
    expect(idp.stats().exchanges).toBe(2);
    expect(decodeJwt(t1.accessToken).tid).toBe('contoso');
    expect(decodeJwt(t2.accessToken).tid).toBe('fabrikam');
  });

  it('caches for expires_in minus skew', async () => {
    let now = Date.now();
    const resolve = resolverFor({ now: () => now, skewMs: 60_000 });
    const req = await requestFor('u-ttl');
    const start = now;
    const first = await resolve(req);
    expect(first.expiresAt).toBe(start + 300_000);
    now = start + 239_000;
    expect(await resolve(req)).toEqual({ ...first, cacheHit: true });
    now = start + 240_000;
    const second = await resolve(req);
    expect(second.accessToken).not.toBe(first.accessToken);
    expect(idp.stats().exchanges).toBe(2);
  });

  it("never caches past the assertion's own exp", async () => {
    let now = Date.now();
    const resolve = resolverFor({ now: () => now });
    const req = await requestFor('u-cap', { expiresInSec: 100 });
    const assertionExp = (decodeJwt(req.assertion).exp as number) * 1000;
    await resolve(req);
    now = assertionExp - 1;
    await resolve(req);
    expect(idp.stats().exchanges).toBe(1);
    now = assertionExp;
    // Past its exp the assertion is not sent at all: the IdP would refuse it.
    const err = await rejection(resolve(req));
    expect(err).toMatchObject({ reason: 'exchange_failed', retryable: false, cause: { hint: 'expired' } });
    expect(idp.stats().exchanges).toBe(1);
  });

  it('returns but does not cache a token whose lifetime is within the skew', async () => {
    const shortIdp = await startTestIdp({ exchangedTokenTtlSec: 30 });
    try {
      const resolve = createOboTokenResolver({ issuer: shortIdp.issuer, ...shortIdp.client, allowInsecureRequests: true, skewMs: 60_000 });
      const assertion = await shortIdp.mintAccessToken({ sub: 'u-short' });
      const req = { user: { id: 'u-short' }, assertion, scopes: ['x'], serverName: 'files' };
      expect((await resolve(req)).accessToken).toBeTruthy();
      await resolve(req);
      expect(shortIdp.stats().exchanges).toBe(2);
    } finally {
      await shortIdp.close();
    }
  });

  it('forceRefresh replaces the entry, and concurrent force refreshes share one exchange', async () => {
    const resolve = resolverFor();
    const req = await requestFor('u-force');
    const a = await resolve(req);
    const [b, b2] = await Promise.all([resolve({ ...req, forceRefresh: true }), resolve({ ...req, forceRefresh: true })]);
    expect(b.accessToken).not.toBe(a.accessToken);
    expect(b2.accessToken).toBe(b.accessToken);
    expect((await resolve(req)).accessToken).toBe(b.accessToken);
    expect(idp.stats().exchanges).toBe(2);
  });

  it('retries a 503 exactly once, then succeeds', async () => {
    const resolve = resolverFor({ retryDelayMs: 50 });
    idp.failNext(1, { status: 503, error: 'temporarily_unavailable' });
    expect((await resolve(await requestFor('u-503'))).accessToken).toBeTruthy();
    expect(idp.stats()).toMatchObject({ tokenRequests: 2, exchanges: 2 });
  });

  it('honours Retry-After on a 429 before its one retry', async () => {
    const waits: number[] = [];
    const resolve = resolverFor({ sleep: async (ms) => void waits.push(ms) });
    idp.failNext(1, { status: 429, retryAfterSec: 1 });
    expect((await resolve(await requestFor('u-429'))).accessToken).toBeTruthy();
    expect(waits).toEqual([1000]);
    expect(idp.stats().tokenRequests).toBe(2);
  });

  it('waits for real on Retry-After with the default sleep', async () => {
    const resolve = resolverFor();
    const req = await requestFor('u-429-real');
    idp.failNext(1, { status: 429, retryAfterSec: 1 });
    // The default sleep is a real timer. Catch the one the resolver sets (the only setTimeout in its module) and
    // fire it when the test says, so "the retry waits for it" is checked at points the test controls.
    const realSetTimeout = globalThis.setTimeout;
    const waits: number[] = [];
    let fire: (() => void) | undefined;
    let timerSet!: () => void;
    const sleeping = new Promise<void>((r) => (timerSet = r));
    globalThis.setTimeout = ((fn: () => void, ms?: number) => {
      // The caller's frame (line 2 after "Error" and this wrapper) must be the resolver's own code.
      const caller = new Error().stack?.split('\n')[2] ?? '';
      if (!caller.includes('src/auth/oboTokenResolver')) return realSetTimeout(fn, ms);
      waits.push(ms ?? 0);
      fire = fn;
      timerSet();
      return realSetTimeout(() => undefined, ms); // a real (unref-able) timer that does nothing
    }) as typeof setTimeout;
    let pending: Promise<unknown>;
    try {
      pending = resolve(req);
      pending.catch(() => undefined); // awaited below; a rejection before then must not go unhandled
      await sleeping;
    } finally {
      globalThis.setTimeout = realSetTimeout;
    }
    expect(waits).toEqual([1000]);
    // A full round trip to the IdP later, the retry is still not sent: it waits for the timer.
    expect((await fetch(`${idp.issuer}/.well-known/openid-configuration`)).ok).toBe(true);
    expect(idp.stats().tokenRequests).toBe(1);
    fire!();
    expect(await pending).toMatchObject({ accessToken: expect.any(String) });
    expect(idp.stats().tokenRequests).toBe(2);
  });

  it('does not retry when Retry-After exceeds maxRetryAfterMs, and says so', async () => {
    const resolve = resolverFor({ maxRetryAfterMs: 2_000 });
    idp.failNext(1, { status: 429, retryAfterSec: 30 });
    const err = await rejection(resolve(await requestFor('u-429-long')));
    expect(err).toMatchObject({ reason: 'exchange_failed', retryable: true });
    expect(err.cause).toMatchObject({ status: 429, retryAfterSec: 30 });
    expect(idp.stats().tokenRequests).toBe(1);
  });

  it('refuses an already expired assertion without sending it, saying so', async () => {
    const resolve = resolverFor();
    const req = await requestFor('u-expired', { expiresInSec: -60 });
    const err = await rejection(resolve(req));
    expect(err).toMatchObject({ reason: 'exchange_failed', code: 'obo_exchange_failed', retryable: false, serverName: 'files', cause: { hint: 'expired' } });
    expect(err.message).toContain("the user's upstream token expired");
    expect(idp.stats().tokenRequests).toBe(0);
  });

  it('fails invalid_grant at once, without caching the failure', async () => {
    const resolve = resolverFor();
    const valid = await requestFor('u-forged');
    // A token the IdP did not sign (its signature altered), still within its exp.
    const [h, p] = valid.assertion.split('.');
    const req = { ...valid, assertion: `${h}.${p}.${'A'.repeat(86)}` };
    const err = await rejection(resolve(req));
    expect(err).toMatchObject({ reason: 'exchange_failed', code: 'obo_exchange_failed', retryable: false, serverName: 'files' });
    expect(err.cause).toMatchObject({ status: 400, error: 'invalid_grant', error_description: expect.any(String) });
    expect(idp.stats().tokenRequests).toBe(1);
    await rejection(resolve(req));
    expect(idp.stats().tokenRequests).toBe(2);
  });

  it('passes Entra-style details (error_codes, suberror, claims) and does not retry consent_required', async () => {
    const resolve = resolverFor();
    idp.failNext(1, {
      status: 400,
      error: 'invalid_grant',
      error_description: 'AADSTS65001: consent required',
      error_codes: [65001],
      suberror: 'consent_required',
      claims: '{"access_token":{"polids":{"essential":true}}}',
    });
    const err = await rejection(resolve(await requestFor('u-consent')));
    expect(err.retryable).toBe(false);
    expect(err.cause).toEqual({
      status: 400,
      error: 'invalid_grant',
      error_description: 'AADSTS65001: consent required',
      error_codes: [65001],
      suberror: 'consent_required',
      claims: '{"access_token":{"polids":{"essential":true}}}',
      hint: 'consent_required',
    });
    expect(err.message).toContain('consent is required');
    expect(idp.stats().tokenRequests).toBe(1);
  });

  it('gives up after two 503s with a retryable error', async () => {
    const resolve = resolverFor();
    idp.failNext(2, { status: 503 });
    const err = await rejection(resolve(await requestFor('u-503x2')));
    expect(err).toMatchObject({ reason: 'exchange_failed', retryable: true });
    expect(err.cause).toMatchObject({ status: 503, error: 'server_error' });
    expect(idp.stats().tokenRequests).toBe(2);
  });

  it('does not retry an invalid client secret', async () => {
    const resolve = resolverFor({ clientSecret: 'wrong-secret' });
    const err = await rejection(resolve(await requestFor('u-badclient')));
    expect(err).toMatchObject({ reason: 'exchange_failed', retryable: false });
    expect(err.cause).toMatchObject({ status: 401, error: 'invalid_client' });
    expect(idp.stats().tokenRequests).toBe(1);
    expect(JSON.stringify(err)).not.toContain('wrong-secret');
  });

  it('fails retryable when the IdP is down, and a failed discovery is not remembered', async () => {
    const resolve = resolverFor();
    const req = await requestFor('u-down');
    await idp.down();
    const err = await rejection(resolve(req));
    expect(err).toMatchObject({ reason: 'exchange_failed', retryable: true });
    expect((err.cause as { network?: string }).network).toEqual(expect.any(String));
    await idp.up();
    expect((await resolve(req)).accessToken).toBeTruthy();
    expect(idp.stats().discovery).toBe(1);

    // Down after discovery: the exchange itself fails over the network.
    await idp.down();
    const err2 = await rejection(resolve({ ...req, forceRefresh: true }));
    expect(err2).toMatchObject({ reason: 'exchange_failed', retryable: true });
  });

  it('times out a slow IdP with a retryable timeout error', async () => {
    const resolve = resolverFor({ tokenEndpoint: idp.tokenEndpoint, timeoutMs: 150 });
    idp.setLatency(5_000);
    const err = await rejection(resolve(await requestFor('u-slow')));
    expect(err).toMatchObject({ reason: 'timeout', code: 'obo_timeout', retryable: true });
    expect(idp.stats().tokenRequests).toBe(2);
  });

  it('rejects only the caller whose signal aborts; the shared exchange goes on for the other', async () => {
    const resolve = resolverFor({ tokenEndpoint: idp.tokenEndpoint });
    const req = await requestFor('u-abort');
    idp.setLatency(200);
    const ac = new AbortController();
    const aborted = resolve({ ...req, signal: ac.signal });
    const kept = resolve(req);
    ac.abort();
    const err = await rejection(aborted);
    expect(err).toMatchObject({ reason: 'aborted', code: 'obo_aborted' });
    expect((await kept).accessToken).toBeTruthy();
    expect(idp.stats().exchanges).toBe(1);
    // An already aborted signal sends nothing.
    await rejection(resolve({ ...req, forceRefresh: true, signal: AbortSignal.abort() }));
    expect(idp.stats().exchanges).toBe(1);
  });

  it('reports an answer without access_token as empty_exchange_response', async () => {
    const resolve = resolverFor();
    idp.failNext(1, { status: 200, body: { token_type: 'Bearer', expires_in: 300 } });
    const err = await rejection(resolve(await requestFor('u-empty')));
    expect(err).toMatchObject({ reason: 'empty_exchange_response', retryable: false });
    expect(idp.stats().tokenRequests).toBe(1);
  });

  it('rejects a missing assertion and empty scopes without any IdP request', async () => {
    const resolve = resolverFor();
    const req = await requestFor('u-invalid');
    expect(await rejection(resolve({ ...req, assertion: '  ' }))).toMatchObject({ reason: 'missing_upstream_token', retryable: false });
    expect(await rejection(resolve({ ...req, scopes: [] }))).toMatchObject({ reason: 'invalid_request' });
    expect(idp.stats().tokenRequests + idp.stats().discovery).toBe(0);
  });

  it('never puts a token, assertion or secret into an error', async () => {
    const resolve = resolverFor();
    const req = await requestFor('u-leak', { expiresInSec: -60 });
    const echoed = await idp.mintAccessToken({ sub: 'someone' });
    const errors: OboError[] = [await rejection(resolve(req))];
    idp.failNext(2, { status: 400, error: 'invalid_request', error_description: `bad token ${echoed} and ${req.assertion}` });
    errors.push(await rejection(resolve(await requestFor('u-leak2'))));
    idp.failNext(2, { status: 503 });
    errors.push(await rejection(resolve(await requestFor('u-leak3'))));
    for (const err of errors) {
      for (const text of [JSON.stringify(err), err.message, JSON.stringify(err.cause), String(err.stack)]) {
        expect(text).not.toContain(req.assertion);
        expect(text).not.toContain(echoed);
        expect(text).not.toContain(idp.client.clientSecret);
      }
    }
    expect((errors[1]!.cause as { error_description?: string }).error_description).toBe('bad token [redacted] and [redacted]');
  });
});
