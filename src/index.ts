/**
 * mcp-switchboard: per-user pools of Model Context Protocol client connections, with On-Behalf-Of token
 * exchange on every HTTP request, for multi-user agent platforms behind an OIDC identity provider.
 *
 * The root is what a host app uses: the manager and its options and events, the user context, the errors and
 * their codes, the OBO resolver, the inbound bearer verifier and the upstream token provider, server configs and
 * the connection factory. Advanced pieces live on subpaths: `mcp-switchboard/config` (schemas, placeholders,
 * fingerprints, config files and importers), `mcp-switchboard/transport` (the auth-aware fetch, the SSRF guard,
 * the transports) and `mcp-switchboard/testing` (the test kit).
 *
 * Named exports only; `__tests__/unit/exports.test.ts` pins this surface and every subpath's, name by name.
 * @module mcp-switchboard
 */
export { SwitchboardError, ConfigError, OboError, BearerError, UpstreamTokenError, AuthorizationError, AuthorizationRequiredError } from './errors.js';
export type {
  SwitchboardErrorCode,
  CoreErrorCode,
  OboErrorCode,
  UpstreamTokenErrorCode,
  SwitchboardErrorOptions,
  TimeoutDeadline,
  ConfigIssue,
  OboErrorReason,
  OboErrorCause,
  OboErrorHint,
  CauseSummary,
  BearerErrorCode,
  BearerErrorOptions,
  AuthorizationErrorCode,
} from './errors.js';
export { MemoryOAuthStore, MemoryOAuthFlowStore } from './oauth/store.js';
export type { OAuthStore, OAuthFlowStore, OAuthTokenKey, OAuthClientKey, StoredOAuthTokens, PendingAuthorization } from './oauth/store.js';
export type { OAuthOptions } from './oauth/authorizer.js';
export type { Coordinator, CoordinatorLock, InvalidationEvent, SharedTokenCache } from './coordination.js';
export type { UserContext, Logger } from './types.js';
export { parseServersConfig, parseServerConfig } from './config/parse.js';
export {
  /** @deprecated Import from `mcp-switchboard/config`; the root re-export is removed in the next release. */
  requiresUserScopedConnection,
} from './config/parse.js';
export type {
  HttpServerConfig,
  OboConfig,
  ServerConfig,
  SseServerConfig,
  StdioServerConfig,
  StreamableHttpServerConfig,
  TransportType,
  WebSocketServerConfig,
} from './config/schema.js';
export type { AuthChallenge, AuthHeaderProvider, AuthHeaderRequest, FetchLike, Transport, TransportContext, TransportFactory } from './transport/types.js';
export { HttpClient } from './transport/httpClient.js';
export type { HttpClientOptions } from './transport/httpClient.js';
export type { SsrfOptions } from './transport/ssrf.js';
export { createOboTokenResolver } from './auth/oboTokenResolver.js';
export type { OboTokenResolverOptions } from './auth/oboTokenResolver.js';
export type { OboRequest, OboToken, OboTokenResolver, OboTrustChecker } from './auth/oboTypes.js';
// Named, not `export *`: a helper added to these files (an option-key list, …) must not become public by accident.
export { MCPConnection } from './MCPConnection.js';
export type {
  CallToolOptions,
  CompleteParams,
  Completion,
  ConnectionCloseEvent,
  ConnectionHandlers,
  ConnectionLimits,
  ConnectionRequestOptions,
  ConnectionState,
  ElicitationCompleteEvent,
  ElicitationRequest,
  MCPConnectionEvents,
  MCPConnectionOptions,
  ReconnectAttemptEvent,
  ReconnectOptions,
  ResourceUpdatedEvent,
  SdkClient,
  ServerLogEvent,
  ServerRequestContext,
  StateChangeEvent,
} from './MCPConnection.js';
export { MCPConnectionFactory } from './MCPConnectionFactory.js';
export type { ConnectionAuth, ConnectionTarget, CreateConnectionRequest, MCPConnectionFactoryOptions } from './MCPConnectionFactory.js';
export { createBearerVerifier, defaultTenantId, DEFAULT_BEARER_ALGORITHMS } from './auth/bearerVerifier.js';
export type { BearerVerifier, BearerVerifierOptions, BearerVerifyOptions, VerifiedBearer } from './auth/bearerVerifier.js';
export { authenticateRequest, createBearerMiddleware, sendBearerError, toAuthInfo } from './auth/httpAdapter.js';
export type { AuthenticatedRequest, BearerAuthInfo, BearerHttpOptions } from './auth/httpAdapter.js';
export { createUpstreamTokenProvider } from './auth/upstreamToken.js';
export type { GetUpstreamTokenOptions, UpstreamTokenProvider, UpstreamTokenProviderOptions, UpstreamUser } from './auth/upstreamToken.js';
export { MemoryUpstreamSessionStore } from './auth/tokenStore.js';
export type { MemoryUpstreamSessionStoreOptions, UpstreamSession, UpstreamSessionStore } from './auth/tokenStore.js';
export { DIAGNOSTICS_CHANNELS } from './events.js';
export type {
  AuthorizationRequiredEvent,
  ConnectEvent,
  ConnectionEventBase,
  DisconnectEvent,
  ErrorEvent,
  EvictEvent,
  EvictReason,
  ListChangedEvent,
  MCPManagerEventName,
  MCPManagerEvents,
  OboExchangeEvent,
  OboExchangeInfo,
  PoolScope,
  ServerElicitationCompleteEvent,
  ServerLogMessageEvent,
  ServerResourceUpdatedEvent,
} from './events.js';
export { MCPManager } from './MCPManager.js';
export type {
  MCPManagerOptions,
  CallToolArgs,
  ListToolsArgs,
  GetConnectionArgs,
  ToolCallContext,
  MCPManagerStats,
  UserAuthHeaderProvider,
  ManagerCallArgs,
  ResourceArgs,
  GetPromptArgs,
  CompleteArgs,
  SetLoggingLevelArgs,
  WithConnectionArgs,
  ManagerOperation,
  OperationContext,
  ConnectionCircuitBreaker,
} from './MCPManager.js';
// The shared pool itself stays internal: the manager makes it (`createAppPool`); a host sees its interface.
export type { AppConnectionPoolOptions, AppConnectRequest, SharedConnectionPool } from './AppConnectionPool.js';
export { UserConnectionManager, DEFAULT_IDLE_TIMEOUT_MS } from './UserConnectionManager.js';
export type { UserConnectionManagerOptions, UserConnectRequest, UserGetOptions, UserPoolKey, UserPoolStats } from './UserConnectionManager.js';
export type { Lease, LeaseReleaseOptions, PoolCounters, PoolKey, PoolableConnection, AcquireOptions } from './pool/ConnectionPool.js';
// The breaker class stays internal: the manager makes it (`createCircuitBreaker`); a host sees its interface.
export type { CircuitBreakerOptions } from './pool/CircuitBreaker.js';
export { CallerContext } from './connection/callerContext.js';
export type { JsonRpcId } from './connection/callerContext.js';
export { defaultOboTrustChecker } from './auth/obo.js';
export {
  /** @deprecated Import from `mcp-switchboard/config`; the root re-export is removed in the next release. */
  loadConfigFile,
} from './config/loadConfigFile.js';
