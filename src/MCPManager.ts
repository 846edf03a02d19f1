/**
 * The entry point: routes each call to the shared app pool or the caller's user pool, checks OBO trust on
 * every call, wires the OBO auth-header provider into user connections, and reports typed events.
 * @module
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type {
  CallToolResult,
  GetPromptResult,
  LoggingLevel,
  Prompt,
  ReadResourceResult,
  Resource,
  ResourceTemplate,
  Tool,
} from '@modelcontextprotocol/sdk/types.js';
import { AppConnectionPool, type AppConnectionPoolOptions, type SharedConnectionPool } from './AppConnectionPool.js';
import { assertOboTrusted, createOboAuthHeaderProvider, defaultOboTrustChecker, rejectedByServer } from './auth/obo.js';
import type { OboTokenResolver, OboTrustChecker } from './auth/oboTypes.js';
import { parseServerConfig, parseServersConfig, requiresUserScopedConnection } from './config/parse.js';
import type { ServerConfig } from './config/schema.js';
import { configFingerprint } from './config/fingerprint.js';
import { AuthorizationError, ConfigError, isCredentialFailure, OboError, SwitchboardError, type ConfigIssue } from './errors.js';
import { OAuthAuthorizer, type OAuthOptions } from './oauth/authorizer.js';
import type { ServerOAuthSettings } from './oauth/provider.js';
import { resolveCredentialField } from './config/placeholders.js';
import { publishDiagnostics, type MCPManagerEventName, type MCPManagerEvents, type PoolScope } from './events.js';
import type { Coordinator, InvalidationEvent } from './coordination.js';
import type {
  CallToolOptions,
  CompleteParams,
  Completion,
  ConnectionHandlers,
  ConnectionRequestOptions,
  ElicitationCompleteEvent,
  MCPConnection,
  ResourceUpdatedEvent,
  ServerLogEvent,
} from './MCPConnection.js';
import { CallerContext } from './connection/callerContext.js';
import { FACTORY_OPTION_KEYS, MCPConnectionFactory, type ConnectionAuth } from './MCPConnectionFactory.js';
import { APP_PRINCIPAL, CircuitBreaker, type CircuitBreakerOptions } from './pool/CircuitBreaker.js';
import type { Lease, PoolCounters } from './pool/ConnectionPool.js';
import type { AuthChallenge, AuthHeaderProvider } from './transport/types.js';
import {
  assertUser,
  DEFAULT_IDLE_TIMEOUT_MS,
  UserConnectionManager,
  userOwnerKey,
  type UserConnectionManagerOptions,
} from './UserConnectionManager.js';
import { silentLogger, type Logger, type UserContext } from './types.js';
import { fn, optionError, positiveInt, positiveMsOrInfinity, knownKeys } from './options.js';

/**
 * Supplies per-user OAuth headers for servers with an `oauth` block (the host runs the OAuth flow and keeps
 * the tokens). Called for every HTTP request of that user's connection, like the OBO provider.
 *
 * @example
 * ```ts
 * const userAuthHeaders: UserAuthHeaderProvider = async ({ serverName, user, forceRefresh, challenge }) => {
 *   // On the resend after a 403 insufficient_scope, `challenge.scope` names the scopes the server needs.
 *   const scopes = challenge?.error === 'insufficient_scope' ? challenge.scope : undefined;
 *   const token = await oauthTokens.get(user.id, serverName, { refresh: forceRefresh, scopes }); // your OAuth token store
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
  /** On the resend after a 401 or a 403: the server's challenge (e.g. the scopes a step-up needs). */
  challenge?: AuthChallenge;
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
  /**
   * Per-user OAuth headers for servers with an `oauth` block, for hosts that run OAuth themselves. Takes
   * precedence over {@link MCPManagerOptions.oauth}.
   */
  userAuthHeaders?: UserAuthHeaderProvider;
  /**
   * Runs the MCP authorization flow (OAuth 2.1, PKCE) for servers with an `oauth` block: per user with the
   * user's consent (a call that needs it rejects with `AuthorizationRequiredError`; the host's callback route
   * calls {@link MCPManager.completeAuthorization}), or with client credentials for the app. See docs/oauth.md.
   */
  oauth?: OAuthOptions;
  /** Idle time before a user connection is closed, per (user, server). Default 15 minutes. */
  idleTimeoutMs?: number;
  /** Idle time before a shared app connection is closed. Default: never. */
  appIdleTimeoutMs?: number;
  /** Most connections per user. Default unlimited. */
  maxConnectionsPerUser?: number;
  /** Most user connections in total; the least recently used idle one is evicted first. Default unlimited. */
  maxUserConnections?: number;
  /**
   * Makes the connections: a factory with settings of your own (`reconnect`, `limits`, `httpClient`, …), one with a
   * mocked `createTransport` in tests, or an instance of an {@link MCPConnectionFactory} subclass (its `create`
   * receives every connect, with the manager's credentials, caller record and handlers in the request: pass the
   * request on). Default: a new factory, closed with the manager; one given here is the host's to close, after
   * the manager.
   */
  connectionFactory?: MCPConnectionFactory;
  /**
   * Settings of the per-server circuit breaker for connects (checked when the manager is constructed), or `false`
   * to turn it off. A subclass may make its own breaker from them: {@link MCPManager.createCircuitBreaker}.
   */
  circuitBreaker?: CircuitBreakerOptions | false;
  /**
   * Answers the servers' `sampling/createMessage` requests (the server asks the host's model for a completion),
   * told the server and, on a user connection, the user. Given → every connection declares the `sampling`
   * capability; absent → none does and such requests are refused. Deprecated by MCP 2026-07-28; still in 2025-11-25.
   */
  onSampling?: ConnectionHandlers['sampling'];
  /**
   * Answers the servers' `roots/list` requests (the host's roots for that server and user). Given → every
   * connection declares the `roots` capability; absent → none does. Deprecated by MCP 2026-07-28; still in 2025-11-25.
   */
  roots?: ConnectionHandlers['roots'];
  /**
   * Answers the servers' `elicitation/create` requests (MCP 2025-11-25, "Elicitation": the server asks the user
   * for input), told the server and, on a user connection, that connection's user; on a shared app-level
   * connection `ctx.user` is absent, so a shared server's request is never answered as some user. Given → every
   * connection declares `elicitation: { form: {}, url: {} }`; absent → none does and such requests are refused.
   *
   * - Form mode (`request.mode === 'form'`): answer `{ action: 'accept', content }`; fields left out of `content`
   *   whose schema has a `default` get it (SEP-1034), then `content` must match `request.requestedSchema`.
   * - URL mode (`request.mode === 'url'`): show `request.url` to the user and answer `{ action: 'accept' }` if
   *   they agree to open it; the server's `notifications/elicitation/complete` arrives as the
   *   `elicitationComplete` event.
   * - `{ action: 'decline' }` / `{ action: 'cancel' }`: the user said no / dismissed it.
   *
   * A throw, or a result that is invalid or does not match the schema, answers the server with a JSON-RPC error
   * (a thrown error's text is not sent) and is logged as a warning; the connection stays up.
   *
   * @example
   * ```ts
   * const manager = new MCPManager({
   *   servers,
   *   onElicitation: async (request, { user, serverName }) => {
   *     if (!user) return { action: 'decline' }; // a shared server: nobody to ask
   *     if (request.mode === 'url') return (await askToOpen(user.id, serverName, request.url)) ? { action: 'accept' } : { action: 'decline' };
   *     const answer = await askForm(user.id, serverName, request.message, request.requestedSchema);
   *     return answer ? { action: 'accept', content: answer } : { action: 'cancel' };
   *   },
   * });
   * ```
   */
  onElicitation?: ConnectionHandlers['elicitation'];
  /**
   * Several replicas acting as one (e.g. `createRedisCoordinator` of `mcp-switchboard/redis`, or
   * `createMemoryCoordinator` of `mcp-switchboard/testing` in tests):
   * - the OAuth token, client-registration and flow stores default to the coordinator's `oauthStore` and
   *   `oauthFlowStore` (a store given in `oauth` wins), so consent given, or a callback landing, on any replica
   *   is good on all;
   * - `disconnectUser`, `revokeAuthorization`, `upsertServer` and `removeServer` are applied here at once and
   *   published; every replica applies every event it receives, this one's own included (each application is
   *   idempotent, and all replicas apply the channel's events in the same order, so they converge). A received
   *   `upsertServer` config is validated like a local one; a bad one is logged and ignored. A
   *   `revokeAuthorization` received closes the user's connections to the server and drops this replica's
   *   pending flow and step-up state of it.
   * - A failed publication does not undo the local change; the error goes to the `error` event (logged as a
   *   warning when nobody listens).
   *
   * The manager subscribes when constructed and unsubscribes in `close()`; it never closes the coordinator,
   * which the host owns (it is usually shared with `createUpstreamTokenProvider` and `createOboTokenResolver`).
   *
   * @example
   * ```ts
   * import { createRedisCoordinator } from 'mcp-switchboard/redis';
   * const coordinator = createRedisCoordinator({ url: process.env.REDIS_URL, encryptionKey: process.env.MCP_KEY! });
   * const manager = new MCPManager({ servers, oauth: { redirectUri }, coordinator });
   * ```
   */
  coordinator?: Coordinator;
  /** A pino-compatible logger. Default: silent. */
  logger?: Logger;
}

/** Every key of {@link MCPManagerOptions}: any other is refused (see `knownKeys`). */
const MANAGER_OPTION_KEYS: readonly string[] = [
  'servers',
  'oboTokenResolver',
  'oboTrustChecker',
  'userAuthHeaders',
  'oauth',
  'idleTimeoutMs',
  'appIdleTimeoutMs',
  'maxConnectionsPerUser',
  'maxUserConnections',
  'connectionFactory',
  'circuitBreaker',
  'onSampling',
  'roots',
  'onElicitation',
  'coordinator',
  'logger',
];

/**
 * What every per-server operation of {@link MCPManager} takes: who, which server, and the per-call options of
 * the request. Routing, the OBO trust check, the lease and the caller's credentials are those of `callTool`.
 *
 * @example
 * ```ts
 * const args: ManagerCallArgs = { user, serverName: 'notes', signal: req.signal, timeoutMs: 10_000 };
 * const resources = await manager.listResources(args);
 * ```
 */
export interface ManagerCallArgs {
  /** The user the call is made for; required for user-scoped servers. Its credentials are the ones used. */
  user?: UserContext;
  /** The server's name. */
  serverName: string;
  /** Aborts the call (and this caller's wait for a connection). */
  signal?: AbortSignal;
  /** Timeout of the call itself; default the server's `timeoutMs` or 60 s. */
  timeoutMs?: number;
  /**
   * A config for this call only (a server the host keeps per user), validated like any other (a bad one is a
   * `ConfigError` naming the field). It is caller-supplied, so it is never trusted like the operator's config:
   * it is taken as `source: 'user'` whatever its `source` says. Hence the default trust checker refuses On-Behalf-Of
   * for it (`OboError('untrusted')`, nothing sent), the SSRF guard of user configs applies, the parser's rules for
   * user configs apply, and it needs a user (it is served from that user's pool, on a connection of its own that
   * neither replaces nor is replaced by the registered config's). Configs the host trusts come from
   * {@link MCPManager.resolveServerConfig} (or `servers` / `upsertServer`), which keep their own `source`.
   */
  serverConfig?: unknown;
  /** Receives the server's progress notifications for this call; see {@link CallToolOptions.onProgress}. */
  onProgress?: CallToolOptions['onProgress'];
  /** Restart `timeoutMs` on each progress notification (default `false`); see {@link CallToolOptions.resetTimeoutOnProgress}. */
  resetTimeoutOnProgress?: boolean;
  /** Bound on the whole call in ms, however much progress arrives; see {@link CallToolOptions.maxTotalTimeoutMs}. */
  maxTotalTimeoutMs?: number;
}

/**
 * Arguments of {@link MCPManager.callTool}.
 *
 * @example
 * ```ts
 * const args: CallToolArgs = { user, serverName: 'files', toolName: 'list_files', arguments: { path: '/' }, timeoutMs: 30_000 };
 * const result = await manager.callTool(args);
 * ```
 */
export interface CallToolArgs extends ManagerCallArgs {
  /** The tool's name. */
  toolName: string;
  /** The tool's arguments: a plain object, or absent (anything else is a `TypeError`, nothing sent). */
  arguments?: Record<string, unknown>;
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
export interface ListToolsArgs extends ManagerCallArgs {}

/**
 * Arguments of {@link MCPManager.readResource}, {@link MCPManager.subscribeResource} and
 * {@link MCPManager.unsubscribeResource}.
 *
 * @example
 * ```ts
 * const args: ResourceArgs = { user, serverName: 'notes', uri: 'notes://today' };
 * const { contents } = await manager.readResource(args);
 * ```
 */
export interface ResourceArgs extends ManagerCallArgs {
  /** The resource's URI. */
  uri: string;
}

/**
 * Arguments of {@link MCPManager.getPrompt}.
 *
 * @example
 * ```ts
 * const args: GetPromptArgs = { user, serverName: 'notes', name: 'summarize', arguments: { style: 'bullets' } };
 * const { messages } = await manager.getPrompt(args);
 * ```
 */
export interface GetPromptArgs extends ManagerCallArgs {
  /** The prompt's name. */
  name: string;
  /** The prompt's arguments (strings). */
  arguments?: Record<string, string>;
}

/**
 * Arguments of {@link MCPManager.complete}: a {@link CompleteParams} and the usual per-call arguments.
 *
 * @example
 * ```ts
 * const args: CompleteArgs = { user, serverName: 'notes', ref: { type: 'ref/prompt', name: 'summarize' }, argument: { name: 'style', value: 'bu' } };
 * const { values } = await manager.complete(args);
 * ```
 */
export interface CompleteArgs extends ManagerCallArgs, CompleteParams {}

/**
 * Arguments of {@link MCPManager.setLoggingLevel}.
 *
 * @example
 * ```ts
 * const args: SetLoggingLevelArgs = { user, serverName: 'notes', level: 'warning' };
 * await manager.setLoggingLevel(args);
 * ```
 */
export interface SetLoggingLevelArgs extends ManagerCallArgs {
  /** The lowest level the server should send. */
  level: LoggingLevel;
}

/**
 * Arguments of {@link MCPManager.withConnection}.
 *
 * @example
 * ```ts
 * const args: WithConnectionArgs = { user, serverName: 'notes', signal: req.signal };
 * const instructions = await manager.withConnection(args, async (connection) => connection.client?.getInstructions());
 * ```
 */
export interface WithConnectionArgs {
  /** The user; required for user-scoped servers. */
  user?: UserContext;
  /** The server's name. */
  serverName: string;
  /** Aborts this caller's wait for a connection (pass it on to the calls you make in the callback). */
  signal?: AbortSignal;
  /** A config for this call only, always taken as `source: 'user'`; see {@link ManagerCallArgs.serverConfig}. */
  serverConfig?: unknown;
}

/**
 * The operations {@link MCPManager.wrapOperation} wraps: one per public method that uses a connection.
 *
 * @example
 * ```ts
 * const reads: ManagerOperation[] = ['listTools', 'listResources', 'listResourceTemplates', 'readResource', 'listPrompts', 'getPrompt', 'complete'];
 * ```
 */
export type ManagerOperation =
  | 'callTool'
  | 'listTools'
  | 'listResources'
  | 'listResourceTemplates'
  | 'readResource'
  | 'subscribeResource'
  | 'unsubscribeResource'
  | 'listPrompts'
  | 'getPrompt'
  | 'complete'
  | 'setLoggingLevel'
  | 'withConnection';

/**
 * What a {@link MCPManager.wrapOperation} override sees of an operation.
 *
 * @example
 * ```ts
 * class TimedManager extends MCPManager {
 *   protected override async wrapOperation<T>(ctx: OperationContext, run: () => Promise<T>): Promise<T> {
 *     const started = performance.now();
 *     try {
 *       return await run();
 *     } finally {
 *       metrics.histogram('mcp.op_ms', performance.now() - started, { op: ctx.operation, server: ctx.serverName, scope: ctx.scope });
 *     }
 *   }
 * }
 * ```
 */
export interface OperationContext {
  /** Which operation. */
  operation: ManagerOperation;
  /**
   * Its parameters: `callTool` `{ toolName, arguments }`; `readResource`, `subscribeResource`,
   * `unsubscribeResource` `{ uri }`; `getPrompt` `{ name, arguments }`; `complete` `{ ref, argument, context }`;
   * `setLoggingLevel` `{ level }`; the list operations and `withConnection` `{}`.
   */
  params: Readonly<Record<string, unknown>>;
  /** The server's name. */
  serverName: string;
  /** The user, when there is one. */
  user: UserContext | undefined;
  /** The server's config used for this operation (registered, resolved for the user, or the per-call one). */
  config: ServerConfig;
  /** `user` or `app`. */
  scope: PoolScope;
  /** The leased connection (leased until the returned promise settles). */
  connection: MCPConnection;
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
  /**
   * A config for this call only (servers the host keeps per user); validated like any other and always taken as
   * `source: 'user'` (never trusted for On-Behalf-Of by default); see {@link ManagerCallArgs.serverConfig}.
   */
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
 * What {@link MCPManager} needs of its circuit breaker for connects; what {@link MCPManager.createCircuitBreaker}
 * returns. The manager asks it before every connect (not before calls on a connection already open), tells it how
 * each connect ended, and resets a server on `upsertServer` / `removeServer`. The manager's own breaker (settings:
 * {@link CircuitBreakerOptions}) is made by `super.createCircuitBreaker(options)`: an override may return it wrapped
 * (delegating every member), or a breaker of its own (e.g. one whose state every replica shares).
 *
 * @example
 * ```ts
 * class PausableManager extends MCPManager {
 *   readonly paused = new Set<string>();
 *
 *   protected override createCircuitBreaker(options: CircuitBreakerOptions): ConnectionCircuitBreaker {
 *     const breaker = super.createCircuitBreaker(options);
 *     return {
 *       check: (serverName) => {
 *         if (this.paused.has(serverName)) throw new SwitchboardError('circuit_open', `"${serverName}" is paused`, { serverName, retryable: true });
 *         return breaker.check(serverName);
 *       },
 *       success: (serverName) => breaker.success(serverName),
 *       failure: (serverName, principal, error, trial) => breaker.failure(serverName, principal, error, trial),
 *       reset: (serverName) => breaker.reset(serverName),
 *     };
 *   }
 * }
 * ```
 */
export interface ConnectionCircuitBreaker {
  /**
   * Called before each connect to `serverName`. Throw to refuse it: the caller gets that error and nothing is sent
   * (the manager's own breaker throws a retryable `SwitchboardError('circuit_open')`). Return `true` when this
   * connect is the one trial let through after an open period, else `false`; the manager hands the value back to
   * {@link ConnectionCircuitBreaker.failure} as `trial`.
   */
  check(serverName: string): boolean;
  /** A connect to `serverName` succeeded. */
  success(serverName: string): void;
  /**
   * A connect to `serverName` failed with `error`. `principal` says for whom, as an opaque key: one per user
   * (tenant and id) on a user connection, one shared key for the app's connections, so that distinct principals
   * tell a server failing for everyone from one user's trouble. Every connect error arrives here, also those that
   * say nothing about the server (an `OboError`, a 401/403 for that user, a bad per-user config); the manager's own
   * breaker counts only server-level failures (unreachable, timing out, failing `initialize`).
   */
  failure(serverName: string, principal: string, error: unknown, trial: boolean): void;
  /** Forgets what is known of `serverName`: its config changed, or it was removed. */
  reset(serverName: string): void;
}

/**
 * Calls tools on many MCP servers for many users. One pool of connections per user, shared connections for
 * servers that need no identity, idle eviction, joined concurrent connects, stale connections replaced after a
 * config change, and a fresh OBO bearer on every HTTP request of an OBO server, failing closed.
 *
 * Beyond tools it carries the whole MCP client surface per user (resources, subscriptions, prompts,
 * completions, the log level), routed, trust-checked and leased like {@link callTool}, and reports the servers'
 * notifications as events naming the user.
 *
 * Many managers may live in one process; nothing is global. Host apps may subclass it and override the
 * protected extension points: {@link resolveServerConfig} (may be async), {@link isUserScoped},
 * {@link wrapOperation} (every operation), {@link wrapToolCall} (tool calls), {@link createUserPool} and
 * {@link createAppPool} (their own pool subclasses), {@link createCircuitBreaker} (their own breaker); the
 * connection factory is injected (`connectionFactory`). See docs/extending.md.
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
  /** The `oauth` option; the authorizer is made on first use (client-credentials servers need none of the option). */
  readonly #oauthOptions: OAuthOptions | undefined;
  #oauthAuthorizer: OAuthAuthorizer | undefined;
  readonly #coordinator: Coordinator | undefined;
  /** This manager's id on the coordinator's channel, and its config-change sequence per server. */
  readonly #replicaId = randomUUID();
  readonly #configSeq = new Map<string, number>();
  /** Ends the subscription to the coordinator's invalidations. */
  #unsubscribe: (() => void) | undefined;
  readonly #factory: MCPConnectionFactory;
  readonly #ownsFactory: boolean;
  /**
   * Made on first use by {@link createUserPool} / {@link createAppPool} / {@link createCircuitBreaker} (so subclass
   * fields exist by then).
   */
  #userPool: UserConnectionManager | undefined;
  #appPool: SharedConnectionPool | undefined;
  #breaker: ConnectionCircuitBreaker | undefined;
  readonly #userPoolOptions: UserConnectionManagerOptions;
  readonly #appPoolOptions: AppConnectionPoolOptions;
  /** The `circuitBreaker` option: `false` turns the breaker off (then none is made). */
  readonly #breakerOptions: CircuitBreakerOptions | false;
  readonly #handlers: ConnectionHandlers | undefined;
  readonly #logger: Logger;
  /** The caller record of each user connection: every acquire records its caller there. */
  readonly #callers = new WeakMap<MCPConnection, CallerContext>();
  /** Resource subscriptions made through the manager, per connection: uri → its subscribers (counted per caller) and the lease they hold. */
  readonly #subscriptions = new WeakMap<MCPConnection, Map<string, Subscription>>();
  /** How many subscriptions each caller holds, per server and URI ({@link subscriptionKey}): an unsubscribe of none does nothing. */
  readonly #subscribed = new Map<string, number>();
  /** How many times each server name was removed: an acquire that awaited a config meanwhile finds its server gone. */
  readonly #removals = new Map<string, number>();
  /** How many times each server's config changed (see #acquire: a call that resolved the old one resolves again). */
  readonly #configChanges = new Map<string, number>();
  /** Connections that left their pool: a subscription arriving late must not hold them. */
  readonly #gone = new WeakSet<MCPConnection>();
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
    this.#breakerOptions = opts.circuitBreaker === false ? false : { ...opts.circuitBreaker };
    // The breaker is made on first use: its settings are checked now, not at the first connect.
    if (this.#breakerOptions) checkBreakerOptions(this.#breakerOptions);
    const onSampling = fn(opts.onSampling, 'MCPManager: onSampling');
    const roots = fn(opts.roots, 'MCPManager: roots');
    const onElicitation = fn(opts.onElicitation, 'MCPManager: onElicitation');
    // Declared as capabilities only when given.
    this.#handlers =
      onSampling || roots || onElicitation
        ? { ...(onSampling ? { sampling: onSampling } : {}), ...(roots ? { roots } : {}), ...(onElicitation ? { elicitation: onElicitation } : {}) }
        : undefined;
    this.#resolver = opts.oboTokenResolver;
    this.#userAuth = opts.userAuthHeaders;
    if (opts.oauth !== undefined && (typeof opts.oauth !== 'object' || opts.oauth === null)) throw optionError('MCPManager: oauth', 'an options object', opts.oauth);
    this.#oauthOptions = opts.oauth;
    const coordinator = opts.coordinator;
    if (coordinator !== undefined && (typeof coordinator !== 'object' || coordinator === null || typeof coordinator.subscribe !== 'function' || typeof coordinator.publish !== 'function')) {
      throw optionError('MCPManager: coordinator', 'a Coordinator (e.g. from createRedisCoordinator)', coordinator);
    }
    this.#coordinator = coordinator;
    if (opts.oauth) this.#authorizer(); // bad oauth options throw here, not at the first call
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

    this.#userPoolOptions = {
      connect: (req) => this.#connect(req.serverName, req.config, req.user, req.signal),
      // The manager passes each acquire its config; this answers direct `acquire(user, name)` calls of a subclass.
      getServerConfig: (name, user) => this.resolveServerConfig(name, user),
      idleTimeoutMs: opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
      ...(opts.maxConnectionsPerUser === undefined ? {} : { maxConnectionsPerUser: opts.maxConnectionsPerUser }),
      ...(opts.maxUserConnections === undefined ? {} : { maxUserConnections: opts.maxUserConnections }),
      hooks: {
        onConnect: (k, _c, durationMs) => this.#emit('connect', { serverName: k.serverName, scope: 'user', ...who(k), durationMs }),
        onEvict: (k, reason, c) => {
          this.#left(c);
          this.#emit('evict', { serverName: k.serverName, scope: 'user', ...who(k), reason });
        },
        onDisconnect: (k, e, c) => {
          this.#left(c);
          this.#emit('disconnect', { serverName: k.serverName, scope: 'user', ...who(k), ...e });
        },
        onError: (k, error) => this.#emitError(k.serverName, k.userId, error),
      },
    };
    this.#appPoolOptions = {
      connect: (req) => this.#connect(req.serverName, req.config, undefined, req.signal),
      ...(opts.appIdleTimeoutMs === undefined ? {} : { idleTimeoutMs: opts.appIdleTimeoutMs }),
      hooks: {
        onConnect: (k, _c, durationMs) => this.#emit('connect', { serverName: k.serverName, scope: 'app', durationMs }),
        onEvict: (k, reason, c) => {
          this.#left(c);
          this.#emit('evict', { serverName: k.serverName, scope: 'app', reason });
        },
        onDisconnect: (k, e, c) => {
          this.#left(c);
          this.#emit('disconnect', { serverName: k.serverName, scope: 'app', ...e });
        },
        onError: (k, error) => this.#emitError(k.serverName, undefined, error),
      },
    };
    this.#unsubscribe = coordinator?.subscribe((event) => this.#received(event));
  }

  /**
   * Calls a tool. For an OBO server the trust checker runs first, on every call; refused → `OboError('untrusted')`
   * and nothing is sent. The connection is leased for the length of the call, so eviction waits for it.
   * {@link wrapOperation} wraps {@link wrapToolCall}, which wraps the call.
   */
  async callTool(args: CallToolArgs): Promise<CallToolResult> {
    const { toolName } = args;
    if (typeof toolName !== 'string' || toolName === '') throw new TypeError('callTool: toolName must be a non-empty string');
    if (args.arguments !== undefined && !isPlainObject(args.arguments)) {
      throw new TypeError(`callTool: arguments must be a plain object of the tool's arguments, or undefined (got ${describe(args.arguments)})`);
    }
    return this.#run('callTool', args, { toolName, arguments: args.arguments }, (connection, opts, op) => {
      const ctx: ToolCallContext = { serverName: op.serverName, toolName, arguments: args.arguments, user: op.user, config: op.config, scope: op.scope, connection };
      return this.wrapToolCall(ctx, () => connection.callTool(toolName, args.arguments, opts));
    });
  }

  /** Lists a server's tools (all pages; cached by the connection until the server says the list changed). */
  listTools(args: ListToolsArgs): Promise<Tool[]> {
    return this.#run('listTools', args, {}, (connection, opts) => connection.listTools(opts));
  }

  /**
   * Lists a server's resources (all pages; cached by the connection until the server says the list changed,
   * then `resourcesChanged` is emitted). See {@link MCPConnection.listResources}.
   *
   * @example
   * ```ts
   * const uris = (await manager.listResources({ user, serverName: 'notes' })).map((r) => r.uri);
   * ```
   */
  listResources(args: ManagerCallArgs): Promise<Resource[]> {
    return this.#run('listResources', args, {}, (connection, opts) => connection.listResources(opts));
  }

  /**
   * Lists a server's resource templates (all pages, cached like {@link listResources}).
   *
   * @example
   * ```ts
   * const templates = await manager.listResourceTemplates({ user, serverName: 'notes' });
   * console.log(templates.map((t) => t.uriTemplate));
   * ```
   */
  listResourceTemplates(args: ManagerCallArgs): Promise<ResourceTemplate[]> {
    return this.#run('listResourceTemplates', args, {}, (connection, opts) => connection.listResourceTemplates(opts));
  }

  /**
   * Reads a resource with the caller's credentials. See {@link MCPConnection.readResource}.
   *
   * @example
   * ```ts
   * const { contents } = await manager.readResource({ user, serverName: 'notes', uri: 'notes://today' });
   * ```
   */
  readResource(args: ResourceArgs): Promise<ReadResourceResult> {
    const { uri } = args;
    return this.#run('readResource', args, { uri }, (connection, opts) => connection.readResource(uri, opts));
  }

  /**
   * Subscribes to a resource: the server's `notifications/resources/updated` for it arrive as `resourceUpdated`
   * events naming the server and, on a user connection, the user. A subscription **holds a lease** on its
   * connection until {@link unsubscribeResource}: a subscribed connection is not evicted for idleness (nor chosen
   * to make room under the limits), so the updates keep coming. It ends when the connection leaves its pool
   * otherwise (`disconnectUser`, `removeServer`, a config change, `close()`: see the `evict` event); subscribe
   * again after that; a subscribe whose connection leaves its pool while it is on the wire rejects
   * (`connection_closed`). Subscriptions are counted per connection, URI and caller (the user, or the app when
   * there is none): subscribing twice needs two unsubscribes, and only the connection's last one is sent to the
   * server (on a shared app connection the callers share it; one caller cannot end another's). A
   * {@link wrapOperation} that fails after `run()` undoes the subscription.
   *
   * @example
   * ```ts
   * manager.on('resourceUpdated', (e) => { if (e.userId === user.id) void refresh(e.uri); });
   * await manager.subscribeResource({ user, serverName: 'notes', uri: 'notes://today' });
   * ```
   */
  subscribeResource(args: ResourceArgs): Promise<void> {
    const { uri } = args;
    return this.#run('subscribeResource', args, { uri }, async (connection, opts, op, hold, onFailure) => {
      const caller = subscriberKey(op.user);
      let entry = this.#subscriptions.get(connection)?.get(uri);
      if (!entry) {
        await connection.subscribeResource(uri, opts);
        if (this.#gone.has(connection)) {
          // It left its pool while the request was on the wire: nothing holds it open, no update will come.
          throw new SwitchboardError('connection_closed', `The connection to "${op.serverName}" was closed while subscribing to a resource; subscribe again`, {
            serverName: op.serverName,
          });
        }
        // Another subscribe of this URI may have finished while this one was on the wire.
        let subs = this.#subscriptions.get(connection);
        entry = subs?.get(uri);
        if (!entry) {
          if (!subs) this.#subscriptions.set(connection, (subs = new Map()));
          entry = { serverName: op.serverName, callers: new Map(), lease: hold() };
          subs.set(uri, entry);
        }
      }
      const recorded = entry;
      recorded.callers.set(caller, (recorded.callers.get(caller) ?? 0) + 1);
      this.#count(caller, recorded.serverName, uri, 1);
      // A wrapOperation that fails after this must not leave the subscription (and its lease) behind.
      onFailure(async () => {
        if (this.#dropSubscriber(connection, uri, recorded, caller)) await connection.unsubscribeResource(uri, opts.user ? { user: opts.user } : {});
      });
    });
  }

  /**
   * Ends one subscription made with {@link subscribeResource} by this caller (the user, or the app when there is
   * none); the last one of a URI on a connection sends `resources/unsubscribe` and releases the connection's lease
   * (its idle clock starts). A caller with no such subscription changes nothing: no connect, no request (on a
   * shared app connection one caller cannot end another's).
   *
   * @example
   * ```ts
   * await manager.unsubscribeResource({ user, serverName: 'notes', uri: 'notes://today' });
   * ```
   */
  unsubscribeResource(args: ResourceArgs): Promise<void> {
    if (!args || typeof args !== 'object') return Promise.reject(new TypeError('unsubscribeResource: arguments must be an object'));
    const { uri } = args;
    const caller = subscriberKey(args.user);
    // No subscription of this caller to end: no connection, no request.
    if (!this.#closing && !this.#subscribed.has(subscriptionKey(caller, args.serverName, uri))) return Promise.resolve();
    return this.#run('unsubscribeResource', args, { uri }, async (connection, opts) => {
      const entry = this.#subscriptions.get(connection)?.get(uri);
      // Only the last subscriber of the connection sends it (on a shared connection, other callers' stay).
      if (entry && this.#dropSubscriber(connection, uri, entry, caller)) await connection.unsubscribeResource(uri, opts);
    });
  }

  /**
   * Lists a server's prompts (all pages; cached until the server says the list changed, then `promptsChanged`).
   *
   * @example
   * ```ts
   * const names = (await manager.listPrompts({ user, serverName: 'notes' })).map((p) => p.name);
   * ```
   */
  listPrompts(args: ManagerCallArgs): Promise<Prompt[]> {
    return this.#run('listPrompts', args, {}, (connection, opts) => connection.listPrompts(opts));
  }

  /**
   * Gets a prompt with its arguments filled in. See {@link MCPConnection.getPrompt}.
   *
   * @example
   * ```ts
   * const { messages } = await manager.getPrompt({ user, serverName: 'notes', name: 'summarize', arguments: { style: 'bullets' } });
   * ```
   */
  getPrompt(args: GetPromptArgs): Promise<GetPromptResult> {
    const { name } = args;
    return this.#run('getPrompt', args, { name, arguments: args.arguments }, (connection, opts) => connection.getPrompt(name, args.arguments, opts));
  }

  /**
   * Asks for completions of a prompt or resource template argument. See {@link MCPConnection.complete}.
   *
   * @example
   * ```ts
   * const { values } = await manager.complete({ user, serverName: 'notes', ref: { type: 'ref/prompt', name: 'summarize' }, argument: { name: 'style', value: 'b' } });
   * ```
   */
  complete(args: CompleteArgs): Promise<Completion> {
    const params: CompleteParams = { ref: args.ref, argument: args.argument, ...(args.context === undefined ? {} : { context: args.context }) };
    return this.#run('complete', args, { ...params }, (connection, opts) => connection.complete(params, opts));
  }

  /**
   * Sets the level of the log messages a server sends on this (user's) connection; they arrive as `serverLog`
   * events naming the server and the user. The level is set again on every new session of that connection.
   * On a shared (app) server there is one connection for every caller: the level set is then every caller's.
   *
   * @example
   * ```ts
   * manager.on('serverLog', (e) => logger.info({ server: e.serverName, user: e.userId, level: e.level }, 'MCP server log'));
   * await manager.setLoggingLevel({ user, serverName: 'notes', level: 'warning' });
   * ```
   */
  setLoggingLevel(args: SetLoggingLevelArgs): Promise<void> {
    const { level } = args;
    return this.#run('setLoggingLevel', args, { level }, (connection, opts) => connection.setLoggingLevel(level, opts));
  }

  /**
   * Runs `fn` with the connection a call for this user and server would use, **leased** until the promise `fn`
   * returns settles: nothing evicts it under you. Routing and the OBO trust check are those of {@link callTool}.
   * On a user connection pass `{ user }` to the calls you make (each call's credentials are its caller's); the
   * default is the most recent caller of the connection, which is this user. `connection.client` is the SDK
   * `Client` (read-only) for what the connection does not wrap.
   *
   * @example
   * ```ts
   * const caps = await manager.withConnection({ user, serverName: 'notes' }, async (connection) => {
   *   await connection.client?.ping();
   *   return connection.client?.getServerCapabilities();
   * });
   * ```
   */
  withConnection<T>(args: WithConnectionArgs, fn: (connection: MCPConnection) => Promise<T> | T): Promise<T> {
    if (typeof fn !== 'function') return Promise.reject(new TypeError('withConnection: fn must be a function'));
    const { user, serverName, signal, serverConfig } = args ?? ({} as WithConnectionArgs);
    const callArgs: ManagerCallArgs = { serverName, ...(user ? { user } : {}), ...(signal ? { signal } : {}), ...(serverConfig === undefined ? {} : { serverConfig }) };
    return this.#run('withConnection', callArgs, {}, async (connection) => fn(connection));
  }

  /**
   * The connection a call for this user and server would use, connecting if needed. The connection is **not
   * leased**: it may be evicted (closed) after `idleTimeoutMs` even while you hold it. Prefer {@link withConnection},
   * which holds a lease for its callback, or the operations ({@link callTool}, {@link readResource}, …).
   */
  async getConnection(args: GetConnectionArgs): Promise<MCPConnection> {
    const config = args.serverConfig === undefined ? undefined : this.#parseCallConfig(args.serverName, args.serverConfig);
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
   * makes the server's connections stale: they leave their pools at once (`evict`, reason `'stale'`; resource
   * subscriptions on them end), in-flight calls finish on the old ones, and the next call connects anew.
   */
  upsertServer(name: string, config: unknown): void {
    this.#assertOpen(name);
    this.#upsert(name, this.#parseOne(name, config), true);
    this.#publish({ kind: 'upsertServer', serverName: name, config }, name);
  }

  #upsert(name: string, parsed: ServerConfig, local: boolean): void {
    const previous = this.#servers.get(name);
    this.#servers.set(name, parsed);
    const changed = !previous || configFingerprint(previous) !== configFingerprint(parsed);
    // A received echo of the same config (several replicas) changes nothing, not even the breaker.
    if (local || changed) this.#breaker?.reset(name);
    // The server's connections leave their pools now, as stale (closed after their calls in flight; subscriptions
    // end with an `evict` event saying 'stale'), instead of at each user's next call: a connection held by a
    // subscription would otherwise stay on the old config for as long as the subscription lasts. Started
    // synchronously, before any call can connect with the new config.
    if (previous && changed) {
      this.#configChanges.set(name, (this.#configChanges.get(name) ?? 0) + 1);
      // Each pool on its own, so that one throwing (a host's pool) neither stops the other nor the publication.
      for (const pool of [this.#userPool, this.#appPool]) {
        if (!pool) continue;
        try {
          Promise.resolve(pool.removeServer(name, 'stale')).catch((err: unknown) => this.#emitError(name, undefined, err));
        } catch (err) {
          this.#emitError(name, undefined, err);
        }
      }
    }
  }

  /** Removes a server and closes its connections (after their in-flight calls). With a coordinator, on every replica. */
  async removeServer(name: string): Promise<void> {
    this.#publish({ kind: 'removeServer', serverName: name }, name);
    await this.#remove(name);
  }

  async #remove(name: string): Promise<void> {
    this.#servers.delete(name);
    this.#removals.set(name, (this.#removals.get(name) ?? 0) + 1);
    this.#breaker?.reset(name);
    await Promise.all([this.#userPool?.removeServer(name), this.#appPool?.removeServer(name)]);
  }

  /**
   * Completes a user's authorization at a server: call it from the host's OAuth callback route with the URL the
   * authorization server redirected the browser to (or its `code` and `state`). Checks that the `state` is one
   * this manager's flow store holds (unused, unexpired), that the callback's `iss` is the flow's authorization
   * server (RFC 9207), and, when `opts.user` is given (the signed-in user of the callback request: pass it),
   * that the flow was started by that user; then exchanges the code (PKCE) and stores the tokens. The user's
   * next call goes through.
   *
   * @returns the server and user the authorization was for.
   * @throws AuthorizationError `authorization_invalid_state` (unknown, replayed or expired), `authorization_user_mismatch`,
   *   `authorization_issuer_mismatch`, `authorization_denied` (the user declined), `authorization_failed` (the token request).
   *
   * @example
   * ```ts
   * // GET /oauth/callback?code=…&state=…
   * const { serverName } = await manager.completeAuthorization(new URL(req.url!, 'https://chat.example.com'), { user: sessionUser });
   * res.end(`Connected to ${serverName}. You can close this window.`);
   * ```
   */
  completeAuthorization(
    callback: URL | string | { code: string; state: string; iss?: string },
    opts: { user?: UserContext } = {},
  ): Promise<{ serverName: string; userId: string; tenantId?: string }> {
    if (!this.#oauthOptions) return Promise.reject(new TypeError('completeAuthorization: the manager has no oauth option'));
    const authorizer = this.#authorizer();
    const configOf = (name: string) => {
      const c = this.#servers.get(name);
      return c && oauthOf(c) && 'url' in c ? c : undefined;
    };
    return authorizer.complete(
      callback,
      opts.user,
      (name) => configOf(name)?.url,
      (name) => {
        const c = configOf(name);
        return c ? oauthSettings(name, c) : undefined;
      },
    );
  }

  /**
   * Revokes a user's authorization at a server, in this package: forgets the user's tokens and pending flow for
   * it and closes the user's connections to it. The next call needs the user's consent again. (The grant at the
   * authorization server itself is the user's to revoke there.)
   *
   * @example
   * ```ts
   * await manager.revokeAuthorization({ user: { id: 'alice' }, serverName: 'linear' });
   * ```
   */
  async revokeAuthorization(args: { user: UserContext; serverName: string }): Promise<void> {
    if (!args?.user?.id) throw new SwitchboardError('user_required', 'revokeAuthorization needs a user with an id', { serverName: args?.serverName });
    // Connections first: their session-ending DELETE still carries the token it was opened with.
    await this.#userPool?.disconnect(args.user, args.serverName);
    await this.#oauthAuthorizer?.revoke(args.serverName, args.user);
    const { id, tenantId } = args.user;
    this.#publish({ kind: 'revokeAuthorization', userId: id, ...(tenantId === undefined ? {} : { tenantId }), serverName: args.serverName }, args.serverName);
  }

  /**
   * Closes every connection of a user (e.g. at sign-out) and cancels their pending connects. Pass `tenantId`
   * to close only that tenant's user with this id.
   */
  disconnectUser(userId: string, tenantId?: string): Promise<void> {
    this.#publish({ kind: 'disconnectUser', userId, ...(tenantId === undefined ? {} : { tenantId }) });
    return this.#userPool?.disconnectUser(userId, tenantId) ?? Promise.resolve();
  }

  /** Publishes a change to the other replicas; a failure goes to the `error` event, the local change stands. */
  #publish(event: InvalidationEvent, serverName?: string): void {
    if (!this.#coordinator || this.#closing) return;
    const userId = 'userId' in event ? event.userId : undefined;
    let stamped = event;
    if (event.kind === 'upsertServer' || event.kind === 'removeServer') {
      const seq = (this.#configSeq.get(event.serverName) ?? 0) + 1;
      this.#configSeq.set(event.serverName, seq);
      stamped = { ...event, origin: this.#replicaId, seq };
    }
    this.#coordinator.publish(stamped).catch((err: unknown) => this.#emitError(serverName, userId, err));
  }

  /**
   * Applies an invalidation received from the coordinator: every replica's, this one's own echo included (each
   * is idempotent). A config that does not validate is logged and ignored.
   */
  #received(event: InvalidationEvent): void {
    if (this.#closing || !event || typeof event !== 'object') return;
    // The echo of a config change this replica has replaced since (upsert x1, upsert x2, echo of x1) would flip it
    // back to x1 for a moment: skipped. Its latest change's echo, and every other replica's, apply in channel order.
    if ((event.kind === 'upsertServer' || event.kind === 'removeServer') && event.origin === this.#replicaId && (event.seq ?? 0) < (this.#configSeq.get(event.serverName) ?? 0)) return;
    const failed = (err: unknown) => this.#emitError(undefined, undefined, err);
    switch (event.kind) {
      case 'disconnectUser':
        if (typeof event.userId !== 'string') return;
        this.#userPool?.disconnectUser(event.userId, event.tenantId).catch(failed);
        return;
      case 'revokeAuthorization': {
        if (typeof event.userId !== 'string' || typeof event.serverName !== 'string') return;
        const user: UserContext = { id: event.userId, ...(event.tenantId === undefined ? {} : { tenantId: event.tenantId }) };
        void (async () => {
          await this.#userPool?.disconnect(user, event.serverName);
          // Forgets this replica's pending flow and step-up state (the tokens are shared: deleting again is harmless).
          if (this.#oauthOptions || this.#oauthAuthorizer) await this.#authorizer().revoke(event.serverName, user);
        })().catch(failed);
        return;
      }
      case 'upsertServer': {
        if (typeof event.serverName !== 'string') return;
        let parsed: ServerConfig;
        try {
          parsed = this.#parseOne(event.serverName, event.config);
        } catch (err) {
          this.#logger.warn({ serverName: event.serverName, code: (err as SwitchboardError).code }, 'mcp-switchboard ignored an invalid upsertServer from another replica');
          return;
        }
        this.#upsert(event.serverName, parsed, false);
        return;
      }
      case 'removeServer':
        if (typeof event.serverName !== 'string') return;
        this.#remove(event.serverName).catch(failed);
        return;
      default:
        return;
    }
  }

  /** Names of the configured servers. */
  serverNames(): string[] {
    return [...this.#servers.keys()];
  }

  /** Sizes and counters. */
  stats(): MCPManagerStats {
    const u = this.#users().stats();
    const a = this.#app().stats();
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
      this.#unsubscribe?.();
      this.#unsubscribe = undefined;
      this.#closing = (async () => {
        await Promise.all([this.#userPool?.close(), this.#appPool?.close()]);
        if (this.#ownsFactory) await this.#factory.close();
      })();
    }
    return this.#closing;
  }

  /**
   * Extension point: the config of a server for a user. Override to keep per-user or per-tenant configs, e.g.
   * in a database (it may be async; return a validated config, from {@link parseServerConfig}: a raw one is a
   * `TypeError` saying so);
   * `undefined` means unknown server. Called once per operation that has no per-call `serverConfig`, so cache
   * what is slow to load. A config that differs from the registered one (or a server with no registered config)
   * is served from the user's pool when there is a user, on a connection keyed by that config: per-user configs
   * never share, or thrash, one connection. This is host code: the config keeps its own `source` (unlike a
   * per-call `serverConfig`, always `source: 'user'`). A server removed while this is awaited is `unknown_server`.
   */
  protected resolveServerConfig(serverName: string, user: UserContext | undefined): Promise<ServerConfig | undefined> | ServerConfig | undefined {
    void user;
    return this.#servers.get(serverName);
  }

  /**
   * Extension point: whether a server needs a per-user connection. Overrides can only add user scoping:
   * a server that {@link requiresUserScopedConnection} is never shared, whatever this returns, and neither is a
   * config that differs from the registered one (see {@link resolveServerConfig}).
   */
  protected isUserScoped(serverName: string, config: ServerConfig): boolean {
    void serverName;
    return requiresUserScopedConnection(config);
  }

  /**
   * Extension point: wraps every operation that uses a connection ({@link ManagerOperation}: tool calls, lists,
   * resource reads and subscriptions, prompts, completions, the log level, {@link withConnection}), after
   * routing, the trust check and the lease; call `run()` to perform it. For `callTool` it wraps
   * {@link wrapToolCall}. The connection stays leased until the returned promise settles. What fails before the
   * lease never reaches it (an unknown server, a refused trust check, the SSRF guard, an open circuit, a failed
   * connect, a pool limit): the caller gets that error (override the public method too to see those); and its
   * timings start once the connection is ready (a cold connect is not in them).
   */
  protected wrapOperation<T>(ctx: OperationContext, run: () => Promise<T>): Promise<T> {
    void ctx;
    return run();
  }

  /**
   * Extension point: wraps every tool call (auditing, metrics, result filtering, retries). Call `next()` to
   * make the call; the connection stays leased until the returned promise settles. Runs inside {@link wrapOperation}.
   */
  protected wrapToolCall(ctx: ToolCallContext, next: () => Promise<CallToolResult>): Promise<CallToolResult> {
    void ctx;
    return next();
  }

  /**
   * Extension point: makes the pool of user connections, once, on first use. Return a
   * {@link UserConnectionManager} (or subclass) built with `options` (you may change its limits or wrap its
   * hooks; keep `connect` and the hooks, which carry the manager's credentials, circuit breaker and events).
   * Every user-scoped operation acquires its lease through that pool's `acquire`, after the OBO trust check.
   */
  protected createUserPool(options: UserConnectionManagerOptions): UserConnectionManager {
    return new UserConnectionManager(options);
  }

  /**
   * Extension point: makes the pool of shared app connections, once, on first use; see {@link createUserPool}.
   * Return `super.createAppPool(options)` (with changed options, e.g. `idleTimeoutMs`), or a wrapper delegating to it.
   */
  protected createAppPool(options: AppConnectionPoolOptions): SharedConnectionPool {
    return new AppConnectionPool(options);
  }

  /**
   * Extension point: makes the circuit breaker for connects, once, at the first connect (so subclass fields exist
   * by then), from the `circuitBreaker` option (`{}` when it was not given; not called when it is `false`). Return
   * `super.createCircuitBreaker(options)` (with changed options), a wrapper delegating to it, or a breaker of your
   * own; see {@link ConnectionCircuitBreaker} for what the manager asks of it.
   *
   * @example
   * ```ts
   * class FleetBreakerManager extends MCPManager {
   *   protected override createCircuitBreaker(options: CircuitBreakerOptions): ConnectionCircuitBreaker {
   *     // The manager's own breaker, opening sooner than the option says for this deployment.
   *     return super.createCircuitBreaker({ ...options, failureThreshold: 3 });
   *   }
   * }
   * ```
   */
  protected createCircuitBreaker(options: CircuitBreakerOptions): ConnectionCircuitBreaker {
    return new CircuitBreaker(options);
  }

  #users(): UserConnectionManager {
    return (this.#userPool ??= this.createUserPool({ ...this.#userPoolOptions }));
  }

  #app(): SharedConnectionPool {
    return (this.#appPool ??= this.createAppPool({ ...this.#appPoolOptions }));
  }

  /** The circuit breaker, made on first use; `undefined` when the `circuitBreaker` option turned it off. */
  #circuit(): ConnectionCircuitBreaker | undefined {
    if (this.#breaker || this.#breakerOptions === false) return this.#breaker;
    const made = this.createCircuitBreaker({ ...this.#breakerOptions });
    for (const member of ['check', 'success', 'failure', 'reset'] as const) {
      if (typeof (made as Partial<ConnectionCircuitBreaker> | null | undefined)?.[member] !== 'function') {
        throw new TypeError(`MCPManager: createCircuitBreaker must return a ConnectionCircuitBreaker (its ${member} is not a function)`);
      }
    }
    return (this.#breaker = made);
  }

  /**
   * One operation: validate a per-call config, acquire (route, trust check, lease), run it inside
   * {@link wrapOperation} with the caller's per-call options, release the lease (unless `hold()` took it over).
   */
  async #run<T>(
    operation: ManagerOperation,
    args: ManagerCallArgs,
    params: Readonly<Record<string, unknown>>,
    call: (
      connection: MCPConnection,
      opts: ConnectionRequestOptions,
      ctx: OperationContext,
      hold: () => Lease<MCPConnection>,
      onFailure: (undo: () => Promise<void> | void) => void,
    ) => Promise<T>,
  ): Promise<T> {
    if (!args || typeof args !== 'object') throw new TypeError(`${operation}: arguments must be an object`);
    const { serverName, signal } = args;
    const override = args.serverConfig === undefined ? undefined : this.#parseCallConfig(serverName, args.serverConfig);
    const acquireOpts: { signal?: AbortSignal; config?: ServerConfig } = {};
    if (signal) acquireOpts.signal = signal;
    if (override) acquireOpts.config = override;
    const { lease, config, scope } = await this.#acquire(args.user, serverName, acquireOpts);
    // Built field by field, not by spreading conditional object literals: this runs on every call.
    const opts: ConnectionRequestOptions = {};
    if (signal) opts.signal = signal;
    if (args.timeoutMs !== undefined) opts.timeoutMs = args.timeoutMs;
    if (args.onProgress !== undefined) opts.onProgress = args.onProgress;
    if (args.resetTimeoutOnProgress !== undefined) opts.resetTimeoutOnProgress = args.resetTimeoutOnProgress;
    if (args.maxTotalTimeoutMs !== undefined) opts.maxTotalTimeoutMs = args.maxTotalTimeoutMs;
    if (scope === 'user') opts.user = args.user!;
    let held = false;
    const hold = () => {
      held = true;
      return lease;
    };
    let undo: (() => Promise<void> | void) | undefined;
    const onFailure = (fn: () => Promise<void> | void) => {
      undo = fn;
    };
    let failure: unknown;
    try {
      const ctx: OperationContext = { operation, params, serverName, user: args.user, config, scope, connection: lease.connection };
      return await this.wrapOperation(ctx, () => call(lease.connection, opts, ctx, hold, onFailure));
    } catch (err) {
      failure = err;
      // What the call recorded (a subscription) must not outlive an operation that failed after it.
      if (undo) await Promise.resolve().then(undo).catch(() => {});
      throw err;
    } finally {
      if (!held) lease.release(failure === undefined ? undefined : { touch: !isCredentialFailure(failure) });
    }
  }

  async #acquire(
    user: UserContext | undefined,
    serverName: string,
    opts: { forceNew?: boolean; signal?: AbortSignal; config?: ServerConfig },
    attempt = 0,
  ): Promise<{ lease: Lease<MCPConnection>; config: ServerConfig; scope: PoolScope }> {
    this.#assertOpen(serverName);
    if (typeof serverName !== 'string' || serverName === '') throw new TypeError('serverName must be a non-empty string');
    const removals = this.#removals.get(serverName);
    const generation = this.#configChanges.get(serverName);
    // A config changed (upsertServer) while this call awaited the host's resolveServerConfig or trust check: the
    // config it resolved may be the old one, whose connections that change just evicted. Resolve again (twice at
    // most, then go on: a server whose config changes that often is replaced at its next call anyway).
    const changedMeanwhile = () => !opts.config && attempt < 2 && this.#configChanges.get(serverName) !== generation;
    let config = opts.config;
    if (!config) {
      const found = this.resolveServerConfig(serverName, user);
      config = isPromiseLike(found) ? await found : found;
      this.#assertOpen(serverName);
      // A raw config (straight from a database) has no `type` yet: say what to do rather than fail deep inside.
      if (config !== undefined && (typeof config !== 'object' || config === null || typeof (config as { type?: unknown }).type !== 'string')) {
        throw new TypeError(`resolveServerConfig("${serverName}") must return a validated config (parseServerConfig(raw)) or undefined`);
      }
    }
    if (!config) throw new SwitchboardError('unknown_server', `Unknown MCP server "${serverName}"`, { serverName });
    // A config that is not the registered one gets a connection of its own (keyed by its fingerprint): it never
    // replaces the registered config's connection, nor takes over the callers waiting for it.
    const registered = this.#isRegistered(serverName, config);
    const userScoped = requiresUserScopedConnection(config) || this.isUserScoped(serverName, config) || (user !== undefined && !registered);
    if (!userScoped) {
      this.#assertCurrent(serverName, removals);
      if (changedMeanwhile()) return this.#acquire(user, serverName, opts, attempt + 1);
      const appOpts: { forceNew?: boolean; signal?: AbortSignal; keyByConfig?: boolean } = {};
      if (opts.forceNew) appOpts.forceNew = true;
      if (opts.signal) appOpts.signal = opts.signal;
      if (!registered) appOpts.keyByConfig = true;
      return { lease: await this.#app().acquire(serverName, config, appOpts), config, scope: 'app' };
    }
    assertUser(user, serverName);
    if (hasObo(config)) await assertOboTrusted(this.#trust, { serverName, config, user });
    this.#assertCurrent(serverName, removals);
    if (changedMeanwhile()) return this.#acquire(user, serverName, opts, attempt + 1);
    const lease = await this.#users().acquire(user, serverName, { ...opts, config, ...(registered ? {} : { keyByConfig: true }) });
    // From now on, requests of this connection that belong to no call use this caller's credentials.
    this.#callers.get(lease.connection)?.observe(user);
    return { lease, config, scope: 'user' };
  }

  /**
   * Right before leasing: the manager is still open and the server was not removed while its config was awaited
   * (or the trust check ran): else `manager_closed` / `unknown_server`, and no connection is made.
   */
  #assertCurrent(serverName: string, removals: number | undefined): void {
    this.#assertOpen(serverName);
    if (this.#removals.get(serverName) !== removals) throw new SwitchboardError('unknown_server', `MCP server "${serverName}" was removed`, { serverName });
  }

  /** Counts `delta` subscriptions of `caller` to `uri` of `serverName`. */
  #count(caller: string, serverName: string, uri: string, delta: number): void {
    const key = subscriptionKey(caller, serverName, uri);
    const n = (this.#subscribed.get(key) ?? 0) + delta;
    if (n > 0) this.#subscribed.set(key, n);
    else this.#subscribed.delete(key);
  }

  /**
   * Ends one subscription of `caller` recorded in `entry`. True when it was the connection's last of that URI:
   * the entry is gone and its lease released, and the caller sends `resources/unsubscribe`.
   */
  #dropSubscriber(connection: MCPConnection, uri: string, entry: Subscription, caller: string): boolean {
    const n = entry.callers.get(caller) ?? 0;
    if (n === 0) return false;
    if (n === 1) entry.callers.delete(caller);
    else entry.callers.set(caller, n - 1);
    this.#count(caller, entry.serverName, uri, -1);
    if (entry.callers.size > 0) return false;
    const subs = this.#subscriptions.get(connection);
    if (subs?.get(uri) === entry) subs.delete(uri);
    entry.lease.release();
    return true;
  }

  /** Whether `config` is the server's registered config (the same object, or the same fields): then it may be shared. */
  #isRegistered(serverName: string, config: ServerConfig): boolean {
    const registered = this.#servers.get(serverName);
    return registered !== undefined && (registered === config || configFingerprint(registered) === configFingerprint(config));
  }

  /** A connection left its pool (evicted or closed): its subscriptions end and release their leases. */
  #left(connection: MCPConnection): void {
    this.#gone.add(connection);
    const subs = this.#subscriptions.get(connection);
    if (!subs) return;
    this.#subscriptions.delete(connection);
    for (const [uri, entry] of subs) {
      for (const [caller, n] of entry.callers) this.#count(caller, entry.serverName, uri, -n);
      entry.callers.clear();
    }
    // Not from inside the pool's hook: the pool is mid-transition (see PoolHooks.onEvict).
    queueMicrotask(() => {
      for (const { lease } of subs.values()) lease.release();
    });
  }

  /**
   * Reports a connection's server notifications as manager events naming its server and user. One listener per
   * event per connection, removed when the connection closes.
   */
  #watch(conn: MCPConnection, serverName: string, user: UserContext | undefined): void {
    const base = user ? { serverName, scope: 'user' as const, ...who({ userId: user.id, ...(user.tenantId === undefined ? {} : { tenantId: user.tenantId }) }) } : { serverName, scope: 'app' as const };
    const onTools = () => this.#emit('toolsChanged', { ...base });
    const onResources = () => this.#emit('resourcesChanged', { ...base });
    const onPrompts = () => this.#emit('promptsChanged', { ...base });
    const onUpdated = (e: ResourceUpdatedEvent) => this.#emit('resourceUpdated', { ...base, uri: e.uri });
    const onLog = (e: ServerLogEvent) => this.#emit('serverLog', { ...base, level: e.level, ...(e.logger === undefined ? {} : { logger: e.logger }), data: e.data });
    const onElicitationComplete = (e: ElicitationCompleteEvent) => this.#emit('elicitationComplete', { ...base, elicitationId: e.elicitationId });
    conn.on('toolsChanged', onTools);
    conn.on('resourcesChanged', onResources);
    conn.on('promptsChanged', onPrompts);
    conn.on('resourceUpdated', onUpdated);
    conn.on('serverLog', onLog);
    conn.on('elicitationComplete', onElicitationComplete);
    conn.once('close', () => {
      conn.off('toolsChanged', onTools);
      conn.off('resourcesChanged', onResources);
      conn.off('promptsChanged', onPrompts);
      conn.off('resourceUpdated', onUpdated);
      conn.off('serverLog', onLog);
      conn.off('elicitationComplete', onElicitationComplete);
    });
  }

  async #connect(serverName: string, config: ServerConfig, user: UserContext | undefined, signal: AbortSignal): Promise<MCPConnection> {
    const breaker = this.#circuit();
    const trial = breaker?.check(serverName) ?? false;
    let conn: MCPConnection;
    try {
      const auth = user || isClientCredentials(config) ? this.#authFor(serverName, config) : undefined;
      const callers = user ? new CallerContext(user) : undefined;
      conn = await this.#factory.create({
        serverName,
        config,
        ...(user ? { user, callers } : {}),
        signal,
        ...(auth ? { auth } : {}),
        ...(this.#handlers ? { handlers: this.#handlers } : {}),
      });
      if (callers) this.#callers.set(conn, callers);
      this.#watch(conn, serverName, user);
    } catch (err) {
      // A host breaker that throws here must not replace the connect's own error.
      this.#tellBreaker(serverName, () => breaker?.failure(serverName, user ? userOwnerKey(user) : APP_PRINCIPAL, err, trial));
      this.#logger.debug({ serverName, userId: user?.id, code: (err as SwitchboardError).code }, 'mcp connect failed');
      throw err;
    }
    // Outside the try: a host breaker that throws here must not lose the connection it was told about.
    this.#tellBreaker(serverName, () => breaker?.success(serverName));
    return conn;
  }

  /** Runs a breaker notification; what it throws goes to the `error` event, not to the connect. */
  #tellBreaker(serverName: string, notify: () => void): void {
    try {
      notify();
    } catch (err) {
      this.#emitError(serverName, undefined, err);
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
      const authHeaders = createOboAuthHeaderProvider({
        serverName,
        obo: config.obo,
        serverUrl: config.url,
        ...(config.source ? { source: config.source } : {}),
        resolver,
        onExchange: (e) => this.#emit('oboExchange', e),
      });
      return { authHeaders, retryUnauthorized: true, onRejected: (res: Response) => rejectedByServer(serverName, res.status) };
    }
    if ((config.type === 'sse' || config.type === 'streamable-http') && config.oauth) {
      const provider = this.#userAuth;
      if (provider) {
        const authHeaders: AuthHeaderProvider = ({ forceRefresh, signal, user, challenge }) => {
          if (!user) return Promise.reject(new SwitchboardError('user_required', `No user for a per-user OAuth request to "${serverName}"`, { serverName }));
          return provider({ serverName, config, user, forceRefresh, ...(signal ? { signal } : {}), ...(challenge ? { challenge } : {}) });
        };
        return { authHeaders, retryUnauthorized: true, stepUp: true };
      }
      const settings = oauthSettings(serverName, config);
      if (!this.#oauthOptions && settings.grant !== 'client_credentials') {
        throw new SwitchboardError('config_invalid', `"${serverName}" uses OAuth but neither the oauth nor the userAuthHeaders option was given`, { serverName });
      }
      const authorizer = this.#authorizer();
      const serverUrl = config.url;
      const appGrant = settings.grant === 'client_credentials';
      const fetch = this.#factory.fetchFor(config);
      const authHeaders: AuthHeaderProvider = ({ forceRefresh, user, challenge, method, refusedAuthorization }) => {
        if (!user && !appGrant) return Promise.reject(new SwitchboardError('user_required', `No user for a per-user OAuth request to "${serverName}"`, { serverName }));
        return authorizer.headers({
          serverName,
          serverUrl,
          settings,
          ...(user && !appGrant ? { user } : {}),
          forceRefresh,
          fetch,
          method,
          ...(challenge ? { challenge } : {}),
          ...(refusedAuthorization ? { refusedAuthorization } : {}),
        });
      };
      const onRejected = (res: Response) =>
        new AuthorizationError('authorization_failed', `"${serverName}" refused a freshly obtained token (HTTP ${res.status})`, { serverName, cause: { status: res.status } });
      return { authHeaders, retryUnauthorized: true, stepUp: true, onRejected };
    }
    return undefined;
  }

  /**
   * A per-call config: caller-supplied, so never trusted like the operator's. It is parsed, and kept, as
   * `source: 'user'` whatever it says: no OBO by default, the SSRF guard and the parser's user-config rules apply.
   */
  #parseCallConfig(name: string, config: unknown): ServerConfig {
    const input = config && typeof config === 'object' && !Array.isArray(config) ? { ...(config as Record<string, unknown>), source: 'user' } : config;
    const parsed = this.#parseOne(name, input);
    return parsed.source === 'user' ? parsed : { ...parsed, source: 'user' };
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
      const grant = (raw as { oauth?: { grant?: unknown } }).oauth?.grant;
      if ('oauth' in raw && grant !== 'client_credentials' && !this.#userAuth && !this.#oauthOptions) issues.push({ path: `${name}.oauth`, message: OAUTH_WIRING_MESSAGE });
    }
    return issues;
  }

  #checkCredentialsWiring(servers: Record<string, ServerConfig>): void {
    const issues: ConfigIssue[] = [];
    for (const [name, config] of Object.entries(servers)) {
      if (hasObo(config) && !this.#resolver) issues.push({ path: `${name}.obo`, message: 'On-Behalf-Of needs the oboTokenResolver option' });
      if (oauthOf(config) && !isClientCredentials(config) && !this.#userAuth && !this.#oauthOptions) {
        issues.push({ path: `${name}.oauth`, message: OAUTH_WIRING_MESSAGE });
      }
    }
    if (issues.length) throw new ConfigError(issues);
  }

  #authorizer(): OAuthAuthorizer {
    const shared = this.#coordinator;
    const stores = shared
      ? { store: this.#oauthOptions?.store ?? shared.oauthStore, flowStore: this.#oauthOptions?.flowStore ?? shared.oauthFlowStore }
      : {};
    this.#oauthAuthorizer ??= new OAuthAuthorizer({ ...this.#oauthOptions, ...stores }, {
      fetchFor: (serverName) => this.#factory.fetchFor(this.#servers.get(serverName) ?? {}),
      onAuthorizationRequired: (e) => this.#emit('authorizationRequired', e),
      ...(shared ? { acquire: (key: string, opts: { ttlMs: number; waitMs: number }) => shared.acquire(key, opts) } : {}),
    });
    return this.#oauthAuthorizer;
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

/**
 * Checks the `circuitBreaker` option by the rules of the manager's own breaker, under its public name (the breaker
 * itself is made at the first connect).
 */
function checkBreakerOptions(options: CircuitBreakerOptions): void {
  try {
    void new CircuitBreaker(options);
  } catch (err) {
    throw err instanceof TypeError ? new TypeError(`MCPManager: circuitBreaker.${err.message}`) : err;
  }
}

function hasObo(config: ServerConfig): config is Extract<ServerConfig, { type: 'sse' | 'streamable-http' }> & { obo: { scopes: string[]; audience?: string } } {
  return (config.type === 'sse' || config.type === 'streamable-http') && config.obo !== undefined;
}

function who(k: { userId: string; tenantId?: string }): { userId: string; tenantId?: string } {
  return k.tenantId === undefined ? { userId: k.userId } : { userId: k.userId, tenantId: k.tenantId };
}

/** A resource subscription of one connection: its subscribers, counted per caller, and the lease they hold. */
interface Subscription {
  readonly serverName: string;
  /** Caller ({@link subscriberKey}) → how many subscriptions it holds. */
  readonly callers: Map<string, number>;
  readonly lease: Lease<MCPConnection>;
}

/** Who holds a subscription: the user (tenant and id), or the app itself (`''`, never a user's key). */
function subscriberKey(user: UserContext | undefined): string {
  return user ? userOwnerKey(user) : '';
}

function subscriptionKey(caller: string, serverName: string, uri: string): string {
  return JSON.stringify([caller, serverName, uri]);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function describe(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
}

function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | undefined)?.then === 'function';
}

const OAUTH_WIRING_MESSAGE = 'OAuth needs the oauth option (the package runs the flow) or the userAuthHeaders option (the host does)';

/** A server's `oauth` block (only HTTP transports have one). */
function oauthOf(config: ServerConfig): Extract<ServerConfig, { type: 'streamable-http' }>['oauth'] {
  return config.type === 'sse' || config.type === 'streamable-http' ? config.oauth : undefined;
}

function isClientCredentials(config: ServerConfig): boolean {
  return oauthOf(config)?.grant === 'client_credentials';
}

/** A server's `oauth` block with its secrets' `${ENV}` placeholders filled (operator configs only; user configs cannot hold them). */
function oauthSettings(serverName: string, config: ServerConfig): ServerOAuthSettings {
  const o = oauthOf(config) ?? {};
  const fill = (v: string | undefined, field: string) => (v === undefined ? undefined : resolveCredentialField(v, config.source, `${serverName}.oauth.${field}`));
  const clientId = fill(o.clientId, 'clientId');
  const clientSecret = fill(o.clientSecret, 'clientSecret');
  const privateKey = fill(o.privateKey, 'privateKey');
  return {
    ...(o.grant ? { grant: o.grant } : {}),
    ...(o.scopes ? { scopes: o.scopes } : {}),
    ...(o.issuer ? { issuer: o.issuer } : {}),
    ...(clientId ? { clientId } : {}),
    ...(clientSecret ? { clientSecret } : {}),
    ...(privateKey ? { privateKey } : {}),
    ...(o.algorithm ? { algorithm: o.algorithm } : {}),
  };
}
