/**
 * The 401/403 stage: a request refused for its credentials is resent once with freshly obtained ones.
 * @module
 */
import { discardBody, isResendable, type RequestInterceptor } from '../requestPath.js';
import { leftOrigin } from './redirects.js';

/**
 * Resends a request once, with `forceRefresh: true` (so providers drop a cached token), when the server answered
 * 401, or 403 with `WWW-Authenticate: … error="invalid_token"` (403 `insufficient_scope` is not a stale token).
 * Not for a stream body (it can be sent once only), nor for an answer from another origin. `onRejected` builds
 * the error thrown when the resent request is refused again; without it the second response is returned.
 *
 * @example
 * ```ts
 * const stage = composeStages(sendWithUndici, [unauthorizedRetry({ onRejected: () => new Error('refused') }), credentials({ authHeaders })]);
 * ```
 */
export function unauthorizedRetry(opts: { onRejected?: (res: Response) => Error } = {}): RequestInterceptor {
  return (next) => async (req) => {
    if (!isResendable(req.body)) return next(req);
    const first = await next(req);
    if (!isUnauthorized(first) || leftOrigin(first)) return first;
    await discardBody(first);
    const second = await next({ ...req, forceRefresh: true });
    if (opts.onRejected && isUnauthorized(second)) {
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
