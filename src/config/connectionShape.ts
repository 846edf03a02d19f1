/**
 * The part of a user's resolved config that a live connection cannot change: the URL (and proxy) it talks to, or
 * the command, arguments and environment of its process. Headers are not part of it: they are resolved again
 * for every request. When a caller's values change what the shape resolves to (a `{{var.*}}` in a stdio server's
 * env, say), the pool replaces the connection once its in-flight calls end.
 *
 * The shape is an HMAC under a key that never leaves the process, so a user's values (often secrets) never
 * enter a pool key or fingerprint, not even as a plain hash that could be guessed offline.
 * @module
 */
import { createHmac, randomBytes } from 'node:crypto';
import { ConfigError, type ConfigIssue } from '../errors.js';
import type { UserContext } from '../types.js';
import { hasUserPlaceholder, resolvePlaceholders, type PlaceholderTarget } from './placeholders.js';
import { templatedFields } from './parse.js';
import type { ServerConfig } from './schema.js';

type ShapingField = [path: string, value: string, target: PlaceholderTarget];

/** Per config object: the fields that shape a connection and read the user (empty: none). */
const shapingFields = new WeakMap<ServerConfig, ShapingField[]>();

function fieldsOf(config: ServerConfig): ShapingField[] {
  let fields = shapingFields.get(config);
  if (fields) return fields;
  // Every templated field but headers (those are resolved per request), as resolveConfigPlaceholders resolves them.
  fields = templatedFields(config)
    .filter(([path, value]) => !path.startsWith('headers.') && hasUserPlaceholder(value))
    .map(([path, value]): ShapingField => [path, value, path === 'url' || path === 'proxy' ? 'url' : 'plain']);
  shapingFields.set(config, fields);
  return fields;
}

/**
 * Computes connection shapes for one pool.
 *
 * @example
 * ```ts
 * const shapes = new ConnectionShapes();
 * const fingerprint = `${configFingerprint(config)}:${shapes.of('files', config, user, process.env)}`;
 * ```
 */
export class ConnectionShapes {
  readonly #key = randomBytes(32);

  /**
   * The shape of `config` for `user`: `''` when nothing that shapes the connection reads the user, else an opaque
   * digest. Throws {@link ConfigError} naming each placeholder the user cannot resolve (nothing is sent then).
   */
  of(serverName: string, config: ServerConfig, user: UserContext, env: Readonly<Record<string, string | undefined>>): string {
    const fields = fieldsOf(config);
    if (fields.length === 0) return '';
    const issues: ConfigIssue[] = [];
    const hmac = createHmac('sha256', this.#key);
    // A user config's `${NAME}` is refused here too, never read.
    const ctx = { user, env, ...(config.source ? { source: config.source } : {}) };
    for (const [path, value, target] of fields) {
      hmac.update(path).update('\0').update(resolvePlaceholders(value, ctx, target, `${serverName}.${path}`, issues)).update('\0');
    }
    if (issues.length) throw new ConfigError(issues, { serverName });
    return hmac.digest('base64url');
  }
}
