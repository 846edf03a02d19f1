/**
 * mcp-switchboard: per-user pools of Model Context Protocol client connections, with On-Behalf-Of token
 * exchange on every HTTP request, for multi-user agent platforms behind an OIDC identity provider.
 *
 * Named exports only; `__tests__/unit/exports.test.ts` pins this surface.
 * @module mcp-switchboard
 */
export * from './errors.js';
export * from './types.js';
export * from './config/index.js';
export type * from './transport/types.js';
export * from './transport/index.js';
export { createOboTokenResolver } from './auth/oboTokenResolver.js';
export type { OboTokenResolverOptions, OboExchangeInfo } from './auth/oboTokenResolver.js';
export type { OboRequest, OboToken, OboTokenResolver, OboTrustChecker } from './auth/oboTypes.js';
export * from './MCPConnection.js';
export * from './MCPConnectionFactory.js';
