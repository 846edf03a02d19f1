import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { connect } from 'node:net';
import * as client from 'openid-client';
import { SignJWT, createRemoteJWKSet, decodeJwt, decodeProtectedHeader, generateKeyPair, jwtVerify } from 'jose';
import { startTestIdp, type TestIdp } from '../../src/testing/testIdp.js';

const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

let idp: TestIdp;
let config: client.Configuration;

async function configFor(auth: client.ClientAuth, clientId = idp.client.clientId): Promise<client.Configuration> {
  return client.discovery(new URL(idp.issuer), clientId, undefined, auth, { execute: [client.allowInsecureRequests] });
}

/** The OAuth error of a rejected grant request (fails the test when the request succeeded). */
async function oauthError(p: Promise<unknown>): Promise<{ status: number; error: string; retryAfter: string | null }> {
  const err = await p.then(
    () => {
      throw new Error('expected the request to fail');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(client.ResponseBodyError);
  const e = err as client.ResponseBodyError;
  return { status: e.status, error: e.error, retryAfter: e.response.headers.get('retry-after') };
}

function obo(cfg: client.Configuration, assertion: string, scope = 'api://mcp-downstream/.default') {
  return client.genericGrantRequest(cfg, JWT_BEARER, { assertion, requested_token_use: 'on_behalf_of', scope });
}

beforeAll(async () => {
  idp = await startTestIdp();
  config = await configFor(client.ClientSecretPost(idp.client.clientSecret));
});

afterAll(async () => {
  await idp.close();
});

beforeEach(() => {
  idp.setLatency(0);
});

describe('startTestIdp', () => {
  it('publishes discovery metadata that openid-client accepts', async () => {
    idp.resetStats();
    const cfg = await configFor(client.ClientSecretBasic(idp.client.clientSecret));
    const meta = cfg.serverMetadata();
    expect(meta.issuer).toBe(idp.issuer);
    expect(meta.token_endpoint).toBe(idp.tokenEndpoint);
    expect(meta.jwks_uri).toBe(idp.jwksUri);
    expect(meta.grant_types_supported).toEqual(expect.arrayContaining([JWT_BEARER, TOKEN_EXCHANGE, 'refresh_token']));
    expect(idp.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(idp.stats().discovery).toBe(1);
  });

  it('mints user access tokens that verify against its JWKS', async () => {
    const token = await idp.mintAccessToken({ sub: 'alice', tenantId: 't1', scopes: ['a', 'b'], claims: { email: 'a@x' } });
    const header = decodeProtectedHeader(token);
    expect(header).toMatchObject({ alg: 'RS256', typ: 'at+jwt' });
    const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(idp.jwksUri)), {
      issuer: idp.issuer,
      audience: idp.runtimeAudience,
      typ: 'at+jwt',
    });
    expect(payload).toMatchObject({ sub: 'alice', oid: 'alice', tid: 't1', scp: 'a b', email: 'a@x' });
    expect(payload.exp! - payload.iat!).toBe(3600);
    expect(idp.stats().jwks).toBeGreaterThanOrEqual(1);
  });

  it('exchanges an assertion with jwt-bearer (on_behalf_of) for a downstream token', async () => {
    const assertion = await idp.mintAccessToken({ sub: 'alice', tenantId: 't1' });
    const res = await obo(config, assertion);
    expect(res.token_type).toBe('bearer');
    expect(res.expires_in).toBe(300);
    expect(res.scope).toBe('access_as_user');
    const { payload } = await jwtVerify(res.access_token, createRemoteJWKSet(new URL(idp.jwksUri)), {
      issuer: idp.issuer,
      audience: idp.downstreamAudience,
    });
    expect(payload).toMatchObject({ sub: 'alice', oid: 'alice', tid: 't1', scp: 'access_as_user', azp: idp.client.clientId, client_id: idp.client.clientId });
    expect(typeof payload.jti).toBe('string');
    expect(payload.exp! - payload.iat!).toBe(300);

    const named = await obo(config, assertion, 'api://other-api/read api://other-api/write');
    expect(decodeJwt(named.access_token)).toMatchObject({ aud: 'api://other-api', scp: 'read write' });
    expect(decodeJwt(named.access_token).jti).not.toBe(payload.jti);
  });

  it('exchanges a subject token with RFC 8693 token-exchange for the requested audience', async () => {
    const subject = await idp.mintAccessToken({ sub: 'bob', tenantId: 't2' });
    const res = await client.genericGrantRequest(config, TOKEN_EXCHANGE, {
      subject_token: subject,
      subject_token_type: ACCESS_TOKEN_TYPE,
      audience: idp.downstreamAudience,
      scope: 'files.read',
    });
    expect(res.issued_token_type).toBe(ACCESS_TOKEN_TYPE);
    expect(decodeJwt(res.access_token)).toMatchObject({ aud: idp.downstreamAudience, sub: 'bob', tid: 't2', scp: 'files.read' });
  });

  it('answers invalid_grant for an expired, foreign or wrong-audience assertion', async () => {
    const expired = await idp.mintAccessToken({ sub: 'alice', expiresInSec: -30 });
    expect(await oauthError(obo(config, expired))).toMatchObject({ status: 400, error: 'invalid_grant' });

    const wrongAud = await idp.mintAccessToken({ sub: 'alice', audience: idp.downstreamAudience });
    expect(await oauthError(obo(config, wrongAud))).toMatchObject({ status: 400, error: 'invalid_grant' });

    const { privateKey } = await generateKeyPair('RS256');
    const foreign = await new SignJWT({ sub: 'alice', aud: idp.runtimeAudience, iss: idp.issuer })
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt' })
      .setExpirationTime('1h')
      .sign(privateKey);
    expect(await oauthError(obo(config, foreign))).toMatchObject({ error: 'invalid_grant' });
    expect(await oauthError(obo(config, 'not-a-jwt'))).toMatchObject({ error: 'invalid_grant' });
    const teForeign = client.genericGrantRequest(config, TOKEN_EXCHANGE, { subject_token: foreign, subject_token_type: ACCESS_TOKEN_TYPE });
    expect(await oauthError(teForeign)).toMatchObject({ error: 'invalid_grant' });

    const good = await idp.mintAccessToken({ sub: 'alice' });
    const noUse = client.genericGrantRequest(config, JWT_BEARER, { assertion: good, scope: 'x' });
    expect(await oauthError(noUse)).toMatchObject({ error: 'invalid_request' });
  });

  it('authenticates the client with client_secret_basic, client_secret_post and private_key_jwt; rejects a bad secret', async () => {
    const assertion = await idp.mintAccessToken({ sub: 'carol' });
    const basic = await configFor(client.ClientSecretBasic(idp.client.clientSecret));
    expect((await obo(basic, assertion)).access_token).toBeTruthy();
    expect((await obo(config, assertion)).access_token).toBeTruthy();
    const { clientId, privateKey, kid } = idp.privateKeyJwtClient;
    const pk = await configFor(client.PrivateKeyJwt({ key: privateKey, kid }), clientId);
    const r = await obo(pk, assertion);
    expect(decodeJwt(r.access_token).azp).toBe(clientId);

    const bad = await configFor(client.ClientSecretPost('wrong'));
    expect(await oauthError(obo(bad, assertion))).toMatchObject({ status: 401, error: 'invalid_client' });
  });

  it('rotates refresh tokens: the new one works, the old one and revoked sessions get invalid_grant', async () => {
    const session = await idp.startSession({ sub: 'dave', tenantId: 't1', expiresInSec: 120 });
    expect(decodeJwt(session.accessToken)).toMatchObject({ sub: 'dave', tid: 't1', aud: idp.runtimeAudience });
    expect(session.expiresAt).toBeGreaterThan(Date.now() + 100_000);
    idp.resetStats();

    const first = await client.refreshTokenGrant(config, session.refreshToken);
    expect(first.refresh_token).toBeTruthy();
    expect(first.refresh_token).not.toBe(session.refreshToken);
    expect(first.expires_in).toBe(120);
    expect(decodeJwt(first.access_token)).toMatchObject({ sub: 'dave', tid: 't1', aud: idp.runtimeAudience });
    expect(idp.stats()).toMatchObject({ refreshes: 1, exchanges: 0, tokenRequests: 1 });

    expect(await oauthError(client.refreshTokenGrant(config, session.refreshToken))).toMatchObject({ error: 'invalid_grant' });
    const second = await client.refreshTokenGrant(config, first.refresh_token!);
    idp.revokeSessions('dave');
    expect(await oauthError(client.refreshTokenGrant(config, second.refresh_token!))).toMatchObject({ error: 'invalid_grant' });
  });

  it('keeps refresh tokens when rotation is off', async () => {
    const other = await startTestIdp({ rotateRefreshTokens: false, accessTokenTtlSec: 60 });
    try {
      const cfg = await client.discovery(new URL(other.issuer), other.client.clientId, other.client.clientSecret, undefined, {
        execute: [client.allowInsecureRequests],
      });
      const session = await other.startSession({ sub: 'erin' });
      const a = await client.refreshTokenGrant(cfg, session.refreshToken);
      const b = await client.refreshTokenGrant(cfg, session.refreshToken);
      expect(a.refresh_token).toBe(session.refreshToken);
      expect(b.expires_in).toBe(60);
    } finally {
      await other.close();
    }
  });

  it('injects faults per grant with body and Retry-After, then recovers', async () => {
    const assertion = await idp.mintAccessToken({ sub: 'frank', tenantId: 't9' });
    const session = await idp.startSession({ sub: 'frank' });
    idp.resetStats();
    idp.failNext(1, { status: 400, error: 'invalid_grant', grant: 'refresh' });
    idp.failNext(2, { status: 429, retryAfterSec: 3, error_codes: [50196], grant: 'exchange' });

    // The refresh fault does not touch exchanges; the exchange fault does not touch refreshes.
    expect(await oauthError(obo(config, assertion))).toEqual({ status: 429, error: 'slow_down', retryAfter: '3' });
    expect(await oauthError(client.refreshTokenGrant(config, session.refreshToken))).toMatchObject({ status: 400, error: 'invalid_grant' });
    const second = await obo(config, assertion).catch((e: client.ResponseBodyError) => e);
    expect(second).toBeInstanceOf(client.ResponseBodyError);
    expect((second as client.ResponseBodyError).cause).toMatchObject({ error: 'slow_down', error_codes: [50196] });
    expect((await obo(config, assertion)).access_token).toBeTruthy();
    expect((await client.refreshTokenGrant(config, session.refreshToken)).access_token).toBeTruthy();
    expect(idp.stats()).toMatchObject({ tokenRequests: 5, exchanges: 3, refreshes: 2 });

    // 5xx answers are not OAuth-conform for openid-client: it reports the raw response.
    idp.failNext(1, { status: 503, error: 'temporarily_unavailable', retryAfterSec: 1 });
    const err = (await obo(config, assertion).catch((e: unknown) => e)) as client.ClientError;
    expect(err.code).toBe('OAUTH_RESPONSE_IS_NOT_CONFORM');
    const res = err.cause as Response;
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(await res.json()).toEqual({ error: 'temporarily_unavailable' });
  });

  it('delays token responses by the configured latency', async () => {
    const assertion = await idp.mintAccessToken({ sub: 'gina' });
    // A request that arrives under a latency (ten minutes here) is held for it; one that arrives after the
    // latency is removed is answered at once, overtaking it.
    idp.setLatency(600_000);
    let heldSettled = false;
    const held = obo(config, assertion).then(
      () => (heldSettled = true),
      () => (heldSettled = true),
    );
    await idp.waitForTokenRequests(idp.stats().tokenRequests + 1);
    idp.setLatency(0);
    expect((await obo(config, assertion)).access_token).toBeTruthy();
    expect(heldSettled).toBe(false);
    // Held, not dropped: a short latency still ends in an answer.
    idp.setLatency(20);
    expect((await obo(config, assertion)).access_token).toBeTruthy();
    // Release the held request (down() ends every pending delay) and restore the IdP.
    await idp.down();
    await held;
    await idp.up();
  });

  it('refuses connections while down and answers again on the same port after up()', async () => {
    const assertion = await idp.mintAccessToken({ sub: 'hank' });
    await idp.down();
    await idp.down(); // idempotent
    const { port } = new URL(idp.issuer);
    const refused = await new Promise<string | undefined>((resolve) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.destroy();
        resolve('connected');
      });
      socket.on('error', (e: NodeJS.ErrnoException) => resolve(e.code));
    });
    expect(refused).toBe('ECONNREFUSED');
    await idp.up();
    expect((await obo(config, assertion)).access_token).toBeTruthy();
  });

  it('closes idempotently, ending requests held by latency', async () => {
    const other = await startTestIdp();
    const cfg = await client.discovery(new URL(other.issuer), other.client.clientId, other.client.clientSecret, undefined, {
      execute: [client.allowInsecureRequests],
    });
    const assertion = await other.mintAccessToken({ sub: 'ivy' });
    other.setLatency(60_000);
    const pending = obo(cfg, assertion).then(
      () => 'ok',
      () => 'failed',
    );
    // The request is held by the latency once it was counted.
    await other.waitForTokenRequests(1);
    await Promise.all([other.close(), other.close()]);
    expect(await pending).toBe('failed');
    await expect(other.up()).rejects.toThrow('closed');
  });
});
