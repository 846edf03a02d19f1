/**
 * Checks of constructor and factory options, shared by every public entry point so that a bad option is
 * always the same kind of error: a `TypeError` (as in openid-client) whose message names the public option,
 * says what was expected and what was given, e.g. `MCPManager: maxConnectionsPerUser must be a positive
 * integer (got 0)`. A check never falls back to a default silently; `undefined` means "not given" and yields
 * the default passed in.
 * @module
 */

/**
 * A short, log-safe description of a received value for an option error: numbers, booleans, `null` and
 * `undefined` as they are, a string only by its length (it may be a secret), other values by their type.
 *
 * @example
 * ```ts
 * describeValue(0); // '0'
 * describeValue('s3cr3t'); // 'a string of 6 characters'
 * describeValue([1, 2]); // 'an array'
 * ```
 */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (typeof value === 'string') return value === '' ? 'an empty string' : `a string of ${value.length} characters`;
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'function') return 'a function';
  return `a ${typeof value}`;
}

/**
 * The `TypeError` of a bad option: `<name> must be <expected> (got <value>)`.
 *
 * @example
 * ```ts
 * if (typeof opts.fetch !== 'function') throw optionError('createAuthFetch: fetch', 'a function', opts.fetch);
 * ```
 */
export function optionError(name: string, expected: string, value: unknown): TypeError {
  return new TypeError(`${name} must be ${expected} (got ${describeValue(value)})`);
}

/**
 * A whole number >= 1, or `fallback` when `value` is `undefined`.
 *
 * @example
 * ```ts
 * const maxEntries = positiveInt(opts.maxEntries, 'createOboTokenResolver: maxEntries', 10_000);
 * positiveInt(0, 'MCPManager: maxConnectionsPerUser'); // TypeError: MCPManager: maxConnectionsPerUser must be a positive integer (got 0)
 * ```
 */
export function positiveInt<D = never>(value: unknown, name: string, ...fallback: [] | [D]): number | D {
  if (value === undefined && fallback.length) return fallback[0] as D;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw optionError(name, 'a positive integer', value);
  return value;
}

/**
 * A whole number >= 0, or `fallback` when `value` is `undefined`.
 *
 * @example
 * ```ts
 * const attempts = nonNegativeInt(opts.maxAttempts, 'reconnect.maxAttempts', 5);
 * ```
 */
export function nonNegativeInt<D = never>(value: unknown, name: string, ...fallback: [] | [D]): number | D {
  if (value === undefined && fallback.length) return fallback[0] as D;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw optionError(name, 'a non-negative integer', value);
  return value;
}

/**
 * A finite duration in milliseconds >= 0, or `fallback` when `value` is `undefined`.
 *
 * @example
 * ```ts
 * const skewMs = nonNegativeMs(opts.skewMs, 'createUpstreamTokenProvider: skewMs', 60_000);
 * ```
 */
export function nonNegativeMs<D = never>(value: unknown, name: string, ...fallback: [] | [D]): number | D {
  if (value === undefined && fallback.length) return fallback[0] as D;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw optionError(name, 'a number of milliseconds >= 0', value);
  return value;
}

/**
 * A finite duration in milliseconds > 0, or `fallback` when `value` is `undefined`.
 *
 * @example
 * ```ts
 * const timeoutMs = positiveMs(opts.timeoutMs, 'createOboTokenResolver: timeoutMs', 10_000);
 * ```
 */
export function positiveMs<D = never>(value: unknown, name: string, ...fallback: [] | [D]): number | D {
  if (value === undefined && fallback.length) return fallback[0] as D;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw optionError(name, 'a number of milliseconds > 0', value);
  return value;
}

/**
 * A duration in milliseconds > 0 or `Infinity` ("never"), or `fallback` when `value` is `undefined`.
 *
 * @example
 * ```ts
 * const idleTimeoutMs = positiveMsOrInfinity(opts.idleTimeoutMs, 'MCPManager: idleTimeoutMs', 15 * 60_000);
 * ```
 */
export function positiveMsOrInfinity<D = never>(value: unknown, name: string, ...fallback: [] | [D]): number | D {
  if (value === undefined && fallback.length) return fallback[0] as D;
  if (typeof value !== 'number' || Number.isNaN(value) || value <= 0) throw optionError(name, 'a number of milliseconds > 0 (or Infinity)', value);
  return value;
}

/**
 * One of a fixed set of strings, or `fallback` when `value` is `undefined`.
 *
 * @example
 * ```ts
 * const grant = oneOf(opts.grant, ['jwt-bearer', 'token-exchange'] as const, 'createOboTokenResolver: grant', 'jwt-bearer');
 * oneOf('nope', ['a', 'b'] as const, 'grant'); // TypeError: grant must be one of 'a', 'b' (got 'nope')
 * ```
 */
export function oneOf<T extends string, D = never>(value: unknown, allowed: readonly T[], name: string, ...fallback: [] | [D]): T | D {
  if (value === undefined && fallback.length) return fallback[0] as D;
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    const list = allowed.map((a) => `'${a}'`).join(', ');
    const got = describeValue(value); // never the string itself: a misplaced secret must not be echoed
    throw new TypeError(`${name} must be one of ${list} (got ${got})`);
  }
  return value as T;
}

/**
 * A non-empty string (required).
 *
 * @example
 * ```ts
 * const clientId = nonEmptyString(opts.clientId, 'createOboTokenResolver: clientId');
 * ```
 */
export function nonEmptyString(value: unknown, name: string): string {
  if (typeof value !== 'string' || value === '') throw optionError(name, 'a non-empty string', value);
  return value;
}

/**
 * A function, or `undefined` when not given and not `required`.
 *
 * @example
 * ```ts
 * const connect = fn(opts.connect, 'AppConnectionPool: connect', { required: true });
 * const onEvict = fn(opts.onEvict, 'pool: onEvict');
 * ```
 */
export function fn<F extends (...args: never[]) => unknown>(value: F | undefined, name: string, opts: { required?: boolean } = {}): F | undefined {
  if (value === undefined && !opts.required) return undefined;
  if (typeof value !== 'function') throw optionError(name, 'a function', value);
  return value;
}

/**
 * Refuses option keys that `owner` does not know, so that a misspelt or misplaced option is a `TypeError` naming
 * it (with the closest known name, or `hint(key)` when given), never silently ignored. `undefined` values count
 * as absent.
 *
 * @example
 * ```ts
 * knownKeys(opts, ['servers', 'logger'], 'MCPManager'); // { servres: … } → TypeError: … did you mean "servers"?
 * ```
 */
export function knownKeys(opts: object, known: readonly string[], owner: string, hint?: (key: string) => string | undefined): void {
  for (const [key, value] of Object.entries(opts)) {
    if (value === undefined || known.includes(key)) continue;
    const extra = hint?.(key) ?? closest(key, known);
    throw new TypeError(`${owner}: unknown option "${key}"${extra ? `; ${extra}` : ''}`);
  }
}

/**
 * The known name closest to `name` (at most 2 edits away, case ignored), for a "did you mean" hint.
 *
 * @example
 * ```ts
 * closestName('timout', ['timeout', 'initTimeout']); // 'timeout'
 * ```
 */
export function closestName(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const d = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/** `did you mean "x"?` for a known name at most two edits away, else undefined. */
function closest(key: string, known: readonly string[]): string | undefined {
  const best = closestName(key, known);
  return best === undefined ? undefined : `did you mean "${best}"?`;
}

/** Levenshtein distance, cut short at 3 (only distances of 2 or less matter). */
function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}
