/**
 * Adversarial tests of the MCP authorization flow run by the package (issue 12). Every verdict is taken on the
 * SERVER side: what the protected MCP server received as Authorization, and what the authorization server
 * received at its token / registration endpoints. A scriptable authorization server and MCP server on
 * 127.0.0.1 (below) give full control over metadata, token answers, timing and failures; no sleeps, the clock
 * is injected (`oauth.now`), waits are promises.
 *
 * Nine of them failed against the first version of the flow (a code exchanged at another authorization server
 * after rediscovery, a callback completed after revocation, a per-call config wiping the grant, secrets in error
 * causes, unbounded metadata, registration storms, …); all pin properties that must not regress.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { inspect } from 'node:util';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { AuthorizationError, AuthorizationRequiredError, SwitchboardError } from '../../src/errors.js';
import { MCPConnectionFactory } from '../../src/MCPConnectionFactory.js';
import { MCPManager } from '../../src/MCPManager.js';
import type { OAuthOptions } from '../../src/oauth/authorizer.js';
import { MemoryOAuthFlowStore, MemoryOAuthStore } from '../../src/oauth/store.js';
import { HttpClient } from '../../src/transport/httpClient.js';
import type { UserContext } from '../../src/types.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

// ---------------------------------------------------------------------------------------------------------
// Scriptable peers

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void | Promise<void>;

interface Peer {
  origin: string;
  routes: Map<string, Handler>;
  close(): Promise<void>;
}

async function startPeer(): Promise<Peer> {
  const http: HttpServer = createServer();
  const sockets = new Set<Socket>();
  http.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => http.listen({ port: 0, host: '127.0.0.1' }, () => resolve()));
  const origin = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const routes = new Map<string, Handler>();
  http.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', origin).pathname;
    const handler = routes.get(path) ?? [...routes].find(([p]) => p.endsWith('*') && path.startsWith(p.slice(0, -1)))?.[1];
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (!handler) return void res.writeHead(404).end();
      Promise.resolve(handler(req, res, Buffer.concat(chunks).toString('utf8'))).catch(() => {
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
  });
  return {
    origin,
    routes,
    close: () =>
      new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
        for (const s of sockets) s.destroy();
      }),
  };
}

const json = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
const s256 = (v: string) => createHash('sha256').update(v).digest('base64url');
let lastBasic = '';
const APP_CLIENT = { id: 'app-client', secret: 's3cret-app-client-secret' };
const rnd = (p: string) => `${p}_${randomBytes(18).toString('base64url')}`;

interface TokenRecord {
  grant: string;
  params: Record<string, string>;
  status: number;
  issuedAccess?: string;
  issuedRefresh?: string;
}

/** What a token-endpoint hook may do: answer itself (status/body), kill the socket, or let the AS answer. */
type TokenHookResult = { status: number; body: string; contentType?: string } | 'destroy' | undefined;

interface FakeAs extends Peer {
  issuer: string;
  metadata: Record<string, unknown>;
  tokenRequests: TokenRecord[];
  registrations: number;
  authorizeHits: number;
  /** Access tokens this AS issued: token → subject. */
  accessTokens: Map<string, string>;
  refreshTokens: Map<string, { sub: string; used: boolean }>;
  codes: Map<string, { sub: string; challenge: string; used: boolean; clientId: string }>;
  secrets: Set<string>;
  tokenHook?: (params: Record<string, string>) => Promise<TokenHookResult> | TokenHookResult;
  /** Resolves once `n` token requests arrived (before they are answered). */
  tokenArrivals(n: number): Promise<void>;
  accessTtlSec: number;
  /** The "browser": consents as `sub` and returns the callback URL (never requested). */
  approve(authorizationUrl: URL | string, sub: string): string;
}

async function startFakeAs(): Promise<FakeAs> {
  const peer = await startPeer();
  const issuer = peer.origin;
  let arrived = 0;
  const watchers: { n: number; resolve: () => void }[] = [];
  const as: FakeAs = {
    ...peer,
    issuer,
    metadata: {
      issuer,
      authorization_endpoint: `${issuer}/authorize`,
      token_endpoint: `${issuer}/token`,
      registration_endpoint: `${issuer}/register`,
      response_types_supported: ['code'],
      grant_types_supported: ['authorization_code', 'refresh_token'],
      code_challenge_methods_supported: ['S256'],
      token_endpoint_auth_methods_supported: ['none', 'client_secret_basic'],
      authorization_response_iss_parameter_supported: true,
    },
    tokenRequests: [],
    registrations: 0,
    authorizeHits: 0,
    accessTokens: new Map(),
    refreshTokens: new Map(),
    codes: new Map(),
    secrets: new Set(),
    accessTtlSec: 300,
    tokenArrivals: (n) => (arrived >= n ? Promise.resolve() : new Promise<void>((resolve) => watchers.push({ n, resolve }))),
    approve(authorizationUrl, sub) {
      const u = new URL(String(authorizationUrl));
      const q = u.searchParams;
      const code = rnd('code');
      as.secrets.add(code);
      as.codes.set(code, { sub, challenge: q.get('code_challenge') ?? '', used: false, clientId: q.get('client_id') ?? '' });
      const cb = new URL(q.get('redirect_uri')!);
      cb.searchParams.set('code', code);
      cb.searchParams.set('state', q.get('state') ?? '');
      cb.searchParams.set('iss', issuer);
      return cb.href;
    },
  };
  const serveMetadata: Handler = (_req, res) => void json(res, 200, as.metadata);
  peer.routes.set('/.well-known/oauth-authorization-server', serveMetadata);
  peer.routes.set('/.well-known/openid-configuration', serveMetadata);
  peer.routes.set('/authorize', (_req, res) => {
    as.authorizeHits++;
    res.writeHead(400).end();
  });
  peer.routes.set('/register', (_req, res, body) => {
    as.registrations++;
    const meta = JSON.parse(body || '{}');
    json(res, 201, { ...meta, client_id: rnd('client'), token_endpoint_auth_method: 'none', client_id_issued_at: Math.floor(Date.now() / 1000) });
  });
  peer.routes.set('/token', async (_req, res, body) => {
    const params = Object.fromEntries(new URLSearchParams(body));
    if (params.code_verifier) as.secrets.add(params.code_verifier);
    const rec: TokenRecord = { grant: params.grant_type ?? '', params, status: 0 };
    as.tokenRequests.push(rec);
    arrived++;
    for (const w of watchers.filter((x) => arrived >= x.n)) {
      watchers.splice(watchers.indexOf(w), 1);
      w.resolve();
    }
    lastBasic = String(_req.headers.authorization ?? '');
    const hooked = await as.tokenHook?.(params);
    if (hooked === 'destroy') {
      rec.status = -1;
      res.socket?.destroy();
      return;
    }
    if (hooked) {
      rec.status = hooked.status;
      res.writeHead(hooked.status, { 'content-type': hooked.contentType ?? 'application/json' }).end(hooked.body);
      return;
    }
    const fail = (error: string) => {
      rec.status = 400;
      json(res, 400, { error });
    };
    let sub: string;
    if (params.grant_type === 'authorization_code') {
      const c = as.codes.get(params.code ?? '');
      if (!c || c.used) return fail('invalid_grant');
      c.used = true;
      if (s256(params.code_verifier ?? '') !== c.challenge) return fail('invalid_grant');
      sub = c.sub;
    } else if (params.grant_type === 'refresh_token') {
      const r = as.refreshTokens.get(params.refresh_token ?? '');
      if (!r || r.used) return fail('invalid_grant');
      r.used = true; // rotation: a refresh token works once
      sub = r.sub;
    } else if (params.grant_type === 'client_credentials') {
      const basic = /^Basic (.+)$/.exec(String(_req.headers.authorization ?? ''))?.[1];
      const [id, secret] = basic ? Buffer.from(basic, 'base64').toString('utf8').split(':').map(decodeURIComponent) : [params.client_id, params.client_secret];
      if (id !== APP_CLIENT.id || secret !== APP_CLIENT.secret) return fail('invalid_client');
      sub = `app:${id}`;
    } else {
      return fail('unsupported_grant_type');
    }
    const access = rnd('at');
    const refresh = rnd('rt');
    as.secrets.add(access);
    as.secrets.add(refresh);
    as.accessTokens.set(access, sub);
    as.refreshTokens.set(refresh, { sub, used: false });
    Object.assign(rec, { status: 200, issuedAccess: access, issuedRefresh: refresh });
    json(res, 200, { access_token: access, token_type: 'Bearer', expires_in: as.accessTtlSec, refresh_token: refresh, scope: params.scope ?? 'read' });
  });
  return as;
}

interface McpRecord {
  method: string;
  authorization?: string;
  sub?: string;
  outcome: 'none' | 'invalid' | 'ok';
}

interface FakeMcp extends Peer {
  url: string;
  /** The resource_metadata URL named in the 401 challenge (mutable). */
  challengeMetadataUrl: string;
  /** Protected-resource metadata per path under /.well-known/oauth-protected-resource. */
  prm: Map<string, unknown>;
  requests: McpRecord[];
  /** Bearer tokens of ANY of these authorization servers are accepted (the verdict is recorded per request). */
  trust: FakeAs[];
  sent(): string[];
}

async function startFakeMcp(trust: FakeAs[]): Promise<FakeMcp> {
  const peer = await startPeer();
  const url = `${peer.origin}/mcp`;
  const mcp: FakeMcp = {
    ...peer,
    url,
    challengeMetadataUrl: `${peer.origin}/.well-known/oauth-protected-resource/mcp`,
    prm: new Map(),
    requests: [],
    trust,
    sent: () => mcp.requests.filter((r) => r.authorization).map((r) => r.authorization!),
  };
  mcp.prm.set('/.well-known/oauth-protected-resource/mcp', { resource: url, authorization_servers: [trust[0]!.issuer], scopes_supported: ['read'] });
  peer.routes.set('/.well-known/oauth-protected-resource*', (req, res) => {
    const path = new URL(req.url ?? '/', peer.origin).pathname;
    const doc = mcp.prm.get(path);
    if (typeof doc === 'function') return (doc as Handler)(req, res, '');
    if (doc === undefined) return void res.writeHead(404).end();
    json(res, 200, doc);
  });
  peer.routes.set('/mcp', async (req, res, body) => {
    const rec: McpRecord = { method: req.method ?? '', outcome: 'none' };
    mcp.requests.push(rec);
    const authz = req.headers.authorization;
    if (authz) rec.authorization = authz;
    const token = authz?.startsWith('Bearer ') ? authz.slice(7) : undefined;
    const sub = token ? mcp.trust.map((a) => a.accessTokens.get(token)).find(Boolean) : undefined;
    if (!sub) {
      rec.outcome = token ? 'invalid' : 'none';
      res.writeHead(401, { 'www-authenticate': `Bearer ${token ? 'error="invalid_token", ' : ''}resource_metadata="${mcp.challengeMetadataUrl}"` }).end();
      return;
    }
    rec.outcome = 'ok';
    rec.sub = sub;
    if (req.method !== 'POST') return void res.writeHead(405, { allow: 'POST' }).end();
    const server = new McpServer({ name: 'fake', version: '1.0.0' });
    server.registerTool('whoami', { description: 'who' }, async (): Promise<CallToolResult> => ({ content: [{ type: 'text', text: sub }] }));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    await server.connect(transport);
    await transport.handleRequest(req, res, body ? JSON.parse(body) : undefined);
    res.on('close', () => void server.close().catch(() => {}));
  });
  return mcp;
}

// ---------------------------------------------------------------------------------------------------------
// Fixtures

let as: FakeAs;
let as2: FakeAs;
let mcp: FakeMcp;
let mcp2: FakeMcp;
let REDIRECT: string;
const cleanups: (() => Promise<unknown> | unknown)[] = [];

beforeAll(async () => {
  as = await startFakeAs();
  as2 = await startFakeAs();
  mcp = await startFakeMcp([as, as2]);
  mcp2 = await startFakeMcp([as, as2]);
  REDIRECT = `${as.origin}/never-requested/callback`;
});
afterAll(async () => {
  await Promise.all([as, as2, mcp, mcp2].map((p) => p?.close()));
});
beforeEach(() => {
  for (const a of [as, as2]) {
    a.tokenRequests.length = 0;
    a.registrations = 0;
    a.tokenHook = undefined;
    a.accessTtlSec = 300;
    a.metadata = { ...a.metadata, issuer: a.issuer };
  }
  for (const m of [mcp, mcp2]) {
    m.requests.length = 0;
    m.challengeMetadataUrl = `${m.origin}/.well-known/oauth-protected-resource/mcp`;
    m.prm.clear();
    m.prm.set('/.well-known/oauth-protected-resource/mcp', { resource: m.url, authorization_servers: [as.issuer], scopes_supported: ['read'] });
  }
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Made {
  manager: MCPManager;
  store: MemoryOAuthStore;
  logs: unknown[][];
  events: unknown[];
  clock: { now: number };
}

function makeManager(opts: { oauth?: Partial<OAuthOptions>; servers?: Record<string, unknown>; httpClient?: HttpClient } = {}): Made {
  const clock = { now: Date.now() };
  const store = new MemoryOAuthStore();
  const logs: unknown[][] = [];
  const log =
    (level: string) =>
    (...args: unknown[]) =>
      void logs.push([level, ...args]);
  const logger: any = { trace: log('trace'), debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error'), fatal: log('fatal') };
  logger.child = () => logger;
  const factory = opts.httpClient ? new MCPConnectionFactory({ httpClient: opts.httpClient }) : undefined;
  const manager = new MCPManager({
    servers: (opts.servers ?? { notes: { url: mcp.url, oauth: {} } }) as never,
    oauth: { redirectUri: REDIRECT, store, now: () => clock.now, ...opts.oauth },
    logger,
    ...(factory ? { connectionFactory: factory } : {}),
  });
  const events: unknown[] = [];
  for (const name of ['connect', 'disconnect', 'evict', 'error', 'authorizationRequired'] as const) manager.on(name, (e: unknown) => void events.push([name, e]));
  cleanups.push(async () => {
    await manager.close();
    await factory?.close();
    await opts.httpClient?.close();
  });
  return { manager, store, logs, events, clock };
}

const whoami = async (manager: MCPManager, user: UserContext, extra: Record<string, unknown> = {}) => {
  const r = (await manager.callTool({ user, serverName: 'notes', toolName: 'whoami', ...extra })) as CallToolResult;
  return (r.content[0] as { text: string }).text;
};

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  );
}
async function authRequired(p: Promise<unknown>): Promise<AuthorizationRequiredError> {
  const err = await rejection(p);
  expect(err).toBeInstanceOf(AuthorizationRequiredError);
  return err as AuthorizationRequiredError;
}
async function authError(p: Promise<unknown>, code: string): Promise<AuthorizationError> {
  const err = await rejection(p);
  expect(err).toBeInstanceOf(AuthorizationError);
  expect((err as AuthorizationError).code).toBe(code);
  return err as AuthorizationError;
}

/** Consent for `user` on the default manager/server: call → browser → callback → call. */
async function consent(m: MCPManager, user: UserContext, server: FakeAs = as): Promise<string> {
  const err = await authRequired(whoami(m, user));
  await m.completeAuthorization(server.approve(err.authorizationUrl, user.id), { user });
  return whoami(m, user);
}

const codeGrants = (a: FakeAs = as) => a.tokenRequests.filter((r) => r.grant === 'authorization_code');
const refreshGrants = (a: FakeAs = as) => a.tokenRequests.filter((r) => r.grant === 'refresh_token');

// ---------------------------------------------------------------------------------------------------------

describe('callback attacks', () => {
  it('one callback URL completed twice concurrently: exactly one success, one code redemption', async () => {
    const { manager } = makeManager();
    const alice = { id: 'alice' };
    const err = await authRequired(whoami(manager, alice));
    const cb = as.approve(err.authorizationUrl, 'alice');
    const [a, b] = await Promise.allSettled([manager.completeAuthorization(cb, { user: alice }), manager.completeAuthorization(cb, { user: alice })]);
    expect([a.status, b.status].sort()).toEqual(['fulfilled', 'rejected']);
    const failed = (a.status === 'rejected' ? a : b) as PromiseRejectedResult;
    expect(failed.reason).toBeInstanceOf(AuthorizationError);
    expect(failed.reason.code).toBe('authorization_invalid_state');
    expect(codeGrants()).toHaveLength(1);
    expect(await whoami(manager, alice)).toBe('alice');
  });

  it("A's state completed in B's session is refused and spends nothing at the AS; without a session user it completes for A only", async () => {
    const { manager } = makeManager();
    const alice = { id: 'alice' };
    const bob = { id: 'bob' };
    const e1 = await authRequired(whoami(manager, alice));
    await authError(manager.completeAuthorization(as.approve(e1.authorizationUrl, 'alice'), { user: bob }), 'authorization_user_mismatch');
    expect(codeGrants()).toHaveLength(0);
    // No session user: the flow completes for the user who started it, never for the caller.
    const e2 = await authRequired(whoami(manager, alice));
    await expect(manager.completeAuthorization(as.approve(e2.authorizationUrl, 'alice'))).resolves.toMatchObject({ userId: 'alice' });
    await authRequired(whoami(manager, bob));
    expect(mcp.requests.filter((r) => r.sub === 'alice' || r.authorization).every((r) => r.sub === 'alice')).toBe(true);
    expect(mcp.requests.some((r) => r.sub === 'bob')).toBe(false);
  });

  it('error=access_denied → authorization_denied (no token request); missing code, no state, garbage URL → authorization_invalid_state', async () => {
    const { manager } = makeManager();
    const alice = { id: 'alice' };
    const e1 = await authRequired(whoami(manager, alice));
    const denied = new URL(REDIRECT);
    denied.searchParams.set('error', 'access_denied');
    denied.searchParams.set('state', e1.state);
    denied.searchParams.set('iss', as.issuer);
    await authError(manager.completeAuthorization(denied, { user: alice }), 'authorization_denied');

    const e2 = await authRequired(whoami(manager, alice));
    const noCode = new URL(as.approve(e2.authorizationUrl, 'alice'));
    noCode.searchParams.delete('code');
    await authError(manager.completeAuthorization(noCode, { user: alice }), 'authorization_invalid_state');
    const noState = new URL(as.approve(e2.authorizationUrl, 'alice'));
    noState.searchParams.delete('state');
    await authError(manager.completeAuthorization(noState, { user: alice }), 'authorization_invalid_state');
    await authError(manager.completeAuthorization('::not a url::', { user: alice }), 'authorization_invalid_state');
    await authError(manager.completeAuthorization({ code: 'x', state: 'y'.repeat(5000) }, { user: alice }), 'authorization_invalid_state');
    expect(as.tokenRequests).toHaveLength(0);
    expect(mcp.sent()).toHaveLength(0);
  });

  it("A's code injected into B's callback (B's state): the exchange fails (PKCE), B gets no token, A's code is never redeemed", async () => {
    const { manager } = makeManager();
    const alice = { id: 'alice' };
    const bob = { id: 'bob' };
    const ea = await authRequired(whoami(manager, alice));
    const eb = await authRequired(whoami(manager, bob));
    const aliceCode = new URL(as.approve(ea.authorizationUrl, 'alice')).searchParams.get('code')!;
    const injected = new URL(as.approve(eb.authorizationUrl, 'bob'));
    injected.searchParams.set('code', aliceCode);
    const err = await authError(manager.completeAuthorization(injected, { user: bob }), 'authorization_failed');
    expect(err.retryable).toBe(false);
    expect(codeGrants().every((r) => r.status !== 200)).toBe(true);
    await authRequired(whoami(manager, bob));
    expect(mcp.sent()).toHaveLength(0);
  });

  it('a callback arriving after revokeAuthorization is refused (the revoke forgets the pending flow) and no token reaches the server', async () => {
    const { manager } = makeManager();
    const alice = { id: 'alice' };
    const err = await authRequired(whoami(manager, alice));
    const cb = as.approve(err.authorizationUrl, 'alice');
    await manager.revokeAuthorization({ user: alice, serverName: 'notes' });
    await authError(manager.completeAuthorization(cb, { user: alice }), 'authorization_invalid_state');
    expect(codeGrants()).toHaveLength(0);
    await authRequired(whoami(manager, alice));
    expect(mcp.sent()).toHaveLength(0);
  });

  it('a callback after upsertServer changed the URL, or after removeServer, is refused before the token endpoint', async () => {
    const { manager } = makeManager();
    const alice = { id: 'alice' };
    const e1 = await authRequired(whoami(manager, alice));
    manager.upsertServer('notes', { url: mcp2.url, oauth: {} });
    await authError(manager.completeAuthorization(as.approve(e1.authorizationUrl, 'alice'), { user: alice }), 'authorization_invalid_state');
    manager.upsertServer('notes', { url: mcp.url, oauth: {} });
    const e2 = await authRequired(whoami(manager, alice));
    await manager.removeServer('notes');
    await authError(manager.completeAuthorization(as.approve(e2.authorizationUrl, 'alice'), { user: alice }), 'authorization_invalid_state');
    expect(as.tokenRequests).toHaveLength(0);
  });

  it('after upsertServer changes the URL, the next call gets a consent link for the NEW server (not the old flow, whose callback is refused)', async () => {
    const { manager } = makeManager();
    const alice = { id: 'alice' };
    const e1 = await authRequired(whoami(manager, alice));
    manager.upsertServer('notes', { url: mcp2.url, oauth: {} });
    const e2 = await authRequired(whoami(manager, alice));
    expect(e2.state).not.toBe(e1.state);
    expect(e2.authorizationUrl.searchParams.get('resource')).toBe(mcp2.url);
    await manager.completeAuthorization(as.approve(e2.authorizationUrl, 'alice'), { user: alice });
    expect(await whoami(manager, alice)).toBe('alice');
  });

  it('code exchange goes to the flow`s authorization server, even if discovery for the server URL changed meanwhile (no code/verifier to another AS)', async () => {
    const { manager } = makeManager();
    const alice = { id: 'alice' };
    const bob = { id: 'bob' };
    const ea = await authRequired(whoami(manager, alice));
    expect(ea.authorizationUrl.origin).toBe(as.issuer);
    // The server's challenge now names another metadata document, whose authorization server is AS2.
    mcp.prm.set('/.well-known/oauth-protected-resource/alt', { resource: mcp.url, authorization_servers: [as2.issuer], scopes_supported: ['read'] });
    mcp.challengeMetadataUrl = `${mcp.origin}/.well-known/oauth-protected-resource/alt`;
    const eb = await authRequired(whoami(manager, bob));
    expect(eb.authorizationUrl.origin).toBe(as2.issuer);
    // Alice's callback from AS1 (iss = AS1, as the flow expects).
    await rejection(manager.completeAuthorization(as.approve(ea.authorizationUrl, 'alice'), { user: alice }));
    expect(as2.tokenRequests).toHaveLength(0);
  });
});

describe('token confusion', () => {
  it('tokens for URL 1 are never sent after upsertServer moves the name to URL 2', async () => {
    const { manager } = makeManager();
    const alice = { id: 'alice' };
    expect(await consent(manager, alice)).toBe('alice');
    manager.upsertServer('notes', { url: mcp2.url, oauth: {} });
    await authRequired(whoami(manager, alice));
    expect(mcp2.sent()).toHaveLength(0);
  });

  it('a per-call serverConfig with the same name and another URL gets no token, and does not destroy the user`s grant for the configured server', async () => {
    const http = new HttpClient({ userSsrf: { allowHosts: ['127.0.0.1'] } });
    const { manager } = makeManager({ httpClient: http });
    const alice = { id: 'alice' };
    expect(await consent(manager, alice)).toBe('alice');
    const tokenSeen = mcp.sent()[0]!;
    const perCall = await rejection(whoami(manager, alice, { serverConfig: { url: mcp2.url, oauth: {} } }));
    expect(perCall).toBeInstanceOf(SwitchboardError);
    expect(mcp2.sent()).toHaveLength(0);
    expect(mcp2.sent()).not.toContain(tokenSeen);
    // The operator's server still works with Alice's consent: no new authorization, no foreign consent link.
    const after = await rejection(whoami(manager, alice));
    if (after instanceof AuthorizationRequiredError) expect(after.authorizationUrl.searchParams.get('resource')).toBe(mcp.url);
    expect(after).toBeUndefined();
  });

  it('two tenants with the same user id: each gets only its own token', async () => {
    const { manager } = makeManager();
    const t1 = { id: 'alice', tenantId: 't1' };
    const t2 = { id: 'alice', tenantId: 't2' };
    expect(await consent(manager, t1)).toBe('alice');
    const mark = mcp.requests.length;
    const err = await authRequired(whoami(manager, t2));
    expect(mcp.requests.slice(mark).every((r) => !r.authorization)).toBe(true);
    await authError(manager.completeAuthorization(as.approve(err.authorizationUrl, 'alice'), { user: t1 }), 'authorization_user_mismatch');
  });
});

describe('app grant vs user grant', () => {
  it('the app`s client-credentials token is never sent on a user connection, nor a user`s token on the app connection (same MCP URL)', async () => {
    const { manager } = makeManager({
      servers: {
        reports: { url: mcp.url, oauth: { grant: 'client_credentials', clientId: APP_CLIENT.id, clientSecret: APP_CLIENT.secret } },
        notes: { url: mcp.url, oauth: {} },
      },
    });
    const report = async (user?: UserContext) =>
      ((await manager.callTool({ ...(user ? { user } : {}), serverName: 'reports', toolName: 'whoami' })) as CallToolResult).content[0] as { text: string };
    expect((await report()).text).toBe(`app:${APP_CLIENT.id}`);
    const appTokens = new Set(as.tokenRequests.filter((r) => r.grant === 'client_credentials').map((r) => `Bearer ${r.issuedAccess}`));
    const alice = { id: 'alice' };
    const mark = mcp.requests.length;
    await authRequired(whoami(manager, alice));
    expect(mcp.requests.slice(mark).every((r) => !r.authorization)).toBe(true);
    expect(await consent(manager, alice)).toBe('alice');
    expect((await report(alice)).text).toBe(`app:${APP_CLIENT.id}`);
    expect(await whoami(manager, alice)).toBe('alice');
    for (const r of mcp.requests.filter((x) => x.authorization)) expect(appTokens.has(r.authorization!)).toBe(r.sub === `app:${APP_CLIENT.id}`);
    expect(mcp.requests.some((r) => r.sub === 'alice')).toBe(true);
  });
});

describe('metadata attacks', () => {
  it('AS metadata naming another issuer (mix-up) → authorization_issuer_mismatch, nothing registered, no authorization URL', async () => {
    const { manager, events } = makeManager();
    as.metadata = { ...as.metadata, issuer: as2.issuer };
    await authError(whoami(manager, { id: 'alice' }), 'authorization_issuer_mismatch');
    expect(as.registrations + as2.registrations).toBe(0);
    expect(events.filter((e) => (e as unknown[])[0] === 'authorizationRequired')).toHaveLength(0);
  });

  it('PRM whose resource is another server → refused before any request to the authorization server (no client registered)', async () => {
    const { manager, events } = makeManager();
    mcp.prm.set('/.well-known/oauth-protected-resource/mcp', { resource: mcp2.url, authorization_servers: [as.issuer], scopes_supported: ['read'] });
    const err = await rejection(whoami(manager, { id: 'alice' }));
    expect(err).toBeInstanceOf(AuthorizationError);
    expect(err).not.toBeInstanceOf(AuthorizationRequiredError);
    expect(events.filter((e) => (e as unknown[])[0] === 'authorizationRequired')).toHaveLength(0);
    expect(as.registrations).toBe(0);
  });

  it('a source:user server whose metadata points OAuth endpoints at 169.254.169.254: ssrf_blocked, nothing sent there', async () => {
    const http = new HttpClient({ userSsrf: { allowHosts: ['127.0.0.1'] } });
    const { manager } = makeManager({ httpClient: http, servers: { notes: { url: mcp.url, oauth: {}, source: 'user' } } });
    as.metadata = { ...as.metadata, registration_endpoint: 'http://169.254.169.254/latest/meta-data/register', token_endpoint: 'http://169.254.169.254/token' };
    const err = await rejection(whoami(manager, { id: 'alice' }));
    expect((err as SwitchboardError).code).toBe('ssrf_blocked');
    // And authorization_servers pointing there directly.
    as.metadata = { ...as.metadata, registration_endpoint: `${as.issuer}/register`, token_endpoint: `${as.issuer}/token` };
    mcp.prm.set('/.well-known/oauth-protected-resource/mcp', { resource: mcp.url, authorization_servers: ['http://169.254.169.254'] });
    const m2 = makeManager({ httpClient: new HttpClient({ userSsrf: { allowHosts: ['127.0.0.1'] } }), servers: { notes: { url: mcp.url, oauth: {}, source: 'user' } } });
    const err2 = await rejection(whoami(m2.manager, { id: 'alice' }));
    expect(err2).toBeInstanceOf(SwitchboardError);
    expect(err2).not.toBeInstanceOf(AuthorizationRequiredError);
    expect(['ssrf_blocked', 'authorization_failed']).toContain((err2 as SwitchboardError).code);
  });

  it('a 10 MB protected-resource metadata document is not read whole (OAuth responses are capped like the IdP ones)', async () => {
    const { manager } = makeManager();
    const pad = 'x'.repeat(10 * 1024 * 1024);
    mcp.prm.set('/.well-known/oauth-protected-resource/mcp', ((_req: IncomingMessage, res: ServerResponse) =>
      json(res, 200, { resource: mcp.url, authorization_servers: [as.issuer], scopes_supported: ['read'], pad })) as unknown);
    const err = await rejection(whoami(manager, { id: 'alice' }));
    expect(err).toBeInstanceOf(AuthorizationError);
    expect(err).not.toBeInstanceOf(AuthorizationRequiredError);
  });

  it('a 302 from the AS metadata endpoint to another origin is not followed (its endpoints never used)', async () => {
    const { manager } = makeManager();
    const saved = as.routes.get('/.well-known/oauth-authorization-server')!;
    const savedOidc = as.routes.get('/.well-known/openid-configuration')!;
    const evil = { ...as2.metadata, issuer: as.issuer };
    as2.routes.set('/evil-metadata', (_req, res) => void json(res, 200, evil));
    const redirect: Handler = (_req, res) => void res.writeHead(302, { location: `${as2.issuer}/evil-metadata` }).end();
    as.routes.set('/.well-known/oauth-authorization-server', redirect);
    as.routes.set('/.well-known/openid-configuration', redirect);
    try {
      const err = await rejection(whoami(manager, { id: 'alice' }));
      if (err instanceof AuthorizationRequiredError) expect(err.authorizationUrl.origin).not.toBe(as2.issuer);
      expect(as2.registrations).toBe(0);
      expect(as2.tokenRequests).toHaveLength(0);
    } finally {
      as.routes.set('/.well-known/oauth-authorization-server', saved);
      as.routes.set('/.well-known/openid-configuration', savedOidc);
      as2.routes.delete('/evil-metadata');
    }
  });
});

describe('time', () => {
  it('expiry during a burst, slow rotating refresh: one refresh at the AS, the old refresh token presented once, only the new token sent after', async () => {
    const { manager, clock } = makeManager();
    const alice = { id: 'alice' };
    await consent(manager, alice);
    const rt1 = codeGrants()[0]!.issuedRefresh!;
    const at1 = codeGrants()[0]!.issuedAccess!;
    clock.now += 300_000;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    as.tokenHook = async () => {
      await gate;
      return undefined;
    };
    const mark = mcp.requests.length;
    const calls = Array.from({ length: 25 }, () => whoami(manager, alice));
    await as.tokenArrivals(2); // the code exchange, then the refresh
    release();
    expect(await Promise.all(calls)).toEqual(Array(25).fill('alice'));
    expect(refreshGrants()).toHaveLength(1);
    expect(as.tokenRequests.filter((r) => r.params.refresh_token === rt1)).toHaveLength(1);
    const at2 = refreshGrants()[0]!.issuedAccess!;
    expect(new Set(mcp.requests.slice(mark).map((r) => r.authorization))).toEqual(new Set([`Bearer ${at2}`]));
    expect(mcp.requests.slice(mark).some((r) => r.authorization === `Bearer ${at1}`)).toBe(false);
  });

  for (const [name, hook] of [
    ['503', { status: 503, body: 'down', contentType: 'text/plain' }],
    ['429', { status: 429, body: '', contentType: 'text/plain' }],
    ['a reset connection', 'destroy'],
  ] as const) {
    it(`AS ${name} on refresh: a retryable authorization_failed, the expired token not sent; after recovery the next call works without new consent`, async () => {
      const { manager, clock, events } = makeManager();
      const alice = { id: 'alice' };
      await consent(manager, alice);
      const rt1 = codeGrants()[0]!.issuedRefresh!;
      const at1 = codeGrants()[0]!.issuedAccess!;
      clock.now += 300_000;
      as.tokenHook = () => hook;
      const mark = mcp.requests.length;
      const err = await authError(whoami(manager, alice), 'authorization_failed');
      expect(err.retryable).toBe(true);
      expect(mcp.requests.slice(mark).some((r) => r.authorization === `Bearer ${at1}`)).toBe(false);
      as.tokenHook = undefined;
      expect(await whoami(manager, alice)).toBe('alice');
      const ok = refreshGrants().filter((r) => r.status === 200);
      expect(ok).toHaveLength(1);
      expect(ok[0]!.params.refresh_token).toBe(rt1);
      expect(events.filter((e) => (e as unknown[])[0] === 'authorizationRequired')).toHaveLength(1);
    });
  }

  it('flow TTL: while pending the same link; after expiry a new link, and the old state is refused', async () => {
    const { manager, clock } = makeManager({ oauth: { flowTtlMs: 60_000 } });
    const alice = { id: 'alice' };
    const e1 = await authRequired(whoami(manager, alice));
    clock.now += 59_000;
    expect((await authRequired(whoami(manager, alice))).state).toBe(e1.state);
    clock.now += 2_000;
    const e2 = await authRequired(whoami(manager, alice));
    expect(e2.state).not.toBe(e1.state);
    await authError(manager.completeAuthorization(as.approve(e1.authorizationUrl, 'alice'), { user: alice }), 'authorization_invalid_state');
    await manager.completeAuthorization(as.approve(e2.authorizationUrl, 'alice'), { user: alice });
    expect(await whoami(manager, alice)).toBe('alice');
    expect(codeGrants()).toHaveLength(1);
  });
});

describe('resource use', () => {
  it('concurrent first flows of many users register one client (dynamic registration is single-flight per server and AS)', async () => {
    const { manager } = makeManager();
    await Promise.all(Array.from({ length: 20 }, (_, i) => authRequired(whoami(manager, { id: `r${i}` }))));
    expect(as.registrations).toBe(1);
  });

  it('1,000 users each start a flow: 1,000 distinct states, no token sent, no timers left after close', async () => {
    const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const { manager } = makeManager();
    const users = Array.from({ length: 1000 }, (_, i) => ({ id: `u${i}` }));
    const errs = await Promise.all(users.map((u) => authRequired(whoami(manager, u))));
    expect(new Set(errs.map((e) => e.state)).size).toBe(1000);
    expect(mcp.sent()).toHaveLength(0);
    await manager.close();
    expect(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length).toBeLessThanOrEqual(timersBefore);
  });

  it('when the flow store evicted a pending flow, the user is not handed its dead link again', async () => {
    const { manager } = makeManager({ oauth: { flowStore: new MemoryOAuthFlowStore({ maxEntries: 20 }) } });
    const first = await authRequired(whoami(manager, { id: 'u0' }));
    for (let i = 1; i <= 20; i++) await authRequired(whoami(manager, { id: `u${i}` }));
    const again = await authRequired(whoami(manager, { id: 'u0' }));
    // Either a fresh link, or the old one still completes: never a link that can only fail.
    const done = await rejection(manager.completeAuthorization(as.approve(again.authorizationUrl, 'u0'), { user: { id: 'u0' } }));
    expect(done).toBeUndefined();
    expect(again.state === first.state ? 'same' : 'new').toBe('new');
  });

  it('close() while a refresh is in flight: the call settles, nothing is sent to the server after close', async () => {
    const { manager, clock } = makeManager();
    const alice = { id: 'alice' };
    await consent(manager, alice);
    clock.now += 300_000;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    as.tokenHook = async () => {
      await gate;
      return undefined;
    };
    const call = rejection(whoami(manager, alice));
    await as.tokenArrivals(2);
    const closed = manager.close();
    const mark = mcp.requests.length;
    release();
    await closed;
    await call;
    expect(mcp.requests.slice(mark).filter((r) => r.method === 'POST')).toHaveLength(0);
  });
});

describe('secrets', () => {
  function collect(made: Made, errors: unknown[]) {
    return {
      messages: errors.map((e) => String((e as Error)?.message)),
      json: errors.map((e) => JSON.stringify(e)),
      logs: made.logs.map((l) => inspect(l, { depth: 8 })),
      events: made.events.map((e) => inspect(e, { depth: 8 })),
    };
  }
  const leaks = (texts: string[]) => [...as.secrets].filter((s) => texts.some((t) => t.includes(s)));

  async function runHostileAs(made: Made) {
    const { manager, clock } = made;
    const alice = { id: 'alice' };
    const errors: unknown[] = [];
    const catchErr = (p: Promise<unknown>) => p.catch((e: unknown) => void errors.push(e));
    // A code exchange answered 500 with a body echoing the request (code, verifier).
    const e1 = await authRequired(whoami(manager, alice));
    errors.push(e1);
    as.tokenHook = (p) => ({ status: 500, body: `oops: ${new URLSearchParams(p).toString()}`, contentType: 'text/plain' });
    const cb1 = as.approve(e1.authorizationUrl, 'alice');
    await catchErr(manager.completeAuthorization(cb1, { user: alice }));
    as.tokenHook = undefined;
    // A successful consent, then a refresh answered 400 with a description echoing the refresh token.
    const e2 = await authRequired(whoami(manager, alice));
    await manager.completeAuthorization(as.approve(e2.authorizationUrl, 'alice'), { user: alice });
    await whoami(manager, alice);
    clock.now += 300_000;
    as.tokenHook = (p) => ({ status: 400, body: JSON.stringify({ error: 'invalid_request', error_description: `bad ${p.refresh_token} for ${p.client_id}` }) });
    await catchErr(whoami(manager, alice));
    as.tokenHook = undefined;
    // The callback replayed.
    await catchErr(manager.completeAuthorization(cb1, { user: alice }));
    // A client-credentials request answered 500 with a body echoing the client's Authorization header.
    as.secrets.add(APP_CLIENT.secret);
    as.secrets.add(Buffer.from(`${APP_CLIENT.id}:${APP_CLIENT.secret}`).toString('base64'));
    as.tokenHook = (p) => (p.grant_type === 'client_credentials' ? { status: 500, body: `no: ${lastBasic} ${APP_CLIENT.secret}`, contentType: 'text/plain' } : undefined);
    await catchErr(manager.callTool({ serverName: 'reports', toolName: 'whoami' }));
    as.tokenHook = undefined;
    return errors;
  }

  const secretsServers = () => ({
    notes: { url: mcp.url, oauth: {} },
    reports: { url: mcp.url, oauth: { grant: 'client_credentials', clientId: APP_CLIENT.id, clientSecret: APP_CLIENT.secret } },
  });

  it('no access token, refresh token, code, verifier or client secret in any error message, toJSON(), event payload or logger call', async () => {
    const made = makeManager({ servers: secretsServers() });
    const errors = await runHostileAs(made);
    expect(errors.length).toBeGreaterThanOrEqual(4);
    const c = collect(made, errors);
    expect(leaks([...c.messages, ...c.json, ...c.logs, ...c.events])).toEqual([]);
  });

  it('nor in the error as a host logs it (console.error / util.inspect follows `cause`)', async () => {
    const made = makeManager({ servers: secretsServers() });
    const errors = await runHostileAs(made);
    expect(leaks(errors.map((e) => inspect(e, { depth: 8 })))).toEqual([]);
  });
});
