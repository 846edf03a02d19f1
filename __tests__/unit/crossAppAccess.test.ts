import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { UnsecuredJWT } from 'jose';
import { createOboTokenResolver } from '../../src/auth/oboTokenResolver.js';
import { createOboAuthHeaderProvider } from '../../src/auth/obo.js';
import type { OboRequest } from '../../src/auth/oboTypes.js';
import { oboSchema } from '../../src/config/schema.js';
import { OboError } from '../../src/errors.js';
import { rejection } from '../support/errors.js';

// One loopback server plays the IdP (/idp/*), the MCP server's protected-resource metadata (RFC 9728) and its
// authorization server (/as/*, RFC 8414). Every request is recorded.
interface Seen {
  method: string;
  path: string;
  authorization: string | undefined;
  body: URLSearchParams;
}

let server: Server;
let base: string;
let seen: Seen[];
let asAnswer: { status: number; body: Record<string, unknown> };

const ID_JAG = 'eyJ0eXAiOiJvYXV0aC1pZC1qYWcrand0In0.e30.sig';
const AS_CLIENT = { clientId: 'mcp client:1', clientSecret: 's3cr%t:x' };

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (c: Buffer) => (data += c.toString()));
    req.on('end', () => resolve(data));
  });
}

beforeAll(async () => {
  server = createServer(async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const body = new URLSearchParams(await readBody(req));
    seen.push({ method: req.method ?? '', path, authorization: req.headers.authorization, body });
    const json = (status: number, value: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(value));
    };
    if (path === '/.well-known/oauth-protected-resource/mcp') {
      return json(200, { resource: `${base}/mcp`, authorization_servers: [`${base}/as`] });
    }
    if (path === '/.well-known/oauth-authorization-server/as') {
      return json(200, {
        issuer: `${base}/as`,
        token_endpoint: `${base}/as/token`,
        authorization_endpoint: `${base}/as/authorize`,
        response_types_supported: ['code'],
        grant_types_supported: ['urn:ietf:params:oauth:grant-type:jwt-bearer'],
      });
    }
    if (path === '/idp/token') {
      return json(200, { access_token: ID_JAG, issued_token_type: 'urn:ietf:params:oauth:token-type:id-jag', token_type: 'N_A' });
    }
    if (path === '/as/token') return json(asAnswer.status, asAnswer.body);
    json(404, { error: 'not_found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  seen = [];
  asAnswer = { status: 200, body: { access_token: 'mcp-access-token', token_type: 'Bearer', expires_in: 3600 } };
});

const idToken = (sub = 'alice') => new UnsecuredJWT({ sub, aud: 'idp-client' }).setIssuer('https://idp.example').setExpirationTime('1h').encode();

function resolver() {
  return createOboTokenResolver({ grant: 'cross-app-access', issuer: `${base}/idp`, tokenEndpoint: `${base}/idp/token`, clientId: 'idp-client', allowInsecureRequests: true });
}

function request(extra: Partial<OboRequest> = {}): OboRequest {
  return {
    user: { id: 'alice' },
    assertion: idToken(),
    scopes: [],
    serverName: 'crm',
    serverUrl: `${base}/mcp`,
    authorizationServerClient: AS_CLIENT,
    ...extra,
  };
}

const tokenRequests = () => seen.filter((s) => s.path.endsWith('/token'));

describe("createOboTokenResolver({ grant: 'cross-app-access' })", () => {
  it('exchanges the ID token for an ID-JAG at the IdP, then the ID-JAG at the authorization server', async () => {
    const req = request({ scopes: ['crm.read'] });
    const token = await resolver()(req);
    expect(token).toMatchObject({ accessToken: 'mcp-access-token', cacheHit: false });

    const [idp, as] = tokenRequests();
    expect(idp!.path).toBe('/idp/token');
    expect(Object.fromEntries(idp!.body)).toEqual({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      requested_token_type: 'urn:ietf:params:oauth:token-type:id-jag',
      audience: `${base}/as`,
      resource: `${base}/mcp`,
      subject_token: req.assertion,
      subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
      scope: 'crm.read',
      client_id: 'idp-client', // a public client: no secret, no Authorization header
    });
    expect(idp!.authorization).toBeUndefined();

    expect(as!.path).toBe('/as/token');
    expect(Object.fromEntries(as!.body)).toEqual({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: ID_JAG, scope: 'crm.read' });
    // client_secret_basic, id and secret form-urlencoded first (RFC 6749 §2.3.1)
    const basic = Buffer.from(as!.authorization!.replace(/^Basic /, ''), 'base64').toString();
    const [id, secret] = basic.split(':');
    expect([decodeURIComponent(id!.replace(/\+/g, ' ')), decodeURIComponent(secret!)]).toEqual([AS_CLIENT.clientId, AS_CLIENT.clientSecret]);
  });

  it('sends no scope when none is configured', async () => {
    await resolver()(request());
    for (const r of tokenRequests()) expect(r.body.has('scope')).toBe(false);
  });

  it('caches per user and server: a second call makes no exchange; forceRefresh makes one', async () => {
    const resolve = resolver();
    const req = request();
    await resolve(req);
    const first = seen.length;
    await expect(resolve(req)).resolves.toMatchObject({ accessToken: 'mcp-access-token', cacheHit: true });
    expect(seen.length).toBe(first);

    const [a, b] = await Promise.all([resolve({ ...req, forceRefresh: true }), resolve({ ...req, forceRefresh: true })]);
    expect(a.accessToken).toBe(b.accessToken);
    expect(tokenRequests()).toHaveLength(4); // one more exchange (IdP + AS) for both forced callers
  });

  it('keys the cache by server URL', async () => {
    const resolve = resolver();
    await resolve(request());
    await resolve(request({ serverUrl: `${base}/mcp?tenant=b` }));
    expect(tokenRequests()).toHaveLength(4);
  });

  it('maps an authorization server refusal to OboError exchange_failed, without retrying', async () => {
    asAnswer = { status: 400, body: { error: 'invalid_grant' } };
    const err = await rejection(resolver()(request()));
    expect(err).toBeInstanceOf(OboError);
    expect(err).toMatchObject({ reason: 'exchange_failed', retryable: false });
    expect(tokenRequests()).toHaveLength(2);
  });

  it('refuses a request without serverUrl or authorizationServerClient (invalid_request)', async () => {
    await expect(resolver()(request({ serverUrl: undefined }))).rejects.toMatchObject({ reason: 'invalid_request' });
    await expect(resolver()(request({ authorizationServerClient: undefined }))).rejects.toMatchObject({ reason: 'invalid_request' });
    expect(seen).toHaveLength(0);
  });

  it("allows clientAuthMethod 'none' only with this grant", () => {
    expect(() => createOboTokenResolver({ issuer: 'https://idp.example', clientId: 'c', clientAuthMethod: 'none' })).toThrow(/is only allowed with grant 'cross-app-access'/);
    expect(() => createOboTokenResolver({ issuer: 'https://idp.example', clientId: 'c' })).toThrow(TypeError);
  });

  it('is fed by the auth header provider from the obo config, ${ENV} placeholders resolved', async () => {
    process.env.XAA_TEST_SECRET = AS_CLIENT.clientSecret;
    const obo = oboSchema.parse({ grant: 'cross-app-access', clientId: AS_CLIENT.clientId, clientSecret: '${XAA_TEST_SECRET}' });
    const provider = createOboAuthHeaderProvider({ serverName: 'crm', obo, serverUrl: `${base}/mcp`, resolver: resolver(), user: { id: 'alice', upstreamToken: idToken() } });
    await expect(provider({ url: new URL(`${base}/mcp`), method: 'POST', forceRefresh: false })).resolves.toEqual({ Authorization: 'Bearer mcp-access-token' });
    const basic = Buffer.from(tokenRequests()[1]!.authorization!.replace(/^Basic /, ''), 'base64').toString();
    expect(decodeURIComponent(basic.split(':')[1]!)).toBe(AS_CLIENT.clientSecret);
    delete process.env.XAA_TEST_SECRET;
  });
});

describe('oboSchema with cross-app-access', () => {
  it('needs clientId and clientSecret, and no scopes', () => {
    expect(oboSchema.parse({ grant: 'cross-app-access', clientId: 'c', clientSecret: 's' })).toEqual({ grant: 'cross-app-access', clientId: 'c', clientSecret: 's' });
    expect(oboSchema.safeParse({ grant: 'cross-app-access', clientId: 'c' }).success).toBe(false);
  });

  it('still requires scopes for the other grants, and refuses a client there', () => {
    expect(oboSchema.safeParse({}).success).toBe(false);
    expect(oboSchema.safeParse({ scopes: 'a', clientId: 'c' }).success).toBe(false);
  });
});
