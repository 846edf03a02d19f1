/**
 * A cheap size measure of a JSON value (a tool result), stopping as soon as a cap is passed: strings count
 * their UTF-8 bytes, keys count too, numbers and other scalars a few bytes. Close to the JSON size, never
 * building the JSON text.
 * @module
 */

/**
 * The default cap on a tool result, in bytes of its JSON (16 MiB): `limits.maxResultBytes` of a connection.
 *
 * @example
 * ```ts
 * const limits = { maxResultBytes: DEFAULT_MAX_RESULT_BYTES / 4 };
 * ```
 */
export const DEFAULT_MAX_RESULT_BYTES = 16 * 1024 * 1024;

/**
 * Room for the JSON-RPC envelope around a result (64 KiB): a transport's message cap is the result cap plus this.
 *
 * @example
 * ```ts
 * const maxMessageBytes = DEFAULT_MAX_RESULT_BYTES + MESSAGE_ENVELOPE_BYTES;
 * ```
 */
export const MESSAGE_ENVELOPE_BYTES = 64 * 1024;

/**
 * True when `value` is larger than `maxBytes` (approximately its JSON size). Walks at most until the cap is
 * passed, so an oversized result is refused without serializing it.
 *
 * @example
 * ```ts
 * if (exceedsBytes(result, 16 * 1024 * 1024)) throw new SwitchboardError('too_large', 'tool result too large');
 * ```
 */
export function exceedsBytes(value: unknown, maxBytes: number): boolean {
  // A string's UTF-8 size is at most 3 bytes per UTF-16 unit: a first walk with that bound measures no string
  // exactly and allocates nothing, and settles the common case (a result far below the cap) on its own.
  return sizeAbove(value, maxBytes, false) && sizeAbove(value, maxBytes, true);
}

/** Walks `value` until its size passes `maxBytes`; `exact`: UTF-8 sizes of strings, else their upper bound. */
function sizeAbove(value: unknown, maxBytes: number, exact: boolean): boolean {
  let total = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') total += (exact ? Buffer.byteLength(v, 'utf8') : v.length * 3) + 2;
    else if (v === null || typeof v !== 'object') total += 8;
    else if (Array.isArray(v)) {
      total += 2 + v.length;
      for (const item of v) stack.push(item);
    } else {
      total += 2;
      for (const k in v) {
        if (!Object.hasOwn(v, k)) continue;
        total += (exact ? Buffer.byteLength(k, 'utf8') : k.length * 3) + 4;
        stack.push((v as Record<string, unknown>)[k]);
      }
    }
    if (total > maxBytes) return true;
  }
  return false;
}
