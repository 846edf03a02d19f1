/**
 * A cheap size measure of a JSON value (a tool result), stopping as soon as a cap is passed: strings count
 * their UTF-8 bytes, keys count too, numbers and other scalars a few bytes. Close to the JSON size, never
 * building the JSON text.
 * @module
 */

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
  let total = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') total += Buffer.byteLength(v, 'utf8') + 2;
    else if (v === null || typeof v !== 'object') total += 8;
    else if (Array.isArray(v)) {
      total += 2 + v.length;
      for (const item of v) stack.push(item);
    } else {
      total += 2;
      for (const [k, item] of Object.entries(v)) {
        total += Buffer.byteLength(k, 'utf8') + 4;
        stack.push(item);
      }
    }
    if (total > maxBytes) return true;
  }
  return false;
}
