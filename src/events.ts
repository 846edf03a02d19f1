/**
 * The manager's typed events. Every event is also published on `node:diagnostics_channel` under
 * `mcp-switchboard:<event>`, but only when someone subscribes (publishing to a channel nobody listens to is
 * skipped). No event ever carries a token.
 * @module
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import type { LoggingLevel } from '@modelcontextprotocol/sdk/types.js';
import type { SwitchboardError } from './errors.js';

/**
 * Why a connection left a pool.
 *
 * @example
 * ```ts
 * manager.on('evict', (e) => {
 *   const reason: EvictReason = e.reason;
 *   if (reason === 'limit') logger.warn({ server: e.serverName }, 'connection limit reached; least recently used connection evicted');
 * });
 * ```
 */
export type EvictReason = 'idle' | 'limit' | 'stale' | 'replaced' | 'removed' | 'disconnected' | 'closed';

/**
 * Which pool a connection belongs to.
 *
 * @example
 * ```ts
 * manager.on('connect', (e) => {
 *   const scope: PoolScope = e.scope;
 *   metrics.histogram(scope === 'user' ? 'mcp.connect.user_ms' : 'mcp.connect.app_ms', e.durationMs);
 * });
 * ```
 */
export type PoolScope = 'user' | 'app';

/**
 * Fields every connection event has.
 *
 * @example
 * ```ts
 * const label = (e: ConnectionEventBase) => (e.scope === 'user' ? `${e.tenantId ?? '-'}/${e.userId} → ${e.serverName}` : `app → ${e.serverName}`);
 * manager.on('connect', (e) => console.log('connected', label(e))).on('evict', (e) => console.log('evicted', label(e)));
 * ```
 */
export interface ConnectionEventBase {
  /** The server's name. */
  serverName: string;
  /** `user` for a per-user connection, `app` for a shared one. */
  scope: PoolScope;
  /** The user's id (user scope only). */
  userId?: string;
  /** The user's tenant (user scope only). */
  tenantId?: string;
}

/**
 * A connection was opened and initialized.
 *
 * @example
 * ```ts
 * manager.on('connect', (e: ConnectEvent) => metrics.histogram('mcp.connect_ms', e.durationMs, { server: e.serverName, scope: e.scope }));
 * ```
 */
export interface ConnectEvent extends ConnectionEventBase {
  /** Connect + initialize time. */
  durationMs: number;
}

/**
 * A connection was closed (for any reason, including eviction).
 *
 * @example
 * ```ts
 * manager.on('disconnect', (e: DisconnectEvent) => {
 *   if (e.error) logger.warn({ server: e.serverName, user: e.userId, code: e.error.code }, 'connection died');
 * });
 * ```
 */
export interface DisconnectEvent extends ConnectionEventBase {
  /** Why, when the pool closed it. */
  reason?: EvictReason;
  /** The error, when the connection died on its own. */
  error?: SwitchboardError;
}

/**
 * A connection was evicted from its pool (it closes once its in-flight calls end).
 *
 * @example
 * ```ts
 * manager.on('evict', (e: EvictEvent) => metrics.increment('mcp.evict', { server: e.serverName, reason: e.reason }));
 * ```
 */
export interface EvictEvent extends ConnectionEventBase {
  /** Why it was evicted. */
  reason: EvictReason;
}

/**
 * One On-Behalf-Of token lookup, for metrics. Never carries a token. The manager emits it as `oboExchange`
 * (successes and failures); `createOboTokenResolver({ onExchange })` reports the same shape for every call it
 * resolves (always `ok: true`, with `cacheHit` and `coalesced`).
 *
 * @example
 * ```ts
 * manager.on('oboExchange', (e: OboExchangeEvent) => {
 *   metrics.histogram('mcp.obo_ms', e.durationMs, { server: e.serverName, ok: e.ok, cacheHit: e.cacheHit === true });
 *   if (!e.ok) logger.warn({ server: e.serverName, user: e.userId, reason: e.reason }, 'no OBO token');
 * });
 * ```
 */
export interface OboExchangeEvent {
  /** The server the token is for. */
  serverName: string;
  /** The user. */
  userId: string;
  /** The user's tenant. */
  tenantId?: string;
  /** True when the resolver answered from its cache (when it says so). */
  cacheHit?: boolean;
  /** True when the call joined an exchange another caller had started (no IdP request of its own). */
  coalesced?: boolean;
  /** Whether a token was obtained. */
  ok: boolean;
  /** Time spent in the resolver. */
  durationMs: number;
  /** The failure reason, when `ok` is false. */
  reason?: string;
}

/**
 * The former name of {@link OboExchangeEvent} (the payload of `createOboTokenResolver({ onExchange })`).
 *
 * @deprecated Use {@link OboExchangeEvent}: one name for one OBO lookup, whether the manager or the resolver
 * reports it. This alias leaves the package in the next release.
 *
 * @example
 * ```ts
 * const onExchange = (e: OboExchangeEvent) => metrics.observe('obo', e.durationMs, { hit: e.cacheHit === true });
 * ```
 */
export type OboExchangeInfo = OboExchangeEvent;

/**
 * Something failed that no caller will see (closing an evicted connection failed, …). A connection that died on its own is reported by `disconnect` with `error`.
 *
 * @example
 * ```ts
 * manager.on('error', (e: ErrorEvent) => logger.error({ server: e.serverName, user: e.userId, err: e.error.name }, 'mcp background failure'));
 * ```
 */
export interface ErrorEvent {
  /** The server concerned, when known. */
  serverName?: string;
  /** The user concerned, when known. */
  userId?: string;
  /** The error (log-safe: no token). */
  error: SwitchboardError | Error;
}

/**
 * A server said one of its lists changed (`notifications/tools/list_changed`, `…/resources/list_changed`,
 * `…/prompts/list_changed`): the payload of `toolsChanged`, `resourcesChanged` and `promptsChanged`. The
 * connection already dropped its cached list; the next `listTools` / `listResources` / `listPrompts` for that
 * user (or, on a shared connection, anyone) fetches it again. On a user connection it names that connection's
 * user only: a notification never reaches another user's listeners with their id.
 *
 * @example
 * ```ts
 * manager.on('toolsChanged', (e: ListChangedEvent) => toolCache.delete(`${e.tenantId ?? '-'}/${e.userId ?? '*'}/${e.serverName}`));
 * ```
 */
export interface ListChangedEvent extends ConnectionEventBase {}

/**
 * A server sent `notifications/resources/updated` for a resource subscribed with
 * `manager.subscribeResource` (on a user connection: subscribed by that user).
 *
 * @example
 * ```ts
 * manager.on('resourceUpdated', (e: ServerResourceUpdatedEvent) => {
 *   if (e.userId) void notifyUser(e.userId, { server: e.serverName, uri: e.uri });
 * });
 * ```
 */
export interface ServerResourceUpdatedEvent extends ConnectionEventBase {
  /** The resource that changed (it may be a sub-resource of the URI subscribed to). */
  uri: string;
}

/**
 * A log message a server sent (`notifications/message`); see `manager.setLoggingLevel`. `data` is the server's
 * own and may hold anything: log it with care.
 *
 * @example
 * ```ts
 * manager.on('serverLog', (e: ServerLogMessageEvent) => logger.info({ server: e.serverName, user: e.userId, level: e.level, data: e.data }, 'MCP server log'));
 * ```
 */
export interface ServerLogMessageEvent extends ConnectionEventBase {
  /** Its severity: `debug` … `emergency` (RFC 5424). */
  level: LoggingLevel;
  /** The server-side logger's name, when the server gave one. */
  logger?: string;
  /** Any JSON value the server sent. */
  data: unknown;
}

/**
 * A server sent `notifications/elicitation/complete` (MCP 2025-11-25, URL-mode elicitation): the out-of-band
 * interaction it asked for with `elicitationId` (a URL handed to the manager's `onElicitation`) is done. On a
 * user connection it names the user whose session it came on; on a shared one, no user.
 *
 * @example
 * ```ts
 * manager.on('elicitationComplete', (e: ServerElicitationCompleteEvent) => {
 *   if (e.userId !== undefined) closeLinkPrompt(e.userId, e.serverName, e.elicitationId);
 * });
 * ```
 */
export interface ServerElicitationCompleteEvent extends ConnectionEventBase {
  /** The `elicitationId` of the URL-mode `elicitation/create` request that finished. */
  elicitationId: string;
}

/**
 * A call needs a user's authorization at a server's authorization server (the MCP authorization flow the
 * package runs; the call itself rejected with `AuthorizationRequiredError`). Emitted once per started flow, not
 * per call: the host can push the link to the user's UI from here rather than from each failed call.
 *
 * @example
 * ```ts
 * manager.on('authorizationRequired', (e: AuthorizationRequiredEvent) => notifyUser(e.userId, `Connect ${e.serverName}`, e.authorizationUrl.href));
 * ```
 */
export interface AuthorizationRequiredEvent {
  /** The server that needs it. */
  serverName: string;
  /** The user who must consent. */
  userId?: string;
  /** The user's tenant. */
  tenantId?: string;
  /** Where to send the user's browser. It carries the flow's `state`: show it to that user only. */
  authorizationUrl: URL;
}

/**
 * The event map of {@link MCPManager}.
 *
 * @example
 * ```ts
 * manager.on('evict', (e) => metrics.increment('mcp.evict', { reason: e.reason, server: e.serverName }));
 * ```
 */
export interface MCPManagerEvents {
  /** A connection was opened. */
  connect: ConnectEvent;
  /** A connection was closed. */
  disconnect: DisconnectEvent;
  /** A connection was evicted. */
  evict: EvictEvent;
  /** An OBO token lookup finished. */
  oboExchange: OboExchangeEvent;
  /** A failure no caller sees. */
  error: ErrorEvent;
  /** A server's tool list changed. */
  toolsChanged: ListChangedEvent;
  /** A server's resource (and resource template) list changed. */
  resourcesChanged: ListChangedEvent;
  /** A server's prompt list changed. */
  promptsChanged: ListChangedEvent;
  /** A subscribed resource changed. */
  resourceUpdated: ServerResourceUpdatedEvent;
  /** A server sent a log message. */
  serverLog: ServerLogMessageEvent;
  /** A URL-mode elicitation a server asked for finished (`notifications/elicitation/complete`). */
  elicitationComplete: ServerElicitationCompleteEvent;
  /** A user must authorize the package at a server (MCP authorization flow). */
  authorizationRequired: AuthorizationRequiredEvent;
}

/**
 * Names of {@link MCPManagerEvents}.
 *
 * @example
 * ```ts
 * const names: MCPManagerEventName[] = ['connect', 'disconnect', 'evict', 'oboExchange', 'error'];
 * for (const name of names) manager.on(name, (e) => logger.debug({ event: name, server: e.serverName }, 'mcp event'));
 * ```
 */
export type MCPManagerEventName = keyof MCPManagerEvents;

/**
 * The `diagnostics_channel` name of each manager event.
 *
 * @example
 * ```ts
 * import diagnosticsChannel from 'node:diagnostics_channel';
 * diagnosticsChannel.subscribe(DIAGNOSTICS_CHANNELS.evict, (e) => console.log('evicted', e));
 * ```
 */
export const DIAGNOSTICS_CHANNELS: { readonly [K in MCPManagerEventName]: string } = Object.freeze({
  connect: 'mcp-switchboard:connect',
  disconnect: 'mcp-switchboard:disconnect',
  evict: 'mcp-switchboard:evict',
  oboExchange: 'mcp-switchboard:oboExchange',
  error: 'mcp-switchboard:error',
  toolsChanged: 'mcp-switchboard:toolsChanged',
  resourcesChanged: 'mcp-switchboard:resourcesChanged',
  promptsChanged: 'mcp-switchboard:promptsChanged',
  resourceUpdated: 'mcp-switchboard:resourceUpdated',
  serverLog: 'mcp-switchboard:serverLog',
  elicitationComplete: 'mcp-switchboard:elicitationComplete',
  authorizationRequired: 'mcp-switchboard:authorizationRequired',
});

const channels = new Map<string, diagnosticsChannel.Channel>();

/**
 * Publishes on the event's diagnostics channel when it has subscribers.
 *
 * @example
 * ```ts
 * publishDiagnostics('evict', { serverName: 'github', scope: 'user', userId: 'u1', reason: 'idle' });
 * ```
 */
export function publishDiagnostics(event: MCPManagerEventName, payload: object): void {
  const name = DIAGNOSTICS_CHANNELS[event];
  let ch = channels.get(name);
  if (!ch) {
    ch = diagnosticsChannel.channel(name);
    channels.set(name, ch);
  }
  if (ch.hasSubscribers) ch.publish(payload);
}
