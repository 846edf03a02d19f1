import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { safeUrl } from './errors.js';

/**
 * Redaction of free text that comes from outside (a server's JSON-RPC error message, an IdP's
 * `error_description`) before it enters an error message, `toJSON()` or a log line: such text may echo a bearer,
 * an assertion, a client secret or an API key back at us.
 * @module
 */

/** Most characters of outside text kept in a message (the rest is cut before redaction). */
const MAX_REDACTED_CHARS = 16 * 1024;
/** A run of token-like characters long enough to be a credential. */
const TOKEN_RUN = /[A-Za-z0-9_\-+/=.~%]{20,}/g;
const BEARER = /\b(Bearer|Basic|DPoP)\s+\S+/gi;
/**
 * A JWS/JWT in compact form (its header always starts `eyJ`, the base64url of `{"`), at the start of a word: a
 * match may not start inside a run of word characters (which kept the search linear on `eyJeyJeyJ…`); a JWT glued
 * to other characters is one run of the token rule below.
 */
const JWT = /\beyJ[\w-]*\.[\w-]*\.[\w-]*/g;
/** One character of a token-like run. */
const TOKEN_CHAR = /[A-Za-z0-9_\-+/=.~%]/;
const SECRET_PARAM = /\b(access_token|refresh_token|id_token|token|assertion|client_secret|secret|password|api[_-]?key|key|code)=([^\s&"']+)/gi;

/**
 * Replaces what may be a credential in `text` by `[redacted]`: anything after `Bearer`/`Basic`/`DPoP`, values of
 * `token=`, `assertion=`, `client_secret=`… parameters, compact JWTs, and any run of 20 or more token-like
 * characters that mixes letters and digits (opaque tokens, API keys). Words and short identifiers are kept, so
 * the text stays readable. Text over 16 KiB is cut to its first 16 KiB first.
 *
 * @example
 * ```ts
 * redactSecrets('invalid bearer token abcDEF1234567890ghijKLMN'); // 'invalid bearer token [redacted]'
 * ```
 */
export function redactSecrets(text: string): string {
  // Longer text is cut first: error messages need no more, and the patterns' work grows with the text (a run of
  // many MB overflowed the regular expression engine's stack).
  if (text.length > MAX_REDACTED_CHARS) {
    // A token cut in two at the edge loses its tail too: a short head of it would escape the length rule below.
    let end = MAX_REDACTED_CHARS;
    // Back to the start of the token-like run at the edge (a loop: an anchored pattern retried from every
    // position was quadratic on a long run).
    while (end > 0 && TOKEN_CHAR.test(text[end - 1]!)) end--;
    text = `${text.slice(0, end)}… [${text.length - end} more characters cut]`;
  }
  return text
    .replace(JWT, '[redacted]')
    .replace(BEARER, '$1 [redacted]')
    .replace(SECRET_PARAM, '$1=[redacted]')
    .replace(TOKEN_RUN, (run) => (/[0-9]/.test(run) && /[A-Za-z]/.test(run) ? '[redacted]' : run));
}

/**
 * A stand-in for an error from outside, safe to keep as a `cause`: its class name, redacted message and the
 * fields that cannot hold a secret (`code`, `errno`, `syscall`, `status`, the URL's origin and path), its cause
 * chain likewise; the SDK's `StreamableHTTPError` keeps its class. Drops what Node and the SDK attach
 * that can (`spawnargs`, `path`, response bodies, headers).
 *
 * @example
 * ```ts
 * throw new SwitchboardError('connect_failed', 'Could not connect', { cause: sanitizeError(err) });
 * ```
 */
export function sanitizeError(err: unknown, depth = 0): Error | undefined {
  if (err === undefined || err === null) return undefined;
  const e = err as { name?: unknown; message?: unknown; code?: unknown; errno?: unknown; syscall?: unknown; status?: unknown; cause?: unknown };
  const message = typeof e.message === 'string' ? redactSecrets(e.message) : String(typeof err);
  const out = err instanceof StreamableHTTPError ? new StreamableHTTPError(err.code, message.replace(/^Streamable HTTP error: /, '')) : new Error(message);
  out.name = typeof e.name === 'string' ? e.name : 'Error';
  const fields = out as Error & Record<string, unknown>;
  if (typeof e.code === 'string' || typeof e.code === 'number') fields.code = e.code;
  if (typeof e.errno === 'number') fields.errno = e.errno;
  if (typeof e.syscall === 'string') fields.syscall = e.syscall.split(' ').slice(0, 2).join(' ');
  const url = (err as { url?: unknown }).url;
  if (typeof url === 'string' || url instanceof URL) {
    const safe = safeUrl(url);
    if (safe !== undefined) fields.url = safe;
  }
  if (typeof e.status === 'number') fields.status = e.status;
  if (depth < 8 && e.cause !== undefined) {
    const cause = sanitizeError(e.cause, depth + 1);
    if (cause) fields.cause = cause;
  }
  return out;
}

/**
 * Whether `code` looks like an OAuth `error` code (RFC 6749 §5.2: `invalid_grant`, `interaction_required`…) and
 * not like something echoed back (a token, an assertion).
 *
 * @example
 * ```ts
 * isErrorCode('invalid_grant'); // true
 * isErrorCode('invalid_grant:eyJhbGciOi...'); // false
 * ```
 */
export function isErrorCode(code: string): boolean {
  return /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(code) && redactSecrets(code) === code;
}
