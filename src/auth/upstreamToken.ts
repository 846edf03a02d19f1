/**
 * Always-fresh upstream tokens: a user's federated session (access + refresh token) is kept in a store and
 * renewed with the `refresh_token` grant (openid-client) when it is about to expire, so the OBO assertion a
 * user context hands out is never stale. Concurrent renewals of one session share one IdP request.
 * @module
 */
import { createHash } from 'node:crypto';
import * as oidc from 'openid-client';
import { decodeJwt } from 'jose';
import { fetch as undiciFetch } from 'undici';
import { SwitchboardError, UpstreamTokenError } from '../errors.js';
import { isErrorCode, redactSecrets } from '../redact.js';
import type { FetchLike } from '../transport/types.js';
import { MemoryUpstreamSessionStore, sameSession, type UpstreamSession, type UpstreamSessionStore } from './tokenStore.js';
import { fetchWithBodyCap, isResponseTooLarge } from './responseCap.js';
import { nonEmptyString, nonNegativeMs, optionError, positiveMs } from '../options.js';
import type { Coordinator, CoordinatorLock } from '../coordination.js';

/**
 * Who a session belongs to: the user id and, when there is one, the tenant.
 *
 * @example
 * ```ts
 * const user: UpstreamUser = { id: bearer.subject, tenantId: bearer.tenantId };
 * ```
 */
export interface UpstreamUser {
  /** Stable principal id (required). */
  id: string;
  /** Tenant; part of every key, so two tenants with the same `id` share nothing. */
  tenantId?: string;
}

/**
 * Options of {@link createUpstreamTokenProvider}.
 *
 * A bad option is a `TypeError` thrown at once, whose message names the option as spelled here and says
 * what was expected (e.g. `createUpstreamTokenProvider: skewMs must be a number of milliseconds >= 0 (got -1)`); nothing is silently defaulted.
 *
 * @example
 * ```ts
 * const options: UpstreamTokenProviderOptions = {
 *   issuer: 'https://login.microsoftonline.com/TENANT/v2.0',
 *   clientId: 'runtime-client-id',
 *   clientSecret: process.env.RUNTIME_CLIENT_SECRET,
 *   skewMs: 120_000,
 * };
 * ```
 */
export interface UpstreamTokenProviderOptions {
  /** The IdP's issuer; its metadata is discovered (OpenID Connect discovery) on first refresh. */
  issuer: string | URL;
  /** The client the refresh tokens were issued to. */
  clientId: string;
  /** Its secret (confidential client); without it the client is public (`token_endpoint_auth_method: none`). */
  clientSecret?: string;
  /** How the secret is sent: `client_secret_post` (default, openid-client's) or `client_secret_basic`. */
  clientAuthMethod?: 'client_secret_post' | 'client_secret_basic';
  /** Where sessions live (default the coordinator's `upstreamSessions`, else a new {@link MemoryUpstreamSessionStore}). */
  store?: UpstreamSessionStore;
  /**
   * Several replicas (e.g. `createRedisCoordinator` of `mcp-switchboard/redis`): sessions live in its
   * `upstreamSessions` (unless `store` is given) and each session is refreshed by one replica at a time across
   * the fleet, under a lock; the others wait for and use the stored result. When the coordinator fails, a
   * refresh (and any read of a session it stores) rejects with a retryable `UpstreamTokenError('refresh_failed')`:
   * nothing is sent to the IdP, so no refresh token is lost or presented twice.
   *
   * The lock's TTL outlasts the longest work of its holder: discovery and grant are each aborted after
   * `timeoutMs`, and the whole IdP work after `2 × timeoutMs + 1 s`, while the lock lives
   * `2 × (⌈timeoutMs / 1000⌉ s + 1 s) + 5 s` (openid-client's own timeout counts in whole seconds). Only a
   * process stalled (GC, a blocked event loop) for longer than the TTL can lose its lock while it works; right
   * before the grant it re-reads the session after a discovery, and uses a session another replica stored
   * meanwhile. A rotated session the coordinator could not store (Redis down just after the IdP answered) is kept
   * in this process and stored again (compare-and-set) on each later call and in the background until it
   * succeeds; until then calls for that user reject retryably and this process never presents the older refresh
   * token again. Other replicas cannot know the new refresh token before it is stored: they are kept from
   * refreshing only by the lock, which this process keeps until the session is stored (while Redis is down they
   * cannot refresh at all). A Redis that loses the lock (restarted without persistence, a failover) or an outage
   * longer than the TTL lets another replica present the older refresh token: the IdP refuses it and that
   * replica signs the user out only if the store still holds that refused token.
   */
  coordinator?: Coordinator;
  /** An access token expiring within this many ms counts as expired and is refreshed first (default 60 000). */
  skewMs?: number;
  /** Allow an `http:` issuer: loopback tests only. */
  allowInsecureRequests?: boolean;
  /** `scope` sent with each refresh (Entra v2 accepts it to pick the resource); default none. */
  scope?: string | string[];
  /** Timeout of one IdP request, in ms (default 10 000). */
  timeoutMs?: number;
  /** Fetch used for discovery and refreshes (default: undici's `fetch`). */
  fetch?: FetchLike;
  /** Clock, in epoch ms (default `Date.now`). */
  now?: () => number;
}

/**
 * Per-call options of {@link UpstreamTokenProvider.getToken}.
 *
 * @example
 * ```ts
 * const token = await upstream.getToken(user, { forceRefresh: true, rejectedToken: oldToken });
 * ```
 */
export interface GetUpstreamTokenOptions {
  /** Refresh even if the stored token looks valid (for example after a 401). */
  forceRefresh?: boolean;
  /**
   * With `forceRefresh`: the token that was rejected. When the store already holds a different, valid token
   * (another caller refreshed meanwhile), that one is returned without another refresh.
   */
  rejectedToken?: string;
}

/**
 * Gives users' fresh upstream access tokens; see {@link createUpstreamTokenProvider}.
 *
 * @example
 * ```ts
 * await upstream.setSession(user, { accessToken, refreshToken, expiresAt });
 * const ctx: UserContext = { ...user, upstreamToken: upstream.forUser(user) };
 * ```
 */
export interface UpstreamTokenProvider {
  /** Stores (replaces) a user's session, e.g. after sign-in. */
  setSession(user: UpstreamUser, session: UpstreamSession): Promise<void>;
  /** A function returning the user's fresh access token: pass it as `UserContext.upstreamToken`. */
  forUser(user: UpstreamUser): () => Promise<string>;
  /**
   * The user's access token: the stored one while it is valid beyond the skew, otherwise a refreshed one.
   * Rejects with an {@link UpstreamTokenError}: `reauth_required` (no session, no refresh token, or the IdP
   * refused the refresh token) or `refresh_failed` (`retryable` when the IdP was unreachable, 5xx or 429).
   */
  getToken(user: UpstreamUser, opts?: GetUpstreamTokenOptions): Promise<string>;
  /**
   * A fetch that adds `Authorization: Bearer <fresh token>` to each request. On a 401 it forces one refresh
   * and retries once (never more); a request whose body is a stream cannot be replayed and is not retried.
   */
  fetchWithFreshToken(user: UpstreamUser, fetch?: FetchLike): FetchLike;
  /** Removes a user's session (sign-out). */
  clearSession(user: UpstreamUser): Promise<void>;
  /** The store key of a user's session: issuer, client, tenant and user id, each URI-encoded. */
  sessionKey(user: UpstreamUser): string;
}

/** OAuth errors on a refresh that mean the user has to sign in again. */
const REAUTH_ERRORS = new Set(['invalid_grant', 'interaction_required', 'login_required', 'consent_required']);

/**
 * Creates a provider of fresh upstream tokens for users whose federated sessions it holds.
 *
 * - `forUser(user)` returns the current access token while it is valid beyond `skewMs`; otherwise it refreshes
 *   it (`refresh_token` grant through openid-client).
 * - Concurrent refreshes with the same key (issuer, client, tenant, user, refresh token) share one request;
 *   different users or tenants never do.
 * - The rotated refresh token is stored before the new access token is returned. A caller whose refresh token
 *   was already rotated by another (process or caller) re-reads the store instead of wiping the session; a
 *   real `invalid_grant` removes the dead session and rejects with `reauth_required`.
 * - With a `coordinator` (several replicas): one refresh per session across the fleet (see the option).
 *
 * Throws a `TypeError` for bad options.
 *
 * @example
 * ```ts
 * import { createUpstreamTokenProvider, UpstreamTokenError } from 'mcp-switchboard';
 * const upstream = createUpstreamTokenProvider({ issuer, clientId, clientSecret });
 * await upstream.setSession({ id: 'oid-1', tenantId: 'contoso' }, { accessToken, refreshToken, expiresAt });
 * const user = { id: 'oid-1', tenantId: 'contoso', upstreamToken: upstream.forUser({ id: 'oid-1', tenantId: 'contoso' }) };
 * const res = await upstream.fetchWithFreshToken(user)('https://graph.example.com/me');
 * ```
 */
export function createUpstreamTokenProvider(opts: UpstreamTokenProviderOptions): UpstreamTokenProvider {
  if (!opts || typeof opts !== 'object') throw optionError('createUpstreamTokenProvider: options', 'an object', opts);
  const issuer = parseIssuer(opts.issuer, opts.allowInsecureRequests === true);
  nonEmptyString(opts.clientId, 'createUpstreamTokenProvider: clientId');
  if (opts.clientSecret !== undefined) nonEmptyString(opts.clientSecret, 'createUpstreamTokenProvider: clientSecret');
  const skewMs = nonNegativeMs(opts.skewMs, 'createUpstreamTokenProvider: skewMs', 60_000);
  const timeoutMs = positiveMs(opts.timeoutMs, 'createUpstreamTokenProvider: timeoutMs', 10_000);
  const coordinator = opts.coordinator;
  if (coordinator !== undefined && (typeof coordinator !== 'object' || coordinator === null || typeof coordinator.acquire !== 'function')) {
    throw optionError('createUpstreamTokenProvider: coordinator', 'a Coordinator (e.g. from createRedisCoordinator)', coordinator);
  }
  const rawStore = opts.store ?? coordinator?.upstreamSessions ?? new MemoryUpstreamSessionStore();
  /** With a coordinator, a failing store (the shared one, down) is a retryable refresh_failed, never a raw error. */
  const store: UpstreamSessionStore = coordinator ? guardedStore(rawStore) : rawStore;
  /** openid-client's per-request timeout, in whole seconds (rounded up: it outlives `timeoutMs`). */
  const requestSec = Math.max(1, Math.ceil(timeoutMs / 1000));
  /** The holder's IdP work (discovery + grant) is aborted after this, whatever it is doing. */
  const workMs = 2 * timeoutMs + 1_000;
  /**
   * How long a refresh holds its session's fleet-wide lock, and how long others wait for it: discovery and grant
   * each within openid-client's whole-second timeout plus 1 s (reading the answer), plus 5 s for the coordinator's
   * round trips under the lock (re-read, compare-and-set). Well past `workMs`: the work is aborted long before.
   */
  const lockMs = 2 * (requestSec * 1000 + 1000) + 5_000;
  const baseFetch = fetchWithBodyCap((opts.fetch ?? undiciFetch) as unknown as (url: string, init: RequestInit) => Promise<Response>);
  const secret = opts.clientSecret;
  const clientAuth = !secret ? oidc.None() : opts.clientAuthMethod === 'client_secret_basic' ? oidc.ClientSecretBasic(secret) : oidc.ClientSecretPost(secret);
  /** Rotated sessions the store could not save yet (per session key): retried until saved or replaced. */
  const unsaved = new Map<string, Unsaved>();
  const now = opts.now ?? Date.now;
  const scope = Array.isArray(opts.scope) ? opts.scope.join(' ') : opts.scope;
  const clientId = opts.clientId;
  const keyPrefix = `upstream:${encodeURIComponent(issuer.href)}:${encodeURIComponent(clientId)}`;
  const inflight = new Map<string, Promise<string>>();
  let config: Promise<oidc.Configuration> | undefined;
  let configReady = false;

  /**
   * The IdP fetch: every response read within a size cap, each request aborted after `timeoutMs` (exactly, not
   * openid-client's whole seconds) or when `work` aborts.
   */
  function boundedFetch(work?: AbortSignal): oidc.CustomFetch {
    return ((url: string, init: RequestInit) => {
      const signals = [AbortSignal.timeout(timeoutMs), ...(init.signal ? [init.signal] : []), ...(work ? [work] : [])];
      return baseFetch(url, { ...init, signal: AbortSignal.any(signals) });
    }) as unknown as oidc.CustomFetch;
  }

  /** Discovery once; a failure is not cached, so the next refresh tries again. */
  function getConfig(work?: AbortSignal): Promise<oidc.Configuration> {
    config ??= (async () => {
      const discoveryOptions: oidc.DiscoveryRequestOptions = {
        timeout: requestSec,
        execute: opts.allowInsecureRequests ? [oidc.allowInsecureRequests] : [],
        [oidc.customFetch]: boundedFetch(work),
      };
      const cfg = await oidc.discovery(issuer, clientId, undefined, clientAuth, discoveryOptions);
      configReady = true;
      return cfg;
    })();
    config.catch(() => {
      config = undefined;
    });
    return config;
  }

  /** A configuration for one grant: the discovered metadata, with this refresh's abortable fetch. */
  function grantConfig(discovered: oidc.Configuration, work: AbortSignal): oidc.Configuration {
    const cfg = new oidc.Configuration(discovered.serverMetadata(), clientId, undefined, clientAuth);
    cfg[oidc.customFetch] = boundedFetch(work);
    cfg.timeout = requestSec;
    if (opts.allowInsecureRequests) oidc.allowInsecureRequests(cfg);
    return cfg;
  }

  function sessionKey(user: UpstreamUser): string {
    checkUser(user);
    return `${keyPrefix}:${encodeURIComponent(user.tenantId ?? '')}:${encodeURIComponent(user.id)}`;
  }

  const fresh = (s: UpstreamSession): boolean => s.expiresAt - skewMs > now();

  async function getToken(user: UpstreamUser, callOpts: GetUpstreamTokenOptions = {}): Promise<string> {
    return tokenOf(sessionKey(user), callOpts);
  }

  async function tokenOf(key: string, callOpts: GetUpstreamTokenOptions = {}): Promise<string> {
    // A rotated session this process could not store yet: store it first (the store's older refresh token was
    // consumed at the IdP and is never presented again from here).
    if (unsaved.has(key)) await saveUnsaved(key);
    const s = await store.get(key);
    if (!s) throw reauth('There is no upstream session for this user');
    if (fresh(s)) {
      if (!callOpts.forceRefresh) return s.accessToken;
      // Someone refreshed since the caller's token was rejected: use theirs.
      if (callOpts.rejectedToken !== undefined && s.accessToken !== callOpts.rejectedToken) return s.accessToken;
    }
    return refresh(key, s);
  }

  function refresh(key: string, s: UpstreamSession, retried = false): Promise<string> {
    if (!s.refreshToken) return Promise.reject(reauth('The upstream session expired and has no refresh token'));
    const dedupeKey = `${key}:${createHash('sha256').update(s.refreshToken).digest('base64url')}`;
    let p = inflight.get(dedupeKey);
    if (!p) {
      p = runRefresh(key, s, retried).finally(() => inflight.delete(dedupeKey));
      inflight.set(dedupeKey, p);
    }
    return p;
  }

  /**
   * With a coordinator: the refresh runs under the session's fleet-wide lock, after re-reading the session (a
   * replica that refreshed meanwhile leaves a fresh one to use). A waiter that times out re-reads once and
   * otherwise fails retryable rather than refresh without the lock.
   */
  async function runRefresh(key: string, s: UpstreamSession, retried: boolean): Promise<string> {
    // A caller that read the store before this process's unsaved rotation: never refresh from the older token.
    if (unsaved.has(key)) return tokenOf(key);
    const work = AbortSignal.timeout(workMs);
    if (!coordinator) return grant(key, s, retried, work, {});
    const held: { lock?: CoordinatorLock } = {};
    try {
      held.lock = await coordinator.acquire(`refresh:${createHash('sha256').update(key).digest('base64url')}`, { ttlMs: lockMs, waitMs: lockMs });
    } catch {
      throw refreshFailed(true, { code: 'coordinator_unavailable' });
    }
    try {
      const current = await store.get(key);
      if (!current) throw reauth('The upstream session was cleared during a refresh');
      if (!sameSession(current, s)) {
        if (fresh(current)) return current.accessToken; // another replica refreshed it
        if (held.lock) return await grant(key, current, retried, work, held);
      }
      if (!held.lock) throw refreshFailed(true, { code: 'refresh_lock_timeout' });
      return await grant(key, current, retried, work, held);
    } finally {
      // Not released when handed to an unsaved rotation: it keeps the other replicas from refreshing until saved.
      await held.lock?.release().catch(() => undefined);
    }
  }

  async function grant(key: string, s: UpstreamSession, retried: boolean, work: AbortSignal, held: { lock?: CoordinatorLock }): Promise<string> {
    const discovering = !configReady;
    let discovered: oidc.Configuration;
    try {
      discovered = await getConfig(work);
    } catch (err) {
      throw classify(err);
    }
    if (discovering && coordinator) {
      // The discovery took time: right before sending, check that no other replica refreshed meanwhile (a holder
      // that stalled past its lock must not present a refresh token that was rotated since).
      const current = await store.get(key);
      if (!current) throw reauth('The upstream session was cleared during a refresh');
      if (!sameSession(current, s)) {
        if (fresh(current)) return current.accessToken;
        if (!current.refreshToken) throw reauth('The upstream session expired and has no refresh token');
        s = current;
      }
    }
    let response: oidc.TokenEndpointResponse;
    try {
      work.throwIfAborted();
      response = await oidc.refreshTokenGrant(grantConfig(discovered, work), s.refreshToken as string, scope ? { scope } : undefined);
    } catch (err) {
      const failure = classify(err);
      if (failure.code !== 'reauth_required') throw failure;
      // Lost a race? Another caller (or process) may have rotated this refresh token: look again.
      const current = await store.get(key);
      if (current && current.refreshToken !== s.refreshToken) {
        // Not the refused refresh token: never delete it.
        if (fresh(current)) return current.accessToken;
        // Under a coordinator this runs inside the session's lock already: go on with the current session.
        if (!retried && current.refreshToken) return coordinator ? grant(key, current, true, work, held) : refresh(key, current, true);
        throw failure;
      }
      // The store still holds the refused refresh token: the session is dead.
      if (current) await compareAndSet(key, current, undefined);
      throw failure;
    }
    const next: UpstreamSession = {
      accessToken: response.access_token,
      expiresAt: expiryOf(response, now()),
      ...((response.refresh_token ?? s.refreshToken) ? { refreshToken: response.refresh_token ?? s.refreshToken } : {}),
    };
    // Persist (the rotated refresh token above all) before anyone gets the new access token.
    let saved: boolean;
    try {
      saved = await compareAndSet(key, s, next);
    } catch (err) {
      // The store failed (Redis down) after the IdP consumed the old refresh token: keep the new session here,
      // with the lock, and store it on a later call or in the background.
      keepUnsaved(key, s, next, held);
      throw err;
    }
    if (saved) return next.accessToken;
    const current = await store.get(key);
    if (!current) throw reauth('The upstream session was cleared during a refresh');
    // A newer session was stored meanwhile (a sign-in or another process's refresh): keep it.
    return fresh(current) ? current.accessToken : next.accessToken;
  }

  function keepUnsaved(key: string, expected: UpstreamSession, next: UpstreamSession, held: { lock?: CoordinatorLock }): void {
    forgetUnsaved(key);
    const u: Unsaved = { expected, next, lock: held.lock, delayMs: 50 };
    held.lock = undefined;
    unsaved.set(key, u);
    scheduleSave(key, u);
  }

  function forgetUnsaved(key: string): void {
    const u = unsaved.get(key);
    if (!u) return;
    unsaved.delete(key);
    clearTimeout(u.timer);
    void u.lock?.release().catch(() => undefined);
  }

  function scheduleSave(key: string, u: Unsaved): void {
    clearTimeout(u.timer);
    u.timer = setTimeout(() => {
      if (unsaved.get(key) !== u) return;
      saveUnsaved(key).catch(() => undefined);
    }, u.delayMs);
    u.timer.unref();
    u.delayMs = Math.min(u.delayMs * 2, 2_000);
  }

  /**
   * Stores an unsaved rotation (compare-and-set from the session it replaced). Resolves once it is stored or
   * replaced by a newer session (a sign-in, a sign-out); rejects retryably while the store fails (and retries later).
   */
  function saveUnsaved(key: string): Promise<void> {
    const u = unsaved.get(key);
    if (!u) return Promise.resolve();
    u.saving ??= (async () => {
      try {
        // Refused: already stored (an earlier attempt whose answer was lost) or replaced; the store decides.
        await compareAndSet(key, u.expected, u.next);
        if (unsaved.get(key) === u) forgetUnsaved(key);
      } catch (err) {
        if (unsaved.get(key) === u) scheduleSave(key, u);
        throw err instanceof UpstreamTokenError ? err : refreshFailed(true, { code: 'store_unavailable' });
      } finally {
        u.saving = undefined;
      }
    })();
    return u.saving;
  }

  async function compareAndSet(key: string, expected: UpstreamSession, next: UpstreamSession | undefined): Promise<boolean> {
    if (store.compareAndSet) return store.compareAndSet(key, expected, next);
    if (!sameSession(await store.get(key), expected)) return false;
    if (next) await store.set(key, next);
    else await store.delete(key);
    return true;
  }

  function fetchWithFreshToken(user: UpstreamUser, fetchImpl?: FetchLike): FetchLike {
    checkUser(user);
    const send = fetchImpl ?? (undiciFetch as unknown as FetchLike);
    return async (url, init = {}) => {
      const token = await getToken(user);
      const res = await send(url, withBearer(init, token));
      if (res.status !== 401 || !replayable(init.body)) return res;
      await res.body?.cancel().catch(() => undefined);
      const renewed = await getToken(user, { forceRefresh: true, rejectedToken: token });
      return send(url, withBearer(init, renewed));
    };
  }

  return {
    async setSession(user, session) {
      checkSession(session);
      forgetUnsaved(sessionKey(user)); // a new sign-in replaces an unsaved rotation
      await store.set(sessionKey(user), {
        accessToken: session.accessToken,
        expiresAt: session.expiresAt,
        ...(session.refreshToken ? { refreshToken: session.refreshToken } : {}),
      });
    },
    forUser(user) {
      checkUser(user);
      const u = { id: user.id, ...(user.tenantId ? { tenantId: user.tenantId } : {}) };
      return () => getToken(u);
    },
    getToken,
    fetchWithFreshToken,
    async clearSession(user) {
      forgetUnsaved(sessionKey(user));
      await store.delete(sessionKey(user));
    },
    sessionKey,
  };
}

/** A rotated session the store failed to save, kept in process until it is saved or replaced. */
interface Unsaved {
  /** The session it replaces (the compare-and-set's expected value). */
  expected: UpstreamSession;
  next: UpstreamSession;
  /** The refresh lock, kept until the session is saved (released then; it expires on its own otherwise). */
  lock?: CoordinatorLock;
  timer?: NodeJS.Timeout;
  delayMs: number;
  saving?: Promise<void>;
}

function reauth(message: string, cause?: unknown): UpstreamTokenError {
  return new UpstreamTokenError('reauth_required', `${message}: the user must sign in again`, { retryable: false, cause });
}

/**
 * Maps a refresh or discovery failure to an UpstreamTokenError by status, OAuth error code and error class,
 * never by message. The cause keeps status, OAuth error fields and network codes only, never a token.
 */
function classify(err: unknown): UpstreamTokenError {
  if (err instanceof UpstreamTokenError) return err;
  if (isResponseTooLarge(err)) return refreshFailed(false, { code: 'too_large' });
  const e = (err ?? {}) as {
    code?: unknown; status?: unknown; error?: unknown; error_description?: unknown; cause?: unknown; name?: unknown;
  };
  if (e.code === 'OAUTH_RESPONSE_BODY_ERROR' && typeof e.error === 'string') {
    const status = typeof e.status === 'number' ? e.status : undefined;
    // `error` must be a short code and the description is redacted: an IdP may echo the refresh token back.
    const error = isErrorCode(e.error) ? e.error : 'invalid_response';
    const cause = { status, error, ...(typeof e.error_description === 'string' ? { error_description: redactSecrets(e.error_description).slice(0, 500) } : {}) };
    if (REAUTH_ERRORS.has(error)) return reauth('The IdP refused the refresh token', cause);
    return refreshFailed(status !== undefined && (status >= 500 || status === 429), cause);
  }
  if (e.code === 'OAUTH_WWW_AUTHENTICATE_CHALLENGE') {
    return refreshFailed(false, { status: typeof e.status === 'number' ? e.status : 401, error: 'invalid_client' });
  }
  const causeStatus = (e.cause as { status?: unknown } | undefined)?.status;
  if (e.code === 'OAUTH_RESPONSE_IS_NOT_CONFORM' && typeof causeStatus === 'number') {
    // The cause is the fetch Response (undici's class when undici's fetch is used: no instanceof check).
    const status = causeStatus;
    return refreshFailed(status >= 500 || status === 429, { status });
  }
  if (e.code === 'OAUTH_TIMEOUT' || e.code === 'OAUTH_ABORT') return refreshFailed(true, { network: e.code });
  if (err instanceof TypeError) {
    // fetch's network failure ("fetch failed", cause ECONNREFUSED and the like).
    const network = (e.cause as { code?: unknown } | undefined)?.code;
    return refreshFailed(true, { network: typeof network === 'string' ? network : 'TypeError' });
  }
  return refreshFailed(true, { ...(typeof e.code === 'string' ? { code: e.code } : {}), name: typeof e.name === 'string' ? e.name : 'Error' });
}

/** A store whose failures are a retryable `refresh_failed` (the cause names no key, no token). */
function guardedStore(store: UpstreamSessionStore): UpstreamSessionStore {
  const guard = async <T>(op: () => Promise<T>): Promise<T> => {
    try {
      return await op();
    } catch (err) {
      if (err instanceof UpstreamTokenError) throw err;
      throw refreshFailed(true, { code: 'coordinator_unavailable', ...(err instanceof SwitchboardError ? { error: err.code } : {}) });
    }
  };
  return {
    get: (key) => guard(() => store.get(key)),
    set: (key, session) => guard(() => store.set(key, session)),
    delete: (key) => guard(() => store.delete(key)),
    ...(store.compareAndSet ? { compareAndSet: (key: string, expected: UpstreamSession, next: UpstreamSession | undefined) => guard(() => store.compareAndSet!(key, expected, next)) } : {}),
  };
}

function refreshFailed(retryable: boolean, cause: Record<string, unknown>): UpstreamTokenError {
  return new UpstreamTokenError('refresh_failed', 'The upstream access token could not be refreshed', { retryable, cause });
}

/** `expires_in` when given; else the access token's own `exp` when it is a JWT; else five minutes. */
function expiryOf(response: oidc.TokenEndpointResponse, nowMs: number): number {
  if (typeof response.expires_in === 'number' && response.expires_in >= 0) return nowMs + response.expires_in * 1000;
  try {
    const { exp } = decodeJwt(response.access_token);
    if (typeof exp === 'number') return exp * 1000;
  } catch {
    // opaque token
  }
  return nowMs + 300_000;
}

function withBearer(init: RequestInit, token: string): RequestInit {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  return { ...init, headers };
}

/** Bodies that can be sent twice (a stream is consumed by the first attempt). */
function replayable(body: RequestInit['body']): boolean {
  return body == null || typeof body === 'string' || body instanceof URLSearchParams || body instanceof ArrayBuffer ||
    ArrayBuffer.isView(body) || body instanceof Blob || body instanceof FormData;
}

function checkUser(user: UpstreamUser): void {
  if (!user || typeof user.id !== 'string' || !user.id) {
    throw new SwitchboardError('user_required', 'An upstream session needs a user with a non-empty id');
  }
  if (user.tenantId !== undefined && typeof user.tenantId !== 'string') throw new TypeError('"tenantId" must be a string');
}

function checkSession(s: UpstreamSession): void {
  if (!s || typeof s.accessToken !== 'string' || !s.accessToken) throw new TypeError('"accessToken" must be a non-empty string');
  if (typeof s.expiresAt !== 'number' || !Number.isFinite(s.expiresAt)) throw new TypeError('"expiresAt" must be epoch milliseconds');
  if (s.refreshToken !== undefined && typeof s.refreshToken !== 'string') throw new TypeError('"refreshToken" must be a string');
}

function parseIssuer(value: unknown, allowInsecure: boolean): URL {
  let url: URL;
  try {
    url = value instanceof URL ? new URL(value.href) : new URL(String(value));
  } catch {
    throw optionError('createUpstreamTokenProvider: issuer', 'an absolute URL', value);
  }
  if (url.protocol !== 'https:' && !(allowInsecure && url.protocol === 'http:')) {
    throw new TypeError(`createUpstreamTokenProvider: issuer must be an https: URL (got ${url.protocol}; http: needs allowInsecureRequests)`);
  }
  return url;
}
