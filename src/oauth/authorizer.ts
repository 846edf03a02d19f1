/**
 * The MCP authorization flow (MCP spec 2025-11-25 "Authorization": OAuth 2.1 with PKCE, RFC 9728, RFC 8414,
 * RFC 8707, RFC 9207) run by the package for every (tenant, user, server) of a server with an `oauth` block, on
 * the MCP SDK's client auth module. Tokens are read per request, refreshed once per key at a time (the rotated
 * refresh token saved before use), and never sent once stale: no token, no fallback, a typed error instead.
 * @module
 */
import {
  auth as sdkAuth,
  discoverOAuthServerInfo,
  fetchToken,
  refreshAuthorization,
  registerClient,
  type OAuthDiscoveryState,
} from '@modelcontextprotocol/sdk/client/auth.js';
import type { AuthorizationServerMetadata, OAuthClientInformationMixed } from '@modelcontextprotocol/sdk/shared/auth.js';
import { checkResourceAllowed, resourceUrlFromServerUrl } from '@modelcontextprotocol/sdk/shared/auth-utils.js';
import { InvalidGrantError, OAuthError as SdkOAuthError, ServerError, TemporarilyUnavailableError, TooManyRequestsError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Coordinator, CoordinatorLock } from '../coordination.js';
import { AuthorizationError, AuthorizationRequiredError, SwitchboardError } from '../errors.js';
import type { AuthChallenge, FetchLike } from '../transport/types.js';
import type { UserContext } from '../types.js';
import { checkDiscoveredIssuer, sameIssuer, scopeString, StoreBackedProvider, type ServerOAuthSettings } from './provider.js';
import { MemoryOAuthFlowStore, MemoryOAuthStore, tokenKeyString, type OAuthFlowStore, type OAuthStore, type OAuthTokenKey, type StoredOAuthTokens } from './store.js';

/**
 * The `oauth` option of `MCPManager`: how the package runs the MCP authorization flow for servers whose config
 * has an `oauth` block (and no `userAuthHeaders` provider takes over).
 *
 * @example
 * ```ts
 * const oauth: OAuthOptions = {
 *   redirectUri: 'https://chat.example.com/oauth/callback',
 *   clientMetadataUrl: 'https://chat.example.com/oauth/client-metadata.json',
 *   flowTtlMs: 10 * 60_000,
 * };
 * ```
 */
export interface OAuthOptions {
  /** The host's callback route; the authorization server sends the user's browser back here with `code` and `state`. */
  redirectUri: string | URL;
  /**
   * An HTTPS URL where the host serves its client ID metadata document (the MCP spec's preferred client
   * identity): used with authorization servers that support it, before pre-registered credentials and dynamic registration.
   */
  clientMetadataUrl?: string;
  /** `client_name` in dynamic registrations. Default `mcp-switchboard`. */
  clientName?: string;
  /** Tokens and client registrations. Default: a {@link MemoryOAuthStore}. */
  store?: OAuthStore;
  /** Pending authorizations by `state`. Default: a {@link MemoryOAuthFlowStore}. */
  flowStore?: OAuthFlowStore;
  /** How long a started authorization may wait for its callback, in ms. Default 10 minutes. */
  flowTtlMs?: number;
  /** An access token is refreshed this long before it expires, in ms. Default 60 000. */
  refreshSkewMs?: number;
  /** How many times a server may ask for more scope (403 `insufficient_scope`) for scopes the user already granted. Default 2. */
  maxStepUps?: number;
  /** The clock, in ms since the epoch (tests). Default `Date.now`. */
  now?: () => number;
}

/**
 * One request's need for credentials, as the connection's request path asks.
 *
 * @example
 * ```ts
 * const req: OAuthHeaderRequest = { serverName: 'notes', serverUrl: 'https://notes.example.com/mcp', settings: {}, user: { id: 'alice' }, forceRefresh: false };
 * ```
 */
export interface OAuthHeaderRequest {
  serverName: string;
  /** The MCP server's URL. */
  serverUrl: string;
  settings: ServerOAuthSettings;
  /** The caller; absent on a shared connection (client credentials). */
  user?: UserContext;
  forceRefresh: boolean;
  challenge?: AuthChallenge;
  /** The fetch for this server's OAuth requests (default: the deps' `fetchFor`). */
  fetch?: FetchLike;
  /** The HTTP method of the request the header is for: only a POST (a call) may start a flow that needs consent. */
  method?: string;
  /** On a resend: the Authorization value the server refused. */
  refusedAuthorization?: string;
}

/**
 * Called when a flow starts: the manager emits `authorizationRequired`.
 *
 * @example
 * ```ts
 * const listener: AuthorizationRequiredListener = (e) => console.log(e.serverName, e.userId, e.authorizationUrl.origin);
 * ```
 */
export type AuthorizationRequiredListener = (e: { serverName: string; userId?: string; tenantId?: string; authorizationUrl: URL }) => void;

/**
 * What the authorizer needs from the host side: a guarded fetch per server.
 *
 * @example
 * ```ts
 * const deps: OAuthAuthorizerDeps = { fetchFor: () => factory.fetchFor({}), onAuthorizationRequired: (e) => console.log(e.serverName) };
 * ```
 */
export interface OAuthAuthorizerDeps {
  /** The fetch the OAuth requests of a server go through (our HTTP client and SSRF guard). */
  fetchFor(serverName: string): FetchLike;
  onAuthorizationRequired?: AuthorizationRequiredListener;
  /** A fleet-wide lock (a coordinator's `acquire`): one refresh per key across replicas. */
  acquire?: Coordinator['acquire'];
}

const DEFAULT_FLOW_TTL_MS = 10 * 60_000;
/** Longer than a refresh can take (discovery + token request, each bounded by the OAuth fetch's timeout). */
const REFRESH_LOCK_TTL_MS = 30_000;
const DEFAULT_REFRESH_SKEW_MS = 60_000;

/**
 * Runs the flow. One per manager; state lives in the injected stores, the rest in bounded in-memory caches.
 *
 * @example
 * ```ts
 * const authorizer = new OAuthAuthorizer({ redirectUri: 'https://chat.example.com/oauth/callback' }, { fetchFor: () => factory.fetchFor({}) });
 * const headers = await authorizer.headers({ serverName: 'notes', serverUrl: 'https://notes.example.com/mcp', settings: {}, user: { id: 'alice' }, forceRefresh: false });
 * ```
 */
export class OAuthAuthorizer {
  readonly #redirectUri: string | undefined;
  readonly #clientMetadataUrl: string | undefined;
  readonly #clientName: string;
  readonly #store: OAuthStore;
  readonly #flows: OAuthFlowStore;
  readonly #flowTtlMs: number;
  readonly #skewMs: number;
  readonly #maxStepUps: number;
  readonly #now: () => number;
  readonly #deps: OAuthAuthorizerDeps;
  /** Discovery per server URL, shared by its users. */
  readonly #discovery = new LRUCache<string, OAuthDiscoveryState>({ max: 1_000 });
  /** Refreshed tokens the store could not take yet (see `#keepUnsaved`). */
  readonly #unsaved = new Map<string, UnsavedTokens>();
  /** One token operation per key at a time. */
  readonly #inFlight = new Map<string, Promise<StoredOAuthTokens>>();
  /** The pending authorization of a key, handed out again while it lasts (one URL per user, not one per call). */
  readonly #pending = new LRUCache<string, { error: AuthorizationRequiredError; scope: string | undefined; serverUrl: string; expiresAt: number }>({ max: 10_000 });
  /** The states of the flows this replica started per key (the last few): a revocation takes them out of the flow store. */
  readonly #startedFlows = new LRUCache<string, string[]>({ max: 10_000 });
  /** One dynamic registration per server and authorization server at a time. */
  readonly #registering = new Map<string, Promise<void>>();
  /** Step-ups per key and scope, against the retry limit. */
  readonly #stepUps = new LRUCache<string, number>({ max: 10_000 });

  /** `redirectUri` may be absent only when no server needs a user's consent (client credentials only). */
  constructor(opts: Partial<OAuthOptions>, deps: OAuthAuthorizerDeps) {
    if (opts.redirectUri !== undefined) {
      try {
        this.#redirectUri = new URL(String(opts.redirectUri)).href;
      } catch {
        throw new TypeError('MCPManager: oauth.redirectUri must be an absolute URL');
      }
    }
    if (opts.clientMetadataUrl !== undefined) {
      let u: URL | undefined;
      try {
        u = new URL(opts.clientMetadataUrl);
      } catch {
        u = undefined;
      }
      if (!u || u.protocol !== 'https:' || u.pathname === '/') {
        throw new TypeError('MCPManager: oauth.clientMetadataUrl must be an https URL with a path (a client ID metadata document)');
      }
    }
    this.#clientMetadataUrl = opts.clientMetadataUrl;
    this.#clientName = opts.clientName ?? 'mcp-switchboard';
    this.#store = opts.store ?? new MemoryOAuthStore();
    this.#flows = opts.flowStore ?? new MemoryOAuthFlowStore(opts.now ? { now: opts.now } : {});
    this.#flowTtlMs = ms(opts.flowTtlMs, 'flowTtlMs', DEFAULT_FLOW_TTL_MS);
    this.#skewMs = ms(opts.refreshSkewMs, 'refreshSkewMs', DEFAULT_REFRESH_SKEW_MS);
    const max = opts.maxStepUps ?? 2;
    if (!Number.isInteger(max) || max < 0) throw new TypeError('MCPManager: oauth.maxStepUps must be a whole number >= 0');
    this.#maxStepUps = max;
    this.#now = opts.now ?? Date.now;
    this.#deps = deps;
  }

  /**
   * The Authorization header of one request. Without a usable token and without a challenge, no header: the
   * server's 401 then says where to authorize (RFC 9728 §5.1), and the resend comes back here with it.
   */
  async headers(req: OAuthHeaderRequest): Promise<Record<string, string>> {
    try {
      return await this.#headers(req);
    } catch (err) {
      // A call that joined the token operation of a request belonging to no call (a DELETE, a standby GET), which
      // may not start a consent flow, runs its own: it may.
      if (!backgroundRefusals.has(err as object) || (req.method !== undefined && req.method !== 'POST')) throw err;
      return this.#headers(req);
    }
  }

  async #headers(req: OAuthHeaderRequest): Promise<Record<string, string>> {
    const key = keyOf(req.serverName, req.user);
    if (!req.forceRefresh) {
      const tokens = this.#forServer(await this.#read(key), req.serverUrl);
      if (tokens && this.#fresh(tokens)) return bearer(tokens);
      if (tokens?.refresh_token || isClientCredentials(req.settings)) return bearer(await this.#single(key, () => this.#renew(req, key, tokens)));
      const pending = await this.#pendingFor(key, req.serverUrl);
      if (pending) throw pending.error;
      return {};
    }
    const challenge = req.challenge;
    if (challenge?.error === 'insufficient_scope') return bearer(await this.#single(key, () => this.#stepUp(req, key, challenge)));
    return bearer(await this.#single(key, () => this.#afterRefusal(req, key)));
  }

  /**
   * Completes a flow from the callback URL (or its `code` and `state`): checks the state (known, unused, not
   * expired), the user (when `expectUser` is given), and the `iss` parameter (RFC 9207), then exchanges the code.
   */
  async complete(
    callback: URL | string | { code: string; state: string; iss?: string },
    expectUser: UserContext | undefined,
    serverUrlOf: (serverName: string) => string | undefined,
    settingsOf: (serverName: string) => ServerOAuthSettings | undefined,
  ): Promise<{ serverName: string; userId: string; tenantId?: string }> {
    const params = callbackParams(callback);
    if (!params.state) throw new AuthorizationError('authorization_invalid_state', 'The callback carries no state');
    const flow = await this.#flows.take(params.state);
    if (!flow || flow.expiresAt <= this.#now()) {
      throw new AuthorizationError('authorization_invalid_state', 'Unknown, used or expired authorization state: start again from the call that needed it');
    }
    const { key } = flow;
    const serverName = key.serverName;
    const k = tokenKeyString(key);
    if (this.#pending.get(k)?.error.state === params.state) this.#pending.delete(k);
    if (expectUser && (expectUser.id !== key.userId || (expectUser.tenantId ?? undefined) !== (key.tenantId ?? undefined))) {
      throw new AuthorizationError('authorization_user_mismatch', `The authorization for "${serverName}" was started by another user`, { serverName });
    }
    if (params.error) {
      throw new AuthorizationError('authorization_denied', `"${serverName}": the authorization server answered ${safeCode(params.error)}`, { serverName });
    }
    if (params.iss !== undefined ? flow.issuer === undefined || params.iss !== flow.issuer : flow.issRequired === true) {
      throw new AuthorizationError('authorization_issuer_mismatch', `"${serverName}": the callback's iss is not the authorization server of this flow (RFC 9207)`, { serverName });
    }
    if (!params.code) throw new AuthorizationError('authorization_invalid_state', `"${serverName}": the callback carries no code`, { serverName });
    const serverUrl = serverUrlOf(serverName);
    const settings = settingsOf(serverName);
    if (!serverUrl || !settings || serverUrl !== flow.serverUrl) {
      throw new AuthorizationError('authorization_invalid_state', `"${serverName}" was removed or changed since the authorization started`, { serverName });
    }
    if (!flow.authorizationServerUrl) throw new AuthorizationError('authorization_invalid_state', `"${serverName}": the flow names no authorization server`, { serverName });
    // The code and verifier go to the authorization server the flow started at, with the client it started with,
    // once: not to whatever a later discovery found (a mix-up), and not again after a refusal (the SDK's auth()
    // retries an invalid_grant).
    const provider = this.#provider(key, serverUrl, settings, flow.codeVerifier, flow.client);
    let tokens;
    try {
      tokens = await fetchToken(provider, flow.authorizationServerUrl, {
        ...(flow.authorizationServerMetadata ? { metadata: flow.authorizationServerMetadata as AuthorizationServerMetadata } : {}),
        ...(flow.resource ? { resource: flow.resource } : {}),
        authorizationCode: params.code,
        fetchFn: this.#deps.fetchFor(serverName),
      });
    } catch (err) {
      throw failure(serverName, err, 'the authorization code exchange failed');
    }
    await this.#store.setTokens(key, {
      ...tokens,
      obtainedAt: this.#now(),
      issuer: flow.authorizationServerUrl,
      serverUrl,
      ...(flow.client ? { client: flow.client } : {}),
    });
    return { serverName, userId: key.userId ?? '', ...(key.tenantId === undefined ? {} : { tenantId: key.tenantId }) };
  }

  /** Forgets a key's tokens and pending authorization (the user revoked, or signed out of that server). */
  async revoke(serverName: string, user: UserContext | undefined): Promise<void> {
    const key = keyOf(serverName, user);
    const k = tokenKeyString(key);
    this.#pending.delete(k);
    const kept = this.#unsaved.get(k);
    this.#unsaved.delete(k);
    await kept?.lock?.release();
    // Flows started before the revocation can no longer complete: taken out of the (possibly shared) flow store.
    for (const state of this.#startedFlows.get(k) ?? []) await this.#flows.take(state);
    this.#startedFlows.delete(k);
    for (const sk of [...this.#stepUps.keys()]) if (sk.startsWith(`${k}#`)) this.#stepUps.delete(sk);
    await this.#store.deleteTokens(key);
  }

  /** A key's tokens: those this process could not save yet, else the store's. */
  async #read(key: OAuthTokenKey): Promise<StoredOAuthTokens | undefined> {
    return (await this.#unsavedFor(key)) ?? (await this.#store.getTokens(key));
  }

  /**
   * Tokens refreshed while the store could not take them: saved now if it can (then the store is the source
   * again), else the call fails, retryably (see `#keepUnsaved`).
   */
  async #unsavedFor(key: OAuthTokenKey): Promise<StoredOAuthTokens | undefined> {
    if (this.#unsaved.size === 0) return undefined;
    const entry = this.#unsaved.get(tokenKeyString(key));
    if (!entry) return undefined;
    if (!(await this.#saveUnsaved(entry))) throw unsavedError(key.serverName);
    return entry.tokens;
  }

  /**
   * Keeps tokens the store could not take (their rotated refresh token is the only copy), with the fleet lock
   * still held so that no other replica presents the old refresh token meanwhile; saved at the next call or by a
   * background retry, then the lock is released. Until then the key's calls fail, retryably: tokens are saved
   * before they are used.
   */
  #keepUnsaved(key: OAuthTokenKey, tokens: StoredOAuthTokens, lock: CoordinatorLock | undefined): void {
    const entry: UnsavedTokens = { key, tokens, ...(lock ? { lock } : {}) };
    this.#unsaved.set(tokenKeyString(key), entry);
    let pause = 100;
    const retry = () => {
      if (this.#unsaved.get(tokenKeyString(key)) !== entry) return;
      void this.#saveUnsaved(entry).then((saved) => {
        if (saved) return;
        pause = Math.min(pause * 2, 2_000);
        setTimeout(retry, pause).unref();
      });
    };
    setTimeout(retry, pause).unref();
  }

  /** Saves kept tokens; true once the store has them (the kept lock is then released). */
  async #saveUnsaved(entry: UnsavedTokens): Promise<boolean> {
    const k = tokenKeyString(entry.key);
    try {
      await this.#store.setTokens(entry.key, entry.tokens);
    } catch {
      return false;
    }
    if (this.#unsaved.get(k) === entry) this.#unsaved.delete(k);
    await entry.lock?.release();
    return true;
  }

  /** Forgets a key's tokens when they were obtained for this server URL (another URL's are not this one's to drop). */
  async #dropTokens(key: OAuthTokenKey, serverUrl: string): Promise<void> {
    if (this.#forServer(await this.#store.getTokens(key), serverUrl)) await this.#store.deleteTokens(key);
  }

  /** Tokens obtained for another server URL (a changed config, a per-call config) are not this server's. */
  #forServer(tokens: StoredOAuthTokens | undefined, serverUrl: string): StoredOAuthTokens | undefined {
    return tokens && (tokens.serverUrl === undefined || tokens.serverUrl === serverUrl) ? tokens : undefined;
  }

  #fetch(req: OAuthHeaderRequest): FetchLike {
    return req.fetch ?? this.#deps.fetchFor(req.serverName);
  }

  #fresh(tokens: StoredOAuthTokens): boolean {
    if (typeof tokens.expires_in !== 'number') return true;
    return tokens.obtainedAt + tokens.expires_in * 1000 - this.#skewMs > this.#now();
  }

  /** The pending flow of a key for this server URL, while it lasts and its flow store still holds it. */
  async #pendingFor(key: OAuthTokenKey, serverUrl: string) {
    const k = tokenKeyString(key);
    const p = this.#pending.get(k);
    if (!p || p.serverUrl !== serverUrl) return undefined;
    if (p.expiresAt <= this.#now() || (this.#flows.has && !(await this.#flows.has(p.error.state)))) {
      this.#pending.delete(k);
      return undefined;
    }
    return p;
  }

  /** One token operation per key; callers that arrive meanwhile share its result (or its error). */
  #single(key: OAuthTokenKey, run: () => Promise<StoredOAuthTokens>): Promise<StoredOAuthTokens> {
    const k = tokenKeyString(key);
    let p = this.#inFlight.get(k);
    if (!p) {
      p = run().finally(() => this.#inFlight.delete(k));
      this.#inFlight.set(k, p);
    }
    return p;
  }

  /** An expired (or about to) token: refresh it, or for client credentials get a new one. */
  async #renew(req: OAuthHeaderRequest, key: OAuthTokenKey, seen: StoredOAuthTokens | undefined): Promise<StoredOAuthTokens> {
    // Another request of this key may have renewed while this one waited for the store.
    const current = this.#forServer(await this.#read(key), req.serverUrl);
    if (current && this.#fresh(current) && current.access_token !== seen?.access_token) return current;
    if (isClientCredentials(req.settings)) return this.#clientCredentials(req, key);
    if (current?.refresh_token) {
      const refreshed = await this.#refresh(req, key, current);
      if (refreshed) return refreshed;
    }
    return this.#authorize(req, key, undefined, true);
  }

  /** The server refused the token (401 / `invalid_token`): refresh once, else a new authorization. */
  async #afterRefusal(req: OAuthHeaderRequest, key: OAuthTokenKey): Promise<StoredOAuthTokens> {
    const current = this.#forServer(await this.#read(key), req.serverUrl);
    // Concurrent requests refused with one token: the first renewed it; the others take the new one.
    if (current && req.refusedAuthorization !== undefined && bearer(current).Authorization !== req.refusedAuthorization && this.#fresh(current)) return current;
    if (isClientCredentials(req.settings)) {
      await this.#store.deleteTokens(key);
      return this.#clientCredentials(req, key);
    }
    const pending = await this.#pendingFor(key, req.serverUrl);
    if (pending) throw pending.error;
    if (current?.refresh_token) {
      const refreshed = await this.#refresh(req, key, current);
      if (refreshed) return refreshed;
    }
    return this.#authorize(req, key, req.challenge?.scope, true);
  }

  /** 403 `insufficient_scope`: a new authorization for the scopes asked plus those held, within the retry limit. */
  async #stepUp(req: OAuthHeaderRequest, key: OAuthTokenKey, challenge: AuthChallenge): Promise<StoredOAuthTokens> {
    const current = this.#forServer(await this.#read(key), req.serverUrl);
    const held = new Set((current?.scope ?? '').split(' ').filter(Boolean));
    const asked = (challenge.scope ?? '').split(' ').filter(Boolean);
    const scope = [...new Set([...held, ...asked])].join(' ') || undefined;
    const sk = `${tokenKeyString(key)}#${[...asked].sort().join(' ')}`;
    const count = (this.#stepUps.get(sk) ?? 0) + 1;
    if (count > this.#maxStepUps) {
      throw new AuthorizationError(
        'authorization_scope_limit',
        `"${req.serverName}" asked for more scope ${count - 1} times for the same scopes; not asking the user again`,
        { serverName: req.serverName },
      );
    }
    this.#stepUps.set(sk, count);
    if (isClientCredentials(req.settings)) return this.#clientCredentials(req, key, scope);
    const pending = await this.#pendingFor(key, req.serverUrl);
    if (pending && pending.scope === scope) throw pending.error;
    return this.#authorize(req, key, scope, false);
  }

  /**
   * Refresh with the stored refresh token; `undefined` when the grant is gone (the user must consent again). Once
   * per key across the fleet when a coordinator lends its lock: under the lock the stored tokens are read again
   * (another replica may have refreshed, or rotated the refresh token) before anything is sent.
   */
  async #refresh(req: OAuthHeaderRequest, key: OAuthTokenKey, tokens: StoredOAuthTokens): Promise<StoredOAuthTokens | undefined> {
    const acquire = this.#deps.acquire;
    if (!acquire) return this.#refreshWith(req, key, tokens);
    const lockKey = `oauth-refresh:${createHash('sha256').update(tokenKeyString(key)).digest('base64url')}`;
    let lock;
    try {
      lock = await acquire(lockKey, { ttlMs: REFRESH_LOCK_TTL_MS, waitMs: REFRESH_LOCK_TTL_MS });
    } catch (err) {
      throw failure(req.serverName, err, 'the token refresh could not be coordinated');
    }
    try {
      const current = this.#forServer(await this.#read(key), req.serverUrl);
      // Refreshed meanwhile by another replica (or by the previous holder): use it.
      if (current && current.access_token !== tokens.access_token && this.#fresh(current)) return current;
      if (!lock) {
        throw new AuthorizationError('authorization_failed', `"${req.serverName}": another replica's token refresh did not finish in time`, { serverName: req.serverName, retryable: true });
      }
      if (!current?.refresh_token) return undefined;
      return await this.#refreshWith(req, key, current, lock);
    } finally {
      // Tokens the store could not take keep the lock until they are saved (#keepUnsaved).
      if (this.#unsaved.get(tokenKeyString(key))?.lock !== lock) await lock?.release();
    }
  }

  async #refreshWith(req: OAuthHeaderRequest, key: OAuthTokenKey, tokens: StoredOAuthTokens, lock?: CoordinatorLock): Promise<StoredOAuthTokens | undefined> {
    const fetchFn = this.#fetch(req);
    const info = await this.#discover(req, fetchFn);
    if (tokens.issuer && !sameIssuer(tokens.issuer, info.authorizationServerUrl)) {
      // Never present a refresh token to another authorization server.
      await this.#store.deleteTokens(key);
      return undefined;
    }
    const provider = this.#provider(key, req.serverUrl, req.settings);
    const client = tokens.client ?? (await provider.clientInformation());
    if (!client) return undefined;
    try {
      const fresh = await refreshAuthorization(info.authorizationServerUrl, {
        ...(info.authorizationServerMetadata ? { metadata: info.authorizationServerMetadata } : {}),
        clientInformation: client,
        refreshToken: tokens.refresh_token!,
        ...(info.resourceMetadata?.resource ? { resource: info.resourceMetadata.resource } : {}),
        ...(provider.addClientAuthentication ? { addClientAuthentication: provider.addClientAuthentication } : {}),
        fetchFn,
      });
      const stored: StoredOAuthTokens = {
        ...fresh,
        obtainedAt: this.#now(),
        issuer: info.authorizationServerUrl,
        serverUrl: req.serverUrl,
        ...(tokens.client ? { client: tokens.client } : {}),
      };
      // Saved before it is used: a rotated refresh token is the only one that works from now on. When the store
      // cannot take it, this process keeps it (the only copy) and saves it at the next chance.
      try {
        await this.#store.setTokens(key, stored);
      } catch {
        this.#keepUnsaved(key, stored, lock);
        throw unsavedError(req.serverName);
      }
      return stored;
    } catch (err) {
      if (err instanceof InvalidGrantError) {
        // Dead only if it is still the stored one: another replica may have rotated it meanwhile.
        const now = await this.#store.getTokens(key);
        if (!now || now.refresh_token === tokens.refresh_token) await this.#store.deleteTokens(key);
        return undefined;
      }
      throw failure(req.serverName, err, 'the token refresh failed');
    }
  }

  async #clientCredentials(req: OAuthHeaderRequest, key: OAuthTokenKey, scope?: string): Promise<StoredOAuthTokens> {
    const provider = this.#provider(key, req.serverUrl, req.settings);
    const challengeUrl = req.challenge?.resourceMetadataUrl;
    await this.#sdkAuth(req.serverName, provider, this.#fetch(req), {
      serverUrl: req.serverUrl,
      ...(scope ?? req.challenge?.scope ? { scope: (scope ?? req.challenge?.scope)! } : {}),
      ...(challengeUrl ? { resourceMetadataUrl: challengeUrl } : {}),
    });
    const tokens = await this.#store.getTokens(key);
    if (!tokens) throw new AuthorizationError('authorization_failed', `"${req.serverName}": the token request returned no token`, { serverName: req.serverName });
    return tokens;
  }

  /**
   * Starts an authorization: the SDK's `auth()` discovers, registers when needed, and builds the authorization
   * URL with PKCE, `state` and `resource`. The flow is saved and the call fails with the URL to show.
   */
  async #authorize(req: OAuthHeaderRequest, key: OAuthTokenKey, scope: string | undefined, dropTokens: boolean): Promise<StoredOAuthTokens> {
    if (!req.user) throw new SwitchboardError('user_required', `"${req.serverName}" needs a user to authorize`, { serverName: req.serverName });
    if (req.method !== undefined && req.method !== 'POST') {
      // A standby stream or a session's end belongs to no call: no user is waiting to be shown a consent link.
      if (dropTokens) await this.#dropTokens(key, req.serverUrl);
      const err = new AuthorizationError('authorization_failed', `"${req.serverName}" refused the credentials of a ${req.method} that belongs to no call`, { serverName: req.serverName });
      backgroundRefusals.add(err);
      throw err;
    }
    const challengeUrl = req.challenge?.resourceMetadataUrl;
    this.#forgetDiscoveryIfMoved(req, challengeUrl);
    const fetchFn = this.#fetch(req);
    const info = await this.#discover(req, fetchFn, challengeUrl);
    const provider = this.#provider(key, req.serverUrl, req.settings);
    // The scope as the MCP spec orders it (the challenge's, the resource's `scopes_supported`, the config's, none),
    // plus `offline_access` where the authorization server offers refresh tokens that way; passed whole to the
    // SDK so that its request (and its `prompt=consent`, which OIDC servers need for offline_access) matches.
    const requested = scope ?? info.resourceMetadata?.scopes_supported?.join(' ') ?? scopeString(req.settings.scopes);
    const asMetadata = info.authorizationServerMetadata;
    const offline = requested !== undefined && asMetadata?.scopes_supported?.includes('offline_access') === true && !requested.split(' ').includes('offline_access');
    const finalScope = offline ? `${requested} offline_access` : requested;
    await this.#registerIfNeeded(req, provider, info, finalScope, fetchFn);
    const result = await this.#sdkAuth(req.serverName, provider, fetchFn, {
      serverUrl: req.serverUrl,
      ...(finalScope ? { scope: finalScope } : {}),
      ...(challengeUrl ? { resourceMetadataUrl: challengeUrl } : {}),
    });
    if (result === 'AUTHORIZED') {
      const tokens = await this.#store.getTokens(key);
      if (tokens) return tokens;
    }
    const url = provider.authorizationUrl;
    const verifier = provider.savedCodeVerifier;
    if (!url || !verifier) throw new AuthorizationError('authorization_failed', `"${req.serverName}": no authorization URL was produced`, { serverName: req.serverName });
    if (dropTokens) await this.#dropTokens(key, req.serverUrl); // refused: never sent again
    const state = this.#discovery.get(req.serverUrl);
    const metadata = state?.authorizationServerMetadata;
    const expiresAt = this.#now() + this.#flowTtlMs;
    const resource = url.searchParams.get('resource');
    const client = provider.usedClient;
    await this.#flows.put(provider.flowState, {
      key,
      serverUrl: req.serverUrl,
      codeVerifier: verifier,
      authorizationServerUrl: state?.authorizationServerUrl ?? info.authorizationServerUrl,
      ...(metadata ? { authorizationServerMetadata: metadata } : {}),
      ...(resource ? { resource } : {}),
      // A registered client goes with the flow (a later registration must not take its code); configured ones are re-read.
      ...(client && req.settings.clientId === undefined ? { client } : {}),
      ...(metadata?.issuer ? { issuer: metadata.issuer } : {}),
      ...((metadata as { authorization_response_iss_parameter_supported?: unknown } | undefined)?.authorization_response_iss_parameter_supported === true
        ? { issRequired: true }
        : {}),
      ...(challengeUrl ? { resourceMetadataUrl: challengeUrl.href } : state?.resourceMetadataUrl ? { resourceMetadataUrl: state.resourceMetadataUrl } : {}),
      ...(finalScope ? { scope: finalScope } : {}),
      expiresAt,
    });
    const error = new AuthorizationRequiredError({ serverName: req.serverName, authorizationUrl: url, state: provider.flowState });
    const k = tokenKeyString(key);
    this.#pending.set(k, { error, scope, serverUrl: req.serverUrl, expiresAt });
    this.#startedFlows.set(k, [...(this.#startedFlows.get(k) ?? []).slice(-4), provider.flowState]);
    this.#deps.onAuthorizationRequired?.({
      serverName: req.serverName,
      ...(key.userId === undefined ? {} : { userId: key.userId }),
      ...(key.tenantId === undefined ? {} : { tenantId: key.tenantId }),
      authorizationUrl: url,
    });
    throw error;
  }

  /** The challenge names another metadata document than the one discovered: discover again. */
  #forgetDiscoveryIfMoved(req: OAuthHeaderRequest, challengeUrl: URL | undefined): void {
    const state = this.#discovery.get(req.serverUrl);
    if (state && challengeUrl && state.resourceMetadataUrl !== challengeUrl.href) this.#discovery.delete(req.serverUrl);
  }

  async #discover(req: OAuthHeaderRequest, fetchFn: FetchLike, resourceMetadataUrl?: URL): Promise<OAuthDiscoveryState> {
    const cached = this.#discovery.get(req.serverUrl);
    if (cached) return cached;
    let info;
    try {
      info = await discoverOAuthServerInfo(req.serverUrl, { fetchFn, ...(resourceMetadataUrl ? { resourceMetadataUrl } : {}) });
    } catch (err) {
      throw failure(req.serverName, err, 'authorization server discovery failed');
    }
    const prmResource = info.resourceMetadata?.resource;
    if (prmResource !== undefined && !checkResourceAllowed({ requestedResource: resourceUrlFromServerUrl(req.serverUrl), configuredResource: prmResource })) {
      // Checked before anything is registered or requested there (RFC 9728 §3.3: the metadata must be this resource's).
      throw new AuthorizationError('authorization_failed', `"${req.serverName}": its protected-resource metadata describes another resource`, { serverName: req.serverName });
    }
    const state: OAuthDiscoveryState = {
      ...info,
      authorizationServerUrl: String(info.authorizationServerUrl),
      ...(resourceMetadataUrl ? { resourceMetadataUrl: resourceMetadataUrl.href } : {}),
    };
    checkDiscoveredIssuer(state, req.serverUrl, req.serverName);
    this.#discovery.set(req.serverUrl, state);
    return state;
  }

  /**
   * Dynamic registration (RFC 7591), when the client has no identity at this authorization server yet (no stored
   * registration, no client ID metadata document it accepts, no pre-registered id), with every scope the resource
   * and the authorization server names: an authorization server may limit a client to the scopes it registered
   * with (RFC 7591 §2), and a later step-up must not be refused for that. The SDK would register with the first
   * request's scope only. A stored registration whose `scope` lacks what is asked now is replaced by a new one;
   * tokens obtained with the old one keep refreshing with it (they carry their client).
   */
  async #registerIfNeeded(req: OAuthHeaderRequest, provider: StoreBackedProvider, info: OAuthDiscoveryState, scope: string | undefined, fetchFn: FetchLike): Promise<void> {
    // One registration per server and authorization server at a time: the users starting at once share it.
    const rk = `${req.serverName}|${info.authorizationServerUrl}`;
    for (let running = this.#registering.get(rk); running; running = this.#registering.get(rk)) await running.catch(() => {});
    const run = this.#register(req, provider, info, scope, fetchFn);
    this.#registering.set(rk, run);
    try {
      await run;
    } finally {
      if (this.#registering.get(rk) === run) this.#registering.delete(rk);
    }
  }

  async #register(req: OAuthHeaderRequest, provider: StoreBackedProvider, info: OAuthDiscoveryState, scope: string | undefined, fetchFn: FetchLike): Promise<void> {
    const current = await provider.clientInformation();
    if (current) {
      if (req.settings.clientId !== undefined || current.client_id === this.#clientMetadataUrl) return; // configured, or a metadata document
      const registered = (current as { scope?: string }).scope;
      if (registered === undefined || scope === undefined) return;
      const have = new Set(registered.split(' '));
      if (scope.split(' ').every((s) => !s || have.has(s))) return;
    }
    const cimd = this.#clientMetadataUrl !== undefined && info.authorizationServerMetadata?.client_id_metadata_document_supported === true;
    if (cimd) return;
    const asScopes = (info.authorizationServerMetadata?.scopes_supported ?? []).filter((s) => s !== 'openid');
    const all = new Set([...(scope ?? '').split(' '), ...(info.resourceMetadata?.scopes_supported ?? []), ...(scope ? asScopes : [])].filter(Boolean));
    if (all.size && !all.has('offline_access') && info.authorizationServerMetadata?.scopes_supported?.includes('offline_access')) all.add('offline_access');
    let full;
    try {
      full = await registerClient(info.authorizationServerUrl, {
        ...(info.authorizationServerMetadata ? { metadata: info.authorizationServerMetadata } : {}),
        clientMetadata: provider.clientMetadata,
        ...(all.size ? { scope: [...all].join(' ') } : {}),
        fetchFn,
      });
    } catch (err) {
      throw failure(req.serverName, err, 'client registration failed');
    }
    await provider.saveClientInformation({ ...full, issuer: info.authorizationServerUrl } as OAuthClientInformationMixed);
  }

  #provider(key: OAuthTokenKey, serverUrl: string, settings: ServerOAuthSettings, codeVerifier?: string, client?: OAuthClientInformationMixed): StoreBackedProvider {
    const interactive = !isClientCredentials(settings);
    if (interactive && !this.#redirectUri) {
      throw new SwitchboardError('config_invalid', `"${key.serverName}" needs the user's consent: give the manager's oauth.redirectUri`, { serverName: key.serverName });
    }
    return new StoreBackedProvider({
      key,
      serverUrl,
      settings,
      store: this.#store,
      ...(interactive && this.#redirectUri ? { redirectUri: this.#redirectUri } : {}),
      ...(interactive && this.#clientMetadataUrl ? { clientMetadataUrl: this.#clientMetadataUrl } : {}),
      clientName: this.#clientName,
      discovery: {
        get: () => this.#discovery.get(serverUrl),
        set: (s) => void this.#discovery.set(serverUrl, s),
      },
      ...(codeVerifier ? { codeVerifier } : {}),
      ...(client ? { client } : {}),
      now: this.#now,
    });
  }

  async #sdkAuth(
    serverName: string,
    provider: StoreBackedProvider,
    fetchFn: FetchLike,
    opts: { serverUrl: string; authorizationCode?: string; scope?: string; resourceMetadataUrl?: URL },
  ): Promise<'AUTHORIZED' | 'REDIRECT'> {
    try {
      return await sdkAuth(provider, { ...opts, fetchFn });
    } catch (err) {
      throw failure(serverName, err, opts.authorizationCode ? 'the authorization code exchange failed' : 'the authorization request failed');
    }
  }
}

/** Tokens refreshed while the store was unreachable, and the fleet lock kept with them. */
interface UnsavedTokens {
  key: OAuthTokenKey;
  tokens: StoredOAuthTokens;
  lock?: CoordinatorLock;
}

function unsavedError(serverName: string): AuthorizationError {
  return new AuthorizationError('authorization_failed', `"${serverName}": the refreshed token could not be stored yet (the token store is unreachable)`, {
    serverName,
    retryable: true,
  });
}

/** Errors of requests that belong to no call and could not start a flow (see `headers`). */
const backgroundRefusals = new WeakSet<object>();

function keyOf(serverName: string, user: UserContext | undefined): OAuthTokenKey {
  if (!user) return { serverName };
  return { serverName, userId: user.id, ...(user.tenantId === undefined ? {} : { tenantId: user.tenantId }) };
}

function isClientCredentials(settings: ServerOAuthSettings): boolean {
  return settings.grant === 'client_credentials';
}

function bearer(tokens: StoredOAuthTokens): Record<string, string> {
  return { Authorization: `Bearer ${tokens.access_token}` };
}

function ms(v: number | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new TypeError(`MCPManager: oauth.${name} must be a positive number of ms`);
  return v;
}

function callbackParams(callback: URL | string | { code: string; state: string; iss?: string }): {
  code?: string;
  state?: string;
  iss?: string;
  error?: string;
} {
  if (callback instanceof URL || typeof callback === 'string') {
    let url: URL;
    try {
      url = callback instanceof URL ? callback : new URL(callback);
    } catch {
      throw new AuthorizationError('authorization_invalid_state', 'The callback is not an absolute URL');
    }
    const q = url.searchParams;
    const get = (n: string) => q.get(n) ?? undefined;
    return { ...pick('code', get('code')), ...pick('state', get('state')), ...pick('iss', get('iss')), ...pick('error', get('error')) };
  }
  if (!callback || typeof callback !== 'object') throw new TypeError('completeAuthorization: expected a callback URL or { code, state }');
  return { ...pick('code', callback.code), ...pick('state', callback.state), ...pick('iss', callback.iss) };
}

function pick<K extends string>(k: K, v: string | undefined): Partial<Record<K, string>> {
  return typeof v === 'string' && v !== '' ? ({ [k]: v } as Record<K, string>) : {};
}

/** An OAuth error code is a short token (RFC 6749 §5.2); anything else is not echoed. */
function safeCode(code: string): string {
  return /^[\x20-\x21\x23-\x5B\x5D-\x7E]{1,64}$/.test(code) ? `"${code}"` : 'an error';
}

/** Maps what the SDK's auth functions throw to {@link AuthorizationError}; transient answers are retryable. */
function failure(serverName: string, err: unknown, what: string): SwitchboardError {
  if (err instanceof SwitchboardError) return err;
  // The SDK's errors quote what the authorization server answered (an echoed refresh token, code or secret may be
  // in it): only fields that cannot hold one go into the cause.
  if (err instanceof SdkOAuthError) {
    const transient = err instanceof ServerError || err instanceof TemporarilyUnavailableError || err instanceof TooManyRequestsError;
    return new AuthorizationError('authorization_failed', `"${serverName}": ${what} (${safeCode(err.errorCode)})`, {
      serverName,
      retryable: transient,
      cause: { error: /^[\w.-]{1,64}$/.test(err.errorCode) ? err.errorCode : 'unknown' },
    });
  }
  const inner = (err as { cause?: { code?: unknown; syscall?: unknown } } | undefined)?.cause;
  const network = err instanceof TypeError && typeof inner?.code === 'string';
  const cause = network ? { code: String(inner!.code), ...(typeof inner!.syscall === 'string' ? { syscall: inner!.syscall } : {}) } : { name: err instanceof Error ? err.name : typeof err };
  return new AuthorizationError('authorization_failed', `"${serverName}": ${what}`, { serverName, retryable: network, cause });
}
