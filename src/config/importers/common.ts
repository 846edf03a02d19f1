/**
 * What every importer returns, and the small helpers they share.
 * @module
 */
import { ConfigError, type ConfigIssue } from '../../errors.js';

/**
 * Something in a source file that was not imported as written: a field with no equivalent here, a placeholder
 * rewritten with a caveat, a server skipped. `path` is dotted from the document's root, e.g.
 * `mcpServers.github.iconPath`, so the operator can find it in the file.
 *
 * @example
 * ```ts
 * const w: ImportWarning = { path: 'mcpServers.files.iconPath', message: 'not imported: display icon of the LibreChat UI' };
 * ```
 */
export type ImportWarning = ConfigIssue;

/**
 * The result of an importer: server configs in this package's raw format (to be validated with
 * `parseServersConfig`, which `loadConfigFile` does) and everything that could not be carried over.
 *
 * @example
 * ```ts
 * const { servers, warnings } = importClaudeDesktop(JSON.parse(text));
 * const configs = parseServersConfig(servers);
 * for (const w of warnings) console.warn(`${w.path}: ${w.message}`);
 * ```
 */
export interface ImportResult {
  /** Server name → config in this package's format, not yet validated. */
  servers: Record<string, unknown>;
  /** What was not imported as written, each with its path in the source document. */
  warnings: ImportWarning[];
}

/**
 * True for a plain object (not an array, not null).
 *
 * @example
 * ```ts
 * isPlainObject({ a: 1 }); // true
 * isPlainObject([1]);      // false
 * ```
 */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/**
 * Sets an own property even when the key is `__proto__` (a name taken from the file must become an entry that
 * validation can report, not change the object's prototype).
 *
 * @example
 * ```ts
 * const servers: Record<string, unknown> = {};
 * setOwn(servers, '__proto__', {}); // Object.keys(servers) → ['__proto__']
 * ```
 */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * Applies `fn` to a string, to each string of an array, or leaves any other value for validation to report.
 *
 * @example
 * ```ts
 * mapStrings(['a', 'b'], 'x.args', (s, path) => s.toUpperCase()); // ['A', 'B'] (paths x.args.0, x.args.1)
 * ```
 */
export function mapStrings(value: unknown, path: string, fn: (s: string, path: string) => string): unknown {
  if (typeof value === 'string') return fn(value, path);
  if (Array.isArray(value)) return value.map((v, i) => (typeof v === 'string' ? fn(v, `${path}.${i}`) : v));
  return value;
}

/**
 * Rewrites the values of a string map (env, headers). `fn` returns `undefined` to leave an entry out (the caller
 * has already warned about it). A value that is not a map is returned as it is, for validation to report.
 *
 * @example
 * ```ts
 * mapRecord({ A: 'keep', B: 'drop' }, 'x.headers', (s) => (s === 'drop' ? undefined : s)); // { A: 'keep' }
 * ```
 */
export function mapRecord(value: unknown, path: string, fn: (s: string, path: string) => string | undefined): unknown {
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') {
      setOwn(out, k, v);
      continue;
    }
    const mapped = fn(v, `${path}.${k}`);
    if (mapped !== undefined) setOwn(out, k, mapped);
  }
  return out;
}

/**
 * A {@link ConfigError} thrown by an importer (for example an unknown field inside a block it maps), carrying the
 * warnings it had collected so far, so that a caller can still show them next to the errors.
 *
 * @example
 * ```ts
 * try {
 *   importLibreChat(doc);
 * } catch (err) {
 *   if (err instanceof ImportError) for (const w of err.warnings) console.warn(`${w.path}: ${w.message}`);
 * }
 * ```
 */
export class ImportError extends ConfigError {
  /** What was not imported as written, found before the errors stopped the import. */
  readonly warnings: ImportWarning[];

  constructor(issues: ConfigIssue[], warnings: ImportWarning[]) {
    super(issues);
    this.warnings = warnings;
  }
}

