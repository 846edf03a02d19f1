/**
 * The default {@link OboTokenResolver}: On-Behalf-Of exchanges at an OIDC IdP through openid-client
 * (Entra-style jwt-bearer with `requested_token_use=on_behalf_of`, or RFC 8693 token-exchange), with a per-user
 * token cache, one shared IdP request per key at a time, one retry on transient failures, and errors that
 * never carry a token.
 * @module
 */
import { createHash, randomUUID } from 'node:crypto';
import * as oidc from 'openid-client';
import { discoverOAuthServerInfo } from '@modelcontextprotocol/sdk/client/auth.js';
import { checkResourceAllowed, resourceUrlFromServerUrl } from '@modelcontextprotocol/sdk/shared/auth-utils.js';
import type { Dispatcher } from 'undici';
import { OboError, type OboErrorHint } from '../errors.js';
import { nonEmptyString, nonNegativeMs, oneOf, optionError, positiveInt, positiveMs } from '../options.js';
import { IdpRequestError, idpRequest, type IdpFailure } from './idpErrors.js';
import { AssertionInfoCache, OboTokenCache, type AssertionInfo } from './oboCache.js';
import type { OboRequest, OboToken, OboTokenResolver } from './oboTypes.js';
import type { OboExchangeEvent } from '../events.js';
import { followSignal } from '../connection/signalLink.js';
import type { Coordinator, InvalidationEvent } from '../coordination.js';

const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const ID_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id_token';
const ID_JAG_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id-jag';
/** Most MCP servers whose authorization server discovery is remembered. */
const MAX_DISCOVERED_SERVERS = 256;


/** What the cross-app-access grant needs to know about an MCP server's authorization server. */
interface AuthorizationServerInfo {
  metadata: oidc.ServerMetadata;
  /** The protected resource (the PRM's `resource`, verbatim; the server URL when it has no PRM). */
  resource: string;
}

/**
 * Options of {@link createOboTokenResolver}.
 *
 * A bad option is a `TypeError` thrown at once, whose message names the option as spelled here and says
 * what was expected (e.g. `createOboTokenResolver: timeoutMs must be a number of milliseconds > 0 (got -1)`); nothing is silently defaulted.
 *
 * @example
 * ```ts
 * const opts: OboTokenResolverOptions = {
 *   issuer: 'https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0',
 *   clientId: 'agent-runtime',
 *   clientAuthMethod: 'private_key_jwt',
 *   privateKey: { key: signingKey, kid: 'runtime-2026' },
 *   timeoutMs: 5_000,
 * };
 * ```
 */
export interface OboTokenResolverOptions {
  /** The IdP's issuer identifier (discovery at `<issuer>/.well-known/openid-configuration`). */
  issuer: string | URL;
  /** The runtime's client id at the IdP. */
  clientId: string;
  /** The runtime's client secret (for `client_secret_post` / `client_secret_basic`). */
  clientSecret?: string;
  /**
   * `'jwt-bearer'` (default; Entra OBO: `requested_token_use=on_behalf_of`), RFC 8693 `'token-exchange'`, or
   * `'cross-app-access'` (enterprise-managed authorization, SEP-990): the user's ID token (the assertion) is
   * exchanged at this IdP for an ID-JAG (RFC 8693, `requested_token_type=…:id-jag`, `audience` and `resource`
   * of the MCP server's authorization server), which is then traded at that authorization server (RFC 7523
   * jwt-bearer, `client_secret_basic` with the request's `authorizationServerClient`) for the access token.
   */
  grant?: 'jwt-bearer' | 'token-exchange' | 'cross-app-access';
  /**
   * How the runtime authenticates at the token endpoint (the `token_endpoint_auth_method` of RFC 7591 / OpenID
   * Connect); default `client_secret_post` with a secret (Entra style), `private_key_jwt` with a key. The same
   * option name as `createUpstreamTokenProvider`'s. `'none'` (a public client: `client_id` in the body, no
   * secret) only with `grant: 'cross-app-access'`, where it is the default when neither `clientSecret` nor
   * `privateKey` is given.
   */
  clientAuthMethod?: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt' | 'none';
  /**
   * The former name of {@link OboTokenResolverOptions.clientAuthMethod}; still read when `clientAuthMethod` is
   * not given. Giving both with different values is a `TypeError`.
   *
   * @deprecated Use `clientAuthMethod`. This name is no longer read in the next release.
   */
  clientAuth?: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
  /**
   * Signing key for `private_key_jwt`, with what the IdP needs in the client assertion: `kid`; `x5tS256`, the
   * certificate's SHA-256 thumbprint (base64url) as `x5t#S256` header (Microsoft Entra ID identifies
   * certificate credentials by it); `assertionAudience: 'token_endpoint'` for IdPs that want the token endpoint
   * as `aud` (Entra ID) rather than the issuer (the default).
   */
  privateKey?: oidc.CryptoKey | { key: oidc.CryptoKey; kid?: string; x5tS256?: string; assertionAudience?: 'issuer' | 'token_endpoint' };
  /** The token endpoint: given, discovery is skipped. */
  tokenEndpoint?: string;
  /** Allow plain-http IdP URLs (loopback tests only). */
  allowInsecureRequests?: boolean;
  /** Tokens leave the cache this long before they expire; default 60 000 ms. */
  skewMs?: number;
  /** Most tokens cached (least recently used evicted); default 10 000. */
  maxEntries?: number;
  /**
   * Bind each cached token to the assertion it was exchanged for (default `true`). The subject in the cache key
   * comes from the assertion's claims, which are not verified here (the IdP verifies them on exchange): bound
   * entries mean a cache hit needs the very token the IdP accepted, so an unverified token naming another user
   * can never be served that user's cached token. `false` keys by subject only (one exchange per user even
   * across upstream token refreshes): only for hosts that verify every assertion (e.g. with `createBearerVerifier`)
   * before passing it on.
   */
  bindCacheToAssertion?: boolean;
  /** Budget of each IdP request (discovery or exchange), ms; default 10 000. */
  timeoutMs?: number;
  /** Longest `Retry-After` honoured, ms; a longer one fails at once (retryable). Default 5 000. */
  maxRetryAfterMs?: number;
  /** Wait before the one retry of a 5xx, network error or timeout without `Retry-After`, ms; default 100. */
  retryDelayMs?: number;
  /** undici dispatcher for the IdP requests (pool, proxy, mock). */
  dispatcher?: Dispatcher;
  /**
   * Called for every resolved call (cache hit, coalesced or exchanged), with `ok: true`, `cacheHit` and `coalesced`.
   * A throw is ignored. Never given a token.
   */
  onExchange?: (e: OboExchangeEvent) => void;
  /**
   * Several replicas: a shared OBO token cache and one exchange per key across the fleet (e.g.
   * `createRedisCoordinator` of `mcp-switchboard/redis`). The in-process cache stays in front (a warm call makes
   * no coordinator call); on a local miss the shared cache is read under a SHA-256 of the cache key (never a raw
   * token), and on a shared miss one replica exchanges under a fleet-wide lock while the others wait and then
   * read its result. When the coordinator fails, each process exchanges for itself (more IdP load, still correct).
   * A `forceRefresh` (the server rejected the token) publishes a `dropOboToken` invalidation carrying the key's
   * hash: every replica drops the rejected token from its in-process cache. The shared cache keeps the newer of
   * two tokens written for a key, so a holder that stalled past its lock cannot put back an older one.
   */
  coordinator?: Coordinator;
  /** Clock (epoch ms) for token lifetimes; for tests. */
  now?: () => number;
  /** How the retry waits; for tests. */
  sleep?: (ms: number) => Promise<void>;
}

interface Flight {
  promise: Promise<OboToken>;
  force: boolean;
}

/**
 * Creates an {@link OboTokenResolver} backed by an OIDC IdP.
 *
 * - Discovery runs once per resolver, lazily (concurrent first calls share it; a failure is not remembered),
 *   or not at all when `tokenEndpoint` is given.
 * - Tokens are cached per tenant, user (the assertion's `tid`+`oid`, else `sub`), sorted scopes, audience,
 *   issuer, client and grant, until `expires_in` minus `skewMs`, and never past the assertion's own `exp`.
 * - Concurrent misses of one key make one IdP request; `forceRefresh` replaces the entry.
 * - With a `coordinator` (several replicas), one exchange per key across the fleet and a shared cache behind the
 *   in-process one; the coordinator being down only means each process exchanges for itself.
 * - One retry on timeouts, network errors, 429 (after `Retry-After`, up to `maxRetryAfterMs`) and 5xx; none
 *   on `invalid_grant`, `invalid_client`, `consent_required` or any other 4xx. Failures are never cached.
 * - Rejects with `OboError`: `exchange_failed` (with `retryable` and a token-free `cause`), `timeout`,
 *   `empty_exchange_response`, `missing_upstream_token`, `invalid_request`, `aborted`.
 *
 * @example
 * ```ts
 * import { createOboTokenResolver, MCPManager } from 'mcp-switchboard';
 *
 * const oboTokenResolver = createOboTokenResolver({
 *   issuer: `https://login.microsoftonline.com/${tenantId}/v2.0`,
 *   clientId: process.env.CLIENT_ID!,
 *   clientSecret: process.env.CLIENT_SECRET!,
 * });
 * const manager = new MCPManager({ servers, oboTokenResolver });
 * ```
 */
export function createOboTokenResolver(opts: OboTokenResolverOptions): OboTokenResolver {
  const resolver = new OboResolver(opts);
  return (req) => resolver.resolve(req);
}

class OboResolver {
  readonly #issuer: URL;
  readonly #clientId: string;
  readonly #clientMetadata: Partial<oidc.ClientMetadata>;
  readonly #clientAuth: oidc.ClientAuth;
  readonly #grant: NonNullable<OboTokenResolverOptions['grant']>;
  readonly #tokenEndpoint: string | undefined;
  readonly #insecure: boolean;
  readonly #skewMs: number;
  readonly #timeoutMs: number;
  readonly #maxRetryAfterMs: number;
  readonly #retryDelayMs: number;
  readonly #dispatcher: Dispatcher | undefined;
  readonly #onExchange: OboTokenResolverOptions['onExchange'];
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #keyPrefix: string;
  readonly #bindToAssertion: boolean;
  readonly #coordinator: Coordinator | undefined;
  /** This resolver, as the origin of the invalidations it publishes (its own echoes are skipped). */
  readonly #origin = randomUUID();
  /** Shared-cache key (hash) → in-process cache key, for `dropOboToken` invalidations; at most `maxEntries`. */
  readonly #sharedKeys = new Map<string, string>();
  readonly #maxEntries: number;
  /** The token endpoint of the current exchange, for a client assertion whose `aud` must be it. */
  #lastTokenEndpoint: string | undefined;
  readonly #cache: OboTokenCache;
  readonly #assertions: AssertionInfoCache;
  /** The last cache key made from each assertion, and from what (see #keyOf). Weak: it goes with the assertion's entry. */
  readonly #lastKeys = new WeakMap<AssertionInfo, { scopeText: string; tenant: string; audience: string; serverUrl: string; clientId: string; key: string }>();
  readonly #inflight = new Map<string, Flight>();
  #metadata: Promise<oidc.ServerMetadata> | undefined;
  /** cross-app-access: authorization server discovery per MCP server URL (a failure is forgotten). */
  readonly #servers = new Map<string, Promise<AuthorizationServerInfo>>();
  #seq = 0;

  constructor(opts: OboTokenResolverOptions) {
    if (!opts || typeof opts !== 'object') throw optionError('createOboTokenResolver: options', 'an object', opts);
    let issuer: URL;
    try {
      issuer = new URL(opts.issuer);
    } catch {
      throw optionError('createOboTokenResolver: issuer', 'an absolute URL', opts.issuer);
    }
    nonEmptyString(opts.clientId, 'createOboTokenResolver: clientId');
    const grant = oneOf(opts.grant ?? 'jwt-bearer', ['jwt-bearer', 'token-exchange', 'cross-app-access'] as const, 'createOboTokenResolver: grant');
    const insecure = opts.allowInsecureRequests === true;
    const endpoints = [issuer.href, ...(opts.tokenEndpoint === undefined ? [] : [opts.tokenEndpoint])];
    for (const url of endpoints) {
      let protocol: string;
      try {
        protocol = new URL(url).protocol;
      } catch {
        throw new TypeError('createOboTokenResolver: tokenEndpoint must be a valid URL');
      }
      if (protocol !== 'https:' && !(insecure && protocol === 'http:')) {
        throw new TypeError('createOboTokenResolver: IdP URLs must be https (allowInsecureRequests permits http, for loopback tests only)');
      }
    }

    if (opts.clientAuthMethod !== undefined && opts.clientAuth !== undefined && opts.clientAuthMethod !== opts.clientAuth) {
      throw new TypeError(
        `createOboTokenResolver: clientAuth is the deprecated name of clientAuthMethod; give clientAuthMethod only (got clientAuthMethod '${String(opts.clientAuthMethod)}' and clientAuth '${String(opts.clientAuth)}')`,
      );
    }
    const method =
      opts.clientAuthMethod ??
      opts.clientAuth ??
      (opts.clientSecret ? 'client_secret_post' : opts.privateKey ? 'private_key_jwt' : grant === 'cross-app-access' ? 'none' : undefined);
    switch (method) {
      case 'none':
        if (grant === 'cross-app-access') {
          this.#clientAuth = oidc.None();
          this.#clientMetadata = {};
          break;
        }
        throw optionError(
          `createOboTokenResolver: ${opts.clientAuthMethod !== undefined ? 'clientAuthMethod' : 'clientAuth'}`,
          "one of 'client_secret_post', 'client_secret_basic', 'private_key_jwt' (a public client, 'none', is only allowed with grant 'cross-app-access')",
          method,
        );
      case 'client_secret_post':
      case 'client_secret_basic':
        if (!opts.clientSecret) throw new TypeError(`createOboTokenResolver: clientAuthMethod '${method}' needs clientSecret`);
        this.#clientAuth = method === 'client_secret_post' ? oidc.ClientSecretPost(opts.clientSecret) : oidc.ClientSecretBasic(opts.clientSecret);
        this.#clientMetadata = { client_secret: opts.clientSecret };
        break;
      case 'private_key_jwt':
        if (!opts.privateKey) throw new TypeError("createOboTokenResolver: clientAuthMethod 'private_key_jwt' needs privateKey");
        this.#clientAuth = this.#privateKeyJwt(opts.privateKey);
        this.#clientMetadata = {};
        break;
      case undefined:
        throw new TypeError('createOboTokenResolver: a confidential client is required: give clientSecret or privateKey');
      default:
        throw optionError(
          `createOboTokenResolver: ${opts.clientAuthMethod !== undefined ? 'clientAuthMethod' : 'clientAuth'}`,
          "one of 'client_secret_post', 'client_secret_basic', 'private_key_jwt' ('none' with grant 'cross-app-access')",
          method,
        );
    }

    this.#skewMs = nonNegativeMs(opts.skewMs, 'createOboTokenResolver: skewMs', 60_000);
    this.#timeoutMs = positiveMs(opts.timeoutMs, 'createOboTokenResolver: timeoutMs', 10_000);
    this.#maxRetryAfterMs = nonNegativeMs(opts.maxRetryAfterMs, 'createOboTokenResolver: maxRetryAfterMs', 5_000);
    this.#retryDelayMs = nonNegativeMs(opts.retryDelayMs, 'createOboTokenResolver: retryDelayMs', 100);
    const maxEntries = positiveInt(opts.maxEntries, 'createOboTokenResolver: maxEntries', 10_000);
    this.#issuer = issuer;
    this.#clientId = opts.clientId;
    this.#grant = grant;
    this.#tokenEndpoint = opts.tokenEndpoint;
    this.#insecure = insecure;
    this.#dispatcher = opts.dispatcher;
    this.#onExchange = opts.onExchange;
    this.#now = opts.now ?? Date.now;
    this.#sleep = opts.sleep ?? sleep;
    this.#keyPrefix = JSON.stringify([issuer.href, opts.clientId, grant]);
    this.#bindToAssertion = opts.bindCacheToAssertion ?? true;
    if (opts.coordinator !== undefined && (typeof opts.coordinator !== 'object' || opts.coordinator === null || typeof opts.coordinator.acquire !== 'function')) {
      throw optionError('createOboTokenResolver: coordinator', 'a Coordinator (e.g. from createRedisCoordinator)', opts.coordinator);
    }
    this.#coordinator = opts.coordinator;
    this.#cache = new OboTokenCache({ maxEntries, now: this.#now });
    this.#assertions = new AssertionInfoCache(Math.min(maxEntries, 1_000));
    this.#maxEntries = maxEntries;
    if (this.#coordinator) {
      // Another replica replaced a rejected token: drop this process's copy. Held weakly: a resolver the host let
      // go is not kept alive by its coordinator (its subscription ends at the next event).
      const self = new WeakRef(this);
      const off = this.#coordinator.subscribe((event) => {
        const resolver = self.deref();
        if (!resolver) return off();
        resolver.#dropped(event);
      });
    }
  }

  /** Applies a `dropOboToken` from another replica (this resolver's own echo is skipped). */
  #dropped(event: InvalidationEvent): void {
    if (!event || event.kind !== 'dropOboToken' || typeof event.key !== 'string' || event.origin === this.#origin) return;
    const local = this.#sharedKeys.get(event.key);
    if (local === undefined) return;
    this.#sharedKeys.delete(event.key);
    this.#cache.delete(local);
  }

  resolve(req: OboRequest): Promise<OboToken> {
    const started = performance.now();
    const serverName = req?.serverName;
    if (typeof req?.assertion !== 'string' || req.assertion.trim() === '') {
      return Promise.reject(new OboError('missing_upstream_token', `No upstream token to exchange for server "${serverName}"`, { serverName }));
    }
    const crossApp = this.#grant === 'cross-app-access';
    const scopes = crossApp ? (req.scopes ?? []) : req.scopes;
    if (!Array.isArray(scopes) || (scopes.length === 0 && !crossApp) || scopes.some((s) => typeof s !== 'string' || s === '' || /\s/.test(s))) {
      return Promise.reject(
        new OboError('invalid_request', `OBO for server "${serverName}" needs at least one scope, each without whitespace`, { serverName }),
      );
    }
    const asClient = req.authorizationServerClient;
    if (crossApp && (!validUrl(req.serverUrl) || typeof asClient?.clientId !== 'string' || asClient.clientId === '' || typeof asClient.clientSecret !== 'string' || asClient.clientSecret === '')) {
      return Promise.reject(
        new OboError('invalid_request', `Cross-app access for server "${serverName}" needs its serverUrl and authorizationServerClient ({ clientId, clientSecret })`, { serverName }),
      );
    }
    if (req.signal?.aborted) return Promise.reject(aborted(serverName));

    const info = this.#assertions.get(req.assertion);
    const key = this.#keyOf(info, req, scopes, crossApp);

    if (!req.forceRefresh) {
      const hit = this.#cache.get(key);
      if (hit) {
        this.#emit(req, true, false, started);
        return Promise.resolve({ ...hit, cacheHit: true });
      }
    }

    // An upstream token already past its `exp` cannot be exchanged: say so without sending it.
    if (info.expiresAt !== undefined && info.expiresAt <= this.#now()) {
      return Promise.reject(expiredAssertion(serverName, info.expiresAt));
    }

    let flight = this.#inflight.get(key);
    const coalesced = !!flight && (!req.forceRefresh || flight.force);
    if (!flight || !coalesced) {
      // A forced refresh means the cached token was rejected: never serve it again, even if the refresh fails.
      if (req.forceRefresh) this.#cache.delete(key);
      const promise = this.#obtain(key, crossApp ? { ...req, scopes } : req, info, ++this.#seq);
      const current: Flight = { promise, force: !!req.forceRefresh };
      flight = current;
      this.#inflight.set(key, current);
      // Also the rejection handler that keeps a flight all of whose callers aborted from going unhandled.
      const done = () => {
        if (this.#inflight.get(key) === current) this.#inflight.delete(key);
      };
      promise.then(done, done);
    }
    return raceAbort(flight.promise, req.signal, serverName).then((token) => {
      this.#emit(req, false, coalesced, started);
      return { ...token, cacheHit: false };
    });
  }

  /**
   * A token for a key after a local miss: without a coordinator, the exchange; with one, the shared cache first,
   * then the exchange under the key's fleet-wide lock (waiters read the holder's result). Any coordinator
   * failure falls back to this process's own exchange.
   */
  async #obtain(key: string, req: OboRequest, info: AssertionInfo, seq: number): Promise<OboToken> {
    const coordinator = this.#coordinator;
    if (!coordinator) return this.#exchange(key, req, info, seq);
    const sharedKey = createHash('sha256').update(key).digest('base64url');
    this.#sharedKeys.delete(sharedKey);
    this.#sharedKeys.set(sharedKey, key);
    if (this.#sharedKeys.size > this.#maxEntries) this.#sharedKeys.delete(this.#sharedKeys.keys().next().value!);
    const shared = coordinator.oboTokens;
    let lock: Awaited<ReturnType<Coordinator['acquire']>>;
    /** With forceRefresh: the token that was rejected (a shared entry holding it is not served). */
    let rejected: string | undefined;
    try {
      if (req.forceRefresh) {
        rejected = (await shared.get(sharedKey))?.accessToken;
        await shared.delete(sharedKey);
        // The other replicas' in-process caches may hold the rejected token too: they drop it (the shared entry is
        // gone, so their next call reads this replica's new token or waits for it under the lock).
        coordinator.publish({ kind: 'dropOboToken', key: sharedKey, origin: this.#origin }).catch(() => undefined);
      } else {
        const hit = await shared.get(sharedKey);
        if (hit) return this.#adopt(key, hit, info, seq);
      }
      // Long enough for one exchange with its retry: a holder that dies frees the key after this.
      const budget = 3 * this.#timeoutMs + this.#maxRetryAfterMs;
      lock = await coordinator.acquire(`obo:${sharedKey}`, { ttlMs: budget, waitMs: budget });
    } catch {
      return this.#exchange(key, req, info, seq); // the coordinator is down: this process exchanges for itself
    }
    try {
      // Another replica may have exchanged while this one waited.
      const hit = await shared.get(sharedKey).catch(() => undefined);
      if (hit && hit.accessToken !== rejected) return this.#adopt(key, hit, info, seq);
      const token = await this.#exchange(key, req, info, seq);
      const staleAt = this.#staleAt(token, info);
      // `set` keeps the newer token: a holder whose lock expired while it stalled cannot put back an older one.
      if (staleAt !== undefined && staleAt > this.#now()) await shared.set(sharedKey, token, staleAt).catch(() => undefined);
      return token;
    } finally {
      await lock?.release().catch(() => undefined);
    }
  }

  /** A token read from the shared cache, cached here by the same rule as an exchanged one. */
  #adopt(key: string, token: OboToken, info: AssertionInfo, seq: number): OboToken {
    const copy: OboToken = { accessToken: token.accessToken, ...(token.expiresAt === undefined ? {} : { expiresAt: token.expiresAt }) };
    const staleAt = this.#staleAt(copy, info);
    if (staleAt !== undefined && staleAt > this.#now()) this.#cache.set(key, copy, staleAt, seq);
    return copy;
  }

  /** When a token stops being served from a cache: `skewMs` before it expires, and never past the assertion's `exp`. */
  #staleAt(token: OboToken, info: AssertionInfo): number | undefined {
    if (token.expiresAt === undefined) return undefined;
    return Math.min(token.expiresAt - this.#skewMs, info.expiresAt ?? Infinity);
  }

  /** One exchange for a key: at most two IdP requests (one retry on a transient failure). */
  async #exchange(key: string, req: OboRequest, info: AssertionInfo, seq: number): Promise<OboToken> {
    let failure: IdpFailure;
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await this.#request(req);
        return this.#store(key, res, info, seq);
      } catch (err) {
        if (err instanceof OboError) throw err; // already says what went wrong, never retried
        // Anything unclassified is permanent, and its text (which might echo a request) is not passed on.
        failure = err instanceof IdpRequestError ? err.failure : { kind: 'unknown', retryable: false, cause: {} };
      }
      if (attempt === 2 || !failure.retryable) break;
      if (failure.retryAfterMs !== undefined && failure.retryAfterMs > this.#maxRetryAfterMs) break;
      await this.#sleep(failure.retryAfterMs ?? this.#retryDelayMs);
    }
    // The IdP did not say why it refused the grant, but the assertion may have expired while it was in flight.
    if (failure.kind === 'http' && failure.cause.error === 'invalid_grant' && failure.cause.hint === undefined && info.expiresAt !== undefined && info.expiresAt <= this.#now()) {
      failure = { ...failure, cause: { ...failure.cause, hint: 'expired' } };
    }
    throw oboErrorFromIdpFailure(failure, req.serverName);
  }

  #privateKeyJwt(pk: NonNullable<OboTokenResolverOptions['privateKey']>): oidc.ClientAuth {
    const { key, kid, x5tS256, assertionAudience } = 'key' in pk ? pk : { key: pk, kid: undefined, x5tS256: undefined, assertionAudience: undefined };
    oneOf(assertionAudience, ['issuer', 'token_endpoint'] as const, 'createOboTokenResolver: privateKey.assertionAudience', undefined);
    return oidc.PrivateKeyJwt(kid === undefined ? key : { key, kid }, {
      [oidc.modifyAssertion]: (header, payload) => {
        if (x5tS256 !== undefined) header['x5t#S256'] = x5tS256;
        if (assertionAudience === 'token_endpoint' && this.#lastTokenEndpoint !== undefined) payload.aud = this.#lastTokenEndpoint;
      },
    });
  }

  async #request(req: OboRequest): Promise<oidc.TokenEndpointResponse> {
    if (this.#grant === 'cross-app-access') return this.#crossAppAccess(req);
    const metadata = await this.#serverMetadata();
    this.#lastTokenEndpoint = metadata.token_endpoint;
    const params: Record<string, string> =
      this.#grant === 'jwt-bearer'
        ? { assertion: req.assertion, requested_token_use: 'on_behalf_of', scope: req.scopes.join(' ') }
        : {
            subject_token: req.assertion,
            subject_token_type: ACCESS_TOKEN_TYPE,
            scope: req.scopes.join(' '),
            ...(req.audience === undefined ? {} : { audience: req.audience }),
          };
    return idpRequest((fetch) => {
      const config = this.#configuration(metadata, fetch);
      return oidc.genericGrantRequest(config, this.#grant === 'jwt-bearer' ? JWT_BEARER : TOKEN_EXCHANGE, params);
    }, this.#requestOptions());
  }

  /**
   * Cross-app access (SEP-990): the user's ID token → ID-JAG at the IdP (RFC 8693), then ID-JAG → access token
   * at the MCP server's authorization server (RFC 7523 jwt-bearer, `client_secret_basic`).
   */
  async #crossAppAccess(req: OboRequest): Promise<oidc.TokenEndpointResponse> {
    const serverUrl = req.serverUrl!;
    const client = req.authorizationServerClient!;
    const server = await this.#authorizationServer(serverUrl, req);
    const idp = await this.#serverMetadata();
    this.#lastTokenEndpoint = idp.token_endpoint;
    const scope: Record<string, string> = req.scopes.length === 0 ? {} : { scope: req.scopes.join(' ') };
    const idJag = await idpRequest(
      (fetch) =>
        oidc.genericGrantRequest(this.#configuration(idp, fetch), TOKEN_EXCHANGE, {
          requested_token_type: ID_JAG_TOKEN_TYPE,
          audience: server.metadata.issuer,
          resource: server.resource,
          subject_token: req.assertion,
          subject_token_type: ID_TOKEN_TYPE,
          ...scope,
        }),
      this.#requestOptions(),
    );
    if (typeof idJag.access_token !== 'string' || idJag.access_token === '') {
      throw new IdpRequestError({ kind: 'empty_response', retryable: false, cause: { status: 200 } });
    }
    if (idJag.issued_token_type !== undefined && idJag.issued_token_type !== ID_JAG_TOKEN_TYPE) {
      throw new IdpRequestError({ kind: 'invalid_response', retryable: false, cause: { status: 200 } });
    }
    return idpRequest((fetch) => {
      // RFC 6749 §2.3.1: oauth4webapi form-urlencodes the id and secret before base64.
      const config = new oidc.Configuration(server.metadata, client.clientId, { client_secret: client.clientSecret }, oidc.ClientSecretBasic(client.clientSecret));
      config[oidc.customFetch] = fetch;
      config.timeout = Math.ceil(this.#timeoutMs / 1000) + 1;
      if (this.#insecure) oidc.allowInsecureRequests(config);
      return oidc.genericGrantRequest(config, JWT_BEARER, { assertion: idJag.access_token, ...scope });
    }, this.#requestOptions());
  }

  /**
   * The MCP server's authorization server, through the MCP SDK's discovery (RFC 9728, then RFC 8414 / OIDC), on
   * the resolver's dispatcher and timeout. Remembered per server URL; a forced refresh discovers again.
   */
  #authorizationServer(serverUrl: string, req: OboRequest): Promise<AuthorizationServerInfo> {
    if (req.forceRefresh) this.#servers.delete(serverUrl);
    let pending = this.#servers.get(serverUrl);
    if (!pending) {
      const what = `Cross-app access for server "${req.serverName}"`;
      const opts = { serverName: req.serverName };
      const fetchFn = (fetch: oidc.CustomFetch) => (url: string | URL, init?: RequestInit) => fetch(String(url), (init ?? {}) as oidc.CustomFetchOptions);
      pending = idpRequest((fetch) => discoverOAuthServerInfo(serverUrl, { fetchFn: fetchFn(fetch) }), this.#requestOptions()).then(
        (info) => {
          const metadata = info.authorizationServerMetadata;
          if (!metadata?.issuer || !metadata.token_endpoint) {
            throw new OboError('exchange_failed', `${what}: its authorization server (${info.authorizationServerUrl}) publishes no metadata with a token endpoint`, opts);
          }
          const fallback = resourceUrlFromServerUrl(serverUrl).href;
          const resource = info.resourceMetadata?.resource ?? fallback;
          if (!checkResourceAllowed({ requestedResource: fallback, configuredResource: resource })) {
            throw new OboError('exchange_failed', `${what}: its protected resource metadata names another resource (${resource})`, opts);
          }
          return { metadata: { ...metadata } as unknown as oidc.ServerMetadata, resource };
        },
        (err: unknown) => {
          // Timeouts and network failures keep their classification (retried once); the SDK's own errors
          // (an HTTP error status, metadata that does not parse) say only that discovery failed.
          if (err instanceof IdpRequestError && err.failure.kind !== 'unknown') throw err;
          throw new OboError('exchange_failed', `${what}: discovery of its authorization server failed`, opts);
        },
      );
      const current = pending;
      this.#servers.set(serverUrl, current);
      if (this.#servers.size > MAX_DISCOVERED_SERVERS) this.#servers.delete(this.#servers.keys().next().value!);
      current.catch(() => {
        if (this.#servers.get(serverUrl) === current) this.#servers.delete(serverUrl);
      });
    }
    return pending;
  }

  /** Discovery once per resolver; concurrent callers share it; a failure is forgotten so the next call retries. */
  #serverMetadata(): Promise<oidc.ServerMetadata> {
    if (this.#tokenEndpoint !== undefined) {
      return Promise.resolve({ issuer: this.#issuer.href.replace(/\/$/, ''), token_endpoint: this.#tokenEndpoint });
    }
    if (!this.#metadata) {
      const pending = idpRequest(
        async (fetch) => {
          const config = await oidc.discovery(this.#issuer, this.#clientId, this.#clientMetadata, this.#clientAuth, {
            [oidc.customFetch]: fetch,
            execute: this.#insecure ? [oidc.allowInsecureRequests] : [],
            timeout: Math.ceil(this.#timeoutMs / 1000) + 1,
          });
          return { ...config.serverMetadata() } as oidc.ServerMetadata;
        },
        this.#requestOptions(),
      );
      this.#metadata = pending;
      pending.catch(() => {
        if (this.#metadata === pending) this.#metadata = undefined;
      });
    }
    return this.#metadata;
  }

  #configuration(metadata: oidc.ServerMetadata, fetch: oidc.CustomFetch): oidc.Configuration {
    // A Configuration per request is cheap and gives each request its own timeout-bound fetch.
    const config = new oidc.Configuration(metadata, this.#clientId, this.#clientMetadata, this.#clientAuth);
    config[oidc.customFetch] = fetch;
    config.timeout = Math.ceil(this.#timeoutMs / 1000) + 1; // ours fires first; this is openid-client's backstop
    if (this.#insecure) oidc.allowInsecureRequests(config);
    return config;
  }

  #requestOptions() {
    return { timeoutMs: this.#timeoutMs, now: this.#now, ...(this.#dispatcher ? { dispatcher: this.#dispatcher } : {}) };
  }

  /** Caches the token for min(expires_in − skew, assertion exp); a token with no such time left is returned, not cached. */
  #store(key: string, res: oidc.TokenEndpointResponse, info: AssertionInfo, seq: number): OboToken {
    if (typeof res.access_token !== 'string' || res.access_token === '') {
      throw new IdpRequestError({ kind: 'empty_response', retryable: false, cause: { status: 200 } });
    }
    const now = this.#now();
    const token: OboToken = { accessToken: res.access_token };
    if (typeof res.expires_in === 'number' && Number.isFinite(res.expires_in)) {
      token.expiresAt = now + res.expires_in * 1000;
      const staleAt = this.#staleAt(token, info)!;
      if (staleAt > now) this.#cache.set(key, token, staleAt, seq);
    }
    return token;
  }

  /**
   * The cache key of a request: the assertion's subject (and its digest when bound), tenant, scopes, audience and,
   * for cross-app access, the server and client. The last key made from each assertion is remembered with what
   * it was made from: a user's calls to one server ask for the same key on every request.
   */
  #keyOf(info: AssertionInfo, req: OboRequest, scopes: readonly string[], crossApp: boolean): string {
    const tenant = info.tenantId ?? req.user?.tenantId ?? '';
    const scopeText = scopes.length === 1 ? scopes[0]! : scopes.join(' ');
    const audience = req.audience ?? '';
    const serverUrl = crossApp ? req.serverUrl! : '';
    const clientId = crossApp ? req.authorizationServerClient!.clientId : '';
    const last = this.#lastKeys.get(info);
    if (last && last.scopeText === scopeText && last.tenant === tenant && last.audience === audience && last.serverUrl === serverUrl && last.clientId === clientId) {
      return last.key;
    }
    const sortedScopes = scopes.length <= 1 ? scopes : [...scopes].sort();
    const key = `${this.#keyPrefix}${JSON.stringify([
      tenant,
      info.subject,
      sortedScopes,
      audience,
      this.#bindToAssertion ? info.digest : '',
      ...(crossApp ? [serverUrl, clientId] : []),
    ])}`;
    this.#lastKeys.set(info, { scopeText, tenant, audience, serverUrl, clientId, key });
    return key;
  }

  #emit(req: OboRequest, cacheHit: boolean, coalesced: boolean, started: number): void {
    if (!this.#onExchange) return;
    const e: OboExchangeEvent = { serverName: req.serverName, userId: req.user?.id, ok: true, cacheHit, durationMs: performance.now() - started };
    if (req.user?.tenantId !== undefined) e.tenantId = req.user.tenantId;
    if (coalesced) e.coalesced = true;
    try {
      this.#onExchange(e);
    } catch {
      // An observer must not break token resolution.
    }
  }
}

/** The resolver's own mapping of a classified IdP failure (not the public glue's `toOboError` in obo.ts). */
function oboErrorFromIdpFailure(failure: IdpFailure, serverName: string): OboError {
  const opts = { retryable: failure.retryable, cause: failure.cause, serverName };
  const what = `OBO token exchange for server "${serverName}"`;
  switch (failure.kind) {
    case 'timeout':
      return new OboError('timeout', `${what} timed out`, { ...opts, retryable: true });
    case 'empty_response':
      return new OboError('empty_exchange_response', `${what}: the IdP answered without an access token`, opts);
    case 'network':
      return new OboError('exchange_failed', `${what} failed: IdP unreachable (${failure.cause.network})`, opts);
    case 'too_large':
      return new OboError('exchange_failed', `${what} failed: the IdP's response was larger than the size cap`, opts);
    case 'http': {
      const { status, error, hint } = failure.cause;
      const codes = failure.cause.error_codes?.length ? `, AADSTS${failure.cause.error_codes.join('/AADSTS')}` : '';
      const detail = hint === undefined ? `${error ?? 'error'} (HTTP ${status})` : `${HINT_TEXT[hint]} (${error ?? 'error'}${codes}, HTTP ${status})`;
      return new OboError('exchange_failed', `${what} failed: ${detail}`, opts);
    }
    default:
      return new OboError('exchange_failed', `${what} failed: unexpected IdP response (${failure.kind})`, opts);
  }
}

/** What each {@link OboErrorHint} means, for messages. */
const HINT_TEXT: Record<OboErrorHint, string> = {
  expired: "the user's upstream token expired",
  wrong_audience: "the user's upstream token was not issued for this client (wrong audience)",
  revoked: "the user's grant was revoked or expired at the IdP; the user must sign in again",
  consent_required: 'consent is required for the requested scopes',
};

/** An assertion past its `exp`: refused locally, like the IdP would (`invalid_grant`, not retryable). */
function expiredAssertion(serverName: string, expiresAt: number): OboError {
  const at = Number.isFinite(expiresAt) && Math.abs(expiresAt) <= 8.64e15 ? ` at ${new Date(expiresAt).toISOString()}` : '';
  return new OboError('exchange_failed', `OBO token exchange for server "${serverName}" not attempted: the user's upstream token expired${at}`, {
    serverName,
    retryable: false,
    cause: { hint: 'expired' },
  });
}

function aborted(serverName: string): OboError {
  return new OboError('aborted', `OBO token request for server "${serverName}" was aborted`, { serverName });
}

/** Settles with `promise`, or rejects this caller alone when its signal aborts first. */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined, serverName: string): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const unfollow = followSignal(signal, () => reject(aborted(serverName)));
    promise.then(
      (v) => {
        unfollow();
        resolve(v);
      },
      (e: unknown) => {
        unfollow();
        reject(e);
      },
    );
  });
}

function validUrl(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  try {
    new URL(value);
    return true;
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}


