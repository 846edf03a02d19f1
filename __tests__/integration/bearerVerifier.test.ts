import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK } from 'jose';
import { BearerError } from '../../src/errors.js';
import { createBearerVerifier, type BearerVerifierOptions } from '../../src/auth/bearerVerifier.js';
import { authenticateRequest, createBearerMiddleware, type AuthenticatedRequest } from '../../src/auth/httpAdapter.js';
import { startTestIdp, type TestIdp } from '../../src/testing/testIdp.js';
import { rejectionOf } from '../support/errors.js';

type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;

/** A loopback issuer of our own: discovery documents and a JWKS, with switches for every failure we need. */
class KeyServer {
  readonly server: Server;
  issuer = '';
  keys = new Map<string, { pair: KeyPair; jwk: JWK }>();
  hits = { oidc: 0, oauth: 0, jwks: 0 };
  oidcDocument: 'ok' | 'missing' | 'wrong-issuer' = 'ok';
  jwksStatus = 200;

  constructor() {
    this.server = createServer((req, res) => this.#handle(req, res));
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.issuer = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/tenant`;
    return this;
  }

  async stop(): Promise<void> {
    if (!this.server.listening) return;
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  async addKey(kid: string): Promise<void> {
    const pair = await generateKeyPair('RS256', { extractable: true });
    this.keys.set(kid, { pair, jwk: { ...(await exportJWK(pair.publicKey)), kid, alg: 'RS256', use: 'sig' } });
  }

  async mint(claims: Record<string, unknown> = {}, o: { kid?: string; expSec?: number } = {}): Promise<string> {
    const kid = o.kid ?? [...this.keys.keys()][0]!;
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ sub: 'user-1', tid: 'contoso', scp: 'mcp.tools', ...claims })
      .setProtectedHeader({ alg: 'RS256', kid })
      .setIssuer(this.issuer)
      .setAudience('api://runtime')
      .setIssuedAt(now)
      .setExpirationTime(now + (o.expSec ?? 600))
      .sign(this.keys.get(kid)!.pair.privateKey);
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const origin = this.issuer.replace(/\/tenant$/, '');
    const send = (status: number, body?: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(body === undefined ? '' : JSON.stringify(body));
    };
    switch (req.url) {
      case '/tenant/.well-known/openid-configuration':
        this.hits.oidc++;
        if (this.oidcDocument === 'missing') return send(404);
        return send(200, { issuer: this.oidcDocument === 'wrong-issuer' ? `${origin}/other` : this.issuer, jwks_uri: `${origin}/keys` });
      case '/.well-known/oauth-authorization-server/tenant':
        this.hits.oauth++;
        return send(200, { issuer: this.issuer, jwks_uri: `${origin}/keys` });
      case '/keys':
        this.hits.jwks++;
        if (this.jwksStatus !== 200) return send(this.jwksStatus, { error: 'unavailable' });
        return send(200, { keys: [...this.keys.values()].map((k) => k.jwk) });
      default:
        return send(404);
    }
  }
}

/** The rejection of `p`, checked to be a `BearerError`. */
const rejection = (p: Promise<unknown>) => rejectionOf(p, BearerError);

describe('createBearerVerifier against a loopback issuer', () => {
  let ks: KeyServer;
  let clock: { t: number };
  const make = (o: Partial<BearerVerifierOptions> = {}) =>
    createBearerVerifier({ issuer: ks.issuer, audience: 'api://runtime', allowInsecureRequests: true, now: () => clock.t, ...o });

  beforeEach(async () => {
    ks = await new KeyServer().start();
    await ks.addKey('k1');
    clock = { t: Date.now() };
  });
  afterEach(() => ks.stop());

  it('discovers the JWKS through OpenID Connect discovery once, then serves from cache', async () => {
    const v = make();
    for (let i = 0; i < 5; i++) expect((await v.verify(`Bearer ${await ks.mint()}`)).tenantId).toBe('contoso');
    expect(ks.hits).toEqual({ oidc: 1, oauth: 0, jwks: 1 });
  });

  it('falls back to RFC 8414 metadata when there is no OpenID configuration', async () => {
    ks.oidcDocument = 'missing';
    const v = make();
    expect((await v.verify(await ks.mint())).subject).toBe('user-1');
    expect(ks.hits).toEqual({ oidc: 1, oauth: 1, jwks: 1 });
  });

  it('refuses metadata naming another issuer', async () => {
    ks.oidcDocument = 'wrong-issuer';
    ks.server.removeAllListeners('request');
    ks.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      // every metadata document names another issuer
      const origin = ks.issuer.replace(/\/tenant$/, '');
      res.writeHead(req.url?.includes('.well-known') ? 200 : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ issuer: `${origin}/other`, jwks_uri: `${origin}/keys` }));
    });
    const err = await rejection(make().verify(await ks.mint()));
    expect(err.code).toBe('jwks_unavailable');
    expect(err.httpStatus).toBe(401);
    expect(err.retryable).toBe(true);
  });

  it('uses an explicit jwksUri without discovery', async () => {
    const v = make({ jwksUri: `${ks.issuer.replace(/\/tenant$/, '')}/keys` });
    await v.verify(await ks.mint());
    expect(ks.hits).toEqual({ oidc: 0, oauth: 0, jwks: 1 });
  });

  it('rejects HS256 signed with the RSA public key (PEM and JWK) without touching the network', async () => {
    const v = make();
    const pub = ks.keys.get('k1')!.pair.publicKey;
    const now = Math.floor(Date.now() / 1000);
    for (const secret of [await exportSPKI(pub), JSON.stringify(await exportJWK(pub))]) {
      const forged = await new SignJWT({ sub: 'admin' })
        .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
        .setIssuer(ks.issuer)
        .setAudience('api://runtime')
        .setExpirationTime(now + 600)
        .sign(new TextEncoder().encode(secret));
      expect((await rejection(v.verify(forged))).code).toBe('invalid_signature');
    }
    expect(ks.hits.jwks).toBe(0);
  });

  it('picks up a rotated key with a new kid after the cooldown, and drops the retired one', async () => {
    const v = make();
    const old = await ks.mint();
    await v.verify(old);
    ks.keys.clear();
    await ks.addKey('k2');
    const rotated = await ks.mint({}, { kid: 'k2' });
    expect((await rejection(v.verify(rotated))).code).toBe('invalid_signature'); // cooldown: no refetch yet
    expect(ks.hits.jwks).toBe(1);
    clock.t += 30_000;
    expect((await v.verify(rotated)).subject).toBe('user-1');
    expect(ks.hits.jwks).toBe(2);
    expect((await rejection(v.verify(old))).code).toBe('invalid_signature');
  });

  it('keeps verifying with the last good keys while the JWKS endpoint is down, for a bounded time', async () => {
    const v = make({ jwksCacheMaxAgeMs: 60_000, jwksStaleMaxAgeMs: 300_000 });
    await v.verify(await ks.mint());
    ks.jwksStatus = 503;
    clock.t += 61_000;
    expect((await v.verify(await ks.mint())).subject).toBe('user-1');
    expect(ks.hits.jwks).toBe(2);
    await ks.stop(); // now connection refused
    clock.t += 200_000;
    expect((await v.verify(await ks.mint())).subject).toBe('user-1');
    clock.t += 100_000; // 361 s after the load: beyond 60 + 300
    const err = await rejection(v.verify(await ks.mint({}, { expSec: 3600 })));
    expect(err.code).toBe('jwks_unavailable');
    expect(err.wwwAuthenticate).toContain('error="invalid_token"');
  });

  describe('http adapter', () => {
    let app: Server;
    let url: string;
    beforeEach(async () => {
      const guard = createBearerMiddleware(make({ realm: 'runtime' }), {
        requiredScopes: ['mcp.tools'],
        resourceMetadataUrl: 'http://127.0.0.1/.well-known/oauth-protected-resource',
      });
      app = createServer((req, res) =>
        guard(req, res, (err) => {
          if (err) return void res.writeHead(500).end();
          const auth = (req as AuthenticatedRequest).auth!;
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ clientId: auth.clientId, scopes: auth.scopes, extra: { subject: auth.extra.subject, tenantId: auth.extra.tenantId }, hasToken: auth.token.length > 0 }));
        }),
      );
      await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
      url = `http://127.0.0.1:${(app.address() as AddressInfo).port}/mcp`;
    });
    afterEach(async () => {
      app.closeAllConnections();
      await new Promise<void>((r) => app.close(() => r()));
    });

    it('answers 401 without a token, 401 for a bad one, 403 for a missing scope, and passes a good one', async () => {
      const missing = await fetch(url);
      expect(missing.status).toBe(401);
      expect(missing.headers.get('www-authenticate')).toBe(
        'Bearer realm="runtime", resource_metadata="http://127.0.0.1/.well-known/oauth-protected-resource"',
      );
      expect(await missing.text()).toBe('');

      const bad = await fetch(url, { headers: { authorization: `Bearer ${await ks.mint({}, { expSec: -3600 })}` } });
      expect(bad.status).toBe(401);
      expect(bad.headers.get('www-authenticate')).toMatch(/^Bearer realm="runtime", error="invalid_token", error_description="[^"]+", resource_metadata=/);
      expect(await bad.json()).toEqual({ error: 'invalid_token', error_description: expect.any(String) });

      const scopeless = await fetch(url, { headers: { authorization: `Bearer ${await ks.mint({ scp: 'other' })}` } });
      expect(scopeless.status).toBe(403);
      expect(scopeless.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
      expect(scopeless.headers.get('www-authenticate')).toContain('scope="mcp.tools"');

      const ok = await fetch(url, { headers: { authorization: `Bearer ${await ks.mint({ azp: 'client-app', roles: ['Reader'] })}` } });
      expect(ok.status).toBe(200);
      expect(await ok.json()).toEqual({ clientId: 'client-app', scopes: ['mcp.tools', 'Reader'], extra: { subject: 'user-1', tenantId: 'contoso' }, hasToken: true });
    });

    it('authenticateRequest returns the bearer or answers the request itself', async () => {
      const v = make();
      const results: unknown[] = [];
      const plain = createServer(async (req, res) => {
        const b = await authenticateRequest(v, req, res);
        results.push(b?.subject);
        if (b) res.end('ok');
      });
      await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
      try {
        const base = `http://127.0.0.1:${(plain.address() as AddressInfo).port}`;
        expect((await fetch(base)).status).toBe(401);
        expect((await fetch(base, { headers: { authorization: `Bearer ${await ks.mint()}` } })).status).toBe(200);
        expect(results).toEqual([undefined, 'user-1']);
      } finally {
        plain.closeAllConnections();
        await new Promise<void>((r) => plain.close(() => r()));
      }
    });
  });
});

describe('createBearerVerifier with the test IdP', () => {
  let idp: TestIdp;
  beforeAll(async () => {
    idp = await startTestIdp();
  });
  afterAll(() => idp?.close());

  const make = () => createBearerVerifier({ issuer: idp.issuer, audience: idp.runtimeAudience, allowInsecureRequests: true, requiredScopes: ['access_as_user'] });

  it('verifies the IdP’s real access tokens via discovery and keeps the keys cached', async () => {
    idp.resetStats();
    const v = make();
    const token = await idp.mintAccessToken({ sub: 'user-42', tenantId: 'contoso', scopes: ['access_as_user', 'Files.Read'] });
    const b = await v.verify(`Bearer ${token}`);
    expect(b).toMatchObject({ subject: 'user-42', tenantId: 'contoso', scopes: ['access_as_user', 'Files.Read'] });
    expect(v.toUserContext(b)).toEqual({ id: 'user-42', tenantId: 'contoso', upstreamToken: token });
    const session = await idp.startSession({ sub: 'user-43' });
    expect((await v.verify(session.accessToken)).subject).toBe('user-43');
    expect(idp.stats()).toMatchObject({ discovery: 1, jwks: 1 });
  });

  it('rejects the IdP’s tokens that are expired, not yet valid, for another audience, scopeless or subjectless', async () => {
    const v = make();
    const cases: [Parameters<TestIdp['mintAccessToken']>[0], string][] = [
      [{ sub: 'u', expiresInSec: -3600 }, 'expired'],
      [{ sub: 'u', notBeforeSec: 3600 }, 'not_yet_valid'],
      [{ sub: 'u', audience: idp.downstreamAudience }, 'wrong_audience'],
      [{ sub: 'u', claims: { iss: 'https://evil.example' } }, 'wrong_issuer'],
      [{ sub: 'u', scopes: ['other'] }, 'insufficient_scope'],
      [{ sub: 'u', claims: { sub: undefined } }, 'missing_subject'],
    ];
    for (const [mint, code] of cases) {
      expect({ code: (await rejection(v.verify(await idp.mintAccessToken(mint)))).code, mint }).toEqual({ code, mint });
    }
    // scopes as an array claim
    const arr = await idp.mintAccessToken({ sub: 'u', claims: { scp: ['access_as_user', 'x'] } });
    expect((await v.verify(arr)).scopes).toEqual(['access_as_user', 'x']);
  });

  it('rejects a token signed by another key that claims the IdP’s kid', async () => {
    const v = make();
    const real = await idp.mintAccessToken({ sub: 'u' });
    const [header, payload] = real.split('.');
    const other = await generateKeyPair('RS256');
    const forged = await new SignJWT(JSON.parse(Buffer.from(payload!, 'base64url').toString()))
      .setProtectedHeader(JSON.parse(Buffer.from(header!, 'base64url').toString()))
      .sign(other.privateKey);
    expect((await rejection(v.verify(forged))).code).toBe('invalid_signature');
  });
});
