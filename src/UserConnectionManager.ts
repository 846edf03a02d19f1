/**
 * Per-user connections: one per (tenant, user, server), joined connects, leases, idle eviction, limits.
 * @module
 */
import { SwitchboardError } from './errors.js';
import type { ServerConfig } from './config/schema.js';
import { configFingerprint } from './config/fingerprint.js';
import { ConnectionShapes } from './config/connectionShape.js';
import type { EvictReason } from './events.js';
import type { MCPConnection } from './MCPConnection.js';
import { ConnectionPool, type Lease, type PoolCounters, type PoolKey } from './pool/ConnectionPool.js';
import type { UserContext } from './types.js';

/**
 * Default idle timeout of a user connection: 15 minutes.
 *
 * @example
 * ```ts
 * new UserConnectionManager({ connect, getServerConfig, idleTimeoutMs: DEFAULT_IDLE_TIMEOUT_MS / 3 });
 * ```
 */
export const DEFAULT_IDLE_TIMEOUT_MS = 15 * 60_000;

/**
 * Identifies a user connection in hooks and events.
 *
 * @example
 * ```ts
 * const users = new UserConnectionManager({
 *   connect, getServerConfig,
 *   hooks: { onEvict: (key: UserPoolKey, reason) => console.log(`${key.tenantId ?? '-'}/${key.userId} → ${key.serverName}: ${reason}`) },
 * });
 * ```
 */
export interface UserPoolKey extends PoolKey {
  /** The user's id. */
  userId: string;
  /** The user's tenant. */
  tenantId?: string;
}

/**
 * What {@link UserConnectionManagerOptions.connect} is asked to open.
 *
 * @example
 * ```ts
 * const connect = ({ serverName, config, user, signal }: UserConnectRequest) => factory.create({ serverName, config, user, signal });
 * const users = new UserConnectionManager({ connect, getServerConfig: (name) => servers[name] });
 * ```
 */
export interface UserConnectRequest {
  /** The server's name. */
  serverName: string;
  /** The server's config (unresolved; placeholders are resolved by the factory). */
  config: ServerConfig;
  /** The user. */
  user: UserContext;
  /** Aborts when every waiter gave up, the user was disconnected or the manager closed. */
  signal: AbortSignal;
}

/**
 * Options of {@link UserConnectionManager}.
 *
 * @example
 * ```ts
 * const options: UserConnectionManagerOptions = {
 *   connect: (req) => factory.create(req),
 *   getServerConfig: (name) => servers[name],
 *   idleTimeoutMs: 5 * 60_000,
 *   maxConnectionsPerUser: 10,
 * };
 * ```
 */
export interface UserConnectionManagerOptions {
  /** Opens a connected connection; usually `factory.create`. */
  connect(req: UserConnectRequest): Promise<MCPConnection>;
  /**
   * The current config of a server for a user; `undefined` for an unknown server. May be async (configs kept in
   * a database). Not called when an acquire passes its own `config` (as {@link MCPManager} always does).
   */
  getServerConfig(serverName: string, user: UserContext): ServerConfig | undefined | Promise<ServerConfig | undefined>;
  /** Idle time after the last call ended before a connection is closed. Default 15 minutes. */
  idleTimeoutMs?: number;
  /** Most connections per user (per tenant and id). Default unlimited. */
  maxConnectionsPerUser?: number;
  /** Most user connections in total. Default unlimited. */
  maxUserConnections?: number;
  /** Event hooks. */
  hooks?: {
    onConnect?(key: UserPoolKey, connection: MCPConnection, durationMs: number): void;
    onEvict?(key: UserPoolKey, reason: EvictReason, connection: MCPConnection): void;
    onDisconnect?(key: UserPoolKey, e: { reason?: EvictReason; error?: SwitchboardError }, connection: MCPConnection): void;
    onError?(key: UserPoolKey, error: unknown): void;
  };
  /** Clock for idle accounting; defaults to `Date.now`. */
  now?: () => number;
  /** Values for `${ENV}` placeholders in what shapes a connection (URL, command, env); default `process.env`, read per acquire. */
  env?: Record<string, string | undefined>;
}

/**
 * Options of one {@link UserConnectionManager.get} / {@link UserConnectionManager.acquire}.
 *
 * @example
 * ```ts
 * const connection = await users.get(user, 'github', { forceNew: true, signal: AbortSignal.timeout(10_000) });
 * ```
 */
export interface UserGetOptions {
  /** Open a new connection (never joined) that replaces the current one once its calls end. */
  forceNew?: boolean;
  /** Aborts this caller's wait only. */
  signal?: AbortSignal;
  /** A config to use instead of the registered one (for servers the host keeps per user). */
  config?: ServerConfig;
  /**
   * Key the connection by its config's fingerprint (set by {@link MCPManager} for a config that is not the
   * server's registered one): it then never replaces, joins or is replaced by the user's connection of another
   * config of the server (alternating configs evict nothing), and closes when idle.
   */
  keyByConfig?: boolean;
}

/**
 * Sizes and counters of the user pool.
 *
 * @example
 * ```ts
 * const s: UserPoolStats = users.stats();
 * console.log(`${s.userConnections} connections for ${s.users} users, ${s.counters.evictions.idle} idle evictions`);
 * ```
 */
export interface UserPoolStats {
  /** Users with at least one connection or pending connect. */
  users: number;
  /** Open user connections. */
  userConnections: number;
  /** Connects in flight. */
  pendingConnects: number;
  /** Retired connections waiting for their in-flight calls to end. */
  draining: number;
  /** Connects cancelled or superseded while in flight: they finish their handshake, then are closed. */
  abandoned: number;
  /** Connects, joins, hits, failures and evictions by reason. */
  counters: PoolCounters;
}

/**
 * Validates a user context; a missing id is an error, never "anonymous".
 *
 * @example
 * ```ts
 * assertUser(args.user, 'github'); // throws SwitchboardError('user_required') for a missing or blank id
 * ```
 */
export function assertUser(user: UserContext | undefined, serverName: string): asserts user is UserContext {
  if (!user || typeof user.id !== 'string' || user.id.trim() === '') {
    throw new SwitchboardError('user_required', `"${serverName}" needs a user connection, and no user (with a non-empty id) was given`, { serverName });
  }
  if (user.tenantId !== undefined && typeof user.tenantId !== 'string') {
    throw new SwitchboardError('user_required', `user.tenantId must be a string (server "${serverName}")`, { serverName });
  }
}

/**
 * The owner key of a user: tenant and id, unambiguous whatever characters they contain.
 *
 * @example
 * ```ts
 * userOwnerKey({ id: 'u1', tenantId: 't1' }); // '["t1","u1"]'
 * ```
 */
export function userOwnerKey(user: Pick<UserContext, 'id' | 'tenantId'>): string {
  return JSON.stringify([user.tenantId ?? null, user.id]);
}

/**
 * One pool of MCP connections per user. A warm `get` is O(1): a map lookup, no scan of other users or
 * connections. Concurrent gets of one (tenant, user, server) share one connect; a failed connect is not cached.
 *
 * @example
 * ```ts
 * const users = new UserConnectionManager({
 *   connect: (req) => factory.create(req),
 *   getServerConfig: (name) => servers[name],
 *   idleTimeoutMs: 5 * 60_000,
 * });
 * const lease = await users.acquire({ id: 'u1', tenantId: 't1' }, 'github');
 * try { await lease.connection.callTool('search', { q: 'mcp' }); } finally { lease.release(); }
 * ```
 */
export class UserConnectionManager {
  readonly #pool: ConnectionPool<MCPConnection, Omit<UserConnectRequest, 'signal'>>;
  readonly #getServerConfig: UserConnectionManagerOptions['getServerConfig'];
  readonly #shapes = new ConnectionShapes();
  readonly #env: UserConnectionManagerOptions['env'];

  constructor(opts: UserConnectionManagerOptions) {
    if (typeof opts?.connect !== 'function') throw new TypeError('UserConnectionManager: `connect` must be a function');
    if (typeof opts.getServerConfig !== 'function') throw new TypeError('UserConnectionManager: `getServerConfig` must be a function');
    this.#getServerConfig = opts.getServerConfig;
    this.#env = opts.env;
    const hooks = opts.hooks ?? {};
    this.#pool = new ConnectionPool<MCPConnection, Omit<UserConnectRequest, 'signal'>>({
      connect: (_pk, req, signal) => opts.connect({ ...req, signal }),
      idleTimeoutMs: opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
      ...(opts.maxConnectionsPerUser === undefined ? {} : { maxPerOwner: opts.maxConnectionsPerUser }),
      ...(opts.maxUserConnections === undefined ? {} : { maxTotal: opts.maxUserConnections }),
      limitNames: { perOwner: 'maxConnectionsPerUser', total: 'maxUserConnections' },
      hooks: {
        onConnect: (pk, c, ms) => hooks.onConnect?.(pk as UserPoolKey, c, ms),
        onEvict: (pk, r, c) => hooks.onEvict?.(pk as UserPoolKey, r, c),
        onDisconnect: (pk, e, c) => hooks.onDisconnect?.(pk as UserPoolKey, e, c),
        onError: (pk, e) => hooks.onError?.(pk as UserPoolKey, e),
      },
      ...(opts.now ? { now: opts.now } : {}),
    });
  }

  /**
   * Leases the user's connection to a server for one use; call `release()` when done. Eviction never closes
   * a connection under a lease. Subclasses may override it (to add a per-tenant policy, metrics, …) and call
   * `super.acquire`: {@link MCPManager} routes every user-scoped operation through it.
   */
  acquire(user: UserContext, serverName: string, opts: UserGetOptions = {}): Promise<Lease<MCPConnection>> {
    try {
      assertUser(user, serverName);
    } catch (err) {
      return Promise.reject(err);
    }
    if (opts.config) return this.#acquireWith(user, serverName, opts.config, opts);
    let found: ServerConfig | undefined | Promise<ServerConfig | undefined>;
    try {
      found = this.#getServerConfig(serverName, user);
    } catch (err) {
      return Promise.reject(err);
    }
    if (isPromiseLike(found)) return Promise.resolve(found).then((config) => this.#acquireWith(user, serverName, config, opts));
    return this.#acquireWith(user, serverName, found, opts);
  }

  #acquireWith(user: UserContext, serverName: string, config: ServerConfig | undefined, opts: UserGetOptions): Promise<Lease<MCPConnection>> {
    if (!config) return Promise.reject(new SwitchboardError('unknown_server', `Unknown MCP server "${serverName}"`, { serverName }));
    // What a live connection cannot change (URL, command, env) resolved for THIS caller: a change of the
    // user's values there replaces the connection; a value the user no longer has fails here, before anything is sent.
    let shape: string;
    try {
      shape = this.#shapes.of(serverName, config, user, this.#env ?? process.env);
    } catch (err) {
      return Promise.reject(err);
    }
    const ownerKey = userOwnerKey(user);
    const configFp = configFingerprint(config);
    const pk: UserPoolKey = {
      // The registered config owns (user, server); any other config has a key of its own (see keyByConfig).
      key: opts.keyByConfig ? `${ownerKey}\u0000${serverName}\u0000${configFp}` : `${ownerKey}\u0000${serverName}`,
      ownerKey,
      serverName,
      userId: user.id,
      ...(user.tenantId === undefined ? {} : { tenantId: user.tenantId }),
    };
    const fingerprint = shape === '' ? configFp : `${configFp}:${shape}`;
    const acquireOpts: { forceNew?: boolean; signal?: AbortSignal } = {};
    if (opts.forceNew) acquireOpts.forceNew = true;
    if (opts.signal) acquireOpts.signal = opts.signal;
    return this.#pool.acquire(pk, { serverName, config, user }, fingerprint, acquireOpts);
  }

  /**
   * The user's connection to a server (connecting if needed). The connection is not leased: prefer
   * {@link acquire} when making calls, so eviction waits for them.
   */
  async get(user: UserContext, serverName: string, opts: UserGetOptions = {}): Promise<MCPConnection> {
    const lease = await this.acquire(user, serverName, opts);
    lease.release();
    return lease.connection;
  }

  /**
   * Closes every connection of a user. With `tenantId`, only that tenant's; without, every tenant's user with
   * that id (this scans the pool; pass the tenant when you know it). Pending connects are cancelled.
   */
  async disconnectUser(userId: string, tenantId?: string): Promise<void> {
    if (tenantId !== undefined) return this.#pool.evictOwner(userOwnerKey({ id: userId, tenantId }), 'disconnected');
    await this.#pool.evictWhere((pk) => (pk as UserPoolKey).userId === userId, 'disconnected');
  }

  /**
   * Closes one user's connections to one server (e.g. the user revoked their authorization there). Pending
   * connects are cancelled.
   *
   * @example
   * ```ts
   * await users.disconnect({ id: 'alice', tenantId: 'contoso' }, 'linear');
   * ```
   */
  async disconnect(user: Pick<UserContext, 'id' | 'tenantId'>, serverName: string): Promise<void> {
    await this.#pool.evictWhere((pk) => {
      const k = pk as UserPoolKey;
      return k.serverName === serverName && k.userId === user.id && (k.tenantId ?? undefined) === (user.tenantId ?? undefined);
    }, 'disconnected');
  }

  /** Closes every user connection to a server, whatever its config (e.g. it was removed). */
  async removeServer(serverName: string, reason: EvictReason = 'removed'): Promise<void> {
    await this.#pool.evictWhere((pk) => pk.serverName === serverName, reason);
  }

  /** Sizes and counters. */
  stats(): UserPoolStats {
    const s = this.#pool.stats();
    return { users: s.owners, userConnections: s.connections, pendingConnects: s.pending, draining: s.draining, abandoned: s.abandoned, counters: s.counters };
  }

  /** Closes every connection and clears every timer. Idempotent. */
  close(): Promise<void> {
    return this.#pool.close();
  }
}

function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | undefined)?.then === 'function';
}
