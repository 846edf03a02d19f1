/**
 * Placeholders in server configs: `{{user.id}}`, `{{user.email}}`, `{{user.tenantId}}`, `{{var.NAME}}` and
 * `${ENV_NAME}`. They are resolved at connect time, never at import, and an unresolvable one is an error
 * naming it: a silent empty string would send a request as the wrong principal or to the wrong place.
 * @module
 */
import { ConfigError, type ConfigIssue } from '../errors.js';
import type { UserContext } from '../types.js';

/**
 * One placeholder occurrence found in a string.
 *
 * @example
 * ```ts
 * for (const ref of findPlaceholders('Bearer {{var.API_KEY}}')) {
 *   if (ref.kind === 'var') console.log(`needs the per-user variable ${ref.name} (written ${ref.raw})`);
 * }
 * ```
 */
export interface PlaceholderRef {
  /** The text as written, e.g. `{{user.id}}`. */
  raw: string;
  /** `user` for `{{user.*}}`, `var` for `{{var.*}}`, `env` for `${...}`, `unknown` for anything else in braces. */
  kind: 'user' | 'var' | 'env' | 'unknown';
  /** The name after the namespace, e.g. `id` or the variable's name. */
  name: string;
}

/**
 * The user fields a `{{user.*}}` placeholder may name.
 *
 * @example
 * ```ts
 * USER_PLACEHOLDER_FIELDS.includes('email'); // true: {{user.email}} is a placeholder
 * ```
 */
export const USER_PLACEHOLDER_FIELDS = ['id', 'email', 'tenantId'] as const;

const PATTERN = /\{\{\s*([^{}]*?)\s*\}\}|\$\{([^{}]*)\}/g;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/**
 * Lists the placeholders in a string.
 *
 * @example
 * ```ts
 * findPlaceholders('https://{{user.tenantId}}.example.com/${REGION}');
 * // [{ raw: '{{user.tenantId}}', kind: 'user', name: 'tenantId' }, { raw: '${REGION}', kind: 'env', name: 'REGION' }]
 * ```
 */
export function findPlaceholders(value: string): PlaceholderRef[] {
  const out: PlaceholderRef[] = [];
  for (const m of value.matchAll(PATTERN)) {
    if (m[2] !== undefined) {
      out.push({ raw: m[0], kind: ENV_NAME.test(m[2]) ? 'env' : 'unknown', name: m[2] });
      continue;
    }
    const inner = m[1] ?? '';
    const dot = inner.indexOf('.');
    const ns = dot < 0 ? inner : inner.slice(0, dot);
    const name = dot < 0 ? '' : inner.slice(dot + 1);
    if (ns === 'user' && (USER_PLACEHOLDER_FIELDS as readonly string[]).includes(name)) {
      out.push({ raw: m[0], kind: 'user', name });
    } else if (ns === 'var' && VAR_NAME.test(name)) {
      out.push({ raw: m[0], kind: 'var', name });
    } else {
      out.push({ raw: m[0], kind: 'unknown', name: inner });
    }
  }
  return out;
}

/**
 * Where a resolved value goes, which decides how it is escaped or checked.
 *
 * @example
 * ```ts
 * const target: PlaceholderTarget = 'url'; // user values are percent-encoded in a URL
 * resolvePlaceholderString('https://files.example.com/{{user.id}}/mcp', { user, env: process.env }, target, 'files.url');
 * ```
 */
export type PlaceholderTarget = 'url' | 'header' | 'plain';

/**
 * What placeholders resolve against.
 *
 * @example
 * ```ts
 * const ctx: PlaceholderContext = { user: { id: 'u1', vars: { API_KEY: apiKey } }, env: process.env };
 * resolvePlaceholderString('Bearer {{var.API_KEY}}', ctx, 'header', 'search.headers.Authorization');
 * ```
 */
export interface PlaceholderContext {
  /** The user the connection is for; required by `{{user.*}}` and `{{var.*}}`. */
  user?: UserContext;
  /** Environment for `${NAME}`; read when resolving, never at import. */
  env: Readonly<Record<string, string | undefined>>;
  /**
   * Who wrote the value being resolved (the config's `source`). With `'user'`, `${NAME}` never reads `env`: it is
   * an issue ("environment placeholders (${…}) are not allowed in a user config"), so an end user's config cannot send the host's secrets.
   */
  source?: 'config' | 'user';
}

/**
 * Why a `${NAME}` placeholder is refused in a config written by an end user (`source: 'user'`), at parse time and
 * again at resolve time.
 *
 * @example
 * ```ts
 * issues.some((i) => i.message.startsWith(USER_ENV_PLACEHOLDER_MESSAGE)); // a user config asked for the host's environment
 * ```
 */
export const USER_ENV_PLACEHOLDER_MESSAGE = "environment placeholders (${…}) are not allowed in a user config (source: 'user')";

/**
 * Resolves every placeholder in `value`. Problems are pushed onto `issues` (with `path`) instead of thrown,
 * so a caller can report every unresolved placeholder of a config at once.
 *
 * In a URL, user and variable values are percent-encoded so they cannot change the URL's structure;
 * `${ENV}` values are operator-controlled and inserted as they are (so `${MCP_BASE_URL}/mcp` works); with
 * `ctx.source === 'user'` they are never read (each one is an issue).
 * In a header, a resolved value containing CR, LF or NUL is rejected (header injection).
 *
 * @example
 * ```ts
 * const issues: ConfigIssue[] = [];
 * const url = resolvePlaceholders('https://x/{{user.id}}', { user, env: process.env }, 'url', 'github.url', issues);
 * if (issues.length) throw new ConfigError(issues);
 * ```
 */
export function resolvePlaceholders(
  value: string,
  ctx: PlaceholderContext,
  target: PlaceholderTarget,
  path: string,
  issues: ConfigIssue[],
): string {
  const before = issues.length;
  const out = value.replace(PATTERN, (raw: string) => {
    const [ref] = findPlaceholders(raw);
    if (!ref || ref.kind === 'unknown') {
      issues.push({ path, message: `unknown placeholder ${raw}` });
      return '';
    }
    let resolved: string | undefined;
    if (ref.kind === 'env') {
      // Defence in depth: parsing already refuses these, but a config object built by hand never reads env either.
      if (ctx.source === 'user') {
        issues.push({ path, message: `${USER_ENV_PLACEHOLDER_MESSAGE}: ${raw}` });
        return '';
      }
      resolved = ctx.env[ref.name];
      if (resolved === undefined) issues.push({ path, message: `environment variable ${raw} is not set` });
      return resolved ?? '';
    }
    if (!ctx.user) {
      issues.push({ path, message: `placeholder ${raw} needs a user, and none was given` });
      return '';
    }
    if (ref.kind === 'user') {
      const v = ctx.user[ref.name as (typeof USER_PLACEHOLDER_FIELDS)[number]];
      resolved = typeof v === 'string' && v !== '' ? v : undefined;
      if (resolved === undefined) issues.push({ path, message: `placeholder ${raw} cannot be resolved: the user has no ${ref.name}` });
    } else {
      const v = ctx.user.vars?.[ref.name];
      resolved = typeof v === 'string' && v !== '' ? v : undefined;
      if (resolved === undefined) issues.push({ path, message: `placeholder ${raw} cannot be resolved: the user has not set ${ref.name}` });
    }
    if (resolved === undefined) return '';
    return target === 'url' ? encodeURIComponent(resolved) : resolved;
  });
  if (target === 'header' && issues.length === before && /[\r\n\0]/.test(out)) {
    issues.push({ path, message: 'header value contains CR, LF or NUL after placeholder resolution' });
  }
  return out;
}

/**
 * A credential field of a server config (a client id, secret or private key) with its `${ENV}` placeholders
 * filled from `process.env`, read at use (never at import). A `source: 'user'` config may not read the
 * environment: a `ConfigError` then, as for any unresolved placeholder.
 *
 * @example
 * ```ts
 * resolveCredentialField('${NOTES_CLIENT_SECRET}', 'config', 'notes.oauth.clientSecret');
 * ```
 */
export function resolveCredentialField(value: string, source: 'config' | 'user' | undefined, path: string): string {
  return resolvePlaceholderString(value, { env: process.env, ...(source ? { source } : {}) }, 'plain', path);
}

/**
 * Resolves one string and throws a {@link ConfigError} naming every unresolved placeholder.
 *
 * @example
 * ```ts
 * resolvePlaceholderString('Bearer {{var.API_KEY}}', { user, env: process.env }, 'header', 'github.headers.Authorization');
 * ```
 */
export function resolvePlaceholderString(
  value: string,
  ctx: PlaceholderContext,
  target: PlaceholderTarget,
  path: string,
): string {
  const issues: ConfigIssue[] = [];
  const out = resolvePlaceholders(value, ctx, target, path, issues);
  if (issues.length) throw new ConfigError(issues);
  return out;
}

/**
 * True when `value` contains a `{{user.*}}` or `{{var.*}}` placeholder.
 *
 * @example
 * ```ts
 * hasUserPlaceholder('Bearer {{var.TOKEN}}'); // true
 * hasUserPlaceholder('${API_KEY}'); // false
 * ```
 */
export function hasUserPlaceholder(value: string): boolean {
  return findPlaceholders(value).some((p) => p.kind === 'user' || p.kind === 'var');
}
