/**
 * mcp-switchboard: per-user pools of Model Context Protocol client connections, with On-Behalf-Of token
 * exchange on every HTTP request, for multi-user agent platforms behind an OIDC identity provider.
 *
 * Named exports only; `__tests__/unit/exports.test.ts` pins this surface.
 * @module mcp-switchboard
 */
export { SwitchboardError, ConfigError, OboError, BearerError, UpstreamTokenError } from './errors.js';
export type {
  SwitchboardErrorCode,
  SwitchboardErrorOptions,
  ConfigIssue,
  OboErrorReason,
  OboErrorCause,
  OboErrorHint,
  CauseSummary,
  BearerErrorCode,
  BearerErrorOptions,
} from './errors.js';
export * from './types.js';
export { parseServersConfig, parseServerConfig, requiresUserScopedConnection, resolveServerConfig, updatedAtMs } from './config/parse.js';
export type { ResolveOptions } from './config/parse.js';
export * from './config/schema.js';
export * from './config/placeholders.js';
export * from './config/fingerprint.js';
export type * from './transport/types.js';
export * from './transport/index.js';
export { createOboTokenResolver } from './auth/oboTokenResolver.js';
export type { OboTokenResolverOptions, OboExchangeInfo } from './auth/oboTokenResolver.js';
export type { OboRequest, OboToken, OboTokenResolver, OboTrustChecker } from './auth/oboTypes.js';
export * from './MCPConnection.js';
export * from './MCPConnectionFactory.js';
export { createBearerVerifier, defaultTenantId, DEFAULT_BEARER_ALGORITHMS } from './auth/bearerVerifier.js';
export type { BearerVerifier, BearerVerifierOptions, BearerVerifyOptions, VerifiedBearer } from './auth/bearerVerifier.js';
export { normalizeScopes } from './auth/scopes.js';
export { authenticateRequest, createBearerMiddleware, sendBearerError, toAuthInfo } from './auth/httpAdapter.js';
export type { AuthenticatedRequest, BearerAuthInfo, BearerHttpOptions } from './auth/httpAdapter.js';
export { createUpstreamTokenProvider } from './auth/upstreamToken.js';
export type { GetUpstreamTokenOptions, UpstreamTokenProvider, UpstreamTokenProviderOptions, UpstreamUser } from './auth/upstreamToken.js';
export { MemoryUpstreamSessionStore, sameSession } from './auth/tokenStore.js';
export type { MemoryUpstreamSessionStoreOptions, UpstreamSession, UpstreamSessionStore } from './auth/tokenStore.js';
export * from './events.js';
export { MCPManager } from './MCPManager.js';
export type { MCPManagerOptions, CallToolArgs, ListToolsArgs, GetConnectionArgs, ToolCallContext, MCPManagerStats, UserAuthHeaderProvider } from './MCPManager.js';
export { UserConnectionManager, DEFAULT_IDLE_TIMEOUT_MS } from './UserConnectionManager.js';
export type { UserConnectionManagerOptions, UserConnectRequest, UserGetOptions, UserPoolKey, UserPoolStats } from './UserConnectionManager.js';
export { AppConnectionPool } from './AppConnectionPool.js';
export type { AppConnectionPoolOptions, AppConnectRequest } from './AppConnectionPool.js';
export type { Lease, LeaseReleaseOptions, PoolCounters, PoolKey, PoolableConnection, AcquireOptions } from './pool/ConnectionPool.js';
export { CallerContext } from './connection/callerContext.js';
export type { JsonRpcId } from './connection/callerContext.js';
export { CircuitBreaker, isServerLevelFailure } from './pool/CircuitBreaker.js';
export type { CircuitBreakerOptions } from './pool/CircuitBreaker.js';
export { defaultOboTrustChecker, createOboAuthHeaderProvider, readUpstreamToken, assertOboTrusted, rejectedByServer } from './auth/obo.js';
export type { OboAuthHeaderProviderOptions } from './auth/obo.js';
export { loadConfigFile, parseConfigText } from './config/loadConfigFile.js';
export type { LoadConfigOptions, LoadedConfig, ParseConfigTextOptions } from './config/loadConfigFile.js';
export { importLibreChat, importClaudeDesktop, importVsCode, importSwitchboard, detectConfigFormat, CONFIG_FILE_FORMATS, ImportError } from './config/importers/index.js';
export type { ConfigFileFormat, ConfigSyntax, DetectHints, ImportResult, ImportWarning } from './config/importers/index.js';
