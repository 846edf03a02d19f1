/**
 * What several replicas of a host share to act as one: stores, a fleet-wide single flight, a shared OBO token
 * cache and an invalidation channel. The package's own code depends on this interface only; the Redis
 * implementation lives in the optional subpath `mcp-switchboard/redis` (`createRedisCoordinator`), so nothing
 * loads a Redis client unless the host imports it.
 * @module
 */
import type { OboToken } from './auth/oboTypes.js';
import type { UpstreamSessionStore } from './auth/tokenStore.js';
import type { OAuthFlowStore, OAuthStore } from './oauth/store.js';

/**
 * A lock held by one replica for one key. Its `token` is a fencing token: a value strictly greater than any
 * earlier holder's of the same key, so a store can refuse a write from a holder whose lock expired meanwhile.
 *
 * @example
 * ```ts
 * const lock = await coordinator.acquire('refresh:alice', { ttlMs: 10_000, waitMs: 5_000 });
 * if (lock) try { await refresh(); } finally { await lock.release(); }
 * ```
 */
export interface CoordinatorLock {
  /** Monotonic per key across the fleet. */
  readonly token: number;
  /** Releases the lock if this holder still has it; no error otherwise. */
  release(): Promise<void>;
}

/**
 * A fleet-wide change every replica applies to itself: a user signed out, revoked a server's authorization, or
 * a server's config changed or was removed. Published by the replica where it happened.
 *
 * @example
 * ```ts
 * const e: InvalidationEvent = { kind: 'disconnectUser', userId: 'alice', tenantId: 'contoso' };
 * ```
 */
export type InvalidationEvent = (
  | { kind: 'disconnectUser'; userId: string; tenantId?: string }
  | { kind: 'revokeAuthorization'; userId: string; tenantId?: string; serverName: string }
  | { kind: 'upsertServer'; serverName: string; config: unknown }
  | { kind: 'removeServer'; serverName: string }
  /** An OBO resolver replaced a rejected token: every replica drops its in-process entry of this shared-cache key (a hash). */
  | { kind: 'dropOboToken'; key: string }
) & {
  /** The publishing replica (an opaque id per manager): it skips echoes of its own changes it has since replaced. */
  origin?: string;
  /** The publisher's sequence number of config changes, per server (with `origin`). */
  seq?: number;
};

/**
 * A shared cache of OBO tokens. Keys are opaque hashes (never a raw token); values are kept encrypted by the
 * implementation. `get` after the entry's `staleAt` returns `undefined`. `set` keeps the newer token: it is
 * ignored (atomically) when the live entry's token expires at the same time or later (a token without
 * `expiresAt` only fills an empty key), so a writer that stalled cannot put back an older token over a newer
 * one; `delete` first to replace a token that was rejected.
 *
 * @example
 * ```ts
 * await cache.set(keyHash, token, token.expiresAt! - 60_000);
 * const again = await cache.get(keyHash);
 * ```
 */
export interface SharedTokenCache {
  get(key: string): Promise<OboToken | undefined>;
  set(key: string, token: OboToken, staleAt: number): Promise<void>;
  delete(key: string): Promise<void>;
}

/**
 * What `MCPManager`, `createUpstreamTokenProvider` and `createOboTokenResolver` use, through their
 * `coordinator` option, to behave as one across several replicas.
 *
 * @example
 * ```ts
 * import { createRedisCoordinator } from 'mcp-switchboard/redis';
 * const coordinator: Coordinator = createRedisCoordinator({ url: 'redis://127.0.0.1:6379', encryptionKey: process.env.MCP_KEY! });
 * const manager = new MCPManager({ servers, oauth: { redirectUri }, coordinator });
 * ```
 */
export interface Coordinator {
  /** Tokens and client registrations of the MCP authorization flow, shared. */
  readonly oauthStore: OAuthStore;
  /** Pending authorizations, shared: a callback completes on any replica. */
  readonly oauthFlowStore: OAuthFlowStore;
  /** Upstream sessions with an atomic `compareAndSet`. */
  readonly upstreamSessions: UpstreamSessionStore;
  /** OBO tokens, shared and encrypted. */
  readonly oboTokens: SharedTokenCache;
  /**
   * A fleet-wide lock: resolves with the lock once this replica holds it (within `waitMs`), or `undefined` when
   * another holder kept it past `waitMs`. It expires after `ttlMs` when its holder dies. Rejects when the
   * coordinator cannot be reached.
   */
  acquire(key: string, opts: { ttlMs: number; waitMs: number }): Promise<CoordinatorLock | undefined>;
  /** Publishes an invalidation to every replica (this one's subscribers included). */
  publish(event: InvalidationEvent): Promise<void>;
  /** Listens to invalidations from every replica; returns the unsubscribe function. */
  subscribe(listener: (event: InvalidationEvent) => void): () => void;
  /** Closes the connections the coordinator opened (not a client the host passed in). Idempotent. */
  close(): Promise<void>;
}
