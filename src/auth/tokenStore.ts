/**
 * Where users' upstream (federated) sessions live: an interface a shared store (Redis, a database) implements,
 * and the in-memory default.
 * @module
 */
import { LRUCache } from 'lru-cache';

/**
 * A user's federated session with the upstream IdP.
 *
 * @example
 * ```ts
 * const session: UpstreamSession = { accessToken, refreshToken, expiresAt: Date.now() + 3_600_000 };
 * ```
 */
export interface UpstreamSession {
  /** The current access token (the OBO assertion). */
  accessToken: string;
  /** The refresh token; without it an expired session cannot be renewed. */
  refreshToken?: string;
  /** When `accessToken` expires, epoch ms. */
  expiresAt: number;
}

/**
 * Storage of upstream sessions, keyed by the string {@link UpstreamTokenProvider.sessionKey} builds (it holds
 * issuer, client, tenant and user, so one store can serve several providers and tenants never collide).
 *
 * A store shared between processes should implement `compareAndSet` (e.g. a Redis `WATCH`/`MULTI` or a Lua
 * script comparing the refresh token), so two processes that refresh the same session at once cannot
 * overwrite each other's rotated refresh token.
 *
 * @example
 * ```ts
 * // A Redis-backed store (sketch): JSON values, a TTL a little past the refresh token's lifetime.
 * const redisStore: UpstreamSessionStore = {
 *   async get(key) { const v = await redis.get(key); return v ? JSON.parse(v) : undefined; },
 *   async set(key, s) { await redis.set(key, JSON.stringify(s), 'EX', 90 * 24 * 3600); },
 *   async delete(key) { await redis.del(key); },
 * };
 * ```
 */
export interface UpstreamSessionStore {
  /** The session under `key`, or `undefined`. */
  get(key: string): Promise<UpstreamSession | undefined>;
  /** Stores (replaces) the session under `key`. */
  set(key: string, session: UpstreamSession): Promise<void>;
  /** Removes the session under `key`; no error when there is none. */
  delete(key: string): Promise<void>;
  /**
   * Atomically replaces the session under `key` with `next` (or deletes it when `next` is `undefined`), but
   * only if the stored one still has `expected`'s access and refresh tokens. Resolves `true` when it did.
   * Optional: without it the provider uses `get` + `set`, which is enough within one process.
   */
  compareAndSet?(key: string, expected: UpstreamSession, next: UpstreamSession | undefined): Promise<boolean>;
}

/**
 * Whether two sessions hold the same tokens (what {@link UpstreamSessionStore.compareAndSet} compares).
 *
 * @example
 * ```ts
 * sameSession({ accessToken: 'a', expiresAt: 1 }, { accessToken: 'a', expiresAt: 2 }); // true
 * ```
 */
export function sameSession(a: UpstreamSession | undefined, b: UpstreamSession | undefined): boolean {
  return !!a && !!b && a.accessToken === b.accessToken && a.refreshToken === b.refreshToken;
}

/**
 * Options of {@link MemoryUpstreamSessionStore}.
 *
 * @example
 * ```ts
 * const store = new MemoryUpstreamSessionStore({ maxEntries: 50_000 });
 * ```
 */
export interface MemoryUpstreamSessionStoreOptions {
  /** Most sessions kept; the least recently used goes first (that user signs in again). Default 100 000. */
  maxEntries?: number;
}

/**
 * The default {@link UpstreamSessionStore}: an in-process LRU map. Sessions are copied in and out, so a caller
 * cannot change a stored session by mutating an object. Lost on restart and not shared between processes.
 *
 * @example
 * ```ts
 * import { createUpstreamTokenProvider, MemoryUpstreamSessionStore } from 'mcp-switchboard';
 * const upstream = createUpstreamTokenProvider({ issuer, clientId, clientSecret, store: new MemoryUpstreamSessionStore() });
 * ```
 */
export class MemoryUpstreamSessionStore implements UpstreamSessionStore {
  readonly #sessions: LRUCache<string, UpstreamSession>;

  constructor(opts: MemoryUpstreamSessionStoreOptions = {}) {
    const max = opts.maxEntries ?? 100_000;
    if (!Number.isInteger(max) || max < 1) throw new TypeError('"maxEntries" must be a positive integer');
    this.#sessions = new LRUCache({ max });
  }

  /** How many sessions are stored. */
  get size(): number {
    return this.#sessions.size;
  }

  async get(key: string): Promise<UpstreamSession | undefined> {
    const s = this.#sessions.get(key);
    return s ? { ...s } : undefined;
  }

  async set(key: string, session: UpstreamSession): Promise<void> {
    this.#sessions.set(key, copy(session));
  }

  async delete(key: string): Promise<void> {
    this.#sessions.delete(key);
  }

  async compareAndSet(key: string, expected: UpstreamSession, next: UpstreamSession | undefined): Promise<boolean> {
    // Synchronous between read and write, hence atomic within this process.
    if (!sameSession(this.#sessions.peek(key), expected)) return false;
    if (next) this.#sessions.set(key, copy(next));
    else this.#sessions.delete(key);
    return true;
  }
}

function copy(s: UpstreamSession): UpstreamSession {
  return {
    accessToken: s.accessToken,
    ...(s.refreshToken === undefined ? {} : { refreshToken: s.refreshToken }),
    expiresAt: s.expiresAt,
  };
}
