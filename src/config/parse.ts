/**
 * Parsing server configs into typed, validated objects; all problems reported at once with their paths.
 * @module
 */
import type { z } from 'zod';
import { ConfigError, type ConfigIssue } from '../errors.js';
import type { UserContext } from '../types.js';
import { USER_ENV_PLACEHOLDER_MESSAGE, findPlaceholders, resolvePlaceholders } from './placeholders.js';
import { SCHEMAS, TRANSPORT_TYPES, type ServerConfig, type TransportType } from './schema.js';

const SERVER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function zodIssues(prefix: string, error: z.ZodError): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of error.issues) {
    const base = [prefix, ...issue.path.map(String)].join('.');
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: `${base}.${key}`, message: 'unknown field' });
    } else {
      out.push({ path: base, message: issue.message });
    }
  }
  return out;
}

function inferType(name: string, raw: Record<string, unknown>, issues: ConfigIssue[]): TransportType | undefined {
  const t = raw.type;
  if (t === undefined) {
    if ('command' in raw) return 'stdio';
    if (typeof raw.url === 'string' && /^wss?:/i.test(raw.url)) return 'websocket';
    if ('url' in raw) return 'streamable-http';
    issues.push({ path: name, message: 'needs either `command` (stdio) or `url` (sse, streamable-http, websocket)' });
    return undefined;
  }
  if (t === 'http' || t === 'streamableHttp' || t === 'streamable_http') return 'streamable-http';
  if (t === 'ws') return 'websocket';
  if (typeof t === 'string' && (TRANSPORT_TYPES as readonly string[]).includes(t)) return t as TransportType;
  issues.push({ path: `${name}.type`, message: `unknown transport ${JSON.stringify(t)}; expected one of ${TRANSPORT_TYPES.join(', ')} (or http)` });
  return undefined;
}

function parseOne(name: string, input: unknown, issues: ConfigIssue[]): ServerConfig | undefined {
  if (!SERVER_NAME.test(name)) {
    issues.push({ path: name || '(empty name)', message: 'server names use letters, digits, _ . - (at most 128, starting with a letter or digit)' });
  }
  if (!isPlainObject(input)) {
    issues.push({ path: name, message: 'must be an object' });
    return undefined;
  }
  const type = inferType(name, input, issues);
  if (!type) {
    // Still report undeclared `{{var.*}}` now, so every problem of this server is listed in one pass.
    checkDeclaredVars(name, input.customUserVars, rawTemplatedFields(input, undefined), issues);
    checkUserSource(name, input, undefined, rawTemplatedFields(input, undefined), issues);
    return undefined;
  }
  const raw: Record<string, unknown> = { ...input, type };
  if ((type === 'stdio' || type === 'websocket') && 'obo' in raw) {
    issues.push({ path: `${name}.obo`, message: `On-Behalf-Of needs a header-capable transport (sse or streamable-http), not ${type}` });
    delete raw.obo;
  }
  const result = SCHEMAS[type].safeParse(raw);
  if (!result.success) {
    issues.push(...zodIssues(name, result.error));
    checkDeclaredVars(name, input.customUserVars, rawTemplatedFields(input, type), issues);
    checkUserSource(name, input, type, rawTemplatedFields(input, type), issues);
    return undefined;
  }
  const config = result.data as ServerConfig;
  checkDeclaredVars(name, config.customUserVars, templatedFields(config), issues);
  checkUserSource(name, config, type, templatedFields(config), issues);
  return config;
}

/** Why a config written by an end user (`source: 'user'`) may not be stdio. */
const USER_STDIO_MESSAGE = "a user config cannot start a local process (stdio); give a url (sse, streamable-http or websocket) instead";

/**
 * A config written by an end user (`source: 'user'`, as every per-call `serverConfig` is) may neither start a local
 * process nor read the host's environment: `${NAME}` would send the host's secrets to the user's server.
 * User placeholders (`{{user.*}}`, `{{var.*}}`) stay allowed.
 */
function checkUserSource(name: string, raw: Record<string, unknown>, type: TransportType | undefined, fields: [string, string][], issues: ConfigIssue[]): void {
  if (raw.source !== 'user') return;
  if (type === 'stdio' || (type === undefined && 'command' in raw)) issues.push({ path: `${name}.command`, message: USER_STDIO_MESSAGE });
  for (const [path, value] of fields) {
    const env = findPlaceholders(value).filter((ref) => ref.kind === 'env');
    if (env.length) issues.push({ path: `${name}.${path}`, message: `${USER_ENV_PLACEHOLDER_MESSAGE}: ${env.map((ref) => ref.raw).join(', ')}` });
  }
}

/**
 * The templated fields of a config that failed validation, read defensively from the raw input (only string
 * values, only the fields of `type` when it is known), so placeholders are checked in the same pass.
 */
function rawTemplatedFields(raw: Record<string, unknown>, type: TransportType | undefined): [string, string][] {
  const out: [string, string][] = [];
  const str = (path: string, v: unknown) => {
    if (typeof v === 'string') out.push([path, v]);
  };
  const strings = (path: string, v: unknown) => {
    if (Array.isArray(v)) v.forEach((x, i) => str(`${path}.${i}`, x));
    else if (isPlainObject(v)) for (const [k, x] of Object.entries(v)) str(`${path}.${k}`, x);
  };
  if (type === undefined || type === 'stdio') {
    str('command', raw.command);
    strings('args', raw.args);
    strings('env', raw.env);
  }
  if (type !== 'stdio') str('url', raw.url);
  if (type === undefined || type === 'sse' || type === 'streamable-http') {
    strings('headers', raw.headers);
    str('proxy', raw.proxy);
  }
  return out;
}

/** Every `{{var.NAME}}` must be declared in `customUserVars`, so a typo is caught at load, not at a user's call. */
function checkDeclaredVars(name: string, customUserVars: unknown, fields: [string, string][], issues: ConfigIssue[]): void {
  const declared = new Set(isPlainObject(customUserVars) ? Object.keys(customUserVars) : []);
  for (const [path, value] of fields) {
    for (const ref of findPlaceholders(value)) {
      if (ref.kind === 'var' && !declared.has(ref.name)) {
        issues.push({ path: `${name}.${path}`, message: `placeholder ${ref.raw} is not declared in customUserVars` });
      }
    }
  }
}

/**
 * The fields in which placeholders are resolved, as [path, value] pairs (for validation and connection shapes).
 *
 * @example
 * ```ts
 * templatedFields(parseServerConfig('s', { command: 'x', env: { K: '{{var.K}}' } })); // [['command', 'x'], ['env.K', '{{var.K}}']]
 * ```
 */
export function templatedFields(config: ServerConfig): [string, string][] {
  const out: [string, string][] = [];
  if (config.type === 'stdio') {
    out.push(['command', config.command]);
    config.args?.forEach((a, i) => out.push([`args.${i}`, a]));
    for (const [k, v] of Object.entries(config.env ?? {})) out.push([`env.${k}`, v]);
  } else {
    out.push(['url', config.url]);
    if (config.type !== 'websocket') {
      for (const [k, v] of Object.entries(config.headers ?? {})) out.push([`headers.${k}`, v]);
      // The proxy URL is resolved per user too (resolveConfigPlaceholders), so its placeholders count.
      if (config.proxy !== undefined) out.push(['proxy', config.proxy]);
    }
  }
  return out;
}

/**
 * Validates one server config. Throws {@link ConfigError} listing every problem.
 *
 * @example
 * ```ts
 * const cfg = parseServerConfig('files', { command: 'npx', args: ['-y', '@modelcontextprotocol/server-filesystem', '/tmp'] });
 * cfg.type; // 'stdio'
 * ```
 */
export function parseServerConfig(name: string, input: unknown): ServerConfig {
  const issues: ConfigIssue[] = [];
  const config = parseOne(name, input, issues);
  if (issues.length || !config) throw new ConfigError(issues);
  return config;
}

/**
 * Validates a map of server name → config. Returns typed configs (transport inferred when absent, `http`
 * normalised to `streamable-http`, OBO scopes normalised to an array) or throws {@link ConfigError} whose
 * `issues` name every problem with its path. Nothing is returned, and so nothing is applied, on error.
 *
 * @example
 * ```ts
 * import { parseServersConfig } from 'mcp-switchboard';
 * const servers = parseServersConfig({
 *   graph: { url: 'https://mcp.example.com/mcp', obo: { scopes: 'api://graph-mcp/.default' } },
 *   everything: { command: 'npx', args: ['-y', '@modelcontextprotocol/server-everything'] },
 * });
 * ```
 */
export function parseServersConfig(input: unknown): Record<string, ServerConfig> {
  if (!isPlainObject(input)) throw new ConfigError([{ path: '(root)', message: 'servers must be an object of name → config' }]);
  const issues: ConfigIssue[] = [];
  const out: Record<string, ServerConfig> = {};
  for (const [name, value] of Object.entries(input)) {
    const config = parseOne(name, value, issues);
    if (config) out[name] = config;
  }
  if (issues.length) throw new ConfigError(issues);
  return out;
}

/**
 * True when a server must get one connection per user and must never be served from the shared app pool:
 * OBO, per-user OAuth, `customUserVars`, `{{user.*}}` / `{{var.*}}` placeholders, or `source: 'user'`.
 *
 * @example
 * ```ts
 * requiresUserScopedConnection(parseServerConfig('s', { url: 'https://x/mcp', headers: { 'X-User': '{{user.id}}' } })); // true
 * ```
 */
export function requiresUserScopedConnection(config: ServerConfig): boolean {
  // On every call's path: computed once per config object.
  let scoped = userScoped.get(config);
  if (scoped === undefined) {
    scoped = computeUserScoped(config);
    userScoped.set(config, scoped);
  }
  return scoped;
}

const userScoped = new WeakMap<ServerConfig, boolean>();

function computeUserScoped(config: ServerConfig): boolean {
  if (config.source === 'user') return true;
  if (config.customUserVars && Object.keys(config.customUserVars).length > 0) return true;
  if (config.type === 'sse' || config.type === 'streamable-http') {
    if (config.obo || (config.oauth && config.oauth.grant !== 'client_credentials')) return true;
  }
  return templatedFields(config).some(([, v]) => findPlaceholders(v).some((p) => p.kind === 'user' || p.kind === 'var'));
}

/**
 * Options of {@link resolveConfigPlaceholders}.
 *
 * @example
 * ```ts
 * const options: ResolveConfigPlaceholdersOptions = { user: { id: 'u1', email: 'ada@example.com' }, env: { GITHUB_HOST: 'api.github.com' } };
 * const resolved = resolveConfigPlaceholders('github', config, options);
 * ```
 */
export interface ResolveConfigPlaceholdersOptions {
  /** The user the connection is for. */
  user?: UserContext;
  /** Environment for `${NAME}`; defaults to `process.env` read at call time. */
  env?: Readonly<Record<string, string | undefined>>;
}

/**
 * Fills every placeholder of one server's config (`{{user.*}}`, `{{var.*}}`, `${ENV}`) for one user, at connect
 * time, and returns the resolved copy. Throws {@link ConfigError} naming every placeholder that cannot be
 * resolved; never substitutes an empty string. A `source: 'user'` config never reads the environment (each
 * `${NAME}` is an issue) and cannot be stdio, even when it was not built by {@link parseServerConfig}. (Not to be
 * confused with `MCPManager`'s protected `resolveServerConfig(serverName, user)`, which looks a server's config up.)
 *
 * @example
 * ```ts
 * const resolved = resolveConfigPlaceholders('github', config, { user: { id: 'u1', vars: { ORG: 'acme' } } });
 * ```
 */
export function resolveConfigPlaceholders<T extends ServerConfig>(name: string, config: T, opts: ResolveConfigPlaceholdersOptions = {}): T {
  // A user config never reads the environment (the resolver refuses `${NAME}` for it), nor starts a process.
  const ctx = { user: opts.user, env: opts.env ?? process.env, ...(config.source ? { source: config.source } : {}) };
  const issues: ConfigIssue[] = [];
  if (config.source === 'user' && config.type === 'stdio') issues.push({ path: `${name}.command`, message: USER_STDIO_MESSAGE });
  const res = (v: string, target: 'url' | 'header' | 'plain', path: string) => resolvePlaceholders(v, ctx, target, `${name}.${path}`, issues);
  let out: ServerConfig;
  if (config.type === 'stdio') {
    out = {
      ...config,
      command: res(config.command, 'plain', 'command'),
      ...(config.args ? { args: config.args.map((a, i) => res(a, 'plain', `args.${i}`)) } : {}),
      ...(config.env ? { env: mapValues(config.env, (v, k) => res(v, 'plain', `env.${k}`)) } : {}),
    };
  } else if (config.type === 'websocket') {
    out = { ...config, url: checkedUrl(res(config.url, 'url', 'url'), ['ws:', 'wss:'], `${name}.url`, issues) };
  } else {
    out = {
      ...config,
      url: checkedUrl(res(config.url, 'url', 'url'), ['http:', 'https:'], `${name}.url`, issues),
      ...(config.headers ? { headers: mapValues(config.headers, (v, k) => res(v, 'header', `headers.${k}`)) } : {}),
      ...(config.proxy ? { proxy: checkedUrl(res(config.proxy, 'url', 'proxy'), ['http:', 'https:'], `${name}.proxy`, issues) } : {}),
    };
  }
  if (issues.length) throw new ConfigError(issues, { serverName: name });
  return out as T;
}

function checkedUrl(url: string, protocols: string[], path: string, issues: ConfigIssue[]): string {
  try {
    const u = new URL(url);
    if (!protocols.includes(u.protocol)) issues.push({ path, message: `URL must use ${protocols.join(' or ')} after resolution` });
  } catch {
    if (!issues.some((i) => i.path === path)) issues.push({ path, message: 'Invalid URL after placeholder resolution' });
  }
  return url;
}

function mapValues(obj: Record<string, string>, fn: (v: string, k: string) => string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj)) out[k] = fn(v, k);
  return out;
}

/**
 * Epoch ms of a config's `updatedAt`, or `undefined`.
 *
 * @example
 * ```ts
 * updatedAtMs(parseServerConfig('s', { command: 'x', updatedAt: '2026-01-01T00:00:00Z' })); // 1767225600000
 * ```
 */
export function updatedAtMs(config: ServerConfig): number | undefined {
  const u = config.updatedAt;
  if (u === undefined) return undefined;
  if (typeof u === 'number') return u;
  if (u instanceof Date) return u.getTime();
  return Date.parse(u);
}
