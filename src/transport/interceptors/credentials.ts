/**
 * The credentials stage: puts the config's headers and the caller's credentials on every request that stays
 * on the configured origin, asked afresh for each request (and each redirect hop).
 * @module
 */
import type { RequestInterceptor } from '../requestPath.js';
import type { AuthHeaderProvider, AuthHeaderRequest } from '../types.js';

/**
 * What the credentials stage puts on a request.
 *
 * @example
 * ```ts
 * const opts: CredentialsOptions = {
 *   headers: { 'X-Tenant': 'contoso' },
 *   authHeaders: async ({ forceRefresh }) => ({ Authorization: `Bearer ${await getToken(forceRefresh)}` }),
 * };
 * ```
 */
export interface CredentialsOptions {
  /** Static + placeholder-resolved headers from the config (the caller's headers win over them). */
  headers?: Record<string, string>;
  /**
   * Per-request headers that are not credentials of a provider (a config's `{{var.*}}` / `{{user.*}}` headers,
   * resolved for the request's caller). A throw means the request is not sent; the error reaches the caller
   * unchanged. It does not displace a static Authorization header.
   */
  requestHeaders?: (req: AuthHeaderRequest) => Record<string, string> | Promise<Record<string, string>>;
  /**
   * Called for every request. Throws → not sent, the same error object reaches the caller. When present, the
   * provider's answer is the only source of Authorization (a config's or the caller's is dropped first).
   */
  authHeaders?: AuthHeaderProvider;
}

/**
 * The credentials stage. A hop that left the configured origin gets none of it: no config headers, no provider
 * headers, and the providers are not asked.
 *
 * @example
 * ```ts
 * const stage = composeStages(sendWithUndici, [credentials({ headers: { 'X-Api-Key': key } })]);
 * ```
 */
export function credentials(opts: CredentialsOptions): RequestInterceptor {
  const staticHeaders: Record<string, string> = lowerKeys(opts.headers ?? {});
  const { requestHeaders, authHeaders } = opts;
  return (next) => async (req) => {
    if (req.crossOrigin) return next(req);
    // Copied key by key (no spread, no `delete`, which would leave a slow dictionary-mode object for undici to read).
    const dropAuthorization = authHeaders !== undefined;
    const headers: Record<string, string> = {};
    for (const k in staticHeaders) if (!(dropAuthorization && k === 'authorization')) headers[k] = staticHeaders[k]!;
    for (const k in req.headers) if (!(dropAuthorization && k === 'authorization')) headers[k] = req.headers[k]!;
    if (requestHeaders || authHeaders) {
      const ask: AuthHeaderRequest = { url: new URL(req.url.href), method: req.method, forceRefresh: req.forceRefresh };
      if (req.signal) ask.signal = req.signal;
      if (req.requestId !== undefined) ask.requestId = req.requestId;
      if (req.challenge) ask.challenge = req.challenge;
      if (req.refusedAuthorization) ask.refusedAuthorization = req.refusedAuthorization;
      // No try/catch: a provider's error reaches the caller as the same object.
      if (requestHeaders) assignLowerCased(headers, headerAnswer(await requestHeaders(ask), 'requestHeaders', false));
      if (authHeaders) assignLowerCased(headers, headerAnswer(await authHeaders(ask), 'authHeaders', true));
    }
    const res = await next({ ...req, headers });
    // Remembered for the 401/403 stage: a provider told which credential was refused can tell it from a newer one.
    if ((res.status === 401 || res.status === 403) && authHeaders && headers.authorization) sentAuthorization.set(res, headers.authorization);
    return res;
  };
}

const sentAuthorization = new WeakMap<Response, string>();

/**
 * The Authorization value the credentials stage sent with the request that got this (401 or 403) response.
 *
 * @example
 * ```ts
 * const refused = authorizationSentWith(first); // 'Bearer eyJ…' or undefined
 * ```
 */
export function authorizationSentWith(res: Response): string | undefined {
  return sentAuthorization.get(res);
}

function lowerKeys(headers: Record<string, string>): Record<string, string> {
  return assignLowerCased({}, headers);
}

/**
 * A provider's answer, checked: a plain record of header values (or, for `authHeaders`, nothing). Anything else
 * fails the request closed: a `Headers` object (whose entries a record copy would not see) or `undefined` from
 * `requestHeaders` would otherwise send the request without the caller's headers.
 */
function headerAnswer(answer: unknown, from: string, absentAllowed: boolean): Record<string, string> | undefined {
  if ((answer === undefined || answer === null) && absentAllowed) return undefined;
  if (typeof answer !== 'object' || answer === null || Array.isArray(answer) || answer instanceof Headers) {
    throw new TypeError(`${from} must return a record of header values (got ${answer instanceof Headers ? 'a Headers object' : answer === null ? 'null' : typeof answer})`);
  }
  return answer as Record<string, string>;
}

/** Copies `from` (may be undefined) into `to` with lower-cased names, skipping undefined values. */
function assignLowerCased(to: Record<string, string>, from: Record<string, string> | undefined | void): Record<string, string> {
  if (!from) return to;
  // Own keys only, as Object.entries read them (for…in would also walk a prototype's enumerable members).
  for (const k of Object.keys(from)) {
    const v = from[k];
    if (v !== undefined) to[k.toLowerCase()] = v;
  }
  return to;
}
