/**
 * Real peers of the MCP authorization flow on 127.0.0.1, for integration tests that judge the client by what
 * reached the servers:
 *
 * - {@link startAuthServer}: an `oidc-provider` authorization server with authorization code + PKCE (S256,
 *   required), rotating refresh tokens, dynamic client registration, resource indicators (JWT access tokens
 *   whose `aud` is the MCP server URL), client credentials for a pre-registered client, RFC 9207 `iss`, and an
 *   auto-consent interaction (no login UI). It logs every token request (grant, refresh token presented,
 *   refresh token issued, status).
 * - {@link startProtectedMcpServer}: an SDK MCP server (streamable HTTP at `/mcp`) that verifies each bearer
 *   against the AS's JWKS, answers 401 with `WWW-Authenticate: Bearer resource_metadata=…`, serves RFC 9728
 *   metadata, has `whoami` and a scope-gated `admin_note` (403 `insufficient_scope` without `notes:admin`),
 *   and logs every request's `sub` and token id.
 * - {@link startRelaxedOAuthPeers}: the two together, the AS relaxed, for tests of what happens around the flow.
 * - {@link approve}: the "browser": follows the authorization redirects by hand, carrying cookies, until the
 *   redirect to the client's redirect URI, and returns that callback URL without calling it.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createRemoteJWKSet, exportJWK, generateKeyPair, jwtVerify, type JWTPayload } from 'jose';
import { importOptional } from '../../src/testing/optional.js';
import { readJson } from './http.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

export const READ_SCOPE = 'notes:read';
export const ADMIN_SCOPE = 'notes:admin';

// ---------------------------------------------------------------------------------------------------------
// Authorization server

/** One POST to the token endpoint, as the AS saw it. */
export interface TokenRequestRecord {
  grantType: string;
  clientId: string | undefined;
  /** The refresh token presented (refresh_token grant). */
  refreshTokenPresented?: string;
  /** The refresh token issued in the answer. */
  refreshTokenIssued?: string;
  accessToken?: string;
  scope?: string;
  resource?: string;
  status: number;
  error?: string;
}

export interface AuthServer {
  issuer: string;
  /** Every token request, in order. */
  tokenRequests: TokenRequestRecord[];
  /** Dynamic registrations received. */
  registrations: number;
  /** The pre-registered confidential client allowed `client_credentials` only. */
  appClient: { clientId: string; clientSecret: string };
  /** Token requests of one grant type (successful or not). */
  grants(type: string): TokenRequestRecord[];
  /**
   * Stock oidc-provider behaviour, on by default; a test may relax it:
   * - `offlineAccess`: refresh tokens only for grants holding `offline_access` (which oidc-provider keeps only
   *   with `prompt=consent`, OIDC Core §11); off: a refresh token for every client allowed the grant.
   * - `registeredScope`: a dynamically registered client's `scope` limits what it may request (RFC 7591 §2);
   *   off: the registered `scope` is ignored.
   */
  strict: { offlineAccess: boolean; registeredScope: boolean };
  /** Makes every refresh token of this account unusable (the next refresh gets `invalid_grant`). */
  revokeRefreshTokens(accountId: string): number;
  close(): Promise<void>;
}

export interface AuthServerOptions {
  /** The MCP server URL, the only resource indicator accepted (JWT `aud`). */
  resource: string;
  /** Access token lifetime in seconds (default 300). */
  accessTokenTtlSec?: number;
}

let oidcModule: Promise<any> | undefined;

/** oidc-provider, imported once, without its "unsupported runtime" notice on Node 20. */
function loadOidcProvider(): Promise<any> {
  oidcModule ??= (async () => {
    const warn = console.warn;
    console.warn = (...args: unknown[]) => {
      if (typeof args[0] === 'string' && args[0].startsWith('oidc-provider WARNING')) return;
      warn(...args);
    };
    try {
      return await importOptional<any>('oidc-provider', 'oauthPeers');
    } finally {
      console.warn = warn;
    }
  })();
  return oidcModule;
}

/** A bare in-memory adapter (also the way to serve static clients under jest's VM realms). */
function adapterFor(stores: Map<string, Map<string, Record<string, any>>>, strict: { registeredScope: boolean }) {
  return class PeerAdapter {
    readonly #store: Map<string, Record<string, any>>;
    constructor(name: string) {
      let store = stores.get(name);
      if (!store) stores.set(name, (store = new Map()));
      this.#store = store;
    }
    async upsert(id: string, payload: Record<string, any>) {
      this.#store.set(id, payload);
    }
    async find(id: string) {
      const p = this.#store.get(id);
      if (p && p.scope !== undefined && !strict.registeredScope && this.#store === stores.get('Client')) {
        const { scope: _ignored, ...rest } = p;
        return rest;
      }
      return p;
    }
    async findByUid(uid: string) {
      for (const p of this.#store.values()) if (p.uid === uid) return p;
      return undefined;
    }
    async findByUserCode(code: string) {
      for (const p of this.#store.values()) if (p.userCode === code) return p;
      return undefined;
    }
    async consume(id: string) {
      const p = this.#store.get(id);
      if (p) p.consumed = Math.floor(Date.now() / 1000);
    }
    async destroy(id: string) {
      this.#store.delete(id);
    }
    async revokeByGrantId(grantId: string) {
      for (const [id, p] of this.#store) if (p.grantId === grantId) this.#store.delete(id);
    }
  };
}

export async function startAuthServer(opts: AuthServerOptions): Promise<AuthServer> {
  const { default: Provider, errors } = await loadOidcProvider();
  const http = createServer();
  const sockets = trackSockets(http);
  await listen(http);
  const issuer = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;

  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const signingJwk = { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: 'RS256', use: 'sig' };
  const appClient = { clientId: 'reports-app', clientSecret: randomBytes(24).toString('base64url') };
  const stores = new Map<string, Map<string, Record<string, any>>>();
  stores.set(
    'Client',
    new Map([
      [
        appClient.clientId,
        {
          client_id: appClient.clientId,
          client_secret: appClient.clientSecret,
          grant_types: ['client_credentials'],
          response_types: [],
          redirect_uris: [],
          token_endpoint_auth_method: 'client_secret_basic',
        },
      ],
    ]),
  );
  const ttl = opts.accessTokenTtlSec ?? 300;
  const strict = { offlineAccess: true, registeredScope: true };

  const provider = new Provider(issuer, {
    adapter: adapterFor(stores, strict),
    jwks: { keys: [signingJwk] },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    findAccount: async (_ctx: unknown, sub: string) => ({ accountId: sub, claims: async () => ({ sub }) }),
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    pkce: { required: () => true },
    rotateRefreshToken: true,
    issueRefreshToken: async (_ctx: unknown, client: any, source: any) =>
      client.grantTypeAllowed('refresh_token') && (!strict.offlineAccess || source.scopes.has('offline_access')),
    // The resource scopes too: the SDK names them in its registration request, which oidc-provider checks.
    scopes: ['openid', 'offline_access', READ_SCOPE, ADMIN_SCOPE],
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: true },
      clientCredentials: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx: unknown, _client: unknown, oneOf?: string[]) => oneOf ?? opts.resource,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx: unknown, resourceIndicator: string) => {
          if (resourceIndicator !== opts.resource) throw new errors.InvalidTarget();
          return {
            scope: `${READ_SCOPE} ${ADMIN_SCOPE}`,
            audience: opts.resource,
            accessTokenTTL: ttl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
  });

  const tokenRequests: TokenRequestRecord[] = [];
  let registrations = 0;
  provider.use(async (ctx: any, next: () => Promise<void>) => {
    await next();
    if (ctx.method === 'POST' && ctx.path === '/reg') registrations++;
    if (ctx.method !== 'POST' || ctx.path !== '/token') return;
    const params = ctx.oidc?.params ?? {};
    const body = (ctx.body ?? {}) as Record<string, any>;
    tokenRequests.push({
      grantType: String(params.grant_type ?? ''),
      clientId: ctx.oidc?.client?.clientId,
      ...(params.refresh_token ? { refreshTokenPresented: String(params.refresh_token) } : {}),
      ...(body.refresh_token ? { refreshTokenIssued: String(body.refresh_token) } : {}),
      ...(body.access_token ? { accessToken: String(body.access_token) } : {}),
      ...(body.scope ? { scope: String(body.scope) } : {}),
      ...(params.resource ? { resource: String(params.resource) } : {}),
      status: ctx.status,
      ...(body.error ? { error: String(body.error) } : {}),
    });
  });

  const callback = provider.callback();
  http.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', issuer);
    if (url.pathname.startsWith('/interaction/')) {
      void autoConsent(provider, req, res, url.searchParams.get('as')).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`interaction failed: ${(err as Error).message}`);
      });
      return;
    }
    callback(req, res);
  });

  let closing: Promise<void> | undefined;
  return {
    issuer,
    tokenRequests,
    get registrations() {
      return registrations;
    },
    appClient,
    strict,
    grants: (type) => tokenRequests.filter((r) => r.grantType === type),
    revokeRefreshTokens(accountId) {
      const rts = stores.get('RefreshToken');
      let n = 0;
      for (const [id, p] of rts ?? []) {
        if (p.accountId === accountId) {
          rts!.delete(id);
          n++;
        }
      }
      return n;
    },
    close() {
      closing ??= closeServer(http, sockets);
      return closing;
    },
  };
}

/** Logs `accountId` in and grants every scope and resource the authorization request asked for. */
async function autoConsent(provider: any, req: IncomingMessage, res: ServerResponse, accountId: string | null): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  const { params, prompt, session } = details;
  const account = session?.accountId ?? accountId;
  if (!account) throw new Error('the browser named no account (?as=)');
  const grant = details.grantId ? await provider.Grant.find(details.grantId) : new provider.Grant({ accountId: account, clientId: params.client_id });
  const requested = String(params.scope ?? '')
    .split(' ')
    .filter(Boolean);
  const resourceScopes = requested.filter((s) => s !== 'openid' && s !== 'offline_access');
  if (requested.length) grant.addOIDCScope(requested.join(' '));
  const resources: string[] = params.resource ? (Array.isArray(params.resource) ? params.resource : [params.resource]) : [];
  for (const r of resources) grant.addResourceScope(r, resourceScopes.join(' '));
  for (const [r, scopes] of Object.entries((prompt?.details?.missingResourceScopes ?? {}) as Record<string, string[]>)) {
    grant.addResourceScope(r, scopes.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { login: { accountId: account }, consent: { grantId } }, { mergeWithLastSubmission: false });
}

// ---------------------------------------------------------------------------------------------------------
// The "browser"

/**
 * Follows the authorization request's redirects (cookies carried between hops) as `accountId` until the
 * redirect to `redirectUri`, and returns that callback URL without requesting it.
 */
export async function approve(authorizationUrl: URL | string, accountId: string, redirectUri: string): Promise<string> {
  const jar = new Map<string, string>();
  let url = new URL(String(authorizationUrl));
  for (let hop = 0; hop < 10; hop++) {
    if (url.pathname.startsWith('/interaction/')) url.searchParams.set('as', accountId);
    const res = await fetch(url, {
      redirect: 'manual',
      headers: jar.size ? { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') } : {},
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (/expires=Thu, 01 Jan 1970/i.test(c) || value === '') jar.delete(name);
      else jar.set(name, value);
    }
    const location = res.headers.get('location');
    if (res.status < 300 || res.status >= 400 || !location) {
      throw new Error(`browser: ${url.pathname} answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
    }
    await res.body?.cancel();
    const next = new URL(location, url);
    if (next.href.startsWith(redirectUri)) return next.href;
    url = next;
  }
  throw new Error('browser: too many redirects');
}

// ---------------------------------------------------------------------------------------------------------
// The protected MCP server

/** One HTTP request to `/mcp`, as the server saw it. */
export interface McpRequestRecord {
  method: string;
  /** JSON-RPC methods in the body. */
  rpc: string[];
  /** `none` (no bearer), `invalid` (failed verification), `refused` (revoked here), `insufficient_scope`, `ok`. */
  outcome: 'none' | 'invalid' | 'refused' | 'insufficient_scope' | 'ok';
  sub?: string;
  jti?: string;
  /** sha256 of the bearer, for tokens that fail verification. */
  tokenHash?: string;
  scope?: string;
}

export interface ProtectedMcpServer {
  url: string;
  resourceMetadataUrl: string;
  requests: McpRequestRecord[];
  /** Verified requests (outcome not `none`/`invalid`). */
  subsSeen(): string[];
  /** Refuses (401 invalid_token) every token seen so far for `sub`; returns their jtis. */
  refuseTokensOf(sub: string): string[];
  /**
   * Holds the 401 answers to refused tokens until released: `held()` resolves once `n` are waiting,
   * `release(k)` sends the `k` oldest (all when omitted); `stop()` releases all and holds no more.
   */
  holdRefusals(): { held(n: number): Promise<void>; release(k?: number): void; stop(): void };
  /** Keep answering `admin_note` with 403 insufficient_scope whatever the token holds. */
  stubbornScope: boolean;
  /** Sessions closed by the client (HTTP DELETE). */
  deletes: number;
  close(): Promise<void>;
}

const text = (t: string): CallToolResult => ({ content: [{ type: 'text', text: t }] });
const sha = (s: string) => createHash('sha256').update(s).digest('base64url').slice(0, 16);

export async function startProtectedMcpServer(opts: { issuer: () => string }): Promise<ProtectedMcpServer> {
  const http = createServer();
  const sockets = trackSockets(http);
  await listen(http);
  const origin = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const url = `${origin}/mcp`;
  const resourceMetadataUrl = `${origin}/.well-known/oauth-protected-resource/mcp`;
  const requests: McpRequestRecord[] = [];
  const refused = new Set<string>();
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const servers = new Set<McpServer>();
  let jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  const state = { stubbornScope: false, deletes: 0 };
  type Hold = { waiting: (() => void)[]; watchers: { n: number; resolve: () => void }[] };
  let hold: Hold | undefined;

  const buildServer = () => {
    const server = new McpServer({ name: 'notes', version: '1.0.0' });
    servers.add(server);
    server.registerTool('whoami', { description: 'The token subject and scopes' }, async (extra) => {
      const info = extra.authInfo?.extra as { sub?: string } | undefined;
      return text(JSON.stringify({ sub: info?.sub, scopes: extra.authInfo?.scopes ?? [] }));
    });
    server.registerTool('admin_note', { description: `Needs ${ADMIN_SCOPE}` }, async () => text('admin ok'));
    return server;
  };

  const challenge = (res: ServerResponse, status: 401 | 403, params: Record<string, string>) => {
    const all = { resource_metadata: resourceMetadataUrl, ...params };
    const header = `Bearer ${Object.entries(all)
      .map(([k, v]) => `${k}="${v}"`)
      .join(', ')}`;
    res.writeHead(status, { 'www-authenticate': header, 'content-type': 'application/json' }).end(JSON.stringify({ error: params.error ?? 'unauthorized' }));
  };

  const handleMcp = async (req: IncomingMessage & { auth?: AuthInfo }, res: ServerResponse) => {
    const body = req.method === 'POST' ? await readJson(req) : undefined;
    const msgs = (Array.isArray(body) ? body : body ? [body] : []) as { method?: string; params?: { name?: string } }[];
    const rec: McpRequestRecord = { method: req.method ?? '', rpc: msgs.map((m) => m.method ?? 'response'), outcome: 'none' };
    requests.push(rec);
    const authz = req.headers.authorization;
    if (!authz?.startsWith('Bearer ')) return challenge(res, 401, { scope: READ_SCOPE });
    const token = authz.slice(7);
    rec.tokenHash = sha(token);
    let payload: JWTPayload;
    try {
      jwks ??= createRemoteJWKSet(new URL(`${opts.issuer()}/jwks`));
      ({ payload } = await jwtVerify(token, jwks, { issuer: opts.issuer(), audience: url, typ: 'at+jwt' }));
    } catch {
      rec.outcome = 'invalid';
      return challenge(res, 401, { error: 'invalid_token' });
    }
    const sub = (payload.sub ?? payload.client_id) as string;
    const scope = typeof payload.scope === 'string' ? payload.scope : '';
    Object.assign(rec, { sub, jti: payload.jti, scope });
    if (payload.jti && refused.has(payload.jti)) {
      rec.outcome = 'refused';
      if (hold) {
        const h = hold;
        await new Promise<void>((resolve) => {
          h.waiting.push(resolve);
          for (const w of h.watchers.filter((x) => h.waiting.length >= x.n)) w.resolve();
        });
      }
      return challenge(res, 401, { error: 'invalid_token' });
    }
    const scopes = scope.split(' ').filter(Boolean);
    const wantsAdmin = msgs.some((m) => m.method === 'tools/call' && m.params?.name === 'admin_note');
    if (wantsAdmin && (state.stubbornScope || !scopes.includes(ADMIN_SCOPE))) {
      rec.outcome = 'insufficient_scope';
      return challenge(res, 403, { error: 'insufficient_scope', scope: `${READ_SCOPE} ${ADMIN_SCOPE}` });
    }
    rec.outcome = 'ok';
    req.auth = { token, clientId: String(payload.client_id ?? ''), scopes, extra: { sub } };
    const sessionId = req.headers['mcp-session-id'] as string | undefined;
    if (req.method === 'DELETE') state.deletes++;
    if (sessionId) {
      const transport = sessions.get(sessionId);
      if (!transport) return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","error":{"code":-32001,"message":"Session not found"},"id":null}');
      return transport.handleRequest(req, res, body);
    }
    const server = buildServer();
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => void sessions.set(id, transport),
      onsessionclosed: (id) => void sessions.delete(id),
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  };

  http.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', origin).pathname;
    if (req.method === 'GET' && (path === '/.well-known/oauth-protected-resource/mcp' || path === '/.well-known/oauth-protected-resource')) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({ resource: url, authorization_servers: [opts.issuer()], scopes_supported: [READ_SCOPE], bearer_methods_supported: ['header'] }),
      );
      return;
    }
    if (path !== '/mcp') return void res.writeHead(404).end();
    handleMcp(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
      else res.end();
    });
  });

  let closing: Promise<void> | undefined;
  return {
    url,
    resourceMetadataUrl,
    requests,
    subsSeen: () => requests.filter((r) => r.sub !== undefined && r.outcome !== 'invalid').map((r) => r.sub!),
    refuseTokensOf(sub) {
      const jtis = [...new Set(requests.filter((r) => r.sub === sub && r.jti).map((r) => r.jti!))];
      for (const j of jtis) refused.add(j);
      return jtis;
    },
    holdRefusals() {
      const h: Hold = { waiting: [], watchers: [] };
      hold = h;
      return {
        held: (n) => (h.waiting.length >= n ? Promise.resolve() : new Promise<void>((resolve) => h.watchers.push({ n, resolve }))),
        release: (k) => {
          for (const r of h.waiting.splice(0, k ?? h.waiting.length)) r();
        },
        stop: () => {
          if (hold === h) hold = undefined;
          for (const r of h.waiting.splice(0)) r();
        },
      };
    },
    get stubbornScope() {
      return state.stubbornScope;
    },
    set stubbornScope(v: boolean) {
      state.stubbornScope = v;
    },
    get deletes() {
      return state.deletes;
    },
    close() {
      closing ??= (async () => {
        await Promise.all([...servers].map((s) => s.close().catch(() => {})));
        await closeServer(http, sockets);
      })();
      return closing;
    },
  };
}

/**
 * A {@link startProtectedMcpServer} and its {@link startAuthServer} (access tokens for 300 s), the AS relaxed (no
 * `offline_access` or registered scope required) so that a test exercises its own part of the flow. `redirect` is
 * a callback URL on the MCP server's origin, never requested (the browser stops at the redirect to it).
 */
export async function startRelaxedOAuthPeers(): Promise<{ as: AuthServer; mcp: ProtectedMcpServer; redirect: string }> {
  let issuer = '';
  const mcp = await startProtectedMcpServer({ issuer: () => issuer });
  const as = await startAuthServer({ resource: mcp.url, accessTokenTtlSec: 300 }).catch(async (err: unknown) => {
    await mcp.close();
    throw err;
  });
  issuer = as.issuer;
  as.strict.offlineAccess = false;
  as.strict.registeredScope = false;
  return { as, mcp, redirect: `${new URL(mcp.url).origin}/callback` };
}

// ---------------------------------------------------------------------------------------------------------
// plumbing

function trackSockets(http: HttpServer): Set<Socket> {
  const sockets = new Set<Socket>();
  http.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return sockets;
}

function listen(http: HttpServer): Promise<void> {
  return new Promise((resolve, reject) => {
    http.once('error', reject);
    http.listen({ port: 0, host: '127.0.0.1' }, () => {
      http.off('error', reject);
      resolve();
    });
  });
}

async function closeServer(http: HttpServer, sockets: Set<Socket>): Promise<void> {
  const closed = new Promise<void>((resolve) => http.close(() => resolve()));
  http.closeAllConnections();
  for (const s of sockets) s.destroy();
  await closed;
}
