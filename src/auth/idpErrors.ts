/**
 * Talking to an IdP's endpoints through openid-client, and classifying what went wrong: by HTTP status, OAuth
 * `error` code and our own record of timeouts and network failures, never by message text. The result holds
 * only log-safe details (no token, no request body).
 * @module
 */
import * as oidc from 'openid-client';
import type { Dispatcher } from 'undici';
import { isErrorCode, redactSecrets } from '../redact.js';
import { SwitchboardError, type OboErrorCause, type OboErrorHint } from '../errors.js';
import { cappedRequestFetch, isResponseTooLarge, MAX_IDP_RESPONSE_BYTES } from './responseCap.js';

/**
 * What kind of failure an IdP request ended in.
 *
 * @example
 * ```ts
 * const kind: IdpFailureKind = failure.kind; // 'timeout' | 'network' | 'http' | …
 * ```
 */
export type IdpFailureKind = 'timeout' | 'network' | 'http' | 'empty_response' | 'invalid_response' | 'too_large' | 'unknown';

/**
 * A classified IdP failure.
 *
 * @example
 * ```ts
 * try {
 *   await idpRequest((fetch) => doGrant(fetch), { timeoutMs: 10_000 });
 * } catch (err) {
 *   if (err instanceof IdpRequestError && err.failure.retryable) retryOnce();
 * }
 * ```
 */
export interface IdpFailure {
  /** What went wrong. */
  kind: IdpFailureKind;
  /** Whether the same request may succeed later: timeouts, network errors, 408, 429, 5xx, `temporarily_unavailable`. */
  retryable: boolean;
  /** The IdP's `Retry-After`, in ms from now, when it sent one. */
  retryAfterMs?: number;
  /** Log-safe details: status, OAuth error fields, network code. */
  cause: OboErrorCause;
}

/**
 * Thrown by {@link idpRequest}: carries the classified {@link IdpFailure}. Internal plumbing; callers turn it
 * into their own public error.
 *
 * @example
 * ```ts
 * try {
 *   await idpRequest((fetch) => oidc.refreshTokenGrant(config, refreshToken, undefined, { [oidc.customFetch]: fetch }), { timeoutMs: 10_000 });
 * } catch (err) {
 *   if (err instanceof IdpRequestError) log.warn(err.failure.cause);
 * }
 * ```
 */
export class IdpRequestError extends SwitchboardError {
  /** The classified failure. */
  readonly failure: IdpFailure;
  constructor(failure: IdpFailure) {
    super('idp_request_failed', `IdP request failed (${failure.kind})`, { retryable: failure.retryable, cause: failure.cause });
    this.failure = failure;
  }
}

/**
 * Options of {@link idpRequest}.
 *
 * @example
 * ```ts
 * const opts: IdpRequestOptions = { timeoutMs: 10_000, dispatcher: new Agent({ connections: 16 }) };
 * ```
 */
export interface IdpRequestOptions {
  /** Budget of the whole request (headers and body), ms. */
  timeoutMs: number;
  /** undici dispatcher (pool, proxy, mock) the requests go through; default undici's global one. */
  dispatcher?: Dispatcher;
  /** Clock for HTTP-date `Retry-After` values; default `Date.now`. */
  now?: () => number;
  /** Largest response body accepted, in bytes (default {@link MAX_IDP_RESPONSE_BYTES}); more → kind `too_large`. */
  maxResponseBytes?: number;
}

/**
 * Runs one openid-client operation with a `customFetch` that goes through undici (with `dispatcher`) and is
 * bounded by `timeoutMs`; any failure is rethrown as an {@link IdpRequestError} with a classified failure.
 *
 * @example
 * ```ts
 * const config = await idpRequest(
 *   (fetch) => client.discovery(issuer, clientId, undefined, undefined, { [client.customFetch]: fetch }),
 *   { timeoutMs: 10_000 },
 * );
 * ```
 */
export async function idpRequest<T>(fn: (fetch: oidc.CustomFetch) => Promise<T>, opts: IdpRequestOptions): Promise<T> {
  const controller = new AbortController();
  let timedOut = false;
  let network: string | undefined;
  let tooLarge = false;
  const send = cappedRequestFetch({ maxBytes: opts.maxResponseBytes ?? MAX_IDP_RESPONSE_BYTES, ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}) });
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, opts.timeoutMs);
  timer.unref();
  const fetch: oidc.CustomFetch = async (url, init) => {
    const signal = init.signal ? AbortSignal.any([init.signal, controller.signal]) : controller.signal;
    try {
      return await send(url, { ...init, signal } as RequestInit);
    } catch (err) {
      if (isResponseTooLarge(err)) {
        tooLarge = true;
        throw err;
      }
      if (!timedOut) network = init.signal?.aborted ? 'TimeoutError' : networkCode(err);
      throw err;
    }
  };
  try {
    return await fn(fetch);
  } catch (err) {
    if (tooLarge) throw new IdpRequestError({ kind: 'too_large', retryable: false, cause: {} });
    if (timedOut || network === 'TimeoutError') {
      throw new IdpRequestError({ kind: 'timeout', retryable: true, cause: { network: 'TimeoutError' } });
    }
    if (network !== undefined) throw new IdpRequestError({ kind: 'network', retryable: true, cause: { network } });
    throw new IdpRequestError(await classifyIdpError(err, opts.now ?? Date.now));
  } finally {
    clearTimeout(timer);
  }
}

const TRANSIENT_ERRORS = new Set(['temporarily_unavailable']);

/**
 * Classifies an error thrown by openid-client for an answered request (the HTTP exchange itself worked).
 *
 * @example
 * ```ts
 * const failure = await classifyIdpError(err, Date.now);
 * if (failure.kind === 'http' && failure.cause.error === 'invalid_grant') reauthenticate();
 * ```
 */
export async function classifyIdpError(err: unknown, now: () => number): Promise<IdpFailure> {
  if (err instanceof oidc.ResponseBodyError) {
    return httpFailure(err.status, err.cause, err.response?.headers, now);
  }
  if (err instanceof oidc.WWWAuthenticateChallengeError) {
    return httpFailure(err.status, await jsonBody(err.response), err.response?.headers, now);
  }
  const code = (err as { code?: unknown } | null)?.code;
  const cause = (err as { cause?: unknown } | null)?.cause;
  if ((code === 'OAUTH_RESPONSE_IS_NOT_CONFORM' || code === 'OAUTH_RESPONSE_IS_NOT_JSON') && isResponse(cause)) {
    return httpFailure(cause.status, await jsonBody(cause), cause.headers, now);
  }
  if (code === 'OAUTH_INVALID_RESPONSE') {
    // oauth4webapi keeps the parsed body at cause.cause.body; only the presence of access_token is read.
    const body = (cause as { cause?: { body?: unknown } } | undefined)?.cause?.body;
    const token = body && typeof body === 'object' ? (body as Record<string, unknown>).access_token : undefined;
    if (typeof token !== 'string' || token.length === 0) return { kind: 'empty_response', retryable: false, cause: { status: 200 } };
    return { kind: 'invalid_response', retryable: false, cause: { status: 200 } };
  }
  return { kind: 'unknown', retryable: false, cause: {} };
}

function httpFailure(status: number, body: unknown, headers: Headers | undefined, now: () => number): IdpFailure {
  const cause: OboErrorCause = { status };
  if (body && typeof body === 'object') {
    const b = body as Record<string, unknown>;
    // RFC 6749 §5.2: `error` is a short ASCII code; anything else (an echo of what was sent) is dropped.
    if (typeof b.error === 'string' && isErrorCode(b.error)) cause.error = b.error;
    if (typeof b.error_description === 'string') cause.error_description = redactSecrets(b.error_description).slice(0, 500);
    if (Array.isArray(b.error_codes) && b.error_codes.every((c) => typeof c === 'number')) cause.error_codes = [...b.error_codes];
    if (typeof b.suberror === 'string') cause.suberror = b.suberror;
    // A claims challenge is a JSON object (Entra conditional access); anything else is not passed on.
    if (typeof b.claims === 'string' && isJsonObject(b.claims)) cause.claims = b.claims;
  }
  const hint = oboHint(cause);
  if (hint !== undefined) cause.hint = hint;
  const retryable = status === 408 || status === 429 || status >= 500 || TRANSIENT_ERRORS.has(cause.error ?? '');
  const failure: IdpFailure = { kind: 'http', retryable, cause };
  const retryAfterMs = parseRetryAfter(headers?.get('retry-after') ?? null, now());
  if (retryAfterMs !== undefined) {
    failure.retryAfterMs = retryAfterMs;
    cause.retryAfterSec = Math.ceil(retryAfterMs / 1000);
  }
  return failure;
}

const HINT_BY_AADSTS = new Map<number, OboErrorHint>([
  [500133, 'expired'], // the assertion is not within its valid time range
  [50013, 'wrong_audience'], // invalid assertion: audience (or signature) does not match this client
  [500131, 'wrong_audience'], // the assertion's audience does not match the required value
  [65001, 'consent_required'], // the user or administrator has not consented
  [50173, 'revoked'], // the grant was revoked (fresh token needed)
  [70043, 'revoked'], // the grant expired: sign-in frequency (conditional access)
  [700082, 'revoked'], // the refresh token expired due to inactivity
  [50132, 'revoked'], // session invalid: password change
  [50133, 'revoked'], // session revoked: password change
]);

/**
 * Why an IdP refused a user's upstream token, when its answer says so by code: Entra's `error_codes` (or the
 * `AADSTS<n>` codes at the start of its `error_description`), `suberror: consent_required`, or the
 * `consent_required` OAuth error. `undefined` when it cannot be known.
 *
 * @example
 * ```ts
 * oboHint({ status: 400, error: 'invalid_grant', error_codes: [500133] }); // 'expired'
 * oboHint({ status: 400, error: 'invalid_grant' }); // undefined
 * ```
 */
export function oboHint(cause: OboErrorCause): OboErrorHint | undefined {
  const codes = [...(cause.error_codes ?? [])];
  for (const m of (cause.error_description ?? '').matchAll(/\bAADSTS(\d{4,7})\b/g)) codes.push(Number(m[1]));
  for (const code of codes) {
    const hint = HINT_BY_AADSTS.get(code);
    if (hint !== undefined) return hint;
  }
  if (cause.suberror === 'consent_required' || cause.error === 'consent_required') return 'consent_required';
  return undefined;
}

/**
 * Parses a `Retry-After` value (delta-seconds or HTTP-date) into ms from `nowMs`; undefined when absent or invalid.
 *
 * @example
 * ```ts
 * parseRetryAfter('2', Date.now()); // 2000
 * ```
 */
export function parseRetryAfter(value: string | null, nowMs: number): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const date = Date.parse(v);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}

function isResponse(v: unknown): v is Response {
  return !!v && typeof (v as Response).status === 'number' && typeof (v as Response).headers?.get === 'function';
}

async function jsonBody(res: Response | undefined): Promise<unknown> {
  if (!res || res.bodyUsed || !/json/i.test(res.headers.get('content-type') ?? '')) return undefined;
  try {
    return await res.json();
  } catch {
    return undefined;
  }
}

function networkCode(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; name?: unknown } } | null)?.cause;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.name === 'string') return cause.name;
  const name = (err as { name?: unknown } | null)?.name;
  return typeof name === 'string' ? name : 'network_error';
}

function isJsonObject(text: string): boolean {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}
