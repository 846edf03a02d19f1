/**
 * Shared app-level connections for servers that need no user identity: one per server, created lazily.
 * @module
 */
import { SwitchboardError } from './errors.js';
import type { ServerConfig } from './config/schema.js';
import { configFingerprint } from './config/fingerprint.js';
import { requiresUserScopedConnection } from './config/parse.js';
import type { EvictReason } from './events.js';
import type { MCPConnection } from './MCPConnection.js';
import { ConnectionPool, type Lease, type PoolCounters, type PoolKey } from './pool/ConnectionPool.js';

/**
 * What {@link AppConnectionPoolOptions.connect} is asked to open.
 *
 * @example
 * ```ts
 * const app = new AppConnectionPool({
 *   connect: ({ serverName, config, signal }: AppConnectRequest) => factory.create({ serverName, config, signal }),
 * });
 * ```
 */
export interface AppConnectRequest {
  /** The server's name. */
  serverName: string;
  /** The server's config. */
  config: ServerConfig;
  /** Aborts when the pool closes or the server is removed. */
  signal: AbortSignal;
}

/**
 * Options of the manager's shared app pool (given to `createAppPool`, see {@link SharedConnectionPool}).
 *
 * @example
 * ```ts
 * const options: AppConnectionPoolOptions = {
 *   connect: (req) => factory.create(req),
 *   idleTimeoutMs: 30 * 60_000,
 *   hooks: { onEvict: (key, reason) => logger.info({ server: key.serverName, reason }, 'shared connection evicted') },
 * };
 * ```
 */
export interface AppConnectionPoolOptions {
  /** Opens a connected connection; usually `factory.create` without a user. */
  connect(req: AppConnectRequest): Promise<MCPConnection>;
  /** Idle time before a shared connection is closed. Default: never. */
  idleTimeoutMs?: number;
  /** Event hooks. */
  hooks?: {
    onConnect?(key: PoolKey, connection: MCPConnection, durationMs: number): void;
    onEvict?(key: PoolKey, reason: EvictReason, connection: MCPConnection): void;
    onDisconnect?(key: PoolKey, e: { reason?: EvictReason; error?: SwitchboardError }, connection: MCPConnection): void;
    onError?(key: PoolKey, error: unknown): void;
  };
}

/**
 * What {@link MCPManager} needs of its pool of shared app connections; what `createAppPool` returns. The
 * manager's own pool is made by `super.createAppPool(options)`: an override may return it wrapped (delegating
 * every member) to observe or restrict shared connections.
 *
 * @example
 * ```ts
 * class CountingManager extends MCPManager {
 *   readonly acquired = new Map<string, number>();
 *   protected override createAppPool(options: AppConnectionPoolOptions): SharedConnectionPool {
 *     const pool = super.createAppPool(options);
 *     return {
 *       acquire: (serverName, config, opts) => {
 *         this.acquired.set(serverName, (this.acquired.get(serverName) ?? 0) + 1);
 *         return pool.acquire(serverName, config, opts);
 *       },
 *       removeServer: (serverName, reason) => pool.removeServer(serverName, reason),
 *       stats: () => pool.stats(),
 *       close: () => pool.close(),
 *     };
 *   }
 * }
 * ```
 */
export interface SharedConnectionPool {
  /**
   * Leases the shared connection of a server; the caller calls `release()` when done. `keyByConfig` (set by
   * {@link MCPManager} for a config that is not the server's registered one) keys the connection by the config's
   * fingerprint: it then never replaces, joins or is replaced by the connection of another config of the server,
   * and closes when idle (`idleTimeoutMs`), removed or closed.
   */
  acquire(serverName: string, config: ServerConfig, opts?: { forceNew?: boolean; signal?: AbortSignal; keyByConfig?: boolean }): Promise<Lease<MCPConnection>>;
  /** Closes a server's shared connections, one per config (after their in-flight calls). */
  removeServer(serverName: string, reason?: EvictReason): Promise<void>;
  /** Sizes and counters. */
  stats(): { appConnections: number; pendingConnects: number; draining: number; counters: PoolCounters };
  /** Closes every connection. Idempotent. */
  close(): Promise<void>;
}

/**
 * One shared connection per server for servers that need no identity. Concurrent first use → one connect.
 * A server that {@link requiresUserScopedConnection} is refused here whatever the caller asks, so a
 * per-user credential can never end up on a shared connection.
 *
 * @example
 * ```ts
 * const app = new AppConnectionPool({ connect: (req) => factory.create(req) });
 * const lease = await app.acquire('everything', config);
 * try { await lease.connection.callTool('echo', { message: 'hi' }); } finally { lease.release(); }
 * ```
 */
export class AppConnectionPool implements SharedConnectionPool {
  readonly #pool: ConnectionPool<MCPConnection, Omit<AppConnectRequest, 'signal'>>;

  constructor(opts: AppConnectionPoolOptions) {
    if (typeof opts?.connect !== 'function') throw new TypeError('AppConnectionPool: `connect` must be a function');
    this.#pool = new ConnectionPool({
      connect: (_pk, req, signal) => opts.connect({ ...req, signal }),
      idleTimeoutMs: opts.idleTimeoutMs ?? Infinity,
      ...(opts.hooks ? { hooks: opts.hooks } : {}),
    });
  }

  /**
   * Leases the shared connection of a server; call `release()` when done. Subclasses may override it and call
   * `super.acquire`: {@link MCPManager} routes every app-scoped operation through it.
   */
  acquire(serverName: string, config: ServerConfig, opts: { forceNew?: boolean; signal?: AbortSignal; keyByConfig?: boolean } = {}): Promise<Lease<MCPConnection>> {
    if (requiresUserScopedConnection(config)) {
      return Promise.reject(
        new SwitchboardError('user_required', `"${serverName}" needs a per-user connection and is never shared`, { serverName }),
      );
    }
    const fingerprint = configFingerprint(config);
    // The registered config owns the key `serverName` (a change of it replaces the connection); any other config
    // has a key of its own, so that callers of one config never wait on, or evict, another's connection.
    const key = opts.keyByConfig ? `${serverName}\u0000${fingerprint}` : serverName;
    const acquireOpts: { forceNew?: boolean; signal?: AbortSignal } = {};
    if (opts.forceNew) acquireOpts.forceNew = true;
    if (opts.signal) acquireOpts.signal = opts.signal;
    return this.#pool.acquire({ key, serverName }, { serverName, config }, fingerprint, acquireOpts);
  }

  /** Closes a server's shared connections, whatever their config (after their in-flight calls). */
  removeServer(serverName: string, reason: EvictReason = 'removed'): Promise<void> {
    return this.#pool.evictWhere((pk) => pk.serverName === serverName, reason);
  }

  /** Sizes and counters. */
  stats(): { appConnections: number; pendingConnects: number; draining: number; counters: PoolCounters } {
    const s = this.#pool.stats();
    return { appConnections: s.connections, pendingConnects: s.pending, draining: s.draining, counters: s.counters };
  }

  /** Closes every connection. Idempotent. */
  close(): Promise<void> {
    return this.#pool.close();
  }
}
