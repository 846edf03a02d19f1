/**
 * A stable fingerprint of a server config: two configs with the same fields (in any key order) have the same
 * fingerprint, so a pooled connection can tell whether the config it was made with is still current.
 * @module
 */
import { createHash } from 'node:crypto';
import type { ServerConfig } from './schema.js';

const cache = new WeakMap<object, string>();

function stable(value: unknown): unknown {
  if (value instanceof Date) return { $date: value.getTime() };
  if (Array.isArray(value)) return value.map(stable);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) out[k] = stable((value as Record<string, unknown>)[k]);
    return out;
  }
  return value;
}

/**
 * The fingerprint of a config (a SHA-256 hex digest of its canonical JSON), memoised per config object.
 *
 * @example
 * ```ts
 * configFingerprint(a) === configFingerprint(b); // true when a and b have the same fields
 * ```
 */
export function configFingerprint(config: ServerConfig): string {
  let fp = cache.get(config);
  if (fp === undefined) {
    fp = createHash('sha256').update(JSON.stringify(stable(config))).digest('hex');
    cache.set(config, fp);
  }
  return fp;
}
