/**
 * Reconnect delays: exponential backoff with full jitter.
 * @module
 */
import { resolveRetryPolicyOptions } from './retryPolicy.js';
import { knownKeys } from '../options.js';

/**
 * Settings of the reconnect loop of an `MCPConnection`.
 *
 * @example
 * ```ts
 * const reconnect: ReconnectOptions = { maxAttempts: 8, baseDelayMs: 500, maxDelayMs: 30_000 };
 * ```
 */
export interface ReconnectOptions {
  /**
   * Reconnect attempts (after a transport loss, an expired session, a broken standby stream) before giving up
   * (default 5). The budget is shared by successive losses and restored only after the connection has stayed
   * healthy for `healthyAfterMs`. 0 disables reconnecting (an expired session is still re-initialized once).
   */
  maxAttempts?: number;
  /** Floor of every delay in ms (default 100, or `baseDelayMs` / `maxDelayMs` when lower). */
  minDelayMs?: number;
  /** Base of the exponential backoff in ms (default 250, or `maxDelayMs` when lower). */
  baseDelayMs?: number;
  /** Upper bound of one delay in ms (default 10 000). */
  maxDelayMs?: number;
  /** How long a connection must stay healthy, in ms, before its attempt budget is restored (default 30 000). */
  healthyAfterMs?: number;
}

/**
 * {@link ReconnectOptions} with every default filled in.
 *
 * @example
 * ```ts
 * const resolved: ResolvedReconnectOptions = resolveReconnectOptions({ maxAttempts: 3 });
 * ```
 */
export type ResolvedReconnectOptions = Required<ReconnectOptions>;

/**
 * Fills in the defaults of {@link ReconnectOptions} and checks the values: a bad value is a `TypeError`,
 * never a silent default.
 *
 * @example
 * ```ts
 * resolveReconnectOptions({ maxAttempts: 3 }); // { maxAttempts: 3, minDelayMs: 100, baseDelayMs: 250, maxDelayMs: 10_000, healthyAfterMs: 30_000 }
 * ```
 */
export function resolveReconnectOptions(opts: ReconnectOptions = {}): ResolvedReconnectOptions {
  if (opts === null || typeof opts !== 'object') throw new TypeError(`reconnect must be an object (got ${String(opts)})`);
  knownKeys(opts, ['maxAttempts', 'minDelayMs', 'baseDelayMs', 'maxDelayMs', 'healthyAfterMs'], 'reconnect');
  return resolveRetryPolicyOptions(opts, 'reconnect');
}

export { backoffDelay } from './retryPolicy.js';
