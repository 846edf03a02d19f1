/**
 * Reconnect delays: exponential backoff with full jitter.
 * @module
 */

/**
 * Settings of the reconnect loop of an `MCPConnection`.
 *
 * @example
 * ```ts
 * const reconnect: ReconnectOptions = { maxAttempts: 8, baseDelayMs: 500, maxDelayMs: 30_000 };
 * ```
 */
export interface ReconnectOptions {
  /** Connection attempts after a transport loss before giving up (default 5). 0 disables reconnecting. */
  maxAttempts?: number;
  /** Base of the exponential backoff in ms (default 250). */
  baseDelayMs?: number;
  /** Upper bound of one delay in ms (default 10 000). */
  maxDelayMs?: number;
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
 * resolveReconnectOptions({ maxAttempts: 3 }); // { maxAttempts: 3, baseDelayMs: 250, maxDelayMs: 10_000 }
 * ```
 */
export function resolveReconnectOptions(opts: ReconnectOptions = {}): ResolvedReconnectOptions {
  const out = { maxAttempts: opts.maxAttempts ?? 5, baseDelayMs: opts.baseDelayMs ?? 250, maxDelayMs: opts.maxDelayMs ?? 10_000 };
  if (!Number.isInteger(out.maxAttempts) || out.maxAttempts < 0) throw new TypeError('reconnect.maxAttempts must be a whole number >= 0');
  if (!Number.isFinite(out.baseDelayMs) || out.baseDelayMs < 0) throw new TypeError('reconnect.baseDelayMs must be a number >= 0');
  if (!Number.isFinite(out.maxDelayMs) || out.maxDelayMs < out.baseDelayMs) throw new TypeError('reconnect.maxDelayMs must be a number >= baseDelayMs');
  return out;
}

/**
 * The delay before reconnect attempt `attempt` (0-based): `random() * min(maxDelayMs, baseDelayMs * 2^attempt)`.
 * Full jitter spreads the reconnects of many clients that lost the same server at the same moment.
 *
 * @example
 * ```ts
 * backoffDelay(3, { baseDelayMs: 250, maxDelayMs: 10_000 }, () => 0.5); // 0.5 * min(10_000, 2_000) = 1_000
 * ```
 */
export function backoffDelay(
  attempt: number,
  opts: { baseDelayMs: number; maxDelayMs: number },
  random: () => number = Math.random,
): number {
  // 2^attempt overflows to Infinity for large attempts; min() keeps the cap exact.
  const ceiling = Math.min(opts.maxDelayMs, opts.baseDelayMs * 2 ** attempt);
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.floor(r * ceiling);
}
