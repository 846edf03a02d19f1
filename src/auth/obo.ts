/**
 * On-Behalf-Of glue between a connection and the pluggable resolver: an auth-header provider that asks the
 * resolver for a token on every HTTP request and fails closed. No fallback, ever: when no valid token can be
 * had the request is not sent, and the caller gets an {@link OboError}.
 * @module
 */
import { resolveCredentialField } from '../config/placeholders.js';
import { OboError, SwitchboardError } from '../errors.js';
import type { OboExchangeEvent } from '../events.js';
import type { AuthHeaderProvider } from '../transport/types.js';
import type { UserContext } from '../types.js';
import type { OboRequest, OboTokenResolver, OboTrustChecker } from './oboTypes.js';

/**
 * The default trust policy: OBO is performed for servers the operator configured (`source: 'config'` or no
 * source) and refused for servers a user added (`source: 'user'`): a user-supplied URL must never receive a
 * token minted for that user's identity.
 *
 * @example
 * ```ts
 * const manager = new MCPManager({ servers, oboTokenResolver, oboTrustChecker: (req) => defaultOboTrustChecker(req) && allowList.has(req.serverName) });
 * ```
 */
export const defaultOboTrustChecker: OboTrustChecker = ({ config }) => config.source !== 'user';

/**
 * Runs a trust checker; `false` or a throw → `OboError('untrusted')`.
 *
 * @example
 * ```ts
 * await assertOboTrusted(checker, { serverName, config, user }); // throws OboError('untrusted') when refused
 * ```
 */
export async function assertOboTrusted(checker: OboTrustChecker, req: Parameters<OboTrustChecker>[0]): Promise<void> {
  let trusted: boolean;
  try {
    trusted = (await checker(req)) === true;
  } catch (err) {
    throw new OboError('untrusted', `The trust check for "${req.serverName}" failed; no token is exchanged for it`, {
      serverName: req.serverName,
      cause: err instanceof Error ? { name: err.name, message: err.message } : undefined,
    });
  }
  if (!trusted) {
    throw new OboError('untrusted', `"${req.serverName}" is not trusted for On-Behalf-Of; no token is exchanged for it`, { serverName: req.serverName });
  }
}

/**
 * Reads the user's upstream token (the OBO assertion). A function is called each time, so a refreshed session
 * token is used rather than a snapshot. Missing → `OboError('missing_upstream_token', retryable: false)`;
 * a failing function keeps its error's `retryable` (an IdP outage while refreshing is retryable, a revoked
 * session is not).
 *
 * @example
 * ```ts
 * const assertion = await readUpstreamToken(user, 'graph');
 * ```
 */
export async function readUpstreamToken(user: UserContext, serverName: string): Promise<string> {
  let token: string | undefined;
  try {
    token = typeof user.upstreamToken === 'function' ? await user.upstreamToken() : user.upstreamToken;
  } catch (err) {
    throw new OboError('missing_upstream_token', `No upstream token could be had for the user to exchange for "${serverName}"`, {
      serverName,
      retryable: err instanceof SwitchboardError ? err.retryable : false,
      cause: err instanceof SwitchboardError ? err.toJSON() : err instanceof Error ? { name: err.name } : undefined,
    });
  }
  if (typeof token !== 'string' || token.trim() === '') {
    throw new OboError('missing_upstream_token', `The user has no upstream token to exchange for "${serverName}"`, { serverName });
  }
  return token;
}

/**
 * Options of {@link createOboAuthHeaderProvider}.
 *
 * @example
 * ```ts
 * const authHeaders = createOboAuthHeaderProvider({
 *   serverName: 'graph', obo: { scopes: ['api://graph-mcp/.default'] }, user, resolver,
 *   onExchange: (e) => metrics.increment('obo.lookup', { ok: e.ok, cacheHit: e.cacheHit === true }),
 * });
 * ```
 */
export interface OboAuthHeaderProviderOptions {
  /** The server the tokens are for. */
  serverName: string;
  /**
   * The OBO block of its config. With `grant: 'cross-app-access'`, `clientId` and `clientSecret` (the client at
   * the server's authorization server; `${ENV}` placeholders resolved here, once) and `serverUrl` are required.
   */
  obo: { scopes?: string[]; audience?: string; grant?: 'cross-app-access'; clientId?: string; clientSecret?: string };
  /** The server's URL; passed to the resolver as `serverUrl` (required with `grant: 'cross-app-access'`). */
  serverUrl?: string;
  /** Who wrote the config (its `source`): with `'user'`, `${ENV}` placeholders in `obo` are refused. */
  source?: 'config' | 'user';
  /**
   * The user, when the provider serves one fixed context. On user connections leave it out: each request's
   * `req.user` (its caller) is used, so a rotated assertion or a changed context applies on the next request.
   * A request with neither fails with `OboError('missing_upstream_token')`.
   */
  user?: UserContext;
  /** Mints the tokens. */
  resolver: OboTokenResolver;
  /** Called after each lookup, for metrics (no token in it). */
  onExchange?: (e: OboExchangeEvent) => void;
  /** Clock; defaults to `Date.now`. */
  now?: () => number;
}

const TOKEN_CHARS = /^[\x21-\x7e]+$/;

/**
 * An {@link AuthHeaderProvider} that puts a fresh OBO bearer on every request. The resolver is called for
 * each request (its cache makes that cheap); `forceRefresh` (after a 401) is passed through. An expired or
 * malformed token from the resolver is refused, never sent. Every failure is an {@link OboError}.
 *
 * @example
 * ```ts
 * const authHeaders = createOboAuthHeaderProvider({ serverName: 'graph', obo: { scopes: ['api://graph/.default'] }, user, resolver });
 * const fetch = createAuthFetch({ dispatcher, authHeaders, retryUnauthorized: true });
 * ```
 */
export function createOboAuthHeaderProvider(opts: OboAuthHeaderProviderOptions): AuthHeaderProvider {
  const { serverName, obo, resolver, onExchange } = opts;
  const now = opts.now ?? Date.now;
  const crossApp = crossAppAccessParams(opts);
  const report = (user: UserContext | undefined, started: number, ok: boolean, cacheHit?: boolean, reason?: string): void => {
    if (!user || !onExchange) return;
    const e: OboExchangeEvent = { serverName, userId: user.id, ok, durationMs: now() - started };
    if (user.tenantId !== undefined) e.tenantId = user.tenantId;
    if (cacheHit !== undefined) e.cacheHit = cacheHit;
    if (reason !== undefined) e.reason = reason;
    onExchange(e);
  };
  const scopes = obo.scopes ?? [];
  // The last token checked and its header value: a cached token is checked (and its header built) once, not on
  // every request that carries it.
  let checkedToken = '';
  let checkedHeader = '';

  return async ({ forceRefresh, signal, user: caller }) => {
    const started = now();
    const user = caller ?? opts.user;
    let token: Awaited<ReturnType<OboTokenResolver>>;
    try {
      if (!user) throw new OboError('missing_upstream_token', `No user for an On-Behalf-Of request to "${serverName}"`, { serverName });
      const assertion = await readUpstreamToken(user, serverName);
      signal?.throwIfAborted();
      const req: OboRequest = { user, assertion, scopes, serverName };
      if (crossApp.serverUrl !== undefined) req.serverUrl = crossApp.serverUrl;
      if (crossApp.authorizationServerClient !== undefined) req.authorizationServerClient = crossApp.authorizationServerClient;
      if (obo.audience !== undefined) req.audience = obo.audience;
      if (forceRefresh) req.forceRefresh = forceRefresh;
      if (signal) req.signal = signal;
      token = await resolver(req);
    } catch (err) {
      const e = toOboError(err, serverName, signal);
      report(user, started, false, undefined, e.reason);
      throw e;
    }
    const cacheHit = token?.cacheHit;
    if (!token || typeof token.accessToken !== 'string' || token.accessToken === '') {
      report(user, started, false, cacheHit, 'empty_exchange_response');
      throw new OboError('empty_exchange_response', `The token resolver returned no access token for "${serverName}"`, { serverName, retryable: true });
    }
    if (token.accessToken !== checkedToken && !TOKEN_CHARS.test(token.accessToken)) {
      report(user, started, false, cacheHit, 'exchange_failed');
      throw new OboError('exchange_failed', `The token resolver returned a malformed access token for "${serverName}"`, { serverName });
    }
    if (token.expiresAt !== undefined && token.expiresAt <= now()) {
      // A stale token is never sent, not even as a fallback.
      report(user, started, false, cacheHit, 'exchange_failed');
      throw new OboError('exchange_failed', `The token resolver returned an expired token for "${serverName}"`, { serverName, retryable: true });
    }
    report(user, started, true, cacheHit);
    if (token.accessToken !== checkedToken) {
      checkedToken = token.accessToken;
      checkedHeader = `Bearer ${checkedToken}`;
    }
    return { Authorization: checkedHeader };
  };
}

/** The extra request fields of the cross-app-access grant, with the client's `${ENV}` placeholders filled. */
function crossAppAccessParams(opts: OboAuthHeaderProviderOptions): Partial<Pick<OboRequest, 'serverUrl' | 'authorizationServerClient'>> {
  const { obo, serverName } = opts;
  if (obo.grant !== 'cross-app-access') return {};
  const fill = (field: 'clientId' | 'clientSecret') => {
    const v = obo[field];
    if (typeof v !== 'string' || v === '') {
      throw new OboError('invalid_request', `"${serverName}" uses cross-app access but its obo.${field} is missing`, { serverName });
    }
    return resolveCredentialField(v, opts.source, `${serverName}.obo.${field}`);
  };
  return {
    ...(opts.serverUrl === undefined ? {} : { serverUrl: opts.serverUrl }),
    authorizationServerClient: { clientId: fill('clientId'), clientSecret: fill('clientSecret') },
  };
}

function toOboError(err: unknown, serverName: string, signal: AbortSignal | undefined): OboError {
  if (err instanceof OboError) return err;
  if (signal?.aborted) return new OboError('aborted', `The token exchange for "${serverName}" was aborted`, { serverName });
  if (err instanceof SwitchboardError) {
    return new OboError('exchange_failed', `The token exchange for "${serverName}" failed (${err.code})`, { serverName, retryable: err.retryable, cause: err.toJSON() });
  }
  // A custom resolver threw something of its own: keep only its name, never its message (it may hold a token).
  return new OboError('exchange_failed', `The token exchange for "${serverName}" failed`, {
    serverName,
    retryable: (err as { retryable?: unknown } | undefined)?.retryable === true,
    cause: err instanceof Error ? { name: err.name } : undefined,
  });
}

/**
 * The error for a server that rejected a freshly exchanged token as well: retrying will not help until the
 * server's or the IdP's configuration changes.
 *
 * @example
 * ```ts
 * createAuthFetch({ dispatcher, authHeaders, retryUnauthorized: true, onRejected: () => rejectedByServer('graph') });
 * ```
 */
export function rejectedByServer(serverName: string, status?: number): OboError {
  return new OboError('rejected_by_server', `"${serverName}" rejected a freshly exchanged On-Behalf-Of token${status ? ` (HTTP ${status})` : ''}`, {
    serverName,
    ...(status ? { cause: { status } } : {}),
  });
}
