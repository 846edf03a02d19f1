/**
 * zod schemas of server configs. Every object is strict: an unknown key is an error naming the key, since a
 * misspelt `header` or `scope` silently ignored is how credentials end up not being sent (or sent wrongly).
 * @module
 */
import { z } from 'zod';
import { findPlaceholders } from './placeholders.js';

/**
 * Transport types after normalisation (`'http'` is accepted as an alias of `'streamable-http'`).
 *
 * @example
 * ```ts
 * for (const type of TRANSPORT_TYPES) console.log(type); // stdio, sse, streamable-http, websocket
 * ```
 */
export const TRANSPORT_TYPES = ['stdio', 'sse', 'streamable-http', 'websocket'] as const;
/**
 * One of {@link TRANSPORT_TYPES}.
 *
 * @example
 * ```ts
 * const type: TransportType = parseServerConfig('docs', { url: 'https://mcp.example.com/mcp' }).type; // 'streamable-http'
 * ```
 */
export type TransportType = (typeof TRANSPORT_TYPES)[number];

/**
 * The `error` of a schema whose message says what was expected: `is required: <what>` when the field is
 * missing, else `must be <what> (got <type>)`. Every message a user can see names what is expected.
 */
function expected(what: string) {
  return {
    error: (issue: { input?: unknown }) => (issue.input === undefined ? `is required: ${what}` : `must be ${what} (got ${typeName(issue.input)})`),
  };
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Date) return 'a Date';
  if (typeof v === 'object') return 'an object';
  return typeof v === 'undefined' ? 'nothing' : `a ${typeof v}`;
}

function enumOf<const T extends readonly [string, ...string[]]>(values: T) {
  const list = values.map((v) => JSON.stringify(v)).join(', ');
  return z.enum(values, {
    error: (issue: { input?: unknown }) => `must be one of ${list} (got ${typeof issue.input === 'string' ? JSON.stringify(issue.input.slice(0, 40)) : typeName(issue.input)})`,
  });
}

const text = (what = 'a string') => z.string(expected(what));
const nonEmpty = z.string(expected('a non-empty string')).min(1, 'must not be empty');
const positiveMs = z
  .number(expected('a whole number of milliseconds > 0'))
  .int('must be a whole number of milliseconds')
  .positive('must be > 0')
  .max(2_147_483_647, 'must be at most 2147483647 ms (about 24.8 days)');

function placeholderProblems(value: string): string[] {
  return findPlaceholders(value)
    .filter((ref) => ref.kind === 'unknown')
    .map((ref) => `unknown placeholder ${ref.raw} (use {{user.id}}, {{user.email}}, {{user.tenantId}}, {{var.NAME}} or \${ENV_NAME})`);
}

function placeholderCheck(value: string, ctx: z.RefinementCtx): void {
  for (const message of placeholderProblems(value)) ctx.addIssue({ code: 'custom', message });
}

function urlSchema(protocols: readonly string[]) {
  const allowed = protocols.map((p) => p.replace(':', '')).join(' or ');
  const example = protocols.includes('https:') ? 'https://mcp.example.com/mcp' : 'wss://mcp.example.com/ws';
  return z.string(expected(`a URL string (${allowed})`)).min(1, `must be a URL (${allowed}), not empty`).superRefine((value, ctx) => {
    placeholderCheck(value, ctx);
    // A URL that starts with an env placeholder (`${MCP_URL}/mcp`) can only be checked at connect time.
    if (value.startsWith('${')) return;
    // Other placeholders are resolved at connect time; check the shape with a stand-in value.
    let url: URL;
    try {
      url = new URL(value.replace(/\{\{[^{}]*\}\}|\$\{[^{}]*\}/g, 'x'));
    } catch {
      ctx.addIssue({ code: 'custom', message: `must be an absolute URL (${allowed}), e.g. ${example}` });
      return;
    }
    if (!protocols.includes(url.protocol)) {
      ctx.addIssue({ code: 'custom', message: `URL must use ${allowed}, not ${url.protocol.replace(':', '')}` });
    }
    if (url.username || url.password) {
      ctx.addIssue({ code: 'custom', message: 'URL must not contain credentials; use headers' });
    }
  });
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Headers: valid token names, string values without CR/LF. */
const headersSchema = z.record(z.string(), text('a header value string'), expected('an object of header name → value')).superRefine((headers, ctx) => {
  for (const [name, value] of Object.entries(headers)) {
    if (!HEADER_NAME.test(name)) ctx.addIssue({ code: 'custom', path: [name], message: 'is not a valid header name' });
    if (/[\r\n\0]/.test(value)) ctx.addIssue({ code: 'custom', path: [name], message: 'header value must not contain CR, LF or NUL' });
    for (const message of placeholderProblems(value)) ctx.addIssue({ code: 'custom', path: [name], message });
  }
});

const SCOPES = 'scopes as a space-separated string or an array of strings, e.g. "api://files/.default"';
const scopesSchema = z
  .union([nonEmpty, z.array(nonEmpty).min(1, 'must list at least one scope')], expected(SCOPES))
  .transform((s) =>
  (Array.isArray(s) ? s : s.split(/\s+/)).map((x) => x.trim()).filter(Boolean),
);

/**
 * On-Behalf-Of settings of a server: which scopes (and optionally audience) the exchanged token is for. With
 * `grant: 'cross-app-access'` (enterprise-managed authorization, ID-JAG) the resolver trades the user's ID token
 * at the IdP for an ID-JAG, then the ID-JAG at this server's authorization server, as the client
 * `clientId`/`clientSecret` registered there; `scopes` are then optional.
 *
 * @example
 * ```ts
 * oboSchema.parse({ scopes: 'api://graph/.default offline_access' }); // { scopes: ['api://graph/.default', 'offline_access'] }
 * oboSchema.parse({ grant: 'cross-app-access', clientId: 'crm-agent', clientSecret: '${CRM_AS_SECRET}' });
 * ```
 */
export const oboSchema = z
  .strictObject(
    {
      /** Scopes of the downstream token, as a space-separated string or an array. Normalised to an array. Optional with `cross-app-access`. */
      scopes: scopesSchema.optional(),
      /** Audience / resource of the downstream token (RFC 8693 `audience`). */
      audience: nonEmpty.optional(),
      /** `'cross-app-access'`: ID-JAG (SEP-990) through the resolver's IdP, then RFC 7523 at this server's authorization server. */
      grant: enumOf(['cross-app-access']).optional(),
      /** With `cross-app-access`: the client id registered at this server's authorization server (`${ENV}` allowed). */
      clientId: nonEmpty.superRefine(placeholderCheck).optional(),
      /** With `cross-app-access`: that client's secret, sent as `client_secret_basic` (`${ENV}` allowed). */
      clientSecret: nonEmpty.superRefine(placeholderCheck).optional(),
    },
    expected('an object { scopes, audience?, grant?, clientId?, clientSecret? }'),
  )
  .superRefine((v, ctx) => {
    if (v.grant === 'cross-app-access') {
      if (!v.clientId) ctx.addIssue({ code: 'custom', path: ['clientId'], message: 'cross-app-access needs the clientId registered at the server\'s authorization server' });
      if (!v.clientSecret) ctx.addIssue({ code: 'custom', path: ['clientSecret'], message: 'cross-app-access needs the clientSecret registered at the server\'s authorization server' });
    } else {
      if (!v.scopes) ctx.addIssue({ code: 'custom', path: ['scopes'], message: `is required: ${SCOPES}` });
      for (const field of ['clientId', 'clientSecret'] as const) {
        if (v[field] !== undefined) ctx.addIssue({ code: 'custom', path: [field], message: "is only used with grant: 'cross-app-access'" });
      }
    }
  });

/**
 * The server is protected by the MCP authorization spec (OAuth 2.1). The package runs the flow (the manager's
 * `oauth` option) unless the host brings its own tokens (`userAuthHeaders`):
 * - `grant: 'authorization_code'` (default): per user, with the user's consent, PKCE and refresh;
 * - `grant: 'client_credentials'`: the app itself, on a shared connection, with `clientId` and `clientSecret`
 *   (`client_secret_basic`/`_post`) or `privateKey` (`private_key_jwt`, RFC 7523).
 *
 * @example
 * ```ts
 * oauthSchema.parse({ scopes: ['repo'], clientId: 'my-app' });
 * oauthSchema.parse({ grant: 'client_credentials', clientId: 'reporting', clientSecret: '${REPORTING_SECRET}' });
 * ```
 */
export const oauthSchema = z
  .strictObject(
    {
      /** `authorization_code` (per user, default) or `client_credentials` (the app itself, shared connection). */
      grant: z.enum(['authorization_code', 'client_credentials']).optional(),
      /** Scopes to request when neither the server's challenge nor its metadata names any. */
      scopes: scopesSchema.optional(),
      /** The authorization server the pre-registered client belongs to (its credentials go to no other). */
      issuer: nonEmpty.optional(),
      /** A pre-registered client id (used when the authorization server supports no client ID metadata document). */
      clientId: nonEmpty.optional(),
      /** The pre-registered client's secret (`client_secret_basic` or `_post`, as the authorization server supports). */
      clientSecret: nonEmpty.optional(),
      /** A private key, PEM or JWK JSON, for `private_key_jwt` client authentication. */
      privateKey: nonEmpty.optional(),
      /** The JWS algorithm of `privateKey` (default RS256). */
      algorithm: z.string().regex(/^(RS|PS|ES)(256|384|512)$|^EdDSA$/, 'a JWS algorithm such as RS256 or ES256').optional(),
    },
    expected('an object { grant?, scopes?, issuer?, clientId?, clientSecret?, privateKey?, algorithm? }'),
  )
  .superRefine((v, ctx) => {
    if (v.grant === 'client_credentials' && !v.clientId) ctx.addIssue({ code: 'custom', path: ['clientId'], message: 'client_credentials needs a clientId' });
    if (v.grant === 'client_credentials' && !v.clientSecret && !v.privateKey) {
      ctx.addIssue({ code: 'custom', path: ['clientSecret'], message: 'client_credentials needs a clientSecret or a privateKey' });
    }
    if (v.privateKey && v.clientSecret) ctx.addIssue({ code: 'custom', path: ['privateKey'], message: 'give a clientSecret or a privateKey, not both' });
  });

const customUserVarsSchema = z.record(
  z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, 'variable names use letters, digits, _ . -'),
  z.strictObject({ title: text().optional(), description: text().optional() }, expected('an object { title?, description? }')),
  expected('an object of variable name → { title?, description? }'),
);

const commonShape = {
  /** Timeout of one request (e.g. a tool call) in ms; default 60 000. */
  timeoutMs: positiveMs.optional(),
  /** Timeout of connect + initialize in ms; default 30 000. */
  initTimeoutMs: positiveMs.optional(),
  /** Who wrote this config: `config` (the operator; trusted for OBO by default) or `user` (never trusted by default). */
  source: enumOf(['config', 'user']).optional(),
  /** Who created or last changed the config (for audit). */
  author: text().optional(),
  /** When the config last changed; a connection older than this is stale. */
  updatedAt: z
    .union(
      [z.number(), z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'must be a valid date, e.g. "2026-01-31T12:00:00Z"'), z.date()],
      expected('epoch milliseconds, an ISO date string or a Date'),
    )
    .optional(),
  /** Per-user variables the server needs, for `{{var.NAME}}` placeholders. */
  customUserVars: customUserVarsSchema.optional(),
  /** Human-readable name. */
  title: text().optional(),
  /** Human-readable description. */
  description: text().optional(),
};

/**
 * stdio: a local child process speaking MCP on stdin/stdout.
 *
 * @example
 * ```ts
 * stdioSchema.shape.command; // the zod schema of the `command` field
 * ```
 */
export const stdioSchema = z.strictObject({
  type: z.literal('stdio'),
  /** Executable to run. */
  command: z.string(expected('the command to run, a non-empty string')).min(1, 'must be the command to run, not empty').superRefine(placeholderCheck),
  /** Arguments. */
  args: z.array(text('a string').superRefine(placeholderCheck), expected('an array of strings')).optional(),
  /** Extra environment variables of the child. */
  env: z.record(z.string(), text('a string').superRefine(placeholderCheck), expected('an object of variable name → string value')).optional(),
  /** Working directory of the child. */
  cwd: nonEmpty.optional(),
  /** What to do with the child's stderr: `inherit` (default), `ignore` or `pipe`. */
  stderr: enumOf(['inherit', 'ignore', 'pipe']).optional(),
  ...commonShape,
});

const httpShape = {
  /** The server's endpoint. */
  url: urlSchema(['http:', 'https:']),
  /** Static headers sent with every request (placeholders allowed). */
  headers: headersSchema.optional(),
  /** On-Behalf-Of: every request carries a token exchanged from the user's upstream token. */
  obo: oboSchema.optional(),
  /** Per-user OAuth. */
  oauth: oauthSchema.optional(),
  /** HTTP(S) proxy URL for this server; overrides `HTTPS_PROXY`/`NO_PROXY`. */
  proxy: urlSchema(['http:', 'https:']).optional(),
  ...commonShape,
};

/**
 * Server-sent events (the 2024-11-05 HTTP+SSE transport).
 *
 * @example
 * ```ts
 * sseSchema.safeParse({ type: 'sse', url: 'https://mcp.example.com/sse' }).success; // true
 * ```
 */
export const sseSchema = z.strictObject({ type: z.literal('sse'), ...httpShape });
/**
 * Streamable HTTP (the 2025-03-26+ transport).
 *
 * @example
 * ```ts
 * streamableHttpSchema.safeParse({ type: 'streamable-http', url: 'https://mcp.example.com/mcp' }).success; // true
 * ```
 */
export const streamableHttpSchema = z.strictObject({ type: z.literal('streamable-http'), ...httpShape });
/**
 * WebSocket (subprotocol `mcp`).
 *
 * @example
 * ```ts
 * websocketSchema.safeParse({ type: 'websocket', url: 'wss://mcp.example.com/ws' }).success; // true
 * ```
 */
export const websocketSchema = z.strictObject({
  type: z.literal('websocket'),
  /** The server's `ws:` or `wss:` endpoint. */
  url: urlSchema(['ws:', 'wss:']),
  ...commonShape,
});

/**
 * A validated stdio server config.
 *
 * @example
 * ```ts
 * const config = parseServerConfig('time', { command: 'npx', args: ['-y', '@modelcontextprotocol/server-time'] });
 * if (config.type === 'stdio') console.log(config.command, config.args); // config: StdioServerConfig
 * ```
 */
export type StdioServerConfig = z.output<typeof stdioSchema>;
/**
 * A validated SSE server config.
 *
 * @example
 * ```ts
 * const config = parseServerConfig('legacy', { type: 'sse', url: 'https://mcp.example.com/sse' });
 * if (config.type === 'sse') console.log(config.url, Object.keys(config.headers ?? {})); // config: SseServerConfig
 * ```
 */
export type SseServerConfig = z.output<typeof sseSchema>;
/**
 * A validated streamable HTTP server config.
 *
 * @example
 * ```ts
 * const config = parseServerConfig('files', { url: 'https://files-mcp.example.com/mcp', obo: { scopes: 'api://files-mcp/.default' } });
 * if (config.type === 'streamable-http') console.log(config.obo?.scopes); // ['api://files-mcp/.default']
 * ```
 */
export type StreamableHttpServerConfig = z.output<typeof streamableHttpSchema>;
/**
 * A validated WebSocket server config.
 *
 * @example
 * ```ts
 * const config = parseServerConfig('live', { url: 'wss://mcp.example.com/ws' });
 * if (config.type === 'websocket') console.log(config.url); // config: WebSocketServerConfig
 * ```
 */
export type WebSocketServerConfig = z.output<typeof websocketSchema>;
/**
 * A validated server config of any transport.
 *
 * @example
 * ```ts
 * const servers: Record<string, ServerConfig> = parseServersConfig(JSON.parse(text));
 * for (const [name, config] of Object.entries(servers)) console.log(name, config.type, config.timeoutMs ?? 60_000);
 * ```
 */
export type ServerConfig = StdioServerConfig | SseServerConfig | StreamableHttpServerConfig | WebSocketServerConfig;
/**
 * A config whose transport makes HTTP requests (and can carry headers).
 *
 * @example
 * ```ts
 * function isHttp(config: ServerConfig): config is HttpServerConfig {
 *   return config.type === 'sse' || config.type === 'streamable-http';
 * }
 * if (isHttp(config)) console.log(config.url, config.obo ? 'OBO' : 'no OBO');
 * ```
 */
export type HttpServerConfig = SseServerConfig | StreamableHttpServerConfig;
/**
 * A validated OBO block (scopes normalised to an array).
 *
 * @example
 * ```ts
 * const obo: OboConfig = oboSchema.parse({ scopes: 'api://graph/.default offline_access' });
 * obo.scopes; // ['api://graph/.default', 'offline_access']
 * ```
 */
export type OboConfig = z.output<typeof oboSchema>;

/**
 * The schema for each transport type.
 *
 * @example
 * ```ts
 * Object.keys(SCHEMAS.stdio.shape); // every field a stdio config may have
 * ```
 */
export const SCHEMAS = {
  stdio: stdioSchema,
  sse: sseSchema,
  'streamable-http': streamableHttpSchema,
  websocket: websocketSchema,
} as const;
