/**
 * The On-Behalf-Of contract: what the connection layer asks a resolver for, and what it gets back.
 * @module
 */
import type { ServerConfig } from '../config/schema.js';
import type { UserContext } from '../types.js';

/**
 * One request for a downstream token: exchange `assertion` (the user's access token for the runtime) for a
 * token carrying `scopes` (and `audience`, for token-exchange IdPs) to call `serverName`.
 *
 * @example
 * ```ts
 * const req: OboRequest = {
 *   user: { id: 'oid-1', tenantId: 'contoso' },
 *   assertion: userAccessToken,
 *   scopes: ['api://files/.default'],
 *   serverName: 'files',
 * };
 * ```
 */
export interface OboRequest {
  /** The user the token is for. */
  user: UserContext;
  /** The user's access token for the runtime (the OBO assertion / RFC 8693 subject token). */
  assertion: string;
  /** Scopes to request; must not be empty (except with the `cross-app-access` grant, where `[]` sends no `scope`). */
  scopes: string[];
  /** The MCP server the token is for (used in events and errors, never sent to the IdP). */
  serverName: string;
  /** Target audience (RFC 8693 `audience`); also part of the cache key. */
  audience?: string;
  /**
   * The MCP server's URL. Required by the `cross-app-access` grant, which discovers the server's authorization
   * server from it (RFC 9728, RFC 8414); part of that grant's cache key.
   */
  serverUrl?: string;
  /**
   * The client registered at the MCP server's authorization server (`client_secret_basic`). Required by the
   * `cross-app-access` grant; the manager fills it from the server's `obo.clientId` / `obo.clientSecret`.
   */
  authorizationServerClient?: { clientId: string; clientSecret: string };
  /** Skip the cache and replace its entry (after the server rejected the cached token). */
  forceRefresh?: boolean;
  /** Rejects this caller with `OboError('aborted')`; an exchange shared with other callers goes on. */
  signal?: AbortSignal;
}

/**
 * A downstream access token.
 *
 * @example
 * ```ts
 * const { accessToken, expiresAt } = await resolver(req);
 * headers.set('Authorization', `Bearer ${accessToken}`);
 * ```
 */
export interface OboToken {
  /** The bearer token to send to the MCP server. */
  accessToken: string;
  /** When the token expires, epoch ms (when the IdP said). */
  expiresAt?: number;
  /** Whether the resolver answered from its cache; optional, reported in the manager's `oboExchange` event. */
  cacheHit?: boolean;
}

/**
 * Gets a downstream token for a user; rejects with `OboError` when none can be had.
 *
 * @example
 * ```ts
 * const resolver: OboTokenResolver = createOboTokenResolver({ issuer, clientId, clientSecret });
 * const manager = new MCPManager({ servers, oboTokenResolver: resolver });
 * ```
 */
export type OboTokenResolver = (req: OboRequest) => Promise<OboToken>;

/**
 * Decides, on every call, whether a server may receive OBO tokens for a user. `false` (or a throw) →
 * `OboError('untrusted')` and nothing is sent.
 *
 * @example
 * ```ts
 * const oboTrustChecker: OboTrustChecker = ({ serverName, config }) =>
 *   config.source !== 'user' && allowList.has(serverName);
 * ```
 */
export type OboTrustChecker = (req: { serverName: string; config: ServerConfig; user: UserContext }) => boolean | Promise<boolean>;
