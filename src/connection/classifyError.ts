/**
 * Maps what the SDK and transports throw onto this package's typed errors, by class and code only (never
 * by message text). Errors that already are a `SwitchboardError` (an `OboError` from the auth header
 * provider, an SSRF refusal, a `ConfigError`) pass through as the same object.
 * @module
 */
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import { redactSecrets, sanitizeError } from '../redact.js';
import { SwitchboardError, safeUrl, summarizeCause, type CauseSummary } from '../errors.js';
import { localErrorOf } from '../transport/localAnswer.js';
import type { TimeoutDetail } from './operationScope.js';

/**
 * What was being done when the error happened: it picks `connect_timeout` / `connect_failed` over
 * `call_timeout` / `transport_error`.
 *
 * @example
 * ```ts
 * const phase: OperationPhase = 'connect';
 * ```
 */
export type OperationPhase = 'connect' | 'call';

/**
 * The error of an operation that ran out of time: `connect_timeout` or `call_timeout` (retryable), its message
 * naming the limit that ran out and its length when known (`timed out after 800 ms (maxTotalTimeoutMs)`), and
 * the same in `deadline`.
 *
 * @example
 * ```ts
 * throw timeoutError('call', 'files', { limit: 'timeoutMs', ms: 30_000 });
 * ```
 */
export function timeoutError(phase: OperationPhase, serverName: string, detail?: TimeoutDetail, cause?: unknown): SwitchboardError {
  const limit = detail?.limit === 'maxTotalMs' ? 'maxTotalTimeoutMs' : phase === 'connect' ? 'initTimeoutMs' : 'timeoutMs';
  const after = detail ? ` after ${detail.ms} ms (${limit})` : '';
  const opts = {
    retryable: true,
    serverName,
    ...(detail ? { deadline: { option: limit, ms: detail.ms } as const } : {}),
    ...(cause === undefined ? {} : { cause }),
  };
  return phase === 'connect'
    ? new SwitchboardError('connect_timeout', `Connecting to MCP server "${serverName}" timed out${after}`, opts)
    : new SwitchboardError('call_timeout', `Request to MCP server "${serverName}" timed out${after}`, opts);
}

/**
 * Whether `err` is the SDK's own request timeout (its timer ran out before a response).
 *
 * @example
 * ```ts
 * if (isRequestTimeout(err)) return timeoutError('call', 'files', scope.timeoutDetail(), err);
 * ```
 */
export function isRequestTimeout(err: unknown): boolean {
  return err instanceof McpError && err.code === ErrorCode.RequestTimeout;
}

/**
 * Wraps a raw error from the SDK or a transport in a {@link SwitchboardError}:
 * - a `SwitchboardError` is returned unchanged (same object), and so is the one a request was answered with
 *   locally by the request path (`localErrorAnswer`: response stream lost, message over the size cap);
 * - a JSON-RPC error from the server → `server_error` (the `McpError` is the `cause`), except the SDK's own
 *   request timeout → `call_timeout` / `connect_timeout` (retryable);
 * - anything else (HTTP status errors, network errors, a closed stream) → `transport_error` during a call or
 *   `connect_failed` during connect, retryable, the original as `cause`. The message ends with the root cause
 *   (error code such as `ECONNREFUSED`, the failed `spawn <command>`, the HTTP status, and the URL's origin and
 *   path, from the cause chain or from `target`), never a query string, user info, header or token. Not
 *   retryable: a stdio command that does not exist or may not be run (`ENOENT`, `EACCES` from `spawn`), and an
 *   HTTP 4xx other than 408, 425 and 429 (the server would answer the same again).
 *
 * @example
 * ```ts
 * try {
 *   await client.callTool({ name: 'x' });
 * } catch (err) {
 *   throw classifyError(err, 'call', 'github');
 * }
 * ```
 */
export function classifyError(err: unknown, phase: OperationPhase, serverName: string, target?: ErrorTarget): SwitchboardError {
  if (err instanceof SwitchboardError) return err;
  // A request the request path answered locally (response stream lost, message over the cap): its own error.
  const local = localErrorOf(err);
  if (local) return local;
  if (err instanceof McpError) {
    if (err.code === ErrorCode.RequestTimeout) {
      // The SDK's own request timer (the warm call path): its data carries the timeout it ran.
      const ms = (err.data as { timeout?: unknown } | undefined)?.timeout;
      return timeoutError(phase, serverName, typeof ms === 'number' ? { limit: 'timeoutMs', ms } : undefined, err);
    }
    // The server's text may echo what it was sent (a bearer, an API key): redacted, and its `data` dropped.
    const text = oneLine(redactSecrets(err.message.replace(/^MCP error -?\d+: /, '')));
    return new SwitchboardError('server_error', `MCP server "${serverName}" answered with an error (${err.code}): ${text}`, {
      cause: new McpError(err.code, text),
      serverName,
    });
  }
  const summary = summarizeCause(err) ?? {};
  const url = summary.url ?? (target?.url === undefined ? undefined : safeUrl(target.url));
  const detail = describe(summary, url);
  // Retryable only where a retry can succeed: not a missing command, not a client error the server will repeat.
  const retryable = !isMissingCommand(summary) && !isPermanentStatus(summary.status);
  if (phase === 'connect') {
    return new SwitchboardError('connect_failed', `Could not connect to MCP server "${serverName}"${detail}`, { cause: sanitizeError(err), retryable, serverName });
  }
  return new SwitchboardError('transport_error', `Transport error talking to MCP server "${serverName}"${detail}`, { cause: sanitizeError(err), retryable, serverName });
}

/**
 * What a connection was made to, for the message of a {@link classifyError} result when the cause chain does
 * not say (an HTTP transport's `fetch failed` does not carry the URL). Only the URL's origin and path are used.
 *
 * @example
 * ```ts
 * classifyError(err, 'connect', 'files', { url: config.url }); // … "files": ECONNREFUSED at https://files.example.com/mcp
 * ```
 */
export interface ErrorTarget {
  /** The server URL (http, https, ws or wss). */
  url?: string;
}

/**
 * An HTTP status the same request will meet again: 4xx, except 408 (timeout), 425 (too early) and 429 (rate
 * limited). A 404 / 400 for an unknown session never gets here: the connection re-initializes instead.
 */
function isPermanentStatus(status: number | undefined): boolean {
  return status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 425 && status !== 429;
}

/** `spawn` failed because the command does not exist or may not be executed: retrying will not help. */
function isMissingCommand(s: CauseSummary): boolean {
  return (s.code === 'ENOENT' || s.code === 'EACCES') && (s.syscall?.startsWith('spawn') ?? false);
}

/** `: spawn files-mcp ENOENT (command not found)`, `: ECONNREFUSED at http://h/mcp`, ` (HTTP 404)` or ``. */
function describe(s: CauseSummary, url: string | undefined): string {
  const parts: string[] = [];
  if (s.syscall?.startsWith('spawn')) {
    parts.push(`${s.syscall}${s.code ? ` ${s.code}` : ''}`);
    if (s.code === 'ENOENT') parts.push('(command not found)');
    else if (s.code === 'EACCES') parts.push('(command not executable)');
  } else if (s.code) {
    parts.push(s.code);
  }
  if (s.status !== undefined) parts.push(`HTTP ${s.status}`);
  if (url !== undefined && !s.syscall?.startsWith('spawn')) parts.push(`at ${url}`);
  if (!parts.length) return '';
  // The former format ` (HTTP 404)` is kept when the status is all there is to say.
  if (parts.length === 1 && s.status !== undefined) return ` (HTTP ${s.status})`;
  return `: ${parts.join(' ')}`;
}

function oneLine(s: string): string {
  const line = s.replace(/[\r\n]+/g, ' ');
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}
