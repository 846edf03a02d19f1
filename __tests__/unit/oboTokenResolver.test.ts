import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { UnsecuredJWT, decodeJwt, decodeProtectedHeader, generateKeyPair } from 'jose';
import { MockAgent } from 'undici';
import { parseRetryAfter } from '../../src/auth/idpErrors.js';
import { createOboTokenResolver, type OboTokenResolverOptions } from '../../src/auth/oboTokenResolver.js';
import type { OboRequest } from '../../src/auth/oboTypes.js';
import { OboError } from '../../src/errors.js';
import { rejectionOf } from '../support/errors.js';

// The IdP is an undici MockAgent: nothing leaves the process (net connect disabled).
const ISSUER = 'https://idp.test';
const TOKEN_ENDPOINT = `${ISSUER}/token`;
const JSON_HEADERS = { headers: { 'content-type': 'application/json' } };

let mock: MockAgent;
let bodies: URLSearchParams[];
let headers: Record<string, string>[];

beforeEach(() => {
  mock = new MockAgent();
  mock.disableNetConnect();
  bodies = [];
  headers = [];
});

afterEach(async () => {
  await mock.close();
});

type Reply = { status: number; body?: unknown; headers?: Record<string, string> } | 'network';

/** Queues IdP answers, one per token request, recording each request's form body and headers. */
function idpAnswers(...replies: Reply[]): void {
  const pool = mock.get(ISSUER);
  for (const reply of replies) {
    const interceptor = pool.intercept({ path: '/token', method: 'POST' });
    if (reply === 'network') {
      interceptor.replyWithError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
      continue;
    }
    interceptor.reply((opts) => {
      bodies.push(new URLSearchParams(String(opts.body)));
      headers.push(opts.headers as Record<string, string>);
      const body = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body ?? {});
      const contentType = typeof reply.body === 'string' ? 'text/html' : 'application/json';
      return { statusCode: reply.status, data: body, responseOptions: { headers: { 'content-type': contentType, ...reply.headers } } };
    });
  }
}

function ok(token = 'downstream-token', expiresIn: number | null = 3600): Reply {
  return { status: 200, body: { access_token: token, token_type: 'Bearer', ...(expiresIn === null ? {} : { expires_in: expiresIn }) } };
}

function resolverFor(extra: Partial<OboTokenResolverOptions> = {}) {
  return createOboTokenResolver({
    issuer: ISSUER,
    tokenEndpoint: TOKEN_ENDPOINT,
    clientId: 'runtime',
    clientSecret: 'runtime-secret',
    dispatcher: mock,
    retryDelayMs: 0,
    ...extra,
  });
}

function assertionFor(claims: Record<string, unknown>): string {
  return new UnsecuredJWT({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims }).encode();
}

function request(extra: Partial<OboRequest> = {}): OboRequest {
  return {
    user: { id: 'u1', tenantId: 't1' },
    assertion: assertionFor({ sub: 'u1', tid: 't1', oid: 'o1' }),
    scopes: ['api://files/read', 'api://files/write'],
    serverName: 'files',
    ...extra,
  };
}

/** The rejection of `p`, checked to be a `OboError`. */
const rejection = (p: Promise<unknown>) => rejectionOf(p, OboError);

describe('createOboTokenResolver options', () => {
  const base = { issuer: ISSUER, clientId: 'c', clientSecret: 's' };
  it.each([
    ['no clientId', { ...base, clientId: '' }, 'clientId'],
    ['a bad issuer', { ...base, issuer: 'not a url' }, 'issuer'],
    ['an http issuer without allowInsecureRequests', { ...base, issuer: 'http://127.0.0.1:1' }, 'allowInsecureRequests'],
    ['an http token endpoint', { ...base, tokenEndpoint: 'http://127.0.0.1:1/token' }, 'https'],
    ['no secret and no key', { issuer: ISSUER, clientId: 'c' }, 'clientSecret or privateKey'],
    ['client_secret_basic without a secret', { issuer: ISSUER, clientId: 'c', clientAuthMethod: 'client_secret_basic' }, 'needs clientSecret'],
    ['private_key_jwt without a key', { ...base, clientAuthMethod: 'private_key_jwt' }, 'needs privateKey'],
    ['an unknown grant', { ...base, grant: 'password' }, 'grant'],
    ['a negative skew', { ...base, skewMs: -1 }, 'skewMs'],
    ['a zero timeout', { ...base, timeoutMs: 0 }, 'timeoutMs'],
    ['clientAuthMethod and the deprecated clientAuth disagreeing', { ...base, clientAuthMethod: 'client_secret_post', clientAuth: 'client_secret_basic' }, 'give clientAuthMethod only'],
    ['an unknown deprecated clientAuth', { ...base, clientAuth: 'none' }, 'createOboTokenResolver: clientAuth must be one of'],
  ])('throws a TypeError for %s', (_name, opts, message) => {
    expect(() => createOboTokenResolver(opts as OboTokenResolverOptions)).toThrow(TypeError);
    expect(() => createOboTokenResolver(opts as OboTokenResolverOptions)).toThrow(message);
  });

  it('accepts an http issuer when insecure requests are allowed', () => {
    expect(typeof createOboTokenResolver({ ...base, issuer: 'http://127.0.0.1:1', allowInsecureRequests: true })).toBe('function');
  });
});

describe('createOboTokenResolver requests', () => {
  it('sends an Entra-style OBO request with client_secret_post by default', async () => {
    idpAnswers(ok());
    const req = request();
    await resolverFor()(req);
    expect(Object.fromEntries(bodies[0]!)).toEqual({
      grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
      assertion: req.assertion,
      requested_token_use: 'on_behalf_of',
      scope: 'api://files/read api://files/write',
      client_id: 'runtime',
      client_secret: 'runtime-secret',
    });
    expect(headers[0]!.authorization).toBeUndefined();
  });

  it('sends an RFC 8693 token-exchange request with client_secret_basic', async () => {
    idpAnswers(ok(), ok());
    const resolve = resolverFor({ grant: 'token-exchange', clientAuthMethod: 'client_secret_basic' });
    const req = request({ scopes: ['read'], audience: 'api://files' });
    await resolve(req);
    expect(Object.fromEntries(bodies[0]!)).toEqual({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: req.assertion,
      subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      audience: 'api://files',
      scope: 'read',
    });
    // RFC 6749 §2.3.1: id and secret are form-urlencoded before base64 (openid-client escapes '-' too).
    const basic = Buffer.from(headers[0]!.authorization!.replace(/^Basic /, ''), 'base64').toString();
    expect(basic.split(':').map(decodeURIComponent)).toEqual(['runtime', 'runtime-secret']);
    await resolve({ ...req, audience: undefined, assertion: assertionFor({ sub: 'other' }) });
    expect(bodies[1]!.has('audience')).toBe(false);
  });

  it('still reads the deprecated clientAuth option (the former name of clientAuthMethod)', async () => {
    idpAnswers(ok());
    await resolverFor({ clientAuth: 'client_secret_basic' })(request());
    expect(headers[0]!.authorization).toMatch(/^Basic /);
    expect(bodies[0]!.has('client_secret')).toBe(false);
  });
});

describe('createOboTokenResolver private_key_jwt', () => {
  it('signs the client assertion with kid, and x5t#S256 and the token endpoint as aud when asked (Entra certificates)', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    idpAnswers(ok('a'), ok('b'));
    const entra = resolverFor({ clientSecret: undefined, clientAuthMethod: 'private_key_jwt', privateKey: { key: privateKey, kid: 'k1', x5tS256: 'thumb-256', assertionAudience: 'token_endpoint' } });
    await entra(request());
    const plain = resolverFor({ clientSecret: undefined, privateKey });
    await plain(request());
    const [first, second] = bodies.map((b) => b.get('client_assertion')!);
    expect(decodeProtectedHeader(first!)).toMatchObject({ alg: 'RS256', kid: 'k1', 'x5t#S256': 'thumb-256' });
    expect(decodeJwt(first!)).toMatchObject({ iss: 'runtime', sub: 'runtime', aud: TOKEN_ENDPOINT });
    expect(decodeProtectedHeader(second!)).not.toHaveProperty('x5t#S256');
    expect(decodeJwt(second!).aud).not.toBe(TOKEN_ENDPOINT);
    expect(bodies[0]!.get('client_assertion_type')).toBe('urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
  });

  it('rejects an unknown assertionAudience with a TypeError', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    expect(() => resolverFor({ clientSecret: undefined, privateKey: { key: privateKey, assertionAudience: 'nope' as never } })).toThrow(/assertionAudience/);
  });
});

describe('createOboTokenResolver cache', () => {
  it('binds cache entries to the exchanged assertion by default: another token naming the same user is exchanged', async () => {
    idpAnswers(ok('t-1'), ok('t-2'));
    const resolve = resolverFor();
    await resolve(request({ assertion: assertionFor({ sub: 'pairwise-1', tid: 't1', oid: 'o1', jti: 'a' }) }));
    // An unsigned token claiming the same tid/oid must never be served the cached token.
    const forged = await resolve(request({ assertion: assertionFor({ sub: 'pairwise-2', tid: 't1', oid: 'o1', jti: 'b' }) }));
    expect(forged).toMatchObject({ accessToken: 't-2', cacheHit: false });
    expect(bodies).toHaveLength(2);
  });

  it('with bindCacheToAssertion: false, keys Entra users by tid + oid: a refreshed assertion of the same user hits the cache', async () => {
    idpAnswers(ok('t-1'));
    const resolve = resolverFor({ bindCacheToAssertion: false });
    await resolve(request({ assertion: assertionFor({ sub: 'pairwise-1', tid: 't1', oid: 'o1', jti: 'a' }) }));
    const again = await resolve(request({ assertion: assertionFor({ sub: 'pairwise-2', tid: 't1', oid: 'o1', jti: 'b' }) }));
    expect(again.accessToken).toBe('t-1');
    expect(bodies).toHaveLength(1);
  });

  it('keys opaque (non-JWT) assertions by a digest of the assertion', async () => {
    idpAnswers(ok('opaque-1'), ok('opaque-2'));
    const resolve = resolverFor();
    expect((await resolve(request({ assertion: 'opaque-a' }))).accessToken).toBe('opaque-1');
    expect((await resolve(request({ assertion: 'opaque-a' }))).accessToken).toBe('opaque-1');
    expect((await resolve(request({ assertion: 'opaque-b' }))).accessToken).toBe('opaque-2');
    expect(bodies).toHaveLength(2);
  });

  it('does not cache a token without expires_in', async () => {
    idpAnswers(ok('a', null), ok('b', null));
    const resolve = resolverFor();
    const first = await resolve(request());
    expect(first).toEqual({ accessToken: 'a', cacheHit: false });
    expect((await resolve(request())).accessToken).toBe('b');
  });

  it('evicts the least recently used entry beyond maxEntries', async () => {
    idpAnswers(ok('x1'), ok('y1'), ok('x2'));
    const resolve = resolverFor({ maxEntries: 1 });
    const x = request({ assertion: assertionFor({ sub: 'x' }) });
    await resolve(x);
    await resolve(request({ assertion: assertionFor({ sub: 'y' }) }));
    expect((await resolve(x)).accessToken).toBe('x2');
  });

  it('does not let a slower exchange started earlier overwrite a forced, newer token', async () => {
    const pool = mock.get(ISSUER);
    pool
      .intercept({ path: '/token', method: 'POST' })
      .reply(200, { access_token: 'old', token_type: 'Bearer', expires_in: 3600 }, JSON_HEADERS)
      .delay(150);
    pool.intercept({ path: '/token', method: 'POST' }).reply(200, { access_token: 'new', token_type: 'Bearer', expires_in: 3600 }, JSON_HEADERS);
    const resolve = resolverFor();
    const req = request();
    const slow = resolve(req);
    const forced = await resolve({ ...req, forceRefresh: true });
    expect(forced.accessToken).toBe('new');
    expect((await slow).accessToken).toBe('old');
    expect((await resolve(req)).accessToken).toBe('new');
  });

  it('drops the cached token on forceRefresh even when the refresh fails', async () => {
    idpAnswers(ok('rejected-by-server'), { status: 400, body: { error: 'invalid_grant' } }, ok('fresh'));
    const resolve = resolverFor();
    const req = request();
    await resolve(req);
    await rejection(resolve({ ...req, forceRefresh: true }));
    expect((await resolve(req)).accessToken).toBe('fresh');
  });

  it('answers a cache hit in microseconds', async () => {
    idpAnswers(ok());
    const resolve = resolverFor();
    const req = request();
    await resolve(req);
    const n = 20_000;
    const started = performance.now();
    for (let i = 0; i < n; i++) await resolve(req);
    const perHitUs = ((performance.now() - started) * 1000) / n;
    // Generous bound for a loaded CI machine; typically a few µs.
    expect(perHitUs).toBeLessThan(100);
  });

  it('ignores an onExchange listener that throws', async () => {
    idpAnswers(ok('fine'));
    const resolve = resolverFor({
      onExchange: () => {
        throw new Error('listener bug');
      },
    });
    expect((await resolve(request())).accessToken).toBe('fine');
    expect((await resolve(request())).accessToken).toBe('fine');
  });
});

describe('createOboTokenResolver failures', () => {
  it('retries a 502 with a non-JSON body once and reports it retryable', async () => {
    idpAnswers({ status: 502, body: '<html>bad gateway</html>' }, { status: 502, body: '<html>bad gateway</html>' });
    const err = await rejection(resolverFor()(request()));
    expect(err).toMatchObject({ reason: 'exchange_failed', retryable: true });
    expect(err.cause).toEqual({ status: 502 });
    expect(bodies).toHaveLength(2);
  });

  it('retries a network error once', async () => {
    idpAnswers('network', ok('after-blip'));
    expect((await resolverFor()(request())).accessToken).toBe('after-blip');
  });

  it('reports two network errors as a retryable exchange_failed with the network code', async () => {
    idpAnswers('network', 'network');
    const err = await rejection(resolverFor()(request()));
    expect(err).toMatchObject({ reason: 'exchange_failed', retryable: true });
    expect(err.cause).toEqual({ network: expect.any(String) });
  });

  it('honours an HTTP-date Retry-After against the injected clock', async () => {
    const now = Date.parse('2030-01-01T00:00:00Z');
    const waits: number[] = [];
    idpAnswers({ status: 429, body: { error: 'slow_down' }, headers: { 'retry-after': 'Tue, 01 Jan 2030 00:00:02 GMT' } }, ok());
    // The assertion must be valid by the injected clock: an expired one is refused without a request.
    const assertion = assertionFor({ sub: 'u1', exp: Math.floor(now / 1000) + 3600 });
    await resolverFor({ now: () => now, sleep: async (ms) => void waits.push(ms) })(request({ assertion }));
    expect(waits).toEqual([2000]);
  });

  it('treats temporarily_unavailable as transient and other 4xx as permanent', async () => {
    idpAnswers({ status: 400, body: { error: 'temporarily_unavailable' } }, ok('second'));
    expect((await resolverFor()(request())).accessToken).toBe('second');
    idpAnswers({ status: 403, body: { error: 'unauthorized_client' } });
    const err = await rejection(resolverFor()(request()));
    expect(err).toMatchObject({ retryable: false, cause: { status: 403, error: 'unauthorized_client' } });
  });

  it('reports a 200 that is not JSON as a permanent exchange_failed', async () => {
    idpAnswers({ status: 200, body: 'not json' });
    const err = await rejection(resolverFor()(request()));
    expect(err).toMatchObject({ reason: 'exchange_failed', retryable: false });
    expect(bodies).toHaveLength(1);
  });

  it('reports an empty access_token as empty_exchange_response', async () => {
    idpAnswers({ status: 200, body: { access_token: '', token_type: 'Bearer' } });
    expect(await rejection(resolverFor()(request()))).toMatchObject({ reason: 'empty_exchange_response', retryable: false });
  });

  it('rejects bad requests before any IdP traffic', async () => {
    const resolve = resolverFor();
    expect(await rejection(resolve(request({ assertion: '' })))).toMatchObject({ reason: 'missing_upstream_token' });
    expect(await rejection(resolve(request({ assertion: undefined as unknown as string })))).toMatchObject({ reason: 'missing_upstream_token' });
    expect(await rejection(resolve(request({ scopes: [] })))).toMatchObject({ reason: 'invalid_request' });
    expect(await rejection(resolve(request({ scopes: ['a b'] })))).toMatchObject({ reason: 'invalid_request' });
    expect(await rejection(resolve(request({ signal: AbortSignal.abort() })))).toMatchObject({ reason: 'aborted' });
    expect(bodies).toHaveLength(0);
  });
});

describe('parseRetryAfter', () => {
  it('reads delta-seconds and HTTP dates, and ignores junk', () => {
    expect(parseRetryAfter('3', 0)).toBe(3000);
    expect(parseRetryAfter(null, 0)).toBeUndefined();
    expect(parseRetryAfter('soon', 0)).toBeUndefined();
    const now = Date.parse('2030-01-01T00:00:00Z');
    expect(parseRetryAfter('Tue, 01 Jan 2030 00:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('Mon, 31 Dec 2029 00:00:00 GMT', now)).toBe(0);
  });
});
