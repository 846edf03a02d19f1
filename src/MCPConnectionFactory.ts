/**
 * (server name, config, user) → a connected {@link MCPConnection}. Resolves placeholders, builds the
 * auth-aware fetch of HTTP servers, and hands a transport factory to the connection. Caches nothing: pooling
 * is the job of the connection managers above it.
 * @module
 */
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport, type StreamableHTTPReconnectionOptions } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { TransportSendOptions } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { ServerConfig } from './config/schema.js';
import { resolveConfigPlaceholders } from './config/parse.js';
import { hasUserPlaceholder, resolvePlaceholders } from './config/placeholders.js';
import { CallerContext, type JsonRpcId } from './connection/callerContext.js';
import { KeyedSemaphore } from './connection/admission.js';
import { ConfigError, SwitchboardError, type ConfigIssue } from './errors.js';
import { knownKeys, nonNegativeMs, optionError } from './options.js';
import { silentLogger, type Logger, type UserContext } from './types.js';
import { MCPConnection, type ConnectionHandlers, type ConnectionLimits, type MCPConnectionOptions } from './MCPConnection.js';
import { resolveReconnectOptions, type ReconnectOptions, type ResolvedReconnectOptions } from './connection/backoff.js';
import { RetryPolicy } from './connection/retryPolicy.js';
import { DEFAULT_MAX_RESULT_BYTES, MESSAGE_ENVELOPE_BYTES } from './connection/resultSize.js';
import { HttpClient } from './transport/httpClient.js';
import { fetchWithBodyCap, MAX_IDP_RESPONSE_BYTES } from './auth/responseCap.js';

/** Budget of one OAuth request (discovery, registration, token) made through `fetchFor`, ms. */
const OAUTH_REQUEST_TIMEOUT_MS = 10_000;
import { createRequestPath, type RequestPathOptions } from './transport/requestPath.js';
import { OwnErrors } from './transport/interceptors/ownErrors.js';
import { localErrorAnswer } from './transport/localAnswer.js';
import { createDefaultTransport } from './transport/createTransport.js';
import type { AuthHeaderProvider, AuthHeaderRequest, FetchLike, Transport, TransportContext, TransportFactory } from './transport/types.js';

/**
 * Who and what a connection is for: passed to the factory's auth hooks.
 *
 * @example
 * ```ts
 * const authHeaders = ({ serverName, user }: ConnectionTarget) => (user ? headersFor(serverName, user) : undefined);
 * ```
 */
export interface ConnectionTarget {
  /** The server's name in the config. */
  serverName: string;
  /** The server's config as parsed (placeholders unresolved). */
  config: ServerConfig;
  /** The user the connection is for; absent for shared app-level connections. */
  user?: UserContext;
}

/**
 * Options of {@link MCPConnectionFactory}.
 *
 * @example
 * ```ts
 * const opts: MCPConnectionFactoryOptions = {
 *   authHeaders: ({ config, user }) =>
 *     config.type !== 'stdio' && config.type !== 'websocket' && config.obo && user
 *       ? async ({ forceRefresh }) => ({ Authorization: `Bearer ${await oboToken(user, forceRefresh)}` })
 *       : undefined,
 *   reconnect: { maxAttempts: 3 },
 * };
 * ```
 */
export interface MCPConnectionFactoryOptions {
  /** Creates the transport of each connect attempt; default {@link createDefaultTransport} (`ctx.fetch` is built here). */
  createTransport?: TransportFactory;
  /** Shared undici dispatchers; default: a new `HttpClient` owned (and closed) by the factory. */
  httpClient?: HttpClient;
  /** Values for `${ENV}` placeholders; default `process.env`, read at each `create()`. */
  env?: Record<string, string | undefined>;
  /**
   * The auth header provider of a connection's HTTP requests (called for every request, never cached).
   * This is where On-Behalf-Of plugs in. `undefined`: no Authorization beyond the config's static headers.
   */
  authHeaders?: (target: ConnectionTarget) => AuthHeaderProvider | undefined;
  /**
   * Turns on the one refresh-and-resend after a 401 for a connection (needs `authHeaders`); `onRejected`
   * builds the error thrown when the resent request is refused again (e.g. `OboError('rejected_by_server')`).
   */
  retryUnauthorized?: (target: ConnectionTarget) => { onRejected?: (res: Response) => Error } | undefined;
  /** Sent in `initialize`; default `{ name: 'mcp-switchboard', version: <package version> }`. */
  clientInfo?: { name: string; version: string };
  /** Reconnect settings of every connection. */
  reconnect?: ReconnectOptions;
  /** `listTools` caps of every connection. */
  limits?: ConnectionLimits;
  /** Tool output-schema validator of every connection; default one shared validator, made on first use. */
  jsonSchemaValidator?: MCPConnectionOptions['jsonSchemaValidator'];
  /** Diagnostics (never a token); default silent. */
  logger?: Logger;
  /**
   * Watch each streamable HTTP request's `text/event-stream` response (default `true`): when it ends or breaks
   * before the response arrived (the server died mid-call) and the server did not make it resumable, that call
   * fails at once with a retryable `transport_error` instead of waiting for its timeout. The watch runs inside
   * undici's dispatch handler (no extra stream), so it costs next to nothing; `false` turns it off. Size caps
   * on responses (`limits.maxResultBytes` + 64 KiB per message → `too_large`) apply either way.
   */
  watchResponseStreams?: boolean;
  /**
   * Whether streamable HTTP connections open the standby GET stream through which a server sends requests and
   * notifications outside of a call (default `true`). `false`: every standby GET is answered `405` locally and
   * nothing is sent. Either way the GETs of a connection are bounded by its reconnect policy (`reconnect`):
   * a server that keeps ending the stream at once gets at most `maxAttempts` quick reopenings (with backoff),
   * then the standby stream is off for that connection and one warning is logged.
   */
  standbyStream?: boolean;
  /**
   * Most handshakes (connect + initialize) in flight at once per origin (per command for stdio). Default 16.
   * A burst of cold calls queues for admission instead of starting every handshake at once; the wait does not
   * count against `initTimeoutMs` (the caller's signal still applies). `Infinity` turns the bound off.
   */
  maxConcurrentConnects?: number;
  /**
   * How long a stdio server gets to exit on its own at each step of its close, in ms (default 2 000): its stdin is
   * ended, then after this long its whole process group gets SIGTERM, and after this long again SIGKILL. Lower it
   * for servers known to ignore stdin's end (tests); raise it for servers that need time to flush.
   */
  stdioCloseGraceMs?: number;
}

/**
 * Every key of {@link MCPConnectionFactoryOptions}: any other is refused with a `TypeError` naming it.
 *
 * @example
 * ```ts
 * FACTORY_OPTION_KEYS.includes('reconnect'); // true
 * ```
 */
export const FACTORY_OPTION_KEYS: readonly string[] = [
  'createTransport',
  'httpClient',
  'env',
  'authHeaders',
  'retryUnauthorized',
  'clientInfo',
  'reconnect',
  'limits',
  'jsonSchemaValidator',
  'logger',
  'watchResponseStreams',
  'standbyStream',
  'maxConcurrentConnects',
  'stdioCloseGraceMs',
];

/**
 * Per-request credentials of one connection's HTTP requests, given to {@link MCPConnectionFactory.create}.
 * Wins over the factory's `authHeaders` / `retryUnauthorized` hooks.
 *
 * @example
 * ```ts
 * const auth: ConnectionAuth = {
 *   authHeaders: async ({ forceRefresh }) => ({ Authorization: `Bearer ${await token(forceRefresh)}` }),
 *   retryUnauthorized: true,
 *   onRejected: (res) => new OboError('rejected_by_server', `server refused the token (${res.status})`),
 * };
 * ```
 */
export interface ConnectionAuth {
  /**
   * Called for every HTTP request (POST, GET stream, DELETE, reconnects); its error reaches the caller unchanged.
   * On user connections `req.user` is the caller the request is made for: read credentials from it.
   */
  authHeaders: AuthHeaderProvider;
  /** After a 401: ask `authHeaders` again with `forceRefresh: true` and resend once. */
  retryUnauthorized?: boolean;
  /** The error thrown when the resent request is refused again; default: the second response is returned. */
  onRejected?: (res: Response) => Error;
  /** Also resend once after a 403 `insufficient_scope`, with the challenge (scope step-up). */
  stepUp?: boolean;
}

/**
 * What {@link MCPConnectionFactory.create} needs.
 *
 * @example
 * ```ts
 * const req: CreateConnectionRequest = { serverName: 'docs', config: servers.docs!, user, signal };
 * const conn = await factory.create(req);
 * ```
 */
export interface CreateConnectionRequest extends ConnectionTarget {
  /** Aborts the connect (the connection is closed and the call rejects with `aborted`). */
  signal?: AbortSignal;
  /** This connection's credentials; default: from the factory's `authHeaders` hook. */
  auth?: ConnectionAuth;
  /**
   * Who each request of the connection is made for (user connections). Default: a new {@link CallerContext}
   * starting with `user`. The pool passes its own so that it can record each new caller of the key.
   */
  callers?: CallerContext;
  /**
   * Answers to the server's requests (sampling, roots, elicitation) for this connection; each one given is
   * declared as a client capability. Default none. `MCPManager` passes its `onSampling` / `roots` /
   * `onElicitation` options here.
   */
  handlers?: ConnectionHandlers;
}

/**
 * Creates connected {@link MCPConnection}s. For each `create()`: resolves the config's placeholders for the
 * user (`ConfigError` naming each unresolvable one), builds the auth-aware fetch for `sse` /
 * `streamable-http` (static headers, the auth header provider on every request, the shared dispatcher, SSRF
 * guard for user-written configs), creates the connection and connects it. A failed connect closes the
 * connection and rejects with its error (an auth provider's error unchanged).
 *
 * @example
 * ```ts
 * import { MCPConnectionFactory, parseServersConfig } from 'mcp-switchboard';
 * const servers = parseServersConfig({ docs: { url: 'https://mcp.example.com/mcp' } });
 * const factory = new MCPConnectionFactory();
 * const conn = await factory.create({ serverName: 'docs', config: servers.docs! });
 * console.log(await conn.listTools());
 * await conn.close();
 * await factory.close();
 * ```
 */
export class MCPConnectionFactory {
  readonly #opts: MCPConnectionFactoryOptions;
  readonly #createTransport: TransportFactory;
  readonly #httpClient: HttpClient;
  readonly #ownsHttpClient: boolean;
  readonly #admission: KeyedSemaphore;
  /** The reconnect settings, checked once (a bad one is a `TypeError` from the constructor). */
  readonly #reconnect: ResolvedReconnectOptions;
  #closing: Promise<void> | undefined;

  constructor(opts: MCPConnectionFactoryOptions = {}) {
    if (!opts || typeof opts !== 'object') throw optionError('MCPConnectionFactory: options', 'an object', opts);
    knownKeys(opts, FACTORY_OPTION_KEYS, 'MCPConnectionFactory');
    if (opts.createTransport !== undefined && typeof opts.createTransport !== 'function') {
      throw new TypeError('MCPConnectionFactory: createTransport must be a function');
    }
    this.#opts = { ...opts };
    this.#createTransport = opts.createTransport ?? createDefaultTransport;
    this.#ownsHttpClient = !opts.httpClient;
    this.#httpClient = opts.httpClient ?? new HttpClient();
    this.#admission = new KeyedSemaphore(opts.maxConcurrentConnects ?? DEFAULT_MAX_CONCURRENT_CONNECTS);
    nonNegativeMs(opts.stdioCloseGraceMs, 'MCPConnectionFactory: stdioCloseGraceMs', undefined);
    this.#reconnect = resolveReconnectOptions(opts.reconnect);
  }

  /**
   * Creates a connection for `serverName` (and `user`) and connects it. Caches nothing.
   *
   * @example
   * ```ts
   * const conn = await factory.create({ serverName: 'graph', config, user, signal: AbortSignal.timeout(10_000) });
   * ```
   */
  async create(req: CreateConnectionRequest): Promise<MCPConnection> {
    if (this.#closing) throw new SwitchboardError('connection_closed', 'MCPConnectionFactory is closed', { serverName: req.serverName });
    const { serverName, config, user, signal } = req;
    const target: ConnectionTarget = { serverName, config, ...(user ? { user } : {}) };
    const env = this.#opts.env ?? process.env;
    // Resolved for the connecting user: validates every placeholder now, and fixes what a live connection
    // cannot change (URL, command, env). Headers that read the user are resolved again for each request.
    const resolved = resolveConfigPlaceholders(serverName, config, { ...(user ? { user } : {}), env });
    const callers = req.callers ?? (user ? new CallerContext(user) : undefined);
    const creds = this.#credentialsFor(target, resolved, req.auth, callers, env);
    const http = this.#httpFor(resolved, creds);
    // One standby-stream budget per connection, shared by the transports of its reconnects.
    const standby = resolved.type === 'streamable-http' ? new RetryPolicy(this.#reconnect) : undefined;

    const conn = new MCPConnection({
      serverName,
      config,
      ...(user ? { user } : {}),
      ...(callers ? { callers } : {}),
      ...(req.handlers ? { handlers: req.handlers } : {}),
      createTransport: (attemptSignal) => this.#transportFor(target, resolved, http, attemptSignal, creds, callers, standby),
      ...(this.#opts.clientInfo ? { clientInfo: this.#opts.clientInfo } : {}),
      ...(this.#opts.reconnect ? { reconnect: this.#opts.reconnect } : {}),
      ...(this.#opts.limits ? { limits: this.#opts.limits } : {}),
      ...(this.#opts.jsonSchemaValidator ? { jsonSchemaValidator: this.#opts.jsonSchemaValidator } : {}),
      ...(this.#opts.logger ? { logger: this.#opts.logger } : {}),
    });
    let release: (() => void) | undefined;
    try {
      release = await this.#admission.enter(admissionKey(resolved), signal, serverName);
      await conn.connect(signal ? { signal } : {});
    } catch (err) {
      await conn.close();
      throw err;
    } finally {
      release?.();
    }
    return conn;
  }

  /**
   * A plain `fetch` for requests a server's config leads to but that are not MCP messages (OAuth discovery,
   * registration and token requests): the same HTTP client, proxy and SSRF guard as the server's own requests,
   * redirects followed hop by hop with the guard, and no credentials added.
   *
   * @example
   * ```ts
   * const fetch = factory.fetchFor({ type: 'streamable-http', url: 'https://mcp.example.com/mcp' });
   * const res = await fetch('https://mcp.example.com/.well-known/oauth-protected-resource');
   * ```
   */
  fetchFor(config: Pick<ServerConfig, 'source'> & { proxy?: string }): FetchLike {
    // Each request bounded by 10 s (OAUTH_REQUEST_TIMEOUT_MS).
    const route = this.#httpClient.forConfig({
      ...(config.source ? { source: config.source } : {}),
      ...(config.proxy ? { proxy: config.proxy } : {}),
    });
    const path = createRequestPath({ dispatcher: route.dispatcher, ...(route.ssrf ? { ssrf: route.ssrf } : {}) });
    // Bodies read within a cap (metadata and token responses are small; a hostile server's are not), and handed on
    // as the global Response: OAuth code (the MCP SDK's error parser) tests `instanceof Response`, undici's is another class.
    const capped = fetchWithBodyCap((url: string, init: RequestInit) => path(url, init), MAX_IDP_RESPONSE_BYTES);
    // A bound on each request (the transports' undici timeouts are off): an authorization server that never
    // answers must not hold a token refresh, and the lock around it, forever.
    return (url, init = {}) => {
      const timeout = AbortSignal.timeout(OAUTH_REQUEST_TIMEOUT_MS);
      return capped(String(url), { ...init, signal: init.signal ? AbortSignal.any([init.signal, timeout]) : timeout });
    };
  }

  /**
   * Closes the `HttpClient` the factory created (not one passed in). Idempotent. Close the connections first:
   * an open event stream keeps its dispatcher busy.
   *
   * @example
   * ```ts
   * await manager.close();
   * await factory.close();
   * ```
   */
  close(): Promise<void> {
    this.#closing ??= this.#ownsHttpClient ? this.#httpClient.close() : Promise.resolve();
    return this.#closing;
  }

  /** The fetch (and dispatcher) of a connection, built once per connection and shared by its reconnects. */
  #authFromHooks(target: ConnectionTarget): ConnectionAuth | undefined {
    const authHeaders = this.#opts.authHeaders?.(target);
    if (!authHeaders) return undefined;
    const retry = this.#opts.retryUnauthorized?.(target);
    return { authHeaders, ...(retry ? { retryUnauthorized: true, ...(retry.onRejected ? { onRejected: retry.onRejected } : {}) } : {}) };
  }

  /**
   * The per-request credentials of a connection: the auth provider (OBO, OAuth) and the config headers that read
   * the user, both asked with the caller of each request (never the context seen at connect).
   */
  #credentialsFor(
    target: ConnectionTarget,
    resolved: ServerConfig,
    explicitAuth: ConnectionAuth | undefined,
    callers: CallerContext | undefined,
    env: Readonly<Record<string, string | undefined>>,
  ): RequestCredentials {
    const { serverName, config } = target;
    const caller = (req: AuthHeaderRequest) => (callers ? callers.forRequest(req.requestId) : target.user);
    const auth = explicitAuth ?? this.#authFromHooks(target);
    const authHeaders: AuthHeaderProvider | undefined = auth
      ? (req) => {
          const user = caller(req);
          return auth.authHeaders(user ? { ...req, user } : req);
        }
      : undefined;
    let staticHeaders: Record<string, string> | undefined;
    let requestHeaders: RequestCredentials['requestHeaders'];
    if (resolved.type === 'sse' || resolved.type === 'streamable-http') {
      const raw = (config as typeof resolved).headers ?? {};
      const templated = Object.keys(raw).filter((k) => hasUserPlaceholder(raw[k]!));
      staticHeaders = resolved.headers ? { ...resolved.headers } : undefined;
      for (const k of templated) delete staticHeaders![k];
      if (templated.length > 0) {
        requestHeaders = (req) => {
          const user = caller(req);
          const issues: ConfigIssue[] = [];
          const out: Record<string, string> = {};
          for (const k of templated) out[k] = resolvePlaceholders(raw[k]!, { ...(user ? { user } : {}), env, ...(config.source ? { source: config.source } : {}) }, 'header', `${serverName}.headers.${k}`, issues);
          // A variable the caller no longer has: nothing is sent, and no old value either.
          if (issues.length) throw new ConfigError(issues, { serverName });
          return out;
        };
      }
    }
    return {
      ...(auth ? { auth } : {}),
      ...(authHeaders ? { authHeaders } : {}),
      ...(staticHeaders ? { staticHeaders } : {}),
      ...(requestHeaders ? { requestHeaders } : {}),
    };
  }

  /**
   * The parts of a connection's request path that all its transports share (dispatcher, credentials, SSRF
   * rules); `undefined` for a transport that makes no HTTP requests.
   */
  #httpFor(resolved: ServerConfig, creds: RequestCredentials): ConnectionHttp {
    if (resolved.type === 'stdio') return {};
    const route = this.#httpClient.forConfig({
      ...(resolved.source ? { source: resolved.source } : {}),
      ...(resolved.type !== 'websocket' && resolved.proxy ? { proxy: resolved.proxy } : {}),
    });
    if (resolved.type === 'websocket') return { dispatcher: route.dispatcher };
    const { auth } = creds;
    return {
      dispatcher: route.dispatcher,
      path: {
        dispatcher: route.dispatcher,
        ...(creds.staticHeaders ? { headers: creds.staticHeaders } : {}),
        ...(creds.requestHeaders ? { requestHeaders: creds.requestHeaders } : {}),
        ...(creds.authHeaders ? { authHeaders: creds.authHeaders } : {}),
        ...(auth?.retryUnauthorized ? { retryUnauthorized: true } : {}),
        ...(auth?.onRejected ? { onRejected: auth.onRejected } : {}),
        ...(auth?.stepUp ? { stepUp: true } : {}),
        ...(route.ssrf ? { ssrf: route.ssrf } : {}),
      },
    };
  }

  /**
   * The transport of one connection attempt, with its own request path (composed in `createRequestPath`): the
   * connection's credentials, plus the response watch that answers this transport's requests locally, the
   * standby-stream gate, and the own-errors channel that lets `start()` reject with our error itself.
   */
  async #transportFor(
    target: ConnectionTarget,
    resolved: ServerConfig,
    http: ConnectionHttp,
    signal: AbortSignal | undefined,
    creds: RequestCredentials,
    callers: CallerContext | undefined,
    standby: RetryPolicy | undefined,
  ): Promise<Transport> {
    const { serverName } = target;
    let created: Transport | undefined;
    const ownErrors = new OwnErrors();
    const maxMessageBytes = this.#maxMessageBytes();
    let fetch: FetchLike = noHttp(serverName);
    if (http.path && (resolved.type === 'sse' || resolved.type === 'streamable-http')) {
      fetch = createRequestPath({
        ...http.path,
        // Only the SSE transport's start() fetches (its EventSource keeps no error): no stage for the others.
        ...(resolved.type === 'sse' ? { ownErrors } : {}),
        watch: {
          serverName,
          streams: resolved.type,
          maxMessageBytes,
          detectLoss: this.#opts.watchResponseStreams ?? true,
          // A request that cannot be answered by the server is answered here, through the transport itself.
          answer: (id, error) => created?.onmessage?.(localErrorAnswer(id, error)),
        },
        ...(standby
          ? { standby: { policy: standby, enabled: this.#opts.standbyStream ?? true, logger: this.#opts.logger ?? silentLogger, serverName } }
          : {}),
      });
    }
    const transport = await this.#createTransport({
      ...target,
      config: resolved,
      fetch,
      maxMessageBytes,
      ...(this.#opts.stdioCloseGraceMs === undefined ? {} : { closeGraceMs: this.#opts.stdioCloseGraceMs }),
      ...(http.dispatcher ? { dispatcher: http.dispatcher } : {}),
      ...(signal ? { signal } : {}),
      ...(standby ? { reconnectionOptions: sdkReconnection(standby) } : {}),
    });
    created = transport;
    if (callers) attachCallers(transport, callers, creds, resolved);
    return ownErrors.keepOnStart(transport);
  }

  /** The largest message a connection accepts: its result cap plus room for the JSON-RPC envelope. */
  #maxMessageBytes(): number {
    const max = this.#opts.limits?.maxResultBytes;
    return (typeof max === 'number' && Number.isFinite(max) && max > 0 ? max : DEFAULT_MAX_RESULT_BYTES) + MESSAGE_ENVELOPE_BYTES;
  }
}

/** What {@link MCPConnectionFactory}'s `#httpFor` gives each transport of a connection. */
interface ConnectionHttp {
  /** The dispatcher of the server (HTTP and WebSocket). */
  dispatcher?: TransportContext['dispatcher'];
  /** The shared part of the request path (HTTP transports only). */
  path?: RequestPathOptions;
}

const DEFAULT_MAX_CONCURRENT_CONNECTS = 16;

/** What handshakes are bounded per: the origin of a URL, or the command of a stdio server. */
function admissionKey(config: ServerConfig): string {
  if (config.type === 'stdio') return `stdio:${config.command}`;
  try {
    return new URL(config.url).origin;
  } catch {
    return config.url;
  }
}

/** What a connection's requests carry besides the protocol: resolved per request for its caller. */
interface RequestCredentials {
  /** The connection's auth (for its retry settings). */
  auth?: ConnectionAuth;
  /** `auth.authHeaders`, asked with the request's caller. */
  authHeaders?: AuthHeaderProvider;
  /** Config headers that do not read the user (resolved once, at connect). */
  staticHeaders?: Record<string, string>;
  /** Config headers that read the user, resolved for the request's caller; throws `ConfigError`. */
  requestHeaders?: (req: AuthHeaderRequest) => Record<string, string>;
}

/**
 * Ties each message a user connection sends to its caller (see {@link CallerContext}). The SDK's HTTP transports
 * send through our fetch, which finds the caller by the body's JSON-RPC id. Any other transport (an in-memory
 * pair in a host's tests, a custom one) gets the same credentials here, per message, as the request's auth info
 * (what an HTTP server's bearer middleware would hand its handlers): a credential failure fails the request
 * before it is sent, exactly as over HTTP.
 */
function attachCallers(transport: Transport, callers: CallerContext, creds: RequestCredentials, resolved: ServerConfig): void {
  const viaFetch = transport instanceof StreamableHTTPClientTransport || transport instanceof SSEClientTransport;
  const perMessage = !viaFetch && (creds.authHeaders !== undefined || creds.requestHeaders !== undefined);
  const url = new URL('url' in resolved ? resolved.url : 'stdio:');
  const send = transport.send.bind(transport);
  transport.send = async (message, options) => {
    const id = 'method' in message && 'id' in message ? (message.id as JsonRpcId) : undefined;
    const caller = callers.onSend(id);
    try {
      if (!perMessage) return await send(message, options);
      const req: AuthHeaderRequest = { url, method: 'POST', forceRefresh: false, ...(id === undefined ? {} : { requestId: id }) };
      const headers: Record<string, string> = { ...(creds.staticHeaders ?? {}), ...(creds.requestHeaders?.(req) ?? {}) };
      if (creds.authHeaders) Object.assign(headers, (await creds.authHeaders(req)) ?? {});
      // `authInfo` is what `InMemoryTransport.send` hands the server as `extra.authInfo`; other transports ignore it.
      const withAuth: TransportSendOptions & { authInfo: AuthInfo } = { ...options, authInfo: toAuthInfo(headers, callers.forRequest(id).id) };
      return await send(message, withAuth);
    } finally {
      callers.settle(id, caller);
    }
  };
}

/** The request's credentials as the SDK's `AuthInfo`, as a server's bearer middleware would see them. */
function toAuthInfo(headers: Record<string, string>, userId: string): AuthInfo {
  let authorization: string | undefined;
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === 'authorization') authorization = v;
  const bearer = authorization?.match(/^Bearer\s+(.+)$/i)?.[1];
  return { token: bearer ?? '', clientId: 'mcp-switchboard', scopes: [], extra: { headers, userId } };
}

/** The fetch of a transport that makes no HTTP requests: any use is a bug, said loudly. */
function noHttp(serverName: string): FetchLike {
  return () => Promise.reject(new SwitchboardError('transport_error', 'This transport does not make HTTP requests', { serverName }));
}

/**
 * The SDK transport's GET-stream reconnection, left to the standby gate: no delay of its own (the gate waits the
 * policy's backoff, above its floor; a server's `retry` field is still honoured by the SDK first), and more
 * attempts than the policy's budget, so that the gate, not the SDK's counter, ends the loop (with its warning).
 * The SDK's defaults (2 retries, 1 s × 1.5) stopped a standby stream silently after a server restart whatever
 * `reconnect` said.
 */
function sdkReconnection(policy: RetryPolicy): StreamableHTTPReconnectionOptions {
  return { initialReconnectionDelay: 0, maxReconnectionDelay: 0, reconnectionDelayGrowFactor: 1, maxRetries: policy.options.maxAttempts + 2 };
}
