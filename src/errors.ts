/**
 * One error hierarchy for the whole package. Every error has a stable string `code` that callers switch on;
 * nothing in this package (or in host code) should ever classify an error by parsing its message.
 *
 * Errors never carry tokens, secrets or assertions: not in `message`, not in `cause`, not in any field.
 * @module
 */
import type { AdapterErrorCode } from './adapters/errors.js';

/**
 * Every `code` a {@link SwitchboardError} of this package can have: a closed union, so a `switch` over `code`
 * can be checked for exhaustiveness. It is the package's own codes ({@link CoreErrorCode}) and those of the
 * subclasses: {@link OboError} (`obo_<reason>`, {@link OboErrorCode}), {@link BearerError}
 * ({@link BearerErrorCode}), {@link UpstreamTokenError} ({@link UpstreamTokenErrorCode}), {@link AuthorizationError}
 * ({@link AuthorizationErrorCode}) and the adapters'
 * `AdapterError` (`AdapterErrorCode`, in `mcp-switchboard/adapters`). A new code is a
 * change to this union, listed in the changelog.
 *
 * @example
 * ```ts
 * function statusOf(err: SwitchboardError): number {
 *   const code: SwitchboardErrorCode = err.code;
 *   switch (code) {
 *     case 'unknown_server': return 404;
 *     case 'limit_reached': case 'circuit_open': return 503;
 *     default: return 500;
 *   }
 * }
 * ```
 */
export type SwitchboardErrorCode = CoreErrorCode | OboErrorCode | BearerErrorCode | UpstreamTokenErrorCode | AuthorizationErrorCode | AdapterErrorCode;

/**
 * The codes of {@link SwitchboardError} itself (and of {@link ConfigError}: `config_invalid`):
 * - `config_invalid`: a server config or an option value is invalid ({@link ConfigError}, with `issues`).
 * - `unknown_server`: no server of that name.
 * - `user_required`: the server connects per user and no `user` (or no `user.id`) was given.
 * - `manager_closed`: the manager (or pool) was closed.
 * - `connection_closed`: the connection closed (or was lost and gave up reconnecting) before the call ended.
 * - `connect_failed`: the server could not be reached or refused the connection.
 * - `connect_timeout`: connect + initialize did not finish within `initTimeoutMs`.
 * - `call_timeout`: a request did not finish within its timeout.
 * - `aborted`: the caller's signal aborted the operation.
 * - `transport_error`: the transport failed (an HTTP error status, a broken stream, a bad redirect).
 * - `server_error`: the MCP server answered with an error (JSON-RPC error, a repeated cursor, …).
 * - `limit_reached`: a connection limit was reached.
 * - `circuit_open`: the server's circuit breaker is open after repeated connect failures.
 * - `ssrf_blocked`: the SSRF guard refused the address.
 * - `too_large`: a message, result or response exceeded its size cap.
 * - `session_expired`: the server forgot the session and it could not be re-initialized.
 * - `not_connected`: the connection is not connected (yet or any more).
 * - `idp_request_failed`: a request to the identity provider failed (mapped to `OboError` / `UpstreamTokenError`
 *   before it reaches a caller).
 * - `idp_closed`: the test kit's IdP (`mcp-switchboard/testing`) was closed.
 * - `usage_error`: the `mcp-switchboard` command was called with bad arguments.
 *
 * @example
 * ```ts
 * const retryLater: CoreErrorCode[] = ['connect_failed', 'connect_timeout', 'circuit_open', 'limit_reached'];
 * if (err instanceof SwitchboardError && (retryLater as string[]).includes(err.code)) scheduleRetry();
 * ```
 */
export type CoreErrorCode =
  | 'config_invalid'
  | 'unknown_server'
  | 'user_required'
  | 'manager_closed'
  | 'connection_closed'
  | 'connect_failed'
  | 'connect_timeout'
  | 'call_timeout'
  | 'aborted'
  | 'transport_error'
  | 'server_error'
  | 'limit_reached'
  | 'circuit_open'
  | 'ssrf_blocked'
  | 'too_large'
  | 'session_expired'
  | 'not_connected'
  | 'idp_request_failed'
  | 'idp_closed'
  | 'usage_error';

/**
 * The `code` of an {@link OboError}: `obo_` followed by its {@link OboErrorReason}.
 *
 * @example
 * ```ts
 * if (err instanceof OboError) {
 *   const code: OboErrorCode = err.code; // `obo_${err.reason}`, e.g. 'obo_untrusted'
 *   metrics.increment('obo.failure', { code });
 * }
 * ```
 */
export type OboErrorCode = `obo_${OboErrorReason}`;

/**
 * Codes of {@link UpstreamTokenError}:
 * - `reauth_required`: the refresh token is no longer valid (`invalid_grant`) or there is no session; the user
 *   must sign in again.
 * - `refresh_failed`: the IdP could not be reached or failed (see `retryable`).
 *
 * @example
 * ```ts
 * if (err instanceof UpstreamTokenError) {
 *   const code: UpstreamTokenErrorCode = err.code;
 *   if (code === 'reauth_required') redirectToLogin();
 * }
 * ```
 */
export type UpstreamTokenErrorCode = 'reauth_required' | 'refresh_failed';

/**
 * The deadline that ran out, on a `call_timeout` or `connect_timeout`: the option that set it and its length.
 * Switch on this, not on the message, to tell a silent server (`timeoutMs`) from a call that reported progress
 * until its hard bound (`maxTotalTimeoutMs`).
 *
 * @example
 * ```ts
 * if (err instanceof SwitchboardError && err.deadline?.option === 'maxTotalTimeoutMs') log.info('call hit its hard bound');
 * ```
 */
export interface TimeoutDeadline {
  /** The option that set the deadline. */
  option: 'timeoutMs' | 'maxTotalTimeoutMs' | 'initTimeoutMs';
  /** Its length, in ms. */
  ms: number;
}

/**
 * Options accepted by every error constructor of this package.
 *
 * @example
 * ```ts
 * const options: SwitchboardErrorOptions = { serverName: 'files', retryable: true, cause: { status: 503 } };
 * throw new SwitchboardError('connect_failed', '"files" is unavailable', options);
 * ```
 */
export interface SwitchboardErrorOptions {
  /** The underlying error. Must never contain a token. */
  cause?: unknown;
  /** Whether repeating the same operation later may succeed. Defaults to `false`. */
  retryable?: boolean;
  /** The MCP server the error concerns, when there is one. */
  serverName?: string;
  /** On a `call_timeout` / `connect_timeout`: the deadline that ran out, when known. */
  deadline?: TimeoutDeadline;
}

/**
 * The base class of every error this package throws.
 *
 * @example
 * ```ts
 * import { SwitchboardError } from 'mcp-switchboard';
 * try {
 *   await manager.callTool({ user, serverName: 'github', toolName: 'search' });
 * } catch (err) {
 *   if (err instanceof SwitchboardError && err.retryable) scheduleRetry();
 * }
 * ```
 */
export class SwitchboardError extends Error {
  /** A stable, machine-readable code; see {@link SwitchboardErrorCode}. */
  readonly code: SwitchboardErrorCode;
  /** Whether repeating the same operation later may succeed. */
  readonly retryable: boolean;
  /** The MCP server the error concerns, when there is one. */
  readonly serverName?: string;
  /** On a `call_timeout` / `connect_timeout`: the deadline that ran out, when known. */
  readonly deadline?: TimeoutDeadline;

  constructor(code: SwitchboardErrorCode, message: string, options: SwitchboardErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
    if (options.serverName !== undefined) this.serverName = options.serverName;
    if (options.deadline !== undefined) this.deadline = { option: options.deadline.option, ms: options.deadline.ms };
  }

  /**
   * A log-safe JSON form: name, code, message, retryable, serverName, deadline and, when the `cause` chain holds an
   * `Error` with one, `rootCause`: a {@link CauseSummary} (error code, system call, HTTP status, the URL's
   * origin and path). Never a token, header, query string or user info.
   */
  toJSON(): Record<string, unknown> {
    const rootCause = summarizeCause(this.cause);
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      retryable: this.retryable,
      ...(this.serverName === undefined ? {} : { serverName: this.serverName }),
      ...(this.deadline === undefined ? {} : { deadline: this.deadline }),
      ...(rootCause === undefined ? {} : { rootCause }),
    };
  }
}

/**
 * A log-safe summary of what an error's `cause` chain says went wrong underneath: only fields whose values
 * cannot hold a secret are read.
 *
 * @example
 * ```ts
 * // err.cause: TypeError('fetch failed') whose cause is Error('connect ECONNREFUSED …') with code 'ECONNREFUSED'
 * summarizeCause(err.cause); // { code: 'ECONNREFUSED', syscall: 'connect' }
 * ```
 */
export interface CauseSummary {
  /** The system or library error code, e.g. `ECONNREFUSED`, `ENOENT`, `ENOTFOUND`, `UND_ERR_CONNECT_TIMEOUT`. */
  code?: string;
  /** The failed system call, e.g. `connect` or `spawn /usr/local/bin/files-mcp` (the command, never its arguments). */
  syscall?: string;
  /** The HTTP status the server answered with. */
  status?: number;
  /** The URL concerned, as origin and path only (no user info, query or fragment). */
  url?: string;
}

const CODE_PATTERN = /^[A-Z][A-Z0-9_]{1,39}$/;

/**
 * Walks a `cause` chain (at most 8 deep, `Error` objects only) and returns a {@link CauseSummary} of it, or
 * `undefined` when nothing useful was found. The first value found for each field wins, except `code`, where a
 * deeper (more specific) system code wins over an outer one. A {@link SwitchboardError}'s own `code` is not a
 * root cause and is skipped.
 *
 * @example
 * ```ts
 * const err = Object.assign(new Error('spawn files-mcp ENOENT'), { code: 'ENOENT', syscall: 'spawn files-mcp' });
 * summarizeCause(err); // { code: 'ENOENT', syscall: 'spawn files-mcp' }
 * ```
 */
export function summarizeCause(cause: unknown): CauseSummary | undefined {
  const out: CauseSummary = {};
  let e: unknown = cause;
  // Not `instanceof Error`: errors from Node internals may come from another realm (a vm context, a test runner).
  for (let depth = 0; isError(e) && depth < 8; depth++, e = e.cause) {
    const f = e as Error & { code?: unknown; status?: unknown; syscall?: unknown; url?: unknown };
    if (!(e instanceof SwitchboardError) && typeof f.code === 'string' && CODE_PATTERN.test(f.code)) out.code = f.code;
    // The SDK's StreamableHTTPError and SseError carry the HTTP status as a numeric `code`.
    const status = typeof f.status === 'number' ? f.status : typeof f.code === 'number' ? f.code : undefined;
    if (out.status === undefined && status !== undefined && Number.isInteger(status) && status >= 100 && status <= 599) out.status = status;
    // Node's is a word, or `spawn <command>`; never more (a custom error must not smuggle arguments in).
    if (out.syscall === undefined && typeof f.syscall === 'string' && f.syscall) out.syscall = f.syscall.split(' ').slice(0, 2).join(' ').slice(0, 200);
    if (out.url === undefined && (typeof f.url === 'string' || f.url instanceof URL)) {
      const url = safeUrl(f.url);
      if (url !== undefined) out.url = url;
    }
  }
  return Object.keys(out).length ? out : undefined;
}

function isError(v: unknown): v is Error {
  return v instanceof Error || Object.prototype.toString.call(v) === '[object Error]';
}

/**
 * The origin and path of a URL: no user info, query or fragment (which may carry credentials).
 *
 * @example
 * ```ts
 * safeUrl('https://user:pw@mcp.example.com/mcp?token=x'); // 'https://mcp.example.com/mcp'
 * ```
 */
export function safeUrl(url: string | URL): string | undefined {
  try {
    const u = new URL(url);
    return u.origin === 'null' ? `${u.protocol}${u.pathname}` : `${u.origin}${u.pathname}`;
  } catch {
    return undefined;
  }
}

/**
 * One problem found in a configuration: where it is and what is wrong.
 *
 * @example
 * ```ts
 * const issues: ConfigIssue[] = [];
 * if (!allowedHosts.has(new URL(url).host)) issues.push({ path: 'files.url', message: 'host is not on the allow list' });
 * if (issues.length) throw new ConfigError(issues);
 * ```
 */
export interface ConfigIssue {
  /** Dotted path to the offending field, starting with the server name, e.g. `github.url`. */
  path: string;
  /** What is wrong with it. */
  message: string;
}

/**
 * Invalid configuration. `issues` lists every problem found, each with its path; the message lists them too,
 * one per line, so a log line alone tells the operator what to fix.
 *
 * @example
 * ```ts
 * import { parseServersConfig, ConfigError } from 'mcp-switchboard';
 * try {
 *   parseServersConfig({ github: { url: 'not a url' } });
 * } catch (err) {
 *   if (err instanceof ConfigError) for (const i of err.issues) console.error(`${i.path}: ${i.message}`);
 * }
 * ```
 */
export class ConfigError extends SwitchboardError {
  declare readonly code: 'config_invalid';
  /** Every problem found, each with its path. */
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[], options: SwitchboardErrorOptions = {}) {
    const lines = issues.map((i) => `${i.path}: ${i.message}`);
    super('config_invalid', `Invalid configuration:\n  ${lines.join('\n  ')}`, options);
    this.issues = issues;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), issues: this.issues };
  }
}

/**
 * Why an On-Behalf-Of token could not be had (or was refused); a closed union, every value listed:
 * - `untrusted`: the trust checker refused the server (or threw).
 * - `missing_upstream_token`: the user has no upstream token to exchange.
 * - `no_resolver`: an OBO server is configured but no `oboTokenResolver` was given.
 * - `exchange_failed`: the IdP refused or failed the exchange (see `retryable` and `cause`).
 * - `empty_exchange_response`: the IdP answered without an access token.
 * - `rejected_by_server`: the MCP server rejected a freshly exchanged token.
 * - `timeout`: the exchange did not finish in time.
 * - `aborted`: the caller's signal aborted the exchange.
 * - `invalid_request`: the request to the resolver was malformed (for example no scopes).
 *
 * @example
 * ```ts
 * if (err instanceof OboError) {
 *   switch (err.reason) {
 *     case 'missing_upstream_token': return redirectToLogin();
 *     case 'untrusted': return res.writeHead(403).end();
 *   }
 * }
 * ```
 */
export type OboErrorReason =
  | 'untrusted'
  | 'missing_upstream_token'
  | 'no_resolver'
  | 'exchange_failed'
  | 'empty_exchange_response'
  | 'rejected_by_server'
  | 'timeout'
  | 'aborted'
  | 'invalid_request';

/**
 * Details an IdP gave when it refused an exchange. Never contains a token.
 *
 * @example
 * ```ts
 * if (err instanceof OboError) {
 *   const cause = (err.cause ?? {}) as OboErrorCause;
 *   if (cause.error === 'interaction_required' && cause.claims) return challengeClient(cause.claims);
 *   if (cause.suberror === 'consent_required') return askForConsent();
 * }
 * ```
 */
export interface OboErrorCause {
  /** HTTP status of the IdP's answer, when there was one. */
  status?: number;
  /** OAuth `error` code, e.g. `invalid_grant`. */
  error?: string;
  /** OAuth `error_description`. */
  error_description?: string;
  /** Entra ID's numeric `error_codes`. */
  error_codes?: number[];
  /** Entra ID's `suberror`, e.g. `consent_required`. */
  suberror?: string;
  /** Claims challenge (Entra ID conditional access), to pass back to the client. */
  claims?: string;
  /** Network-level error name/code, e.g. `ECONNREFUSED` or `TimeoutError`. */
  network?: string;
  /** The IdP's `Retry-After`, in seconds, when it sent one (429 / 503). */
  retryAfterSec?: number;
  /**
   * Why the user's upstream token was refused, when that can be known; see {@link OboErrorHint}. Set from the
   * IdP's answer (Entra `AADSTS` codes in `error_codes` or `error_description`, `suberror`) or, for `expired`,
   * from the assertion's own `exp` (an assertion already expired is not sent at all).
   */
  hint?: OboErrorHint;
}

/**
 * Why the user's upstream token (the OBO assertion) was refused, in {@link OboErrorCause.hint}:
 * - `expired`: the upstream token expired (its `exp` has passed; Entra `AADSTS500133`). Get a fresh one
 *   (refresh the upstream session) and try again.
 * - `wrong_audience`: the upstream token was not issued for this client, so it cannot be exchanged by it
 *   (Entra `AADSTS50013`, `AADSTS500131`). A configuration problem: the app must request its token for this
 *   client's API.
 * - `revoked`: the user's grant or session was revoked or expired at the IdP (Entra `AADSTS50173`,
 *   `AADSTS70043`, `AADSTS700082`, `AADSTS50132`, `AADSTS50133`). The user must sign in again.
 * - `consent_required`: the user (or an admin) has not consented to the requested scopes (Entra
 *   `AADSTS65001`, `suberror: consent_required`).
 *
 * @example
 * ```ts
 * if (err instanceof OboError && err.reason === 'exchange_failed') {
 *   switch ((err.cause as OboErrorCause | undefined)?.hint) {
 *     case 'expired': return refreshUpstreamSessionAndRetry();
 *     case 'revoked': return redirectToLogin();
 *     case 'consent_required': return askForConsent();
 *     case 'wrong_audience': return alertOperator();
 *   }
 * }
 * ```
 */
export type OboErrorHint = 'expired' | 'wrong_audience' | 'revoked' | 'consent_required';

/**
 * An On-Behalf-Of failure. The request that needed the token was not sent. `retryable` tells whether
 * trying again later may help (IdP down, 5xx, 429, timeout) or not (untrusted server, `invalid_grant`,
 * consent required, missing upstream token).
 *
 * @example
 * ```ts
 * import { OboError } from 'mcp-switchboard';
 * try {
 *   await manager.callTool({ user, serverName: 'graph', toolName: 'me' });
 * } catch (err) {
 *   if (err instanceof OboError && err.reason === 'exchange_failed' && !err.retryable) askUserToSignInAgain();
 * }
 * ```
 */
export class OboError extends SwitchboardError {
  declare readonly code: OboErrorCode;
  /** Why the token could not be had; see {@link OboErrorReason}. */
  readonly reason: OboErrorReason;

  constructor(reason: OboErrorReason, message: string, options: SwitchboardErrorOptions = {}) {
    super(`obo_${reason}`, message, options);
    this.reason = reason;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), reason: this.reason, ...(this.cause === undefined ? {} : { cause: safeCause(this.cause) }) };
  }
}

/** The fields of a plain-object cause that are safe to log (see {@link OboErrorCause}). */
const SAFE_CAUSE_FIELDS = ['status', 'error', 'error_description', 'error_codes', 'suberror', 'claims', 'network', 'retryAfterSec', 'hint', 'name', 'code', 'kind', 'reason'];

function safeCause(cause: unknown): unknown {
  if (cause instanceof SwitchboardError) return cause.toJSON();
  // An error's message may hold anything (a custom resolver's, a trust checker's): its name only. Not
  // `instanceof Error`: errors from another realm must not fall through to the object branch.
  if (isError(cause)) return { name: cause.name };
  if (cause && typeof cause === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of SAFE_CAUSE_FIELDS) if (k in cause) out[k] = (cause as Record<string, unknown>)[k];
    return out;
  }
  return undefined;
}

/**
 * Codes of {@link BearerError}.
 *
 * @example
 * ```ts
 * if (err instanceof BearerError) {
 *   const code: BearerErrorCode = err.code;
 *   if (code === 'jwks_unavailable') logger.error({ code }, 'cannot fetch the IdP signing keys');
 *   res.writeHead(err.httpStatus, { 'WWW-Authenticate': err.wwwAuthenticate }).end();
 * }
 * ```
 */
export type BearerErrorCode =
  | 'missing_token'
  | 'malformed'
  | 'invalid_signature'
  | 'expired'
  | 'not_yet_valid'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'missing_subject'
  | 'insufficient_scope'
  | 'jwks_unavailable';

/**
 * Options of {@link BearerError}.
 *
 * @example
 * ```ts
 * const err = new BearerError('insufficient_scope', 'The token lacks mcp.call', { realm: 'mcp', scope: 'mcp.call' });
 * err.httpStatus; // 403
 * err.wwwAuthenticate; // 'Bearer realm="mcp", error="insufficient_scope", error_description="The token lacks mcp.call", scope="mcp.call"'
 * ```
 */
export interface BearerErrorOptions extends SwitchboardErrorOptions {
  /** `realm` for the `WWW-Authenticate` value. */
  realm?: string;
  /** Space-separated scopes to advertise on `insufficient_scope`. */
  scope?: string;
}

/**
 * An inbound bearer token was missing or not acceptable. Carries what an HTTP handler needs to answer in
 * one line: `httpStatus` (401, or 403 for `insufficient_scope`) and a ready RFC 6750 `wwwAuthenticate` value.
 *
 * @example
 * ```ts
 * import { BearerError } from 'mcp-switchboard';
 * try {
 *   const bearer = await verifier.verify(req.headers.authorization);
 * } catch (err) {
 *   if (err instanceof BearerError) {
 *     res.writeHead(err.httpStatus, { 'WWW-Authenticate': err.wwwAuthenticate }).end();
 *   }
 * }
 * ```
 */
export class BearerError extends SwitchboardError {
  declare readonly code: BearerErrorCode;
  /** 401 for a missing or invalid token, 403 for `insufficient_scope`. */
  readonly httpStatus: 401 | 403;
  /** A ready `WWW-Authenticate` header value (RFC 6750 §3). */
  readonly wwwAuthenticate: string;

  constructor(code: BearerErrorCode, message: string, options: BearerErrorOptions = {}) {
    super(code, message, { ...options, retryable: options.retryable ?? code === 'jwks_unavailable' });
    this.httpStatus = code === 'insufficient_scope' ? 403 : 401;
    const params: string[] = [];
    if (options.realm) params.push(`realm="${quote(options.realm)}"`);
    // RFC 6750 §3.1: a request without any authentication information gets no error code.
    if (code !== 'missing_token') {
      params.push(`error="${code === 'insufficient_scope' ? 'insufficient_scope' : 'invalid_token'}"`);
      params.push(`error_description="${quote(message)}"`);
    }
    if (code === 'insufficient_scope' && options.scope) params.push(`scope="${quote(options.scope)}"`);
    this.wwwAuthenticate = params.length ? `Bearer ${params.join(', ')}` : 'Bearer';
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), httpStatus: this.httpStatus };
  }
}

function quote(s: string): string {
  return s.replace(/[\\"]/g, '\\$&').replace(/[\r\n]/g, ' ');
}

/**
 * A user's upstream session cannot give a fresh access token. `code` is `reauth_required` when the IdP said
 * the refresh token is no longer valid (`invalid_grant`) or there is no session: the user must sign in again.
 * Other codes (`refresh_failed`, retryable) mean the IdP could not be reached or failed.
 *
 * @example
 * ```ts
 * import { UpstreamTokenError } from 'mcp-switchboard';
 * try {
 *   await getToken();
 * } catch (err) {
 *   if (err instanceof UpstreamTokenError && err.code === 'reauth_required') redirectToLogin();
 * }
 * ```
 */
export class UpstreamTokenError extends SwitchboardError {
  declare readonly code: UpstreamTokenErrorCode;

  constructor(code: UpstreamTokenErrorCode, message: string, options: SwitchboardErrorOptions = {}) {
    super(code, message, options);
  }
}

/**
 * A failure for want of credentials (an OBO failure, a config value the user does not have, no user at all):
 * another caller's credentials may do, and it must not count as activity that keeps a connection alive.
 *
 * @example
 * ```ts
 * lease.release({ touch: !isCredentialFailure(err) });
 * ```
 */
export function isCredentialFailure(err: unknown): boolean {
  return (
    err instanceof OboError ||
    err instanceof AuthorizationError ||
    err instanceof ConfigError ||
    (err instanceof SwitchboardError && err.code === 'user_required')
  );
}

/**
 * Codes of {@link AuthorizationError} (the MCP authorization flow the package runs per user, MCP spec
 * 2025-11-25 "Authorization"):
 * - `authorization_required`: the user must consent first; an {@link AuthorizationRequiredError} carrying the URL.
 * - `authorization_invalid_state`: a callback whose `state` is unknown, already used or expired (a replay, or too late).
 * - `authorization_user_mismatch`: a callback completed for another user than the one who started the flow.
 * - `authorization_issuer_mismatch`: the authorization server's metadata names another issuer than the one it
 *   was fetched for (RFC 8414 §3.3), or the callback's `iss` is not the flow's issuer (RFC 9207).
 * - `authorization_denied`: the authorization server answered the callback with an error (e.g. `access_denied`).
 * - `authorization_failed`: discovery, registration, the token request or the refresh failed; `retryable` tells
 *   whether the authorization server's answer was transient (network, 5xx, 429).
 * - `authorization_scope_limit`: the server asked for more scope again after the user consented to it
 *   (step-up retry limit reached).
 *
 * @example
 * ```ts
 * const showAgain: AuthorizationErrorCode[] = ['authorization_required', 'authorization_invalid_state', 'authorization_denied'];
 * ```
 */
export type AuthorizationErrorCode =
  | 'authorization_required'
  | 'authorization_invalid_state'
  | 'authorization_user_mismatch'
  | 'authorization_issuer_mismatch'
  | 'authorization_denied'
  | 'authorization_failed'
  | 'authorization_scope_limit';

/**
 * A failure of the MCP authorization flow (OAuth 2.1 authorization code with PKCE, or client credentials) that
 * the package runs for a server with an `oauth` block. Never carries a token, code or verifier.
 *
 * @example
 * ```ts
 * import { AuthorizationError } from 'mcp-switchboard';
 * try {
 *   await manager.completeAuthorization(req.url!);
 * } catch (err) {
 *   if (err instanceof AuthorizationError && err.code === 'authorization_invalid_state') res.writeHead(400).end('This sign-in link has expired');
 * }
 * ```
 */
export class AuthorizationError extends SwitchboardError {
  declare readonly code: AuthorizationErrorCode;

  constructor(code: AuthorizationErrorCode, message: string, options: SwitchboardErrorOptions = {}) {
    super(code, message, options);
  }
}

/**
 * The user must authorize the package at the server's authorization server before the call can go through.
 * Show `authorizationUrl` to that user (a link or a popup); the host's callback route then calls
 * `manager.completeAuthorization(callbackUrl)`, and the next call succeeds. Not retryable: repeating the call
 * before the user consented fails the same way (with the same URL while the flow is pending).
 *
 * @example
 * ```ts
 * import { AuthorizationRequiredError } from 'mcp-switchboard';
 * try {
 *   await manager.callTool({ user, serverName: 'linear', toolName: 'list_issues' });
 * } catch (err) {
 *   if (err instanceof AuthorizationRequiredError) console.log(`Connect ${err.serverName}: ${err.authorizationUrl.href}`);
 * }
 * ```
 */
export class AuthorizationRequiredError extends AuthorizationError {
  declare readonly code: 'authorization_required';
  /** Where to send the user's browser (the authorization endpoint with PKCE challenge, `state` and `resource`). */
  readonly authorizationUrl: URL;
  /** The flow's opaque `state`: the key `completeAuthorization` looks the flow up by. */
  readonly state: string;
  declare readonly serverName: string;

  constructor(opts: { serverName: string; authorizationUrl: URL; state: string; message?: string }) {
    super('authorization_required', opts.message ?? `"${opts.serverName}" needs the user's authorization`, { serverName: opts.serverName });
    this.authorizationUrl = opts.authorizationUrl;
    this.state = opts.state;
  }

  override toJSON(): Record<string, unknown> {
    // The URL carries no secret (PKCE sends only the challenge), but it is long: its origin and path are enough for logs.
    return { ...super.toJSON(), authorizationUrl: `${this.authorizationUrl.origin}${this.authorizationUrl.pathname}` };
  }
}
