/**
 * Importer for the `mcpServers` block of LibreChat's `librechat.yaml`.
 *
 * Mapped: `type` (an omitted type with an http(s) URL is `sse`, as LibreChat infers it), `command`, `args`,
 * `env`, `cwd`, `stderr` (string forms), `url`, `headers`, `proxy`, `timeout` → `timeoutMs`, `initTimeout` →
 * `initTimeoutMs`, `title`, `description`, `customUserVars` (title, description), `obo` (scopes, audience),
 * `oauth` (`scope` → `scopes`, `client_id` → `clientId`, `client_secret` → `clientSecret` when it is an `${ENV}` reference), `requiresOAuth: true` →
 * per-user OAuth (run by the manager's `oauth` option, or the host's `userAuthHeaders`), `startup: false`
 * (connections are made on first use here anyway).
 *
 * Placeholders: `{{LIBRECHAT_USER_ID}}` → `{{user.id}}`, `{{LIBRECHAT_USER_EMAIL}}` → `{{user.email}}`, a custom
 * user variable `{{NAME}}` → `{{var.NAME}}`, `${ENV}` unchanged. Other `{{LIBRECHAT_USER_*}}` fields become
 * host-supplied variables `{{var.LIBRECHAT_USER_*}}` (with a warning); request and token placeholders such as
 * `{{LIBRECHAT_OPENID_TOKEN}}` have no equivalent: a header or env entry using one is left out, with a warning.
 *
 * LibreChat fields with no equivalent here (UI fields such as `iconPath`, `chatMenu`, `serverInstructions`,
 * `apiKey`, OAuth endpoints (discovered from the server instead), `customUserVars.*.sensitive`, `mcpSettings`) are reported as warnings
 * with their path; nothing is dropped silently. A field that LibreChat does not know either, inside a server or a
 * block mapped here (`obo`, `oauth`, a `customUserVars` entry), is most likely a typo (`timout`,
 * `obo.audiance`): it is an error (an {@link ImportError}, with a "did you mean" hint when one is close).
 * @module
 */
import { ConfigError } from '../../errors.js';
import type { ConfigIssue } from '../../errors.js';
import { ImportError, isPlainObject, mapRecord, mapStrings, setOwn, type ImportResult, type ImportWarning } from './common.js';
import { closestName } from '../../options.js';

/**
 * Field names of this package (relative to one server) → the LibreChat field they came from, so that a validation
 * problem can be reported at the path the operator wrote.
 *
 * @example
 * ```ts
 * LIBRECHAT_FIELD_ALIASES.timeoutMs; // 'timeout'
 * ```
 */
export const LIBRECHAT_FIELD_ALIASES: Readonly<Record<string, string>> = {
  timeoutMs: 'timeout',
  initTimeoutMs: 'initTimeout',
  'oauth.scopes': 'oauth.scope',
  'oauth.clientId': 'oauth.client_id',
  'oauth.clientSecret': 'oauth.client_secret',
};

const UI_FIELDS: Record<string, string> = {
  iconPath: 'display icon of the LibreChat UI',
  chatMenu: 'LibreChat chat-menu visibility',
  serverInstructions: 'LibreChat agent-prompt setting; add instructions in the host',
  apiKey: 'LibreChat API-key prompt; declare the key in customUserVars and use it in a header',
  oauth_headers: 'headers of LibreChat\'s own OAuth requests; OAuth requests here carry none',
};

/** Every server-level field mapped or knowingly skipped, for "did you mean" hints. */
const SERVER_FIELDS = [
  'type', 'command', 'cwd', 'url', 'proxy', 'args', 'env', 'headers', 'timeout', 'initTimeout', 'title', 'description',
  'stderr', 'customUserVars', 'obo', 'oauth', 'requiresOAuth', 'startup', ...Object.keys(UI_FIELDS),
];

/** LibreChat `oauth` fields that have no equivalent here (endpoints and methods are discovered: RFC 9728, RFC 8414). */
const OAUTH_SKIPPED = [
  'authorization_url', 'token_url', 'redirect_uri', 'token_exchange_method', 'grant_types_supported',
  'token_endpoint_auth_methods_supported', 'response_types_supported', 'code_challenge_methods_supported',
  'skip_code_challenge_check', 'revocation_endpoint', 'revocation_endpoint_auth_methods_supported',
];

const PLACEHOLDER = /\{\{\s*([^{}]*?)\s*\}\}/g;

interface ServerContext {
  warnings: ImportWarning[];
  /** Variables declared in the server's `customUserVars`. */
  declared: Set<string>;
  /** Unknown fields (typos): errors. */
  errors: ConfigIssue[];
  /** Variables to declare for `{{LIBRECHAT_USER_*}}` fields that have no built-in equivalent. */
  hostVars: Map<string, { title: string; description: string }>;
}

/**
 * Converts the `mcpServers` block of a parsed `librechat.yaml` into this package's raw server configs.
 * Throws {@link ConfigError} when the document has no usable `mcpServers` mapping, and an {@link ImportError}
 * (with the warnings found so far) when a server or a mapped block holds a field LibreChat does not know either;
 * other problems inside a server are left for `parseServersConfig` to report.
 *
 * @example
 * ```ts
 * import { parse } from 'yaml';
 * import { importLibreChat, parseServersConfig } from 'mcp-switchboard/config';
 * const { servers, warnings } = importLibreChat(parse(await readFile('librechat.yaml', 'utf8')));
 * const configs = parseServersConfig(servers);
 * ```
 */
export function importLibreChat(doc: unknown): ImportResult {
  if (!isPlainObject(doc)) throw new ConfigError([{ path: '(root)', message: 'a librechat.yaml document must be a mapping' }]);
  const warnings: ImportWarning[] = [];
  if ('mcpSettings' in doc) {
    warnings.push({ path: 'mcpSettings', message: 'not imported: restrict reachable hosts with the transport SSRF guard of the host instead' });
  }
  const block = doc.mcpServers;
  if (!isPlainObject(block)) {
    throw new ConfigError([{ path: 'mcpServers', message: block === undefined ? 'is missing' : 'must be a mapping of server name → config' }]);
  }
  const servers: Record<string, unknown> = {};
  const errors: ConfigIssue[] = [];
  for (const [name, entry] of Object.entries(block)) {
    setOwn(servers, name, isPlainObject(entry) ? importServer(entry, `mcpServers.${name}`, warnings, errors) : entry);
  }
  if (errors.length > 0) throw new ImportError(errors, warnings);
  return { servers, warnings };
}

/** The error for a field nobody knows: most likely a typo of one of `known`. */
function unknownField(path: string, key: string, known: readonly string[], where: string): ConfigIssue {
  const hint = closestName(key, known);
  return { path, message: `unknown field in ${where}${hint ? `; did you mean \`${hint}\`?` : ''}` };
}

function importServer(entry: Record<string, unknown>, base: string, warnings: ImportWarning[], errors: ConfigIssue[]): Record<string, unknown> {
  const vars = isPlainObject(entry.customUserVars) ? entry.customUserVars : {};
  const ctx: ServerContext = { warnings, errors, declared: new Set(Object.keys(vars)), hostVars: new Map() };
  const plain = (s: string, path: string) => rewrite(s, path, ctx, false) as string;
  const droppable = (s: string, path: string) => rewrite(s, path, ctx, true);
  const out: Record<string, unknown> = {};

  for (const [key, value] of Object.entries(entry)) {
    const path = `${base}.${key}`;
    switch (key) {
      case 'type':
        out.type = value === 'http' ? 'streamable-http' : value;
        break;
      case 'command':
      case 'cwd':
      case 'url':
      case 'proxy':
      case 'args':
        out[key] = mapStrings(value, path, plain);
        break;
      case 'env':
      case 'headers':
        out[key] = mapRecord(value, path, droppable);
        break;
      case 'timeout':
        out.timeoutMs = value;
        break;
      case 'initTimeout':
        out.initTimeoutMs = value;
        break;
      case 'title':
      case 'description':
        out[key] = value;
        break;
      case 'stderr':
        if (value === 'inherit' || value === 'ignore' || value === 'pipe') out.stderr = value;
        else warnings.push({ path, message: 'not imported: only "inherit", "ignore" and "pipe" are supported' });
        break;
      case 'customUserVars':
        out.customUserVars = importCustomUserVars(value, path, ctx);
        break;
      case 'obo':
        out.obo = pickKnown(value, path, ['scopes', 'audience'], [], ctx, 'an obo block (it has scopes and audience)');
        break;
      case 'oauth':
        out.oauth = importOAuth(value, path, ctx);
        break;
      case 'requiresOAuth':
        // LibreChat discovers the OAuth flow itself; here the host's per-user auth provider supplies the bearer.
        if (value === true && !('oauth' in entry)) out.oauth = {};
        else if (value !== true && value !== false) warnings.push({ path, message: 'not imported: must be true or false' });
        break;
      case 'startup':
        if (value !== false) warnings.push({ path, message: 'not imported: connections are made on first use, never at startup' });
        break;
      default:
        if (UI_FIELDS[key]) warnings.push({ path, message: `not imported: ${UI_FIELDS[key]}` });
        else errors.push(unknownField(path, key, SERVER_FIELDS, 'a LibreChat server'));
    }
  }

  if (!('type' in entry)) {
    // LibreChat's inference differs from ours for http(s) URLs: it picks SSE, so say so explicitly.
    if (typeof entry.url === 'string' && !('command' in entry)) out.type = /^wss?:/i.test(entry.url) ? 'websocket' : 'sse';
  }
  if (ctx.hostVars.size > 0) {
    const declared = isPlainObject(out.customUserVars) ? out.customUserVars : {};
    out.customUserVars = { ...declared, ...Object.fromEntries(ctx.hostVars) };
  }
  return out;
}

/**
 * Rewrites LibreChat placeholders in one string. With `droppable`, a string using a placeholder that has no
 * equivalent is left out (`undefined`); otherwise it is kept as written, and validation reports it.
 */
function rewrite(value: string, path: string, ctx: ServerContext, droppable: boolean): string | undefined {
  const unmapped: string[] = [];
  const out = value.replace(PLACEHOLDER, (raw: string, inner: string) => {
    if (inner === 'LIBRECHAT_USER_ID') return '{{user.id}}';
    if (inner === 'LIBRECHAT_USER_EMAIL') return '{{user.email}}';
    if (inner.startsWith('LIBRECHAT_USER_')) {
      if (!ctx.declared.has(inner) && !ctx.hostVars.has(inner)) {
        ctx.hostVars.set(inner, {
          title: `LibreChat user field ${inner.slice('LIBRECHAT_USER_'.length)}`,
          description: `Supplied by the host in UserContext.vars (imported from {{${inner}}}); never let users set it themselves.`,
        });
      }
      ctx.warnings.push({
        path,
        message: `{{${inner}}} has no built-in equivalent; mapped to {{var.${inner}}}, which the host must supply in UserContext.vars`,
      });
      return `{{var.${inner}}}`;
    }
    if (inner.startsWith('LIBRECHAT_')) {
      unmapped.push(raw);
      return raw;
    }
    // Already in this package's syntax ({{var.X}}, {{user.id}}…): kept as written.
    if (/^(var|user)\./.test(inner)) return raw;
    // A custom user variable; an undeclared one is reported by validation ("not declared in customUserVars").
    return `{{var.${inner}}}`;
  });
  if (unmapped.length === 0) return out;
  const hint = unmapped.some((u) => /TOKEN/.test(u)) ? ' (for a delegated token use `obo.scopes`: the Authorization header is then set per request)' : '';
  ctx.warnings.push({
    path,
    message: `${droppable ? 'not imported' : 'cannot be mapped'}: ${unmapped.join(', ')} has no equivalent${hint}`,
  });
  return droppable ? undefined : out;
}

function importCustomUserVars(value: unknown, path: string, ctx: ServerContext): unknown {
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [name, def] of Object.entries(value)) {
    setOwn(out, name, pickKnown(def, `${path}.${name}`, ['title', 'description'], ['sensitive'], ctx, 'a customUserVars entry (it has title and description)'));
  }
  return out;
}

function importOAuth(value: unknown, path: string, ctx: ServerContext): unknown {
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (key === 'scope') out.scopes = v;
    else if (key === 'client_id') out.clientId = v;
    else if (key === 'client_secret') {
      // Only a reference to the environment is carried over: a literal secret is not copied into another file.
      if (typeof v === 'string' && /^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/.test(v.trim())) out.clientSecret = v.trim();
      else ctx.warnings.push({ path: `${path}.${key}`, message: 'not imported: a literal secret is not copied; write it as ${ENV_NAME} and it is' });
    }
    else if (key === 'redirect_uri') {
      ctx.warnings.push({ path: `${path}.${key}`, message: 'not imported: the callback is the manager\'s oauth.redirectUri, one for all servers' });
    } else if (OAUTH_SKIPPED.includes(key)) {
      ctx.warnings.push({ path: `${path}.${key}`, message: 'not imported: endpoints and methods are discovered from the server and its authorization server (RFC 9728, RFC 8414)' });
    } else {
      ctx.errors.push(unknownField(`${path}.${key}`, key, ['scope', 'client_id', 'client_secret', ...OAUTH_SKIPPED], 'a LibreChat oauth block'));
    }
  }
  return out;
}

/** Copies the `known` keys of an object, warns about the `skipped` ones and reports any other as an error. */
function pickKnown(value: unknown, path: string, known: string[], skipped: string[], ctx: ServerContext, where: string): unknown {
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (known.includes(key)) out[key] = v;
    else if (skipped.includes(key)) ctx.warnings.push({ path: `${path}.${key}`, message: 'not imported: UI hint (treat every variable value as a secret)' });
    else ctx.errors.push(unknownField(`${path}.${key}`, key, [...known, ...skipped], where));
  }
  return out;
}
