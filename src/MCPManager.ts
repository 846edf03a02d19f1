/**
 * The entry point: routes each call to the shared app pool or the caller's user pool, checks OBO trust on
 * every call, wires the OBO auth-header provider into user connections, and reports typed events.
 * @module
 */
import { EventEmitter } from 'node:events';
import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';
import { AppConnectionPool } from './AppConnectionPool.js';
import { assertOboTrusted, createOboAuthHeaderProvider, defaultOboTrustChecker, rejectedByServer } from './auth/obo.js';
import type { OboTokenResolver, OboTrustChecker } from './auth/oboTypes.js';
import { parseServerConfig, parseServersConfig, requiresUserScopedConnection } from './config/parse.js';
import type { ServerConfig } from './config/schema.js';
import { ConfigError, isCredentialFailure, OboError, SwitchboardError, type ConfigIssue } from './errors.js';
import { publishDiagnostics, type MCPManagerEventName, type MCPManagerEvents, type PoolScope } from './events.js';
import type { CallToolOptions, MCPConnection } from './MCPConnection.js';
import { CallerContext } from './connection/callerContext.js';
import { FACTORY_OPTION_KEYS, MCPConnectionFactory, type ConnectionAuth } from './MCPConnectionFactory.js';
import { APP_PRINCIPAL, CircuitBreaker, type CircuitBreakerOptions } from './pool/CircuitBreaker.js';
import type { Lease, PoolCounters } from './pool/ConnectionPool.js';
import type { AuthHeaderProvider } from './transport/types.js';
import { assertUser, DEFAULT_IDLE_TIMEOUT_MS, UserConnectionManager, userOwnerKey } from './UserConnectionManager.js';
import { silentLogger, type Logger, type UserContext } from './types.js';
import { fn, optionError, positiveInt, positiveMsOrInfinity, knownKeys } from './options.js';

/**
 * Supplies per-user OAuth headers for servers with an `oauth` block (the host runs the OAuth flow and keeps
 * the tokens). Called for every HTTP request of that user's connection, like the OBO provider.
 *
 * @example
 * ```ts
 * const userAuthHeaders: UserAuthHeaderProvider = async ({ serverName, user, forceRefresh }) => {
 *   const token = await oauthTokens.get(user.id, serverName, { refresh: forceRefresh }); // your OAuth token store
 *   return token ? { Authorization: `Bearer ${token}` } : undefined;
 * };
 * const manager = new MCPManager({ servers, userAuthHeaders });
 * ```
 */
export type UserAuthHeaderProvider = (req: {
  serverName: string;
  config: ServerConfig;
  user: UserContext;
  forceRefresh: boolean;
  signal?: AbortSignal;
}) => Promise<Record<string, string> | undefined>;

/**
 * Options of {@link MCPManager}.
 *
 * A bad option is a `TypeError` thrown by the constructor, whose message names the option as spelled here and
 * says what was expected (e.g. `MCPManager: maxConnectionsPerUser must be a positive integer (got 0)`); nothing is silently defaulted.
 *
 * @example
 * ```ts
 * const options: MCPManagerOptions = {
 *   servers: { graph: { url: 'https://mcp.example.com/mcp', obo: { scopes: 'api://graph-mcp/.default' } } },
 *   oboTokenResolver: createOboTokenResolver({ issuer, clientId, clientSecret }),
 *   idleTimeoutMs: 10 * 60_000,
 * };
 * ```
 */
export interface MCPManagerOptions {
  /** Server name → config; validated with {@link parseServersConfig} (a bad one throws, nothing is applied). */
  servers: Record<string, unknown>;
  /** Mints OBO tokens; required when any server has an `obo` block. */
  oboTokenResolver?: OboTokenResolver;
  /** Decides, before every connect and call, whether a server may get OBO tokens. Default: {@link defaultOboTrustChecker}. */
  oboTrustChecker?: OboTrustChecker;
  /** Per-user OAuth headers for servers with an `oauth` block. */
  userAuthHeaders?: UserAuthHeaderProvider;
  /** Idle time before a user connection is closed, per (user, server). Default 15 minutes. */
  idleTimeoutMs?: number;
  /** Idle time before a shared app connection is closed. Default: never. */
  appIdleTimeoutMs?: number;
  /** Most connections per user. Default unlimited. */
  maxConnectionsPerUser?: number;
  /** Most user connections in total; the least recently used idle one is evicted first. Default unlimited. */
  maxUserConnections?: number;
  /** Makes the connections; inject one with a mocked `createTransport` in tests. Default: a new factory, closed with the manager. */
  connectionFactory?: MCPConnectionFactory;
  /** Circuit breaker settings, or `false` to disable it. */
  circuitBreaker?: CircuitBreakerOptions | false;
  /** A pino-compatible logger. Default: silent. */
  logger?: Logger;
}

/** Every key of {@link MCPManagerOptions}: any other is refused (see `knownKeys`). */
const MANAGER_OPTION_KEYS: readonly string[] = [
  'servers',
  'oboTokenResolver',
  'oboTrustChecker',
  'userAuthHeaders',
  'idleTimeoutMs',
  'appIdleTimeoutMs',
  'maxConnectionsPerUser',
  'maxUserConnections',
  'connectionFactory',
  'circuitBreaker',
  'logger',
];

/**
 * Arguments of {@link MCPManager.callTool}.
 *
 * @example
 * ```ts
 * const args: CallToolArgs = { user, serverName: 'files', toolName: 'list_files', arguments: { path: '/' }, timeoutMs: 30_000 };
 * const result = await manager.callTool(args);
 * ```
 */
export interface CallToolArgs {
  /** The user the call is made for; required for user-scoped servers. */
  user?: UserContext;
  /** The server's name. */
  serverName: string;
  /** The tool's name. */
  toolName: string;
  /** The tool's arguments. */
  arguments?: Record<string, unknown>;
  /** Aborts the call (and this caller's wait for a connection). */
  signal?: AbortSignal;
  /** Timeout of the call itself; default the server's `timeoutMs` or 60 s. */
  timeoutMs?: number;
  /** Receives the server's progress notifications for this call; see {@link CallToolOptions.onProgress}. */
  onProgress?: CallToolOptions['onProgress'];
  /** Restart `timeoutMs` on each progress notification (default `false`); see {@link CallToolOptions.resetTimeoutOnProgress}. */
  resetTimeoutOnProgress?: boolean;
  /** Bound on the whole call in ms, however much progress arrives; see {@link CallToolOptions.maxTotalTimeoutMs}. */
  maxTotalTimeoutMs?: number;
}

/**
 * Arguments of {@link MCPManager.listTools}.
 *
 * @example
 * ```ts
 * const tools = await manager.listTools({ user, serverName: 'files', signal: AbortSignal.timeout(10_000) });
 * console.log(tools.map((t) => t.name));
 * ```
 */
export interface ListToolsArgs {
  /** The user; required for user-scoped servers. */
  user?: UserContext;
  /** The server's name. */
  serverName: string;
  /** Aborts the listing. */
  signal?: AbortSignal;
}

/**
 * Arguments of {@link MCPManager.getConnection}.
 *
 * @example
 * ```ts
 * // A server the user added themselves, kept by the host per user (never trusted for OBO).
 * const args: GetConnectionArgs = { user, serverName: 'my-notes', serverConfig: { url: 'https://notes.example.com/mcp', source: 'user' } };
 * const connection = await manager.getConnection(args);
 * ```
 */
export interface GetConnectionArgs {
  /** The user; required for user-scoped servers. */
  user?: UserContext;
  /** The server's name. */
  serverName: string;
  /** Open a new connection that replaces the current one once its calls end. */
  forceNew?: boolean;
  /** Aborts this caller's wait. */
  signal?: AbortSignal;
  /** A config for this call only (servers the host keeps per user); validated like any other. */
  serverConfig?: unknown;
}

/**
 * What a {@link MCPManager.wrapToolCall} override sees of a call.
 *
 * @example
 * ```ts
 * class AuditedManager extends MCPManager {
 *   protected override wrapToolCall(ctx: ToolCallContext, next: () => Promise<CallToolResult>): Promise<CallToolResult> {
 *     audit.record({ user: ctx.user?.id, server: ctx.serverName, tool: ctx.toolName, scope: ctx.scope });
 *     return next();
 *   }
 * }
 * ```
 */
export interface ToolCallContext {
  /** The server's name. */
  serverName: string;
  /** The tool's name. */
  toolName: string;
  /** The tool's arguments. */
  arguments: Record<string, unknown> | undefined;
  /** The user, when there is one. */
  user: UserContext | undefined;
  /** The server's config. */
  config: ServerConfig;
  /** `user` or `app`. */
  scope: PoolScope;
  /** The leased connection. */
  connection: MCPConnection;
}

/**
 * Sizes and counters of a manager.
 *
 * @example
 * ```ts
 * const s: MCPManagerStats = manager.stats();
 * metrics.gauge('mcp.user_connections', s.userConnections);
 * metrics.gauge('mcp.connect_failures', s.userPool.connectFailures + s.appPool.connectFailures);
 * ```
 */
export interface MCPManagerStats {
  /** Users with at least one connection or pending connect. */
  users: number;
  /** Open user connections. */
  userConnections: number;
  /** Open shared app connections. */
  appConnections: number;
  /** Connects in flight (user and app). */
  pendingConnects: number;
  /** Counters of the user pool. */
  userPool: PoolCounters;
  /** Counters of the app pool. */
  appPool: PoolCounters;
}

/**
 * Calls tools on many MCP servers for many users. One pool of connections per user, shared connections for
 * servers that need no identity, idle eviction, joined concurrent connects, stale connections replaced after a
 * config change, and a fresh OBO bearer on every HTTP request of an OBO server, failing closed.
 *
 * Many managers may live in one process; nothing is global. Host apps may subclass it and override the
 * protected extension points {@link resolveServerConfig}, {@link isUserScoped} and {@link wrapToolCall}.
 *
 * @example
 * ```ts
 * import { MCPManager, createOboTokenResolver } from 'mcp-switchboard';
 *
 * const manager = new MCPManager({
 *   servers: {
 *     graph: { url: 'https://graph-mcp.example.com/mcp', obo: { scopes: 'api://graph-mcp/.default' } },
 *     time: { command: 'npx', args: ['-y', '@modelcontextprotocol/server-time'] },
 *   },
 *   oboTokenResolver: createOboTokenResolver({ issuer: 'https://login.microsoftonline.com/<tenant>/v2.0', clientId, clientSecret }),
 * });
 * const result = await manager.callTool({
 *   user: { id: claims.oid, tenantId: claims.tid, upstreamToken: bearer },
 *   serverName: 'graph',
 *   toolName: 'me',
 * });
 * await manager.close();
 * ```
 */
export class MCPManager {
  readonly #emitter = new EventEmitter();
  readonly #servers = new Map<string, ServerConfig>();
  readonly #resolver: OboTokenResolver | undefined;
  readonly #trust: OboTrustChecker;
  readonly #userAuth: UserAuthHeaderProvider | undefined;
  readonly #factory: MCPConnectionFactory;
  readonly #ownsFactory: boolean;
  readonly #users: UserConnectionManager;
  readonly #app: AppConnectionPool;
  readonly #breaker: CircuitBreaker | undefined;
  readonly #logger: Logger;
  /** The caller record of each user connection: every acquire records its caller there. */
  readonly #callers = new WeakMap<MCPConnection, CallerContext>();
  /** Set by close(); its presence is what "closed" means. */
  #closing: Promise<void> | undefined;

  constructor(opts: MCPManagerOptions) {
    if (!opts || typeof opts !== 'object') throw optionError('MCPManager: options', 'an object', opts);
    knownKeys(opts, MANAGER_OPTION_KEYS, 'MCPManager', (key) =>
      FACTORY_OPTION_KEYS.includes(key)
        ? `connection settings go to the factory: connectionFactory: new MCPConnectionFactory({ ${key} })`
        : undefined,
    );
    // Checked here, under their public names, before they reach the pools under internal ones.
    positiveMsOrInfinity(opts.idleTimeoutMs, 'MCPManager: idleTimeoutMs', undefined);
    positiveMsOrInfinity(opts.appIdleTimeoutMs, 'MCPManager: appIdleTimeoutMs', undefined);
    positiveInt(opts.maxConnectionsPerUser, 'MCPManager: maxConnectionsPerUser', undefined);
    positiveInt(opts.maxUserConnections, 'MCPManager: maxUserConnections', undefined);
    fn(opts.oboTokenResolver, 'MCPManager: oboTokenResolver');
    fn(opts.oboTrustChecker, 'MCPManager: oboTrustChecker');
    if (opts.circuitBreaker !== undefined && opts.circuitBreaker !== false && (typeof opts.circuitBreaker !== 'object' || opts.circuitBreaker === null)) {
      throw optionError('MCPManager: circuitBreaker', 'an options object or false', opts.circuitBreaker);
    }
    this.#resolver = opts.oboTokenResolver;
    this.#userAuth = opts.userAuthHeaders;
    let servers: Record<string, ServerConfig>;
    try {
      servers = parseServersConfig(opts.servers);
    } catch (err) {
      // One ConfigError listing every problem: the missing-option ones too, read from the raw input.
      if (err instanceof ConfigError) throw new ConfigError([...err.issues, ...this.#rawWiringIssues(opts.servers)]);
      throw err;
    }
    this.#checkCredentialsWiring(servers);
    for (const [k, v] of Object.entries(servers)) this.#servers.set(k, v);
    this.#trust = opts.oboTrustChecker ?? defaultOboTrustChecker;
    this.#logger = opts.logger ?? silentLogger;
    this.#ownsFactory = !opts.connectionFactory;
    this.#factory = opts.connectionFactory ?? new MCPConnectionFactory({ logger: this.#logger });
    this.#breaker = opts.circuitBreaker === false ? undefined : new CircuitBreaker(opts.circuitBreaker ?? {});

    this.#users = new UserConnectionManager({
      connect: (req) => this.#connect(req.serverName, req.config, req.user, req.signal),
      getServerConfig: (name, user) => this.resolveServerConfig(name, user),
      idleTimeoutMs: opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
      ...(opts.maxConnectionsPerUser === undefined ? {} : { maxConnectionsPerUser: opts.maxConnectionsPerUser }),
      ...(opts.maxUserConnections === undefined ? {} : { maxUserConnections: opts.maxUserConnections }),
      hooks: {
        onConnect: (k, _c, durationMs) => this.#emit('connect', { serverName: k.serverName, scope: 'user', ...who(k), durationMs }),
        onEvict: (k, reason) => this.#emit('evict', { serverName: k.serverName, scope: 'user', ...who(k), reason }),
        onDisconnect: (k, e) => this.#emit('disconnect', { serverName: k.serverName, scope: 'user', ...who(k), ...e }),
        onError: (k, error) => this.#emitError(k.serverName, k.userId, error),
      },
    });
    this.#app = new AppConnectionPool({
      connect: (req) => this.#connect(req.serverName, req.config, undefined, req.signal),
      ...(opts.appIdleTimeoutMs === undefined ? {} : { idleTimeoutMs: opts.appIdleTimeoutMs }),
      hooks: {
        onConnect: (k, _c, durationMs) => this.#emit('connect', { serverName: k.serverName, scope: 'app', durationMs }),
        onEvict: (k, reason) => this.#emit('evict', { serverName: k.serverName, scope: 'app', reason }),
        onDisconnect: (k, e) => this.#emit('disconnect', { serverName: k.serverName, scope: 'app', ...e }),
        onError: (k, error) => this.#emitError(k.serverName, undefined, error),
      },
    });
  }

  /**
   * Calls a tool. For an OBO server the trust checker runs first, on every call; refused → `OboError('untrusted')`
   * and nothing is sent. The connection is leased for the length of the call, so eviction waits for it.
   */
  async callTool(args: CallToolArgs): Promise<CallToolResult> {
    const { serverName, toolName, signal } = args;
    if (typeof toolName !== 'string' || toolName === '') throw new TypeError('callTool: toolName must be a non-empty string');
    const { lease, config, scope } = await this.#acquire(args.user, serverName, signal ? { signal } : {});
    // Built field by field, not by spreading conditional object literals: this runs on every call.
    const callOpts: CallToolOptions = {};
    if (signal) callOpts.signal = signal;
    if (args.timeoutMs !== undefined) callOpts.timeoutMs = args.timeoutMs;
    if (args.onProgress !== undefined) callOpts.onProgress = args.onProgress;
    if (args.resetTimeoutOnProgress !== undefined) callOpts.resetTimeoutOnProgress = args.resetTimeoutOnProgress;
    if (args.maxTotalTimeoutMs !== undefined) callOpts.maxTotalTimeoutMs = args.maxTotalTimeoutMs;
    if (scope === 'user') callOpts.user = args.user!;
    let failure: unknown;
    try {
      const ctx: ToolCallContext = { serverName, toolName, arguments: args.arguments, user: args.user, config, scope, connection: lease.connection };
      return await this.wrapToolCall(ctx, () => lease.connection.callTool(toolName, args.arguments, callOpts));
    } catch (err) {
      failure = err;
      throw err;
    } finally {
      lease.release(failure === undefined ? undefined : { touch: !isCredentialFailure(failure) });
    }
  }

  /** Lists a server's tools (all pages; cached by the connection until the server says the list changed). */
  async listTools(args: ListToolsArgs): Promise<Tool[]> {
    const { lease, scope } = await this.#acquire(args.user, args.serverName, { ...(args.signal ? { signal: args.signal } : {}) });
    let failure: unknown;
    try {
      return await lease.connection.listTools({ ...(args.signal ? { signal: args.signal } : {}), ...(scope === 'user' ? { user: args.user! } : {}) });
    } catch (err) {
      failure = err;
      throw err;
    } finally {
      lease.release({ touch: !isCredentialFailure(failure) });
    }
  }

  /**
   * The connection a call for this user and server would use, connecting if needed. The connection is not
   * leased: it may be evicted after `idleTimeoutMs` even while you hold it; prefer {@link callTool}.
   */
  async getConnection(args: GetConnectionArgs): Promise<MCPConnection> {
    const config = args.serverConfig === undefined ? undefined : this.#parseOne(args.serverName, args.serverConfig);
    const { lease } = await this.#acquire(args.user, args.serverName, {
      ...(args.forceNew ? { forceNew: true } : {}),
      ...(args.signal ? { signal: args.signal } : {}),
      ...(config ? { config } : {}),
    });
    lease.release();
    return lease.connection;
  }

  /**
   * Adds or replaces a server. Validated first (a bad config throws and changes nothing). A changed config
   * makes existing connections stale: the next call replaces them; in-flight calls finish on the old ones.
   */
  upsertServer(name: string, config: unknown): void {
    this.#assertOpen(name);
    const parsed = this.#parseOne(name, config);
    this.#servers.set(name, parsed);
    this.#breaker?.reset(name);
  }

  /** Removes a server and closes its connections (after their in-flight calls). */
  async removeServer(name: string): Promise<void> {
    this.#servers.delete(name);
    this.#breaker?.reset(name);
    await Promise.all([this.#users.removeServer(name), this.#app.removeServer(name)]);
  }

  /**
   * Closes every connection of a user (e.g. at sign-out) and cancels their pending connects. Pass `tenantId`
   * to close only that tenant's user with this id.
   */
  disconnectUser(userId: string, tenantId?: string): Promise<void> {
    return this.#users.disconnectUser(userId, tenantId);
  }

  /** Names of the configured servers. */
  serverNames(): string[] {
    return [...this.#servers.keys()];
  }

  /** Sizes and counters. */
  stats(): MCPManagerStats {
    const u = this.#users.stats();
    const a = this.#app.stats();
    return {
      users: u.users,
      userConnections: u.userConnections,
      appConnections: a.appConnections,
      pendingConnects: u.pendingConnects + a.pendingConnects,
      userPool: u.counters,
      appPool: a.counters,
    };
  }

  /** Adds a typed event listener. */
  on<K extends MCPManagerEventName>(event: K, listener: (e: MCPManagerEvents[K]) => void): this {
    this.#emitter.on(event, listener);
    return this;
  }

  /** Adds a typed one-shot event listener. */
  once<K extends MCPManagerEventName>(event: K, listener: (e: MCPManagerEvents[K]) => void): this {
    this.#emitter.once(event, listener);
    return this;
  }

  /** Removes an event listener. */
  off<K extends MCPManagerEventName>(event: K, listener: (e: MCPManagerEvents[K]) => void): this {
    this.#emitter.off(event, listener);
    return this;
  }

  /**
   * Closes every connection, cancels pending connects and clears every timer. Idempotent; later calls reject
   * with `SwitchboardError('manager_closed')`.
   */
  close(): Promise<void> {
    if (!this.#closing) {
      this.#closing = (async () => {
        await Promise.all([this.#users.close(), this.#app.close()]);
        if (this.#ownsFactory) await this.#factory.close();
      })();
    }
    return this.#closing;
  }

  /**
   * Extension point: the config of a server for a user. Override to keep per-user or per-tenant configs
   * (return a validated config, e.g. from {@link parseServerConfig}); `undefined` means unknown server.
   */
  protected resolveServerConfig(serverName: string, user: UserContext | undefined): ServerConfig | undefined {
    void user;
    return this.#servers.get(serverName);
  }

  /**
   * Extension point: whether a server needs a per-user connection. Overrides can only add user scoping:
   * a server that {@link requiresUserScopedConnection} is never shared, whatever this returns.
   */
  protected isUserScoped(serverName: string, config: ServerConfig): boolean {
    void serverName;
    return requiresUserScopedConnection(config);
  }

  /**
   * Extension point: wraps every tool call (auditing, metrics, result filtering, retries). Call `next()` to
   * make the call; the connection stays leased until the returned promise settles.
   */
  protected wrapToolCall(ctx: ToolCallContext, next: () => Promise<CallToolResult>): Promise<CallToolResult> {
    void ctx;
    return next();
  }

  async #acquire(
    user: UserContext | undefined,
    serverName: string,
    opts: { forceNew?: boolean; signal?: AbortSignal; config?: ServerConfig },
  ): Promise<{ lease: Lease<MCPConnection>; config: ServerConfig; scope: PoolScope }> {
    this.#assertOpen(serverName);
    if (typeof serverName !== 'string' || serverName === '') throw new TypeError('serverName must be a non-empty string');
    const config = opts.config ?? this.resolveServerConfig(serverName, user);
    if (!config) throw new SwitchboardError('unknown_server', `Unknown MCP server "${serverName}"`, { serverName });
    const userScoped = requiresUserScopedConnection(config) || this.isUserScoped(serverName, config);
    if (!userScoped) {
      return { lease: await this.#app.acquire(serverName, config, opts), config, scope: 'app' };
    }
    assertUser(user, serverName);
    if (hasObo(config)) await assertOboTrusted(this.#trust, { serverName, config, user });
    const lease = await this.#users.acquire(user, serverName, { ...opts, config });
    // From now on, requests of this connection that belong to no call use this caller's credentials.
    this.#callers.get(lease.connection)?.observe(user);
    return { lease, config, scope: 'user' };
  }

  async #connect(serverName: string, config: ServerConfig, user: UserContext | undefined, signal: AbortSignal): Promise<MCPConnection> {
    const trial = this.#breaker?.check(serverName) ?? false;
    try {
      const auth = user ? this.#authFor(serverName, config) : undefined;
      const callers = user ? new CallerContext(user) : undefined;
      const conn = await this.#factory.create({ serverName, config, ...(user ? { user, callers } : {}), signal, ...(auth ? { auth } : {}) });
      if (callers) this.#callers.set(conn, callers);
      this.#breaker?.success(serverName);
      return conn;
    } catch (err) {
      this.#breaker?.failure(serverName, user ? userOwnerKey(user) : APP_PRINCIPAL, err, trial);
      this.#logger.debug({ serverName, userId: user?.id, code: (err as SwitchboardError).code }, 'mcp connect failed');
      throw err;
    }
  }

  /**
   * The per-request credentials of a user connection: OBO, per-user OAuth, or none. Each request is asked with
   * its own caller (`req.user`): the credentials follow the caller, not the connection.
   */
  #authFor(serverName: string, config: ServerConfig): ConnectionAuth | undefined {
    if (hasObo(config)) {
      const resolver = this.#resolver;
      if (!resolver) throw new OboError('no_resolver', `"${serverName}" uses On-Behalf-Of but no oboTokenResolver was given`, { serverName });
      const authHeaders = createOboAuthHeaderProvider({ serverName, obo: config.obo, resolver, onExchange: (e) => this.#emit('oboExchange', e) });
      return { authHeaders, retryUnauthorized: true, onRejected: (res: Response) => rejectedByServer(serverName, res.status) };
    }
    if ((config.type === 'sse' || config.type === 'streamable-http') && config.oauth) {
      const provider = this.#userAuth;
      if (!provider) throw new SwitchboardError('config_invalid', `"${serverName}" uses per-user OAuth but no userAuthHeaders provider was given`, { serverName });
      const authHeaders: AuthHeaderProvider = ({ forceRefresh, signal, user }) => {
        if (!user) return Promise.reject(new SwitchboardError('user_required', `No user for a per-user OAuth request to "${serverName}"`, { serverName }));
        return provider({ serverName, config, user, forceRefresh, ...(signal ? { signal } : {}) });
      };
      return { authHeaders, retryUnauthorized: true };
    }
    return undefined;
  }

  #parseOne(name: string, config: unknown): ServerConfig {
    const parsed = parseServerConfig(name, config);
    this.#checkCredentialsWiring({ [name]: parsed });
    return parsed;
  }

  /** {@link #checkCredentialsWiring} on configs that did not parse: what their raw fields already tell. */
  #rawWiringIssues(input: unknown): ConfigIssue[] {
    if (!input || typeof input !== 'object') return [];
    const issues: ConfigIssue[] = [];
    for (const [name, raw] of Object.entries(input as Record<string, unknown>)) {
      if (!raw || typeof raw !== 'object') continue;
      if ('obo' in raw && !this.#resolver) issues.push({ path: `${name}.obo`, message: 'On-Behalf-Of needs the oboTokenResolver option' });
      if ('oauth' in raw && !this.#userAuth) issues.push({ path: `${name}.oauth`, message: 'per-user OAuth needs the userAuthHeaders option' });
    }
    return issues;
  }

  #checkCredentialsWiring(servers: Record<string, ServerConfig>): void {
    const issues: ConfigIssue[] = [];
    for (const [name, config] of Object.entries(servers)) {
      if (hasObo(config) && !this.#resolver) issues.push({ path: `${name}.obo`, message: 'On-Behalf-Of needs the oboTokenResolver option' });
      if ((config.type === 'sse' || config.type === 'streamable-http') && config.oauth && !this.#userAuth) {
        issues.push({ path: `${name}.oauth`, message: 'per-user OAuth needs the userAuthHeaders option' });
      }
    }
    if (issues.length) throw new ConfigError(issues);
  }

  #assertOpen(serverName: string): void {
    if (this.#closing) throw new SwitchboardError('manager_closed', `The MCPManager is closed (server "${serverName}")`, { serverName });
  }

  #emit<K extends MCPManagerEventName>(event: K, payload: MCPManagerEvents[K]): void {
    publishDiagnostics(event, payload);
    if (event === 'error' && this.#emitter.listenerCount('error') === 0) {
      this.#logger.warn({ serverName: (payload as MCPManagerEvents['error']).serverName }, 'mcp-switchboard background error');
      return;
    }
    try {
      this.#emitter.emit(event, payload);
    } catch (err) {
      // A throwing listener must not break the pool's bookkeeping.
      this.#logger.error({ event, err: err instanceof Error ? err.name : typeof err }, 'mcp-switchboard event listener threw');
    }
  }

  #emitError(serverName: string | undefined, userId: string | undefined, error: unknown): void {
    const e = error instanceof Error ? error : new SwitchboardError('transport_error', String(error));
    this.#emit('error', { ...(serverName ? { serverName } : {}), ...(userId ? { userId } : {}), error: e });
  }
}

function hasObo(config: ServerConfig): config is Extract<ServerConfig, { type: 'sse' | 'streamable-http' }> & { obo: { scopes: string[]; audience?: string } } {
  return (config.type === 'sse' || config.type === 'streamable-http') && config.obo !== undefined;
}

function who(k: { userId: string; tenantId?: string }): { userId: string; tenantId?: string } {
  return k.tenantId === undefined ? { userId: k.userId } : { userId: k.userId, tenantId: k.tenantId };
}
