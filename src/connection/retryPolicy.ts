/**
 * The one retry policy of every reconnect loop (session re-initialize, transport loss, standby stream, SSE,
 * WebSocket, stdio respawn): exponential backoff with full jitter above a floor, and an attempt budget that
 * is restored only after the resource has stayed healthy for a while, so a server that accepts and then drops
 * at once cannot keep a client busy for ever.
 * @module
 */

/**
 * Settings of a {@link RetryPolicy}. Every field has a default.
 *
 * @example
 * ```ts
 * const opts: RetryPolicyOptions = { maxAttempts: 5, minDelayMs: 100, baseDelayMs: 250, maxDelayMs: 10_000, healthyAfterMs: 30_000 };
 * ```
 */
export interface RetryPolicyOptions {
  /** Attempts allowed before the budget is spent (default 5). 0: never retry. */
  maxAttempts?: number;
  /** Floor of every delay in ms (default 100, or `baseDelayMs` / `maxDelayMs` when lower), so a server cannot make retries back to back. */
  minDelayMs?: number;
  /** Base of the exponential backoff in ms (default 250). */
  baseDelayMs?: number;
  /** Upper bound of one delay in ms (default 10 000). When it is below their defaults, `baseDelayMs` and `minDelayMs` default to it. */
  maxDelayMs?: number;
  /** How long the resource must stay healthy, in ms, before the budget is restored (default 30 000). */
  healthyAfterMs?: number;
}

/**
 * {@link RetryPolicyOptions} with every default filled in.
 *
 * @example
 * ```ts
 * const resolved: ResolvedRetryPolicyOptions = resolveRetryPolicyOptions({ maxAttempts: 3 });
 * ```
 */
export type ResolvedRetryPolicyOptions = Required<RetryPolicyOptions>;

/**
 * Defaults of {@link RetryPolicyOptions}.
 *
 * @example
 * ```ts
 * const floorMs = RETRY_POLICY_DEFAULTS.minDelayMs; // 100
 * ```
 */
export const RETRY_POLICY_DEFAULTS: ResolvedRetryPolicyOptions = Object.freeze({
  maxAttempts: 5,
  minDelayMs: 100,
  baseDelayMs: 250,
  maxDelayMs: 10_000,
  healthyAfterMs: 30_000,
});

/**
 * Fills in the defaults of {@link RetryPolicyOptions} and checks each value: a bad value is a `TypeError`
 * naming the field under `label` (never a silent default).
 *
 * @example
 * ```ts
 * resolveRetryPolicyOptions({ maxAttempts: 3 }, 'reconnect'); // { maxAttempts: 3, minDelayMs: 100, … }
 * ```
 */
export function resolveRetryPolicyOptions(opts: RetryPolicyOptions = {}, label = 'retry'): ResolvedRetryPolicyOptions {
  const given = definedOnly(opts);
  const out = { ...RETRY_POLICY_DEFAULTS, ...given };
  // Defaults give way to a lower value the caller set: the base to a lower cap, the floor to a lower base or cap
  // (`{ maxDelayMs: 200 }` means "never wait more than 200 ms", not a TypeError about a field the caller did not
  // set; a host that asks for faster retries gets them). Bad values are left for the checks below to name.
  const usable = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  if (given.baseDelayMs === undefined && usable(out.maxDelayMs)) out.baseDelayMs = Math.min(out.baseDelayMs, out.maxDelayMs);
  if (given.minDelayMs === undefined) {
    for (const bound of [out.baseDelayMs, out.maxDelayMs]) if (usable(bound)) out.minDelayMs = Math.min(out.minDelayMs, bound);
  }
  if (!Number.isInteger(out.maxAttempts) || out.maxAttempts < 0) throw new TypeError(`${label}.maxAttempts must be a whole number >= 0 (got ${String(opts.maxAttempts)})`);
  for (const k of ['minDelayMs', 'baseDelayMs', 'healthyAfterMs'] as const) {
    if (!Number.isFinite(out[k]) || out[k] < 0) throw new TypeError(`${label}.${k} must be a number >= 0 (got ${String(opts[k])})`);
  }
  if (!Number.isFinite(out.maxDelayMs) || out.maxDelayMs < out.baseDelayMs || out.maxDelayMs < out.minDelayMs) {
    throw new TypeError(`${label}.maxDelayMs must be a number >= baseDelayMs and >= minDelayMs (got ${String(opts.maxDelayMs)})`);
  }
  return out;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/**
 * One retry budget: ask {@link RetryPolicy.nextDelay} before each retry, and call {@link RetryPolicy.healthy}
 * when the resource works again. The budget is restored only once the resource has been healthy for
 * `healthyAfterMs` (checked when the next failure comes): a graceful close right after a success does not
 * reset it, unlike the SDK transports' own counters.
 *
 * @example
 * ```ts
 * const policy = new RetryPolicy({ maxAttempts: 5 });
 * for (;;) {
 *   const delayMs = policy.nextDelay();
 *   if (delayMs === undefined) throw new Error('gave up');
 *   await sleep(delayMs);
 *   if (await tryConnect()) break;
 * }
 * policy.healthy();
 * ```
 */
export class RetryPolicy {
  readonly #opts: ResolvedRetryPolicyOptions;
  readonly #random: () => number;
  readonly #now: () => number;
  #attempts = 0;
  #healthySince: number | undefined;

  constructor(opts: RetryPolicyOptions | ResolvedRetryPolicyOptions = {}, deps: { random?: () => number; now?: () => number } = {}) {
    this.#opts = resolveRetryPolicyOptions(opts);
    this.#random = deps.random ?? Math.random;
    this.#now = deps.now ?? Date.now;
  }

  /** The settings in force. */
  get options(): ResolvedRetryPolicyOptions {
    return this.#opts;
  }

  /** Attempts counted since the budget was last restored. */
  get attempts(): number {
    return this.#attempts;
  }

  /**
   * Counts one attempt and returns how long to wait before it, in ms (at least `minDelayMs`), or `undefined`
   * when the budget is spent. Restores the budget first when the resource had been healthy long enough.
   */
  nextDelay(): number | undefined {
    if (this.#healthySince !== undefined && this.#now() - this.#healthySince >= this.#opts.healthyAfterMs) this.#attempts = 0;
    this.#healthySince = undefined;
    if (this.#attempts >= this.#opts.maxAttempts) return undefined;
    return backoffDelay(this.#attempts++, this.#opts, this.#random);
  }

  /** Whether the budget is spent (the next {@link RetryPolicy.nextDelay} would return `undefined`), without counting. */
  get exhausted(): boolean {
    if (this.#healthySince !== undefined && this.#now() - this.#healthySince >= this.#opts.healthyAfterMs) return false;
    return this.#attempts >= this.#opts.maxAttempts;
  }

  /** The resource works (again) from now on; the budget is restored if it stays so for `healthyAfterMs`. */
  healthy(): void {
    this.#healthySince ??= this.#now();
  }

  /** Restores the whole budget at once (a new config, an explicit reset by the host). */
  reset(): void {
    this.#attempts = 0;
    this.#healthySince = undefined;
  }
}

/**
 * The delay before attempt `attempt` (0-based): full jitter above a floor,
 * `minDelayMs + random() * (ceiling - minDelayMs)` where `ceiling = max(minDelayMs, min(maxDelayMs, baseDelayMs * 2^attempt))`
 * (`minDelayMs` defaults to 0). Full jitter spreads the reconnects of many clients that lost the same server at the
 * same moment; the floor keeps any two of one client's attempts apart.
 *
 * @example
 * ```ts
 * backoffDelay(3, { baseDelayMs: 250, maxDelayMs: 10_000 }, () => 0.5); // 0.5 * min(10_000, 2_000) = 1_000
 * backoffDelay(0, { minDelayMs: 100, baseDelayMs: 250, maxDelayMs: 10_000 }, () => 0.5); // 100 + 0.5 * 150 = 175
 * ```
 */
export function backoffDelay(
  attempt: number,
  opts: { baseDelayMs: number; maxDelayMs: number; minDelayMs?: number },
  random: () => number = Math.random,
): number {
  const floor = opts.minDelayMs ?? 0;
  // 2^attempt overflows to Infinity for large attempts; min() keeps the cap exact.
  const ceiling = Math.max(floor, Math.min(opts.maxDelayMs, opts.baseDelayMs * 2 ** attempt));
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.floor(floor + r * (ceiling - floor));
}
