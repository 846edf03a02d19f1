/**
 * The 401/403 stage: a request refused for its credentials is resent once with freshly obtained ones, and the
 * server's challenge is handed to the credential provider.
 * @module
 */
import { extractWWWAuthenticateParams } from '@modelcontextprotocol/sdk/client/auth.js';
import { discardBody, isResendable, type RequestInterceptor } from '../requestPath.js';
import type { AuthChallenge } from '../types.js';
import { leftOrigin } from './redirects.js';
import { authorizationSentWith } from './credentials.js';

/**
 * Options of {@link unauthorizedRetry}.
 *
 * @example
 * ```ts
 * const opts: UnauthorizedRetryOptions = { stepUp: true, onRejected: (res) => new Error(`refused: ${res.status}`) };
 * ```
 */
export interface UnauthorizedRetryOptions {
  /** Builds the error thrown when the resent request is refused again; without it the second response is returned. */
  onRejected?: (res: Response) => Error;
  /** Also resend after a 403 `insufficient_scope` (the provider may obtain a token with more scope). */
  stepUp?: boolean;
}

/**
 * Resends a request once, with `forceRefresh: true` (so providers drop a cached token) and the server's
 * {@link AuthChallenge}, when the server answered 401, or 403 with `WWW-Authenticate: … error="invalid_token"`,
 * or (with `stepUp`) 403 `insufficient_scope`. Not for a stream body (it can be sent once only), nor for an
 * answer from another origin.
 *
 * @example
 * ```ts
 * const stage = composeStages(sendWithUndici, [unauthorizedRetry({ onRejected: () => new Error('refused') }), credentials({ authHeaders })]);
 * ```
 */
export function unauthorizedRetry(opts: UnauthorizedRetryOptions = {}): RequestInterceptor {
  const refused = (res: Response) => isUnauthorized(res) || (opts.stepUp === true && isInsufficientScope(res));
  return (next) => async (req) => {
    if (!isResendable(req.body)) return next(req);
    const first = await next(req);
    if (!refused(first) || leftOrigin(first)) return first;
    const challenge = challengeOf(first);
    const refusedAuthorization = authorizationSentWith(first);
    await discardBody(first);
    const second = await next({ ...req, forceRefresh: true, challenge, ...(refusedAuthorization ? { refusedAuthorization } : {}) });
    if (opts.onRejected && refused(second)) {
      await discardBody(second);
      throw opts.onRejected(second);
    }
    return second;
  };
}

/**
 * Whether a response refuses the request's credentials: 401, or 403 with `error="invalid_token"`.
 *
 * @example
 * ```ts
 * isUnauthorized(new Response(null, { status: 401 })); // true
 * ```
 */
export function isUnauthorized(res: Response): boolean {
  if (res.status === 401) return true;
  if (res.status !== 403) return false;
  return /(?:^|[\s,])error\s*=\s*"?invalid_token"?/i.test(res.headers.get('www-authenticate') ?? '');
}

/** 403 with `error="insufficient_scope"` (RFC 6750 §3.1): the token is good, its scope is not enough. */
function isInsufficientScope(res: Response): boolean {
  return res.status === 403 && /(?:^|[\s,])error\s*=\s*"?insufficient_scope"?/i.test(res.headers.get('www-authenticate') ?? '');
}

/**
 * The challenge of a 401/403 response (its `WWW-Authenticate` Bearer parameters, read by the MCP SDK's parser).
 *
 * @example
 * ```ts
 * challengeOf(new Response(null, { status: 403, headers: { 'www-authenticate': 'Bearer error="insufficient_scope", scope="a b"' } }));
 * // { status: 403, error: 'insufficient_scope', scope: 'a b' }
 * ```
 */
export function challengeOf(res: Response): AuthChallenge {
  const { error, scope, resourceMetadataUrl } = extractWWWAuthenticateParams(res);
  return { status: res.status, ...(error ? { error } : {}), ...(scope ? { scope } : {}), ...(resourceMetadataUrl ? { resourceMetadataUrl } : {}) };
}
