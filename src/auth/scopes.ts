/**
 * Scope normalisation for inbound access tokens: IdPs disagree on where scopes live and how they are spelled.
 * @module
 */

/** Claims that carry delegated scopes (Entra `scp`, RFC 9068 `scope`, some IdPs' `scopes`). */
const SCOPE_CLAIMS = ['scp', 'scope', 'scopes'] as const;

/**
 * Collects every scope and app role a token grants, from `scp`, `scope` or `scopes` (a space-separated string
 * or an array of strings) plus `roles` (Entra app roles). Order is kept, duplicates and empty entries dropped;
 * values of any other type are ignored.
 *
 * @example
 * ```ts
 * normalizeScopes({ scp: 'Files.Read  User.Read', roles: ['Admin'] }); // ['Files.Read', 'User.Read', 'Admin']
 * normalizeScopes({ scopes: ['a', 'b'], scope: 'b c' });               // ['b', 'c', 'a'] order: scp, scope, scopes, roles
 * ```
 */
export function normalizeScopes(claims: Record<string, unknown>): string[] {
  const out = new Set<string>();
  for (const name of [...SCOPE_CLAIMS, 'roles']) {
    for (const s of toList(claims[name])) out.add(s);
  }
  return [...out];
}

/**
 * The entries of `required` missing from `granted` (empty when every required scope is present).
 *
 * @example
 * ```ts
 * // internal helper (not exported from the package)
 * missingScopes(['a', 'b'], ['a', 'c']); // ['c']
 * ```
 */
export function missingScopes(granted: readonly string[], required: readonly string[]): string[] {
  const have = new Set(granted);
  return required.filter((s) => !have.has(s));
}

/**
 * Checks a `requiredScopes` option: an array of non-empty strings without whitespace (a scope token cannot
 * contain a space, RFC 6749 §3.3). Throws a `TypeError` naming `optionName` otherwise.
 *
 * @example
 * ```ts
 * // internal helper (not exported from the package)
 * const required = checkScopeList(['mcp.tools'], 'requiredScopes'); // ['mcp.tools']
 * ```
 */
export function checkScopeList(value: unknown, optionName: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((s) => typeof s === 'string' && s.length > 0 && !/\s/.test(s))) {
    throw new TypeError(`"${optionName}" must be an array of non-empty scope strings without whitespace`);
  }
  return [...value];
}

function toList(value: unknown): string[] {
  if (typeof value === 'string') return value.split(/\s+/).filter(Boolean);
  if (Array.isArray(value)) return value.filter((s): s is string => typeof s === 'string' && s.length > 0);
  return [];
}
