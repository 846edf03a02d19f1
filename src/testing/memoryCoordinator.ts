/**
 * An in-process {@link Coordinator}: what several `MCPManager`s, upstream token providers and OBO resolvers in
 * one test process share to behave like replicas of one fleet, without Redis. It can be switched to failing, to
 * test what happens when the real coordinator (Redis) is down.
 * @module
 */
import type { OboToken } from '../auth/oboTypes.js';
import { MemoryUpstreamSessionStore, type UpstreamSession, type UpstreamSessionStore } from '../auth/tokenStore.js';
import type { Coordinator, CoordinatorLock, InvalidationEvent, SharedTokenCache } from '../coordination.js';
import { SwitchboardError } from '../errors.js';
import {
  MemoryOAuthFlowStore,
  MemoryOAuthStore,
  type OAuthClientKey,
  type OAuthFlowStore,
  type OAuthStore,
  type OAuthTokenKey,
  type PendingAuthorization,
  type StoredOAuthTokens,
} from '../oauth/store.js';
import type { OAuthClientInformationMixed } from '@modelcontextprotocol/sdk/shared/auth.js';

/**
 * Options of {@link createMemoryCoordinator}.
 *
 * @example
 * ```ts
 * const opts: MemoryCoordinatorOptions = { now: () => clock.now };
 * const coordinator = createMemoryCoordinator(opts);
 * ```
 */
export interface MemoryCoordinatorOptions {
  /** Clock (epoch ms) of the OBO cache's `staleAt` and of pending flows; default `Date.now`. */
  now?: () => number;
}

/**
 * A {@link Coordinator} in this process, plus a switch that simulates the shared backend being down.
 *
 * @example
 * ```ts
 * const coordinator: MemoryCoordinator = createMemoryCoordinator();
 * coordinator.fail(true); // every method now rejects with a retryable SwitchboardError('connect_failed')
 * ```
 */
export interface MemoryCoordinator extends Coordinator {
  /**
   * `true`: every method (of the stores and caches too) rejects with a retryable
   * `SwitchboardError('connect_failed')`, as when Redis is unreachable; invalidations are not delivered.
   * `false`: back to normal, with everything stored before still there.
   */
  fail(on: boolean): void;
  /** Whether {@link MemoryCoordinator.fail} is on. */
  readonly failing: boolean;
}

/** A held lock of one key. */
interface Held {
  token: number;
  timer: NodeJS.Timeout;
}

/** A replica waiting for a key's lock. */
interface Waiter {
  ttlMs: number;
  resolve: (lock: CoordinatorLock | undefined) => void;
  timer: NodeJS.Timeout;
}

/**
 * Creates an in-process coordinator: a {@link MemoryOAuthStore}, a {@link MemoryOAuthFlowStore}, a
 * {@link MemoryUpstreamSessionStore} (atomic `compareAndSet`), a map of OBO tokens, locks with a fencing
 * counter per key (waiters are served in order as the holder releases or its TTL runs out), and invalidations
 * delivered asynchronously to every subscriber (the publisher's included). Give the same object to several
 * managers, providers and resolvers to simulate replicas in one test process. `close()` only stops delivering
 * invalidations; nothing else needs closing.
 *
 * @example
 * ```ts
 * import { createMemoryCoordinator } from 'mcp-switchboard/testing';
 * import { MCPManager } from 'mcp-switchboard';
 *
 * const coordinator = createMemoryCoordinator();
 * const a = new MCPManager({ servers, coordinator });
 * const b = new MCPManager({ servers, coordinator });
 * await a.disconnectUser('alice'); // b closes alice's connections too
 * coordinator.fail(true); // now simulate the backend being down
 * ```
 */
export function createMemoryCoordinator(opts: MemoryCoordinatorOptions = {}): MemoryCoordinator {
  const now = opts.now ?? Date.now;
  let failing = false;
  let closed = false;
  const down = () => new SwitchboardError('connect_failed', 'The coordinator is unreachable (simulated by MemoryCoordinator.fail)', { retryable: true });
  /** Runs `fn` unless failing, as an async call always. */
  const call = async <T>(fn: () => T | Promise<T>): Promise<T> => {
    await Promise.resolve();
    if (failing) throw down();
    return fn();
  };

  const tokens = new MemoryOAuthStore();
  const oauthStore: OAuthStore = {
    getTokens: (key: OAuthTokenKey) => call(() => tokens.getTokens(key)),
    setTokens: (key: OAuthTokenKey, value: StoredOAuthTokens) => call(() => tokens.setTokens(key, value)),
    deleteTokens: (key: OAuthTokenKey) => call(() => tokens.deleteTokens(key)),
    getClient: (key: OAuthClientKey) => call(() => tokens.getClient(key)),
    setClient: (key: OAuthClientKey, client: OAuthClientInformationMixed) => call(() => tokens.setClient(key, client)),
    deleteClient: (key: OAuthClientKey) => call(() => tokens.deleteClient(key)),
  };

  const flows = new MemoryOAuthFlowStore({ now });
  const oauthFlowStore: OAuthFlowStore = {
    put: (state: string, flow: PendingAuthorization) => call(() => flows.put(state, flow)),
    take: (state: string) => call(() => flows.take(state)),
    has: (state: string) => call(() => flows.has(state)),
  };

  const sessions = new MemoryUpstreamSessionStore();
  const upstreamSessions: UpstreamSessionStore = {
    get: (key: string) => call(() => sessions.get(key)),
    set: (key: string, s: UpstreamSession) => call(() => sessions.set(key, s)),
    delete: (key: string) => call(() => sessions.delete(key)),
    compareAndSet: (key: string, expected: UpstreamSession, next: UpstreamSession | undefined) => call(() => sessions.compareAndSet(key, expected, next)),
  };

  const obo = new Map<string, { token: OboToken; staleAt: number }>();
  const oboTokens: SharedTokenCache = {
    get: (key) =>
      call(() => {
        const entry = obo.get(key);
        if (!entry) return undefined;
        if (entry.staleAt <= now()) {
          obo.delete(key);
          return undefined;
        }
        return { ...entry.token };
      }),
    set: (key, token, staleAt) =>
      call(() => {
        if (!(staleAt > now())) return;
        // Keeps the newer token (as the Redis coordinator does): a live entry expiring as late or later stays.
        const cur = obo.get(key);
        if (cur && cur.staleAt > now() && (cur.token.expiresAt ?? 0) >= (token.expiresAt ?? 0)) return;
        obo.set(key, { token: { accessToken: token.accessToken, ...(token.expiresAt === undefined ? {} : { expiresAt: token.expiresAt }) }, staleAt });
      }),
    delete: (key) => call(() => void obo.delete(key)),
  };

  const fencing = new Map<string, number>();
  const held = new Map<string, Held>();
  const waiting = new Map<string, Waiter[]>();

  /** Gives the free lock of `key` to the first waiter, if any. */
  function handOver(key: string): void {
    const queue = waiting.get(key);
    const next = queue?.shift();
    if (queue && queue.length === 0) waiting.delete(key);
    if (!next) return;
    clearTimeout(next.timer);
    next.resolve(take(key, next.ttlMs));
  }

  function take(key: string, ttlMs: number): CoordinatorLock {
    const token = (fencing.get(key) ?? 0) + 1;
    fencing.set(key, token);
    const timer = setTimeout(() => {
      // The holder died (or overran): the lock expires and the next waiter gets it.
      if (held.get(key)?.token === token) {
        held.delete(key);
        handOver(key);
      }
    }, ttlMs);
    timer.unref();
    held.set(key, { token, timer });
    return {
      token,
      release: async () => {
        const h = held.get(key);
        if (h?.token !== token) return;
        clearTimeout(h.timer);
        held.delete(key);
        handOver(key);
      },
    };
  }

  const listeners = new Set<(event: InvalidationEvent) => void>();

  return {
    oauthStore,
    oauthFlowStore,
    upstreamSessions,
    oboTokens,
    get failing() {
      return failing;
    },
    fail(on: boolean) {
      failing = on;
    },
    acquire(key, { ttlMs, waitMs }) {
      return call(
        () =>
          new Promise<CoordinatorLock | undefined>((resolve) => {
            if (!held.has(key)) {
              resolve(take(key, ttlMs));
              return;
            }
            const waiter: Waiter = {
              ttlMs,
              resolve,
              timer: setTimeout(() => {
                const queue = waiting.get(key);
                const i = queue?.indexOf(waiter) ?? -1;
                if (i >= 0) queue!.splice(i, 1);
                resolve(undefined);
              }, waitMs),
            };
            waiter.timer.unref();
            const queue = waiting.get(key) ?? [];
            queue.push(waiter);
            waiting.set(key, queue);
          }),
      );
    },
    publish(event) {
      return call(() => {
        if (closed) return;
        const copy = JSON.parse(JSON.stringify(event)) as InvalidationEvent;
        for (const listener of [...listeners]) {
          setImmediate(() => {
            if (failing || closed || !listeners.has(listener)) return;
            try {
              listener(JSON.parse(JSON.stringify(copy)) as InvalidationEvent);
            } catch {
              // A listener's failure is its own.
            }
          });
        }
      });
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    async close() {
      closed = true;
      listeners.clear();
    },
  };
}
