/**
 * A real OpenID Connect provider (`oidc-provider`) on loopback for tests: it mints user access tokens, answers
 * Entra-style On-Behalf-Of (`jwt-bearer`) and RFC 8693 token-exchange grants with downstream tokens, rotates
 * refresh tokens, and lets a test inject faults, latency and outages at its token endpoint.
 *
 * Needs the dev dependency `oidc-provider` (imported lazily, only when {@link startTestIdp} is called).
 * @module
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, jwtVerify, type CryptoKey, type JWK } from 'jose';
import { SwitchboardError } from '../errors.js';
import { importOptional } from './optional.js';

/**
 * Options of {@link startTestIdp}.
 *
 * @example
 * ```ts
 * const idp = await startTestIdp({ exchangedTokenTtlSec: 30, rotateRefreshTokens: false });
 * ```
 */
export interface TestIdpOptions {
  /** Lifetime of exchanged (downstream) tokens in seconds; default 300. */
  exchangedTokenTtlSec?: number;
  /** Lifetime of user access tokens from startSession/refresh; default 3600. */
  accessTokenTtlSec?: number;
  /** Rotate refresh tokens on use (default true). */
  rotateRefreshTokens?: boolean;
  /** Audience of user access tokens; default `api://agent-runtime`. */
  runtimeAudience?: string;
  /** Downstream audience; default `api://mcp-downstream`. */
  downstreamAudience?: string;
  /** Scope names (`scp`) granted when `<resource>/.default` is requested; default `['access_as_user']`. */
  defaultScopes?: string[];
}

/**
 * A fault the token endpoint answers with instead of running the grant (see {@link TestIdp.failNext}).
 * The body is `{ error, error_description, error_codes, suberror, claims }` (absent fields omitted), or
 * `body` verbatim when given.
 *
 * @example
 * ```ts
 * idp.failNext(1, { status: 429, retryAfterSec: 1, grant: 'exchange' });
 * idp.failNext(1, { status: 400, error: 'invalid_grant', suberror: 'consent_required', error_codes: [65001] });
 * ```
 */
export interface TestIdpFault {
  /** HTTP status, e.g. 400, 429, 503. */
  status: number;
  /** OAuth `error`; defaults to `server_error` (5xx), `slow_down` (429) or `invalid_request` (other). */
  error?: string;
  /** OAuth `error_description`. */
  error_description?: string;
  /** Sent as the `Retry-After` header (seconds). */
  retryAfterSec?: number;
  /** Entra-style numeric error codes. */
  error_codes?: number[];
  /** Entra-style `suberror`, e.g. `consent_required`. */
  suberror?: string;
  /** Entra-style claims challenge. */
  claims?: string;
  /** Which grants the fault applies to; default `'any'`. */
  grant?: 'exchange' | 'refresh' | 'any';
  /** A JSON body sent verbatim instead of the error body, e.g. `{ token_type: 'Bearer' }` with status 200. */
  body?: Record<string, unknown>;
}

/**
 * Counters of requests the test IdP received since start (or {@link TestIdp.resetStats}).
 *
 * @example
 * ```ts
 * await Promise.all(Array.from({ length: 100 }, () => resolver(req)));
 * expect(idp.stats().exchanges).toBe(1);
 * ```
 */
export interface TestIdpStats {
  /** Every POST to the token endpoint, whatever its outcome. */
  tokenRequests: number;
  /** Exchange grant requests (jwt-bearer or token-exchange) from an authenticated client, faults included. */
  exchanges: number;
  /** refresh_token grant requests from an authenticated client, faults included. */
  refreshes: number;
  /** GETs of the discovery document. */
  discovery: number;
  /** GETs of the JWKS. */
  jwks: number;
}

/**
 * Options of {@link TestIdp.mintAccessToken}.
 *
 * @example
 * ```ts
 * const expired = await idp.mintAccessToken({ sub: 'user-1', tenantId: 'contoso', expiresInSec: -60 });
 * ```
 */
export interface MintAccessTokenOptions {
  /** The user's subject; also copied to `oid`. */
  sub: string;
  /** Tenant id, emitted as `tid`. */
  tenantId?: string;
  /** `aud`; default the runtime audience. */
  audience?: string;
  /** `scp` (space-joined); default `['access_as_user']`. */
  scopes?: string[];
  /** Lifetime in seconds from now (negative for an already expired token); default `accessTokenTtlSec`. */
  expiresInSec?: number;
  /** `nbf` = now + this many seconds (omit for no `nbf`). */
  notBeforeSec?: number;
  /** Extra claims, merged last (they may override the ones above). */
  claims?: Record<string, unknown>;
}

/**
 * A refreshable user session as {@link TestIdp.startSession} returns it.
 *
 * @example
 * ```ts
 * const { accessToken, refreshToken, expiresAt } = await idp.startSession({ sub: 'user-1', expiresInSec: 120 });
 * ```
 */
export interface TestIdpSession {
  /** A user access token for the runtime audience. */
  accessToken: string;
  /** A refresh token for the IdP's {@link TestIdp.client}. */
  refreshToken: string;
  /** When `accessToken` expires, epoch ms. */
  expiresAt: number;
}

/**
 * A running test IdP; see {@link startTestIdp}.
 *
 * @example
 * ```ts
 * const idp: TestIdp = await startTestIdp();
 * await idp.down(); // connection refused
 * await idp.up();   // same port again
 * await idp.close();
 * ```
 */
export interface TestIdp {
  /** `http://127.0.0.1:PORT` (discovery at `/.well-known/openid-configuration`). */
  issuer: string;
  /** The JWKS URL. */
  jwksUri: string;
  /** The token endpoint URL. */
  tokenEndpoint: string;
  /**
   * Confidential client of the agent runtime: allowed jwt-bearer (Entra-style OBO), RFC 8693 token-exchange
   * and refresh_token; authenticates with client_secret_basic or client_secret_post.
   */
  client: { clientId: string; clientSecret: string };
  /** A second client with the same grants that authenticates with private_key_jwt (ES256). */
  privateKeyJwtClient: { clientId: string; privateKey: CryptoKey; kid: string };
  /** The audience user access tokens are minted for (the runtime's API), e.g. `api://agent-runtime`. */
  runtimeAudience: string;
  /**
   * A downstream audience MCP servers verify, e.g. `api://mcp-downstream`; scope
   * `api://mcp-downstream/.default` (jwt-bearer) or the `audience` parameter (token-exchange) yields this `aud`.
   */
  downstreamAudience: string;
  /**
   * Mints a user access token (JWT, header typ `at+jwt`, RS256, kid from the IdP's JWKS) as if the user had
   * signed in to the runtime. Default aud runtimeAudience, exp now + accessTokenTtlSec. `tenantId` → claim
   * `tid`; `oid` = sub.
   */
  mintAccessToken(opts: MintAccessTokenOptions): Promise<string>;
  /**
   * A refreshable session for a user. The refresh_token grant at the token endpoint returns a new access
   * token and (when rotating) a new refresh token, invalidating the old one (reuse → invalid_grant).
   * `expiresInSec` sets the lifetime of this session's access tokens, refreshed ones included.
   */
  startSession(opts: { sub: string; tenantId?: string; expiresInSec?: number }): Promise<TestIdpSession>;
  /** Revokes a user's refresh tokens: the next refresh gets invalid_grant. */
  revokeSessions(sub: string): void;
  /** Request counters. */
  stats(): TestIdpStats;
  /** Zeroes the counters. */
  resetStats(): void;
  /** Resolves once `stats().tokenRequests` reaches `count` (e.g. to act while an exchange is held by latency). */
  waitForTokenRequests(count: number): Promise<void>;
  /** The next `n` token-endpoint requests (of that grant) fail with this fault. */
  failNext(n: number, fault: TestIdpFault): void;
  /** Drops every pending injected fault. */
  clearFaults(): void;
  /** Added latency (ms) before the token endpoint answers; 0 removes it. */
  setLatency(ms: number): void;
  /** Stops accepting connections (connection refused) while keeping the port. */
  down(): Promise<void>;
  /** Listens again on the same port after {@link TestIdp.down}. */
  up(): Promise<void>;
  /** Stops the IdP; idempotent; leaves no open handles. */
  close(): Promise<void>;
}

const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const OIDC_SCOPES = new Set(['openid', 'profile', 'email', 'offline_access']);

/**
 * Starts a test IdP on 127.0.0.1 (ephemeral port, plain http: clients must allow insecure requests).
 *
 * @example
 * ```ts
 * import { startTestIdp } from 'mcp-switchboard/testing';
 * import { createOboTokenResolver } from 'mcp-switchboard';
 *
 * const idp = await startTestIdp();
 * const assertion = await idp.mintAccessToken({ sub: 'user-1', tenantId: 'contoso' });
 * const resolve = createOboTokenResolver({ issuer: idp.issuer, ...idp.client, allowInsecureRequests: true });
 * const { accessToken } = await resolve({
 *   user: { id: 'user-1', tenantId: 'contoso' }, assertion, serverName: 'files',
 *   scopes: [`${idp.downstreamAudience}/.default`],
 * });
 * idp.failNext(1, { status: 503, retryAfterSec: 1 });
 * await idp.close();
 * ```
 */
export async function startTestIdp(opts: TestIdpOptions = {}): Promise<TestIdp> {
  const idp = new LoopbackTestIdp(opts);
  await idp.start();
  return idp;
}

// ---------------------------------------------------------------------------------------------------------
// The bits of oidc-provider (untyped, ESM-only dev dependency) and Koa this module uses.

interface KoaContext {
  req: IncomingMessage;
  method: string;
  path: string;
  status: number;
  body: unknown;
  set(name: string, value: string): void;
  oidc: { params: Record<string, unknown>; client: { clientId: string } };
}
type KoaMiddleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;
interface OidcProvider {
  use(mw: KoaMiddleware): void;
  registerGrantType(name: string, handler: (ctx: KoaContext) => Promise<void>, params?: string[], dupes?: string[]): void;
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
}
interface OidcProviderModule {
  Provider: new (issuer: string, config: Record<string, unknown>) => OidcProvider;
  errors: Record<'InvalidGrant' | 'InvalidRequest' | 'InvalidScope', new (description?: string) => Error>;
}

let providerModule: Promise<OidcProviderModule> | undefined;

/** Imports oidc-provider once, dropping its "unsupported runtime" notice (it runs fine on Node 20 for tests). */
function loadProvider(): Promise<OidcProviderModule> {
  providerModule ??= (async () => {
    const warn = console.warn;
    console.warn = (...args: unknown[]) => {
      if (typeof args[0] === 'string' && args[0].startsWith('oidc-provider WARNING: Unsupported runtime')) return;
      warn(...args);
    };
    try {
      return await importOptional<OidcProviderModule>('oidc-provider', 'startTestIdp');
    } finally {
      console.warn = warn;
    }
  })();
  providerModule.catch(() => {
    providerModule = undefined;
  });
  return providerModule;
}

/**
 * A bare in-memory storage adapter, so oidc-provider does not warn about its own development one. It also
 * serves the clients: static `clients` config is structuredClone'd, which under jest's VM realms makes the
 * client JWKS fail oidc-provider's plain-object check.
 */
function createAdapterClass(clients: Record<string, unknown>[]) {
  const stores = new Map<string, Map<string, Record<string, unknown>>>();
  stores.set('Client', new Map(clients.map((c) => [c.client_id as string, c])));
  return class TestIdpAdapter {
    readonly #store: Map<string, Record<string, unknown>>;
    constructor(name: string) {
      let store = stores.get(name);
      if (!store) stores.set(name, (store = new Map()));
      this.#store = store;
    }
    async upsert(id: string, payload: Record<string, unknown>): Promise<void> {
      this.#store.set(id, payload);
    }
    async find(id: string): Promise<Record<string, unknown> | undefined> {
      return this.#store.get(id);
    }
    async findByUid(uid: string): Promise<Record<string, unknown> | undefined> {
      for (const p of this.#store.values()) if (p.uid === uid) return p;
      return undefined;
    }
    async findByUserCode(code: string): Promise<Record<string, unknown> | undefined> {
      for (const p of this.#store.values()) if (p.userCode === code) return p;
      return undefined;
    }
    async consume(id: string): Promise<void> {
      const p = this.#store.get(id);
      if (p) p.consumed = Math.floor(Date.now() / 1000);
    }
    async destroy(id: string): Promise<void> {
      this.#store.delete(id);
    }
    async revokeByGrantId(grantId: string): Promise<void> {
      for (const [id, p] of this.#store) if (p.grantId === grantId) this.#store.delete(id);
    }
  };
}

interface RefreshRecord {
  sub: string;
  tenantId?: string;
  clientId: string;
  accessTtlSec: number;
}

interface PendingDelay {
  timer: NodeJS.Timeout;
  resolve: () => void;
}

function epoch(): number {
  return Math.floor(Date.now() / 1000);
}

class LoopbackTestIdp implements TestIdp {
  issuer = '';
  jwksUri = '';
  tokenEndpoint = '';
  readonly client = { clientId: 'agent-runtime', clientSecret: randomBytes(24).toString('base64url') };
  privateKeyJwtClient!: { clientId: string; privateKey: CryptoKey; kid: string };
  readonly runtimeAudience: string;
  readonly downstreamAudience: string;

  readonly #exchangedTtl: number;
  readonly #accessTtl: number;
  readonly #rotate: boolean;
  readonly #defaultScopes: string[];
  readonly #server: Server = createServer();
  #port = 0;
  #signingKey!: CryptoKey;
  #verifyKey!: CryptoKey;
  readonly #kid = randomUUID();
  #errors!: OidcProviderModule['errors'];
  readonly #refreshTokens = new Map<string, RefreshRecord>();
  #stats: TestIdpStats = { tokenRequests: 0, exchanges: 0, refreshes: 0, discovery: 0, jwks: 0 };
  readonly #faults: { remaining: number; fault: TestIdpFault }[] = [];
  #latencyMs = 0;
  #requestWaiters: { count: number; resolve: () => void }[] = [];
  readonly #delays = new Set<PendingDelay>();
  #listening = false;
  #closing: Promise<void> | undefined;

  constructor(opts: TestIdpOptions) {
    this.#exchangedTtl = opts.exchangedTokenTtlSec ?? 300;
    this.#accessTtl = opts.accessTokenTtlSec ?? 3600;
    this.#rotate = opts.rotateRefreshTokens ?? true;
    this.runtimeAudience = opts.runtimeAudience ?? 'api://agent-runtime';
    this.downstreamAudience = opts.downstreamAudience ?? 'api://mcp-downstream';
    this.#defaultScopes = opts.defaultScopes ?? ['access_as_user'];
  }

  async start(): Promise<void> {
    const mod = await loadProvider();
    this.#errors = mod.errors;

    const signing = await generateKeyPair('RS256', { extractable: true });
    this.#signingKey = signing.privateKey;
    this.#verifyKey = signing.publicKey;
    const signingJwk: JWK = { ...(await exportJWK(signing.privateKey)), kid: this.#kid, alg: 'RS256', use: 'sig' };

    const clientKey = await generateKeyPair('ES256', { extractable: true });
    const clientKid = randomUUID();
    const clientJwk: JWK = { ...(await exportJWK(clientKey.publicKey)), kid: clientKid, alg: 'ES256', use: 'sig' };
    this.privateKeyJwtClient = { clientId: 'agent-runtime-pkjwt', privateKey: clientKey.privateKey, kid: clientKid };

    // Listen first: the issuer must carry the port before the provider is built.
    await this.#listen(0);
    this.#port = (this.#server.address() as AddressInfo).port;
    this.issuer = `http://127.0.0.1:${this.#port}`;
    this.jwksUri = `${this.issuer}/jwks`;
    this.tokenEndpoint = `${this.issuer}/token`;

    const grantTypes = [JWT_BEARER, TOKEN_EXCHANGE, 'refresh_token'];
    const common = { grant_types: grantTypes, response_types: [], redirect_uris: [] };
    const provider = new mod.Provider(this.issuer, {
      adapter: createAdapterClass([
        { ...common, client_id: this.client.clientId, client_secret: this.client.clientSecret, token_endpoint_auth_method: 'client_secret_basic' },
        {
          ...common,
          client_id: this.privateKeyJwtClient.clientId,
          token_endpoint_auth_method: 'private_key_jwt',
          token_endpoint_auth_signing_alg: 'ES256',
          jwks: { keys: [clientJwk] },
        },
      ]),
      jwks: { keys: [signingJwk] },
      cookies: { keys: [randomBytes(16).toString('hex')] },
      features: { devInteractions: { enabled: false } },
      findAccount: async (_ctx: unknown, sub: string) => ({ accountId: sub, claims: async () => ({ sub }) }),
    });

    provider.use(this.#countAndDelay);
    provider.registerGrantType(JWT_BEARER, this.#withFaults('exchange', this.#jwtBearer), ['assertion', 'requested_token_use', 'scope']);
    provider.registerGrantType(
      TOKEN_EXCHANGE,
      this.#withFaults('exchange', this.#tokenExchange),
      ['subject_token', 'subject_token_type', 'audience', 'resource', 'scope', 'requested_token_type', 'actor_token', 'actor_token_type'],
      ['audience', 'resource'],
    );
    provider.registerGrantType('refresh_token', this.#withFaults('refresh', this.#refresh), ['refresh_token', 'scope']);
    this.#server.on('request', provider.callback());
  }

  async mintAccessToken(o: MintAccessTokenOptions): Promise<string> {
    const now = epoch();
    return this.#sign({
      aud: o.audience ?? this.runtimeAudience,
      sub: o.sub,
      oid: o.sub,
      ...(o.tenantId === undefined ? {} : { tid: o.tenantId }),
      scp: (o.scopes ?? ['access_as_user']).join(' '),
      azp: this.client.clientId,
      client_id: this.client.clientId,
      iat: now,
      jti: randomUUID(),
      ...(o.notBeforeSec === undefined ? {} : { nbf: now + o.notBeforeSec }),
      exp: now + (o.expiresInSec ?? this.#accessTtl),
      ...o.claims,
    });
  }

  async startSession(o: { sub: string; tenantId?: string; expiresInSec?: number }): Promise<TestIdpSession> {
    const record: RefreshRecord = { sub: o.sub, clientId: this.client.clientId, accessTtlSec: o.expiresInSec ?? this.#accessTtl };
    if (o.tenantId !== undefined) record.tenantId = o.tenantId;
    const refreshToken = this.#newRefreshToken(record);
    const accessToken = await this.mintAccessToken({ sub: o.sub, tenantId: o.tenantId, expiresInSec: record.accessTtlSec });
    return { accessToken, refreshToken, expiresAt: (epoch() + record.accessTtlSec) * 1000 };
  }

  revokeSessions(sub: string): void {
    for (const [token, r] of this.#refreshTokens) if (r.sub === sub) this.#refreshTokens.delete(token);
  }

  stats(): TestIdpStats {
    return { ...this.#stats };
  }

  resetStats(): void {
    this.#stats = { tokenRequests: 0, exchanges: 0, refreshes: 0, discovery: 0, jwks: 0 };
  }

  waitForTokenRequests(count: number): Promise<void> {
    if (this.#stats.tokenRequests >= count) return Promise.resolve();
    return new Promise((resolve) => this.#requestWaiters.push({ count, resolve }));
  }

  failNext(n: number, fault: TestIdpFault): void {
    if (!Number.isInteger(n) || n < 1) throw new TypeError('failNext: n must be a positive integer');
    if (!Number.isInteger(fault.status) || fault.status < 100 || fault.status > 599) throw new TypeError('failNext: fault.status must be an HTTP status');
    this.#faults.push({ remaining: n, fault });
  }

  clearFaults(): void {
    this.#faults.length = 0;
  }

  setLatency(ms: number): void {
    if (!(ms >= 0)) throw new TypeError('setLatency: ms must be >= 0');
    this.#latencyMs = ms;
  }

  async down(): Promise<void> {
    if (!this.#listening) return;
    this.#listening = false;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#flushDelays();
    this.#server.closeAllConnections();
    await closed;
  }

  async up(): Promise<void> {
    if (this.#closing) throw new SwitchboardError('idp_closed', 'test IdP is closed');
    if (this.#listening) return;
    await this.#listen(this.#port);
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.down();
      this.#flushDelays();
      this.#faults.length = 0;
      this.#refreshTokens.clear();
    })();
    return this.#closing;
  }

  // --- HTTP plumbing -------------------------------------------------------------------------------------

  #listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.#server.once('error', onError);
      this.#server.listen(port, '127.0.0.1', () => {
        this.#server.off('error', onError);
        this.#listening = true;
        resolve();
      });
    });
  }

  /** Counts requests and applies latency to the token endpoint, before oidc-provider routes them. */
  readonly #countAndDelay: KoaMiddleware = async (ctx, next) => {
    if (ctx.method === 'GET' && ctx.path === '/.well-known/openid-configuration') this.#stats.discovery++;
    else if (ctx.method === 'GET' && ctx.path === '/jwks') this.#stats.jwks++;
    else if (ctx.method === 'POST' && ctx.path === '/token') {
      this.#stats.tokenRequests++;
      this.#wakeRequestWaiters();
      if (this.#latencyMs > 0) {
        await this.#delay(this.#latencyMs);
        // The client gave up (timeout, abort) or the IdP went down meanwhile: nobody is left to answer.
        if (ctx.req.destroyed || !ctx.req.readable) return;
      }
    }
    await next();
  };

  #wakeRequestWaiters(): void {
    if (this.#requestWaiters.length === 0) return;
    const due = this.#requestWaiters.filter((w) => w.count <= this.#stats.tokenRequests);
    this.#requestWaiters = this.#requestWaiters.filter((w) => w.count > this.#stats.tokenRequests);
    for (const w of due) w.resolve();
  }

  #delay(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const pending: PendingDelay = {
        timer: setTimeout(() => {
          this.#delays.delete(pending);
          resolve();
        }, ms),
        resolve,
      };
      pending.timer.unref();
      this.#delays.add(pending);
    });
  }

  /** Ends every pending delay now (on down/close), so no timer outlives the server. */
  #flushDelays(): void {
    for (const d of this.#delays) {
      clearTimeout(d.timer);
      d.resolve();
    }
    this.#delays.clear();
  }

  /** Wraps a grant handler: counts it, and answers with the next matching injected fault instead of running it. */
  #withFaults(kind: 'exchange' | 'refresh', handler: (ctx: KoaContext) => Promise<void>): (ctx: KoaContext) => Promise<void> {
    return async (ctx) => {
      if (kind === 'exchange') this.#stats.exchanges++;
      else this.#stats.refreshes++;
      const i = this.#faults.findIndex((f) => (f.fault.grant ?? 'any') === 'any' || f.fault.grant === kind);
      if (i === -1) return handler.call(this, ctx);
      const entry = this.#faults[i]!;
      if (--entry.remaining === 0) this.#faults.splice(i, 1);
      const { fault } = entry;
      ctx.status = fault.status;
      if (fault.retryAfterSec !== undefined) ctx.set('Retry-After', String(fault.retryAfterSec));
      ctx.body = fault.body ?? {
        error: fault.error ?? (fault.status >= 500 ? 'server_error' : fault.status === 429 ? 'slow_down' : 'invalid_request'),
        ...(fault.error_description === undefined ? {} : { error_description: fault.error_description }),
        ...(fault.error_codes === undefined ? {} : { error_codes: fault.error_codes }),
        ...(fault.suberror === undefined ? {} : { suberror: fault.suberror }),
        ...(fault.claims === undefined ? {} : { claims: fault.claims }),
      };
    };
  }

  // --- grants --------------------------------------------------------------------------------------------

  async #jwtBearer(ctx: KoaContext): Promise<void> {
    const { assertion, requested_token_use: use, scope } = ctx.oidc.params as Record<string, string | undefined>;
    if (!assertion) throw new this.#errors.InvalidRequest('missing required parameter: assertion');
    if (use !== 'on_behalf_of') throw new this.#errors.InvalidRequest("requested_token_use must be 'on_behalf_of'");
    if (!scope) throw new this.#errors.InvalidScope('scope is required');
    const subject = await this.#verifyUserToken(assertion, 'assertion');
    const { audience, scp } = this.#parseScopes(scope);
    ctx.body = await this.#exchangedTokenResponse(ctx, subject, audience, scp, false);
  }

  async #tokenExchange(ctx: KoaContext): Promise<void> {
    const p = ctx.oidc.params as Record<string, string | string[] | undefined>;
    const subjectToken = p.subject_token;
    if (typeof subjectToken !== 'string' || !subjectToken) throw new this.#errors.InvalidRequest('missing required parameter: subject_token');
    if (p.subject_token_type !== ACCESS_TOKEN_TYPE && p.subject_token_type !== JWT_TOKEN_TYPE) {
      throw new this.#errors.InvalidRequest('unsupported subject_token_type');
    }
    const subject = await this.#verifyUserToken(subjectToken, 'subject_token');
    const parsed = this.#parseScopes(typeof p.scope === 'string' ? p.scope : '');
    const target = first(p.audience) ?? first(p.resource);
    ctx.body = await this.#exchangedTokenResponse(ctx, subject, target ?? parsed.audience, parsed.scp, true);
  }

  async #refresh(ctx: KoaContext): Promise<void> {
    const token = ctx.oidc.params.refresh_token;
    if (typeof token !== 'string' || !token) throw new this.#errors.InvalidRequest('missing required parameter: refresh_token');
    const record = this.#refreshTokens.get(token);
    if (!record || record.clientId !== ctx.oidc.client.clientId) {
      throw new this.#errors.InvalidGrant('refresh token is invalid, expired, revoked or was already used');
    }
    let refreshToken = token;
    if (this.#rotate) {
      this.#refreshTokens.delete(token);
      refreshToken = this.#newRefreshToken(record);
    }
    const accessToken = await this.mintAccessToken({ sub: record.sub, tenantId: record.tenantId, expiresInSec: record.accessTtlSec });
    ctx.body = { access_token: accessToken, token_type: 'Bearer', expires_in: record.accessTtlSec, refresh_token: refreshToken, scope: 'access_as_user' };
  }

  // --- helpers -------------------------------------------------------------------------------------------

  #sign(payload: Record<string, unknown>): Promise<string> {
    return new SignJWT({ iss: this.issuer, jti: randomUUID(), ...payload })
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: this.#kid })
      .sign(this.#signingKey);
  }

  #newRefreshToken(record: RefreshRecord): string {
    const token = randomBytes(32).toString('base64url');
    this.#refreshTokens.set(token, record);
    return token;
  }

  /** Verifies a user access token presented for exchange; any failure is invalid_grant (never echoing the token). */
  async #verifyUserToken(token: string, what: string): Promise<Record<string, unknown>> {
    try {
      const { payload } = await jwtVerify(token, this.#verifyKey, {
        issuer: this.issuer,
        audience: this.runtimeAudience,
        algorithms: ['RS256'],
        requiredClaims: ['sub', 'exp'],
      });
      return payload;
    } catch (err) {
      const code = (err as { code?: string }).code;
      const why = code === 'ERR_JWT_EXPIRED' ? 'expired' : code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' ? 'has an unexpected claim value' : 'is not valid';
      throw new this.#errors.InvalidGrant(`${what} ${why}`);
    }
  }

  /**
   * Splits `<resource>/<name>` scopes (Entra style) into one audience and scope names; bare names target the
   * downstream audience; `.default` grants the configured default scopes.
   */
  #parseScopes(scope: string): { audience: string; scp: string[] } {
    let audience: string | undefined;
    const scp = new Set<string>();
    for (const s of scope.split(' ')) {
      if (!s || OIDC_SCOPES.has(s)) continue;
      const slash = s.lastIndexOf('/');
      const resource = slash > 0 && s.includes(':') ? s.slice(0, slash) : undefined;
      const name = resource === undefined ? s : s.slice(slash + 1);
      if (resource !== undefined) {
        if (audience !== undefined && audience !== resource) throw new this.#errors.InvalidScope('scopes for more than one resource');
        audience = resource;
      }
      if (name === '.default' || name === '') for (const d of this.#defaultScopes) scp.add(d);
      else scp.add(name);
    }
    if (scp.size === 0) for (const d of this.#defaultScopes) scp.add(d);
    return { audience: audience ?? this.downstreamAudience, scp: [...scp] };
  }

  async #exchangedTokenResponse(
    ctx: KoaContext,
    subject: Record<string, unknown>,
    audience: string,
    scp: string[],
    tokenExchange: boolean,
  ): Promise<Record<string, unknown>> {
    const now = epoch();
    const clientId = ctx.oidc.client.clientId;
    const accessToken = await this.#sign({
      aud: audience,
      sub: subject.sub,
      oid: subject.oid ?? subject.sub,
      ...(subject.tid === undefined ? {} : { tid: subject.tid }),
      scp: scp.join(' '),
      azp: clientId,
      client_id: clientId,
      iat: now,
      exp: now + this.#exchangedTtl,
      // Which of the user's tokens this one was exchanged from: lets a test server tell a request carrying a
      // superseded assertion's descendant from a current one.
      ...(typeof subject.jti === 'string' ? { assertion_jti: subject.jti } : {}),
    });
    return {
      access_token: accessToken,
      token_type: 'Bearer',
      expires_in: this.#exchangedTtl,
      scope: scp.join(' '),
      ...(tokenExchange ? { issued_token_type: ACCESS_TOKEN_TYPE } : {}),
    };
  }
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v || undefined;
}
