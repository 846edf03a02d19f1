/**
 * The interfaces where transports meet the rest of the package.
 * @module
 */
import type { StreamableHTTPReconnectionOptions } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { Dispatcher } from 'undici';
import type { ServerConfig } from '../config/schema.js';
import type { UserContext } from '../types.js';
import type { JsonRpcId } from '../connection/callerContext.js';

/**
 * A `fetch`-compatible function, as the SDK's HTTP transports accept in their `fetch` option.
 *
 * @example
 * ```ts
 * const fetch: FetchLike = createAuthFetch({ dispatcher, authHeaders });
 * const res = await fetch('https://mcp.example.com/mcp', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
 * ```
 */
export type FetchLike = (url: string | URL, init?: RequestInit) => Promise<Response>;

/**
 * What an {@link AuthHeaderProvider} is asked for, once per HTTP request.
 *
 * @example
 * ```ts
 * const authHeaders: AuthHeaderProvider = async ({ url, method, forceRefresh, signal }: AuthHeaderRequest) => {
 *   const token = await tokens.get(url.origin, { forceRefresh, signal }); // your token cache
 *   return method === 'DELETE' ? undefined : { Authorization: `Bearer ${token}` };
 * };
 * ```
 */
export interface AuthHeaderRequest {
  /** The URL the request goes to. */
  url: URL;
  /** HTTP method: `POST` (messages), `GET` (SSE / standalone stream), `DELETE` (session end). */
  method: string;
  /** True on the one retry after the server answered 401: drop any cached token and get a new one. */
  forceRefresh: boolean;
  /** Aborts the header lookup along with the request. */
  signal?: AbortSignal;
  /** The JSON-RPC id of the request this HTTP request carries (POST of a request); absent for GET, DELETE and notifications. */
  requestId?: JsonRpcId;
  /**
   * The caller this HTTP request is made for, on user connections: the user of the call that sent it, or the most
   * recent caller of the connection for requests that belong to no call (standby stream, reconnects, DELETE).
   * Read the credentials (assertion, vars) from here, never from the context seen at connect.
   */
  user?: UserContext;
  /**
   * On the one resend after a 401 or 403: what the server's `WWW-Authenticate` challenge said (RFC 6750 §3,
   * RFC 9728 §5.1), so a provider can find the authorization server or step up its scopes.
   */
  challenge?: AuthChallenge;
  /**
   * On that resend: the Authorization value the server refused (so a provider shared by concurrent requests can
   * tell the refused token from one another request already replaced it with). A credential: never log it.
   */
  refusedAuthorization?: string;
}

/**
 * A server's refusal of a request's credentials, read from its `WWW-Authenticate: Bearer …` header.
 *
 * @example
 * ```ts
 * const challenge: AuthChallenge = { status: 403, error: 'insufficient_scope', scope: 'files:write' };
 * ```
 */
export interface AuthChallenge {
  /** 401 (no or bad credentials) or 403 (`insufficient_scope`, or `invalid_token`). */
  status: number;
  /** The `error` parameter: `invalid_token`, `insufficient_scope`, `invalid_request`, … */
  error?: string;
  /** The `scope` parameter: the scopes the resource needs (space-separated). */
  scope?: string;
  /** The `resource_metadata` parameter: where the server's protected-resource metadata is (RFC 9728). */
  resourceMetadataUrl?: URL;
}

/**
 * Gives the auth headers of one HTTP request (typically `{ Authorization: 'Bearer …' }`). Called for every
 * request, never cached by the transport. If it throws, the request is not sent and the error reaches the
 * caller unchanged.
 *
 * @example
 * ```ts
 * const apiKeyHeaders: AuthHeaderProvider = async ({ forceRefresh }) => ({ 'X-Api-Key': await secrets.get('search-api-key', { fresh: forceRefresh }) });
 * const factory = new MCPConnectionFactory({ authHeaders: ({ serverName }) => (serverName === 'search' ? apiKeyHeaders : undefined) });
 * ```
 */
export type AuthHeaderProvider = (req: AuthHeaderRequest) => Promise<Record<string, string> | undefined>;

/**
 * Everything a transport factory needs for one connection attempt.
 *
 * @example
 * ```ts
 * import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
 * const factory = new MCPConnectionFactory({
 *   createTransport: (ctx: TransportContext) => {
 *     const [client, server] = InMemoryTransport.createLinkedPair();
 *     void myServer.connect(server);
 *     return client;
 *   },
 * });
 * ```
 */
export interface TransportContext {
  /** The server's name in the config. */
  serverName: string;
  /** The server's config with every placeholder resolved for `user`. */
  config: ServerConfig;
  /** The user the connection is for (absent for shared app-level connections). */
  user?: UserContext;
  /**
   * The auth-aware fetch that the default HTTP transports use: static and placeholder headers, the auth
   * header provider on every request, the shared undici dispatcher, SSRF guard, redirect policy.
   */
  fetch: FetchLike;
  /**
   * The undici dispatcher for this server (from `HttpClient.forConfig`): the WebSocket transport connects
   * through it, so it gets the same SSRF guard and proxy as `fetch`. Absent: undici's global dispatcher.
   */
  dispatcher?: Dispatcher;
  /** Aborts the connection attempt. */
  signal?: AbortSignal;
  /**
   * The largest message the transport accepts, in bytes; the factory sets it from `limits.maxResultBytes` plus
   * envelope room. Absent: the transport's own default.
   */
  maxMessageBytes?: number;
  /**
   * How long a stdio server gets to exit on its own at each step of its close (stdin's end, then SIGTERM to its
   * process group), in ms; absent: the transport's default (2 000).
   */
  closeGraceMs?: number;
  /**
   * The SDK streamable HTTP transport's own settings for re-opening a lost GET stream. The factory sets them so
   * that the SDK loop adds no delay of its own and stops only after the connection's reconnect budget: the
   * standby gate of the request path then decides every delay and when to give up (with one warning).
   * Absent: the SDK's defaults (2 retries, 1 s apart and more, then silence).
   */
  reconnectionOptions?: StreamableHTTPReconnectionOptions;
}

/**
 * Creates the transport of one connection attempt (called again for each reconnect).
 *
 * @example
 * ```ts
 * const createTransport: TransportFactory = (ctx) => {
 *   logger.debug({ server: ctx.serverName, user: ctx.user?.id }, 'opening MCP transport');
 *   return createDefaultTransport(ctx);
 * };
 * const factory = new MCPConnectionFactory({ createTransport });
 * ```
 */
export type TransportFactory = (ctx: TransportContext) => Transport | Promise<Transport>;

export type { Transport };
