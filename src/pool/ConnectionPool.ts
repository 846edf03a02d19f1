/**
 * The mechanics shared by the per-user pool and the app pool: one connection per key, concurrent acquires of a
 * key joined into one connect, leases that keep a connection open while calls are in flight, idle eviction by
 * per-entry timers (no sweep), LRU eviction under limits, retirement of stale or replaced connections once
 * their calls end.
 *
 * Every connect is owned by the pool until it ends. Each one is a {@link SlotState} machine (see
 * `TRANSITIONS` below): a connect that was cancelled (`disconnectUser`, `removeServer`, `close()`) or superseded
 * is not cut mid-handshake, which would orphan the server's session since the client never learns its id; it
 * completes (within its own init timeout, or `abandonGraceMs`) and is then closed, its session DELETEd.
 * @module
 */
import { SwitchboardError } from '../errors.js';
import type { EvictReason } from '../events.js';
import { KeyedSemaphore } from '../connection/admission.js';
import { fn, optionError, positiveInt, positiveMs, positiveMsOrInfinity } from '../options.js';
import { followSignal } from '../connection/signalLink.js';

/**
 * What the pool needs of a connection. `MCPConnection` has it; tests may pass fakes.
 *
 * @example
 * ```ts
 * import { EventEmitter } from 'node:events';
 * class FakeConnection extends EventEmitter implements PoolableConnection {
 *   #open = true;
 *   isConnected() { return this.#open; }
 *   async close() { if (this.#open) { this.#open = false; this.emit('close', {}); } }
 * }
 * ```
 */
export interface PoolableConnection {
  /** Whether the connection can take calls now. */
  isConnected(): boolean;
  /** Closes the connection; idempotent. */
  close(): Promise<void>;
  /** Fires once when the connection closes on its own (or is closed). */
  on(event: 'close', listener: (e: { error?: SwitchboardError }) => void): unknown;
  /** Removes a listener. */
  off(event: 'close', listener: (e: { error?: SwitchboardError }) => void): unknown;
}

/**
 * Identifies one pooled connection.
 *
 * @example
 * ```ts
 * const app = new AppConnectionPool({
 *   connect: (req) => factory.create(req),
 *   hooks: { onConnect: (key: PoolKey, _connection, ms) => console.log(`shared ${key.serverName} connected in ${ms} ms`) },
 * });
 * ```
 */
export interface PoolKey {
  /** Unique key of the connection (e.g. tenant, user, server). */
  key: string;
  /** Key of the owner, for per-owner limits and `evictOwner`; absent for unowned (app) connections. */
  ownerKey?: string;
  /** The server's name. */
  serverName: string;
}

/**
 * A connection held for the length of one use. Call `release()` exactly once when done (extra calls are ignored).
 *
 * @example
 * ```ts
 * const lease: Lease<MCPConnection> = await app.acquire('everything', config);
 * try { await lease.connection.callTool('echo', { message: 'hi' }); } finally { lease.release(); }
 * ```
 */
export interface Lease<C> {
  /** The leased connection. */
  readonly connection: C;
  /**
   * Ends the lease; the idle clock of the connection restarts when its last lease ends. Pass
   * `{ touch: false }` when the use failed for want of credentials: a failure must not extend the
   * connection's life (the idle clock keeps counting from the last successful use).
   */
  release(opts?: LeaseReleaseOptions): void;
}

/**
 * Options of {@link Lease.release}.
 *
 * @example
 * ```ts
 * let ok = false;
 * try { await lease.connection.callTool('me', {}); ok = true; } finally { lease.release({ touch: ok }); }
 * ```
 */
export interface LeaseReleaseOptions {
  /**
   * Count this use as activity for idle eviction (default `true`). With `false` the idle clock keeps counting from
   * the last counted use; the connection still moves to the most recently used end of the limit-eviction order.
   */
  touch?: boolean;
}

/**
 * The life of one connect attempt and the connection it yields:
 * - `connecting`: the connect runs; acquires of its key join it;
 * - `abandoned`: still connecting, but cancelled or superseded with nobody left waiting: closed once it completes;
 * - `ready`: in the pool, leased or idle;
 * - `draining`: out of the pool (evicted, stale, replaced); closed when its last lease ends;
 * - `closing` → `closed`: being closed (session DELETE, process ended) / gone. Also `closed` after a failed connect.
 *
 * @example
 * ```ts
 * const s: SlotState = 'draining';
 * ```
 */
export type SlotState = 'connecting' | 'abandoned' | 'ready' | 'draining' | 'closing' | 'closed';

/**
 * Pool event hooks.
 *
 * @example
 * ```ts
 * const hooks: PoolHooks<MCPConnection> = {
 *   onEvict: (key, reason) => logger.info({ server: key.serverName, reason }, 'evicted'),
 *   onError: (key, error) => logger.warn({ server: key.serverName, err: (error as Error).name }, 'closing failed'),
 * };
 * const pool = new ConnectionPool({ connect, idleTimeoutMs: 60_000, hooks });
 * ```
 */
export interface PoolHooks<C> {
  /** A connection was installed in the pool. */
  onConnect?(key: PoolKey, connection: C, durationMs: number): void;
  /**
   * A connection left the pool; it is closed once its leases end. `connection` is the one evicted. Called while
   * the pool updates its state: do not release a lease of that connection synchronously from here (defer it).
   */
  onEvict?(key: PoolKey, reason: EvictReason, connection: C): void;
  /** A connection closed (`reason` when the pool closed it, `error` when it died); `connection` is the one closed. */
  onDisconnect?(key: PoolKey, e: { reason?: EvictReason; error?: SwitchboardError }, connection: C): void;
  /** A background failure (closing a connection failed). */
  onError?(key: PoolKey, error: unknown): void;
}

/**
 * Options of {@link ConnectionPool}.
 *
 * @example
 * ```ts
 * const options: ConnectionPoolOptions<MCPConnection, { config: ServerConfig }> = {
 *   connect: (pk, { config }, signal) => factory.create({ serverName: pk.serverName, config, signal }),
 *   idleTimeoutMs: 60_000,
 *   maxPerOwner: 10,
 *   limitNames: { perOwner: 'maxConnectionsPerUser', total: 'maxUserConnections' },
 * };
 * ```
 */
export interface ConnectionPoolOptions<C extends PoolableConnection, Ctx> {
  /**
   * Opens a connection. `signal` is aborted only when a cancelled connect is still running `abandonGraceMs`
   * after it was abandoned: a connect is never cut mid-handshake for a cancellation.
   */
  connect(key: PoolKey, ctx: Ctx, signal: AbortSignal): Promise<C>;
  /** Idle time after the last lease ends before the connection is evicted; `Infinity` disables it. */
  idleTimeoutMs: number;
  /** Most connections (open or connecting) per owner. */
  maxPerOwner?: number;
  /** Most connections (open or connecting) in the pool. */
  maxTotal?: number;
  /**
   * The public names of `maxPerOwner`, `maxTotal` and `idleTimeoutMs`, used in limit errors and in the
   * `TypeError` of a bad value, e.g. `maxConnectionsPerUser` (default `ConnectionPool: maxPerOwner`, …).
   */
  limitNames?: { perOwner: string; total: string; idleTimeout?: string };
  /** Event hooks. */
  hooks?: PoolHooks<C>;
  /**
   * How long an abandoned connect (cancelled or superseded while connecting) may still run before its signal is
   * aborted, in ms. Default 60 000 (connects bound themselves by their `initTimeoutMs` first). `close()` waits
   * for abandoned connects, so this bounds it too.
   */
  abandonGraceMs?: number;
  /** Clock; defaults to `Date.now`. */
  now?: () => number;
}

/**
 * Options of one acquire.
 *
 * @example
 * ```ts
 * const lease = await app.acquire('everything', config, { forceNew: true, signal: AbortSignal.timeout(5_000) });
 * ```
 */
export interface AcquireOptions {
  /** Never join or reuse: open a new connection that replaces the current one once its calls end. */
  forceNew?: boolean;
  /** Aborts this caller's wait (not the shared connect, unless every waiter aborts). */
  signal?: AbortSignal;
}

/**
 * Counters of a pool.
 *
 * @example
 * ```ts
 * const c: PoolCounters = manager.stats().userPool;
 * console.log(`${c.hits} hits, ${c.joins} joins, ${c.connects} connects, ${c.evictions.idle} idle evictions`);
 * ```
 */
export interface PoolCounters {
  /** Connections opened. */
  connects: number;
  /** Acquires that joined a connect already in flight. */
  joins: number;
  /** Acquires served by an open connection. */
  hits: number;
  /** Connects that failed. */
  connectFailures: number;
  /** Evictions by reason. */
  evictions: Record<EvictReason, number>;
}

interface IdleLinks<T> {
  idlePrev: T | undefined;
  idleNext: T | undefined;
  inIdle: boolean;
}

/** A doubly linked list threaded through its items: O(1) append, remove and first, no allocation. */
class IdleList<T extends IdleLinks<T>> {
  #head: T | undefined;
  #tail: T | undefined;

  append(item: T): void {
    if (item.inIdle) this.remove(item);
    item.inIdle = true;
    item.idlePrev = this.#tail;
    item.idleNext = undefined;
    if (this.#tail) this.#tail.idleNext = item;
    else this.#head = item;
    this.#tail = item;
  }

  remove(item: T): void {
    if (!item.inIdle) return;
    item.inIdle = false;
    if (item.idlePrev) item.idlePrev.idleNext = item.idleNext;
    else this.#head = item.idleNext;
    if (item.idleNext) item.idleNext.idlePrev = item.idlePrev;
    else this.#tail = item.idlePrev;
    item.idlePrev = item.idleNext = undefined;
  }

  first(): T | undefined {
    return this.#head;
  }
}

/** One connect attempt and, once it succeeded, its connection. */
interface Slot<C> extends IdleLinks<Slot<C>> {
  state: SlotState;
  readonly pk: PoolKey;
  readonly fingerprint: string;
  readonly forceNew: boolean;
  /** Aborted only when an abandoned connect outlives `abandonGraceMs`. */
  readonly controller: AbortController;
  /** Acquires waiting for this connect. */
  readonly waiters: Set<Waiter<C>>;
  /** A newer connect owns the key: this one serves only its own waiters (forceNew), then closes. */
  superseded: boolean;
  /** Its config changed while it connected: it serves its waiters, then leaves the pool as stale. */
  staleOnArrival: boolean;
  conn: C | undefined;
  /** Whether `onConnect` was reported (then `onDisconnect` is too). */
  announced: boolean;
  leases: number;
  lastUsed: number;
  /** Release order, for LRU choices that must not depend on clock resolution. */
  seq: number;
  /** The idle timer (ready) or the grace timer (abandoned). */
  timer: NodeJS.Timeout | undefined;
  /** Why it left the pool (draining, closing) or was cancelled (abandoned). */
  reason: EvictReason | undefined;
  /** What waiters of a cancelled connect are rejected with. */
  cancelError: SwitchboardError | undefined;
  onClose: ((e: { error?: SwitchboardError }) => void) | undefined;
  /** Settles when the slot reaches `closed`. */
  readonly done: Promise<void>;
  markDone(): void;
}

interface Waiter<C> {
  /** The connect it waits for; changes when it is moved to a newer connect of its key. */
  slot: Slot<C>;
  resolve(lease: Lease<C>): void;
  reject(err: unknown): void;
  cleanup(): void;
}

/**
 * The state machine of a slot, as data: every (state, event) pair the pool handles and the state it leads to.
 * `ConnectionPool` asserts each transition against it, and the unit tests walk the whole table.
 *
 * @example
 * ```ts
 * SLOT_TRANSITIONS.connecting.cancel; // 'abandoned': finishes its handshake, then is closed
 * ```
 */
export const SLOT_TRANSITIONS: Readonly<Record<SlotState, Readonly<Partial<Record<SlotEvent, SlotState>>>>> = Object.freeze({
  connecting: { connected: 'ready', connectedSuperseded: 'draining', failed: 'closed', cancel: 'abandoned', lastWaiterLeftSuperseded: 'abandoned', poolClose: 'abandoned' },
  abandoned: { connected: 'closing', failed: 'closed', graceExpired: 'abandoned', poolClose: 'abandoned' },
  ready: { evict: 'draining', idle: 'closing', died: 'closed', poolClose: 'closing', lastRelease: 'ready' },
  draining: { lastRelease: 'closing', died: 'closed', poolClose: 'closing' },
  closing: { closed: 'closed' },
  closed: {},
});

/**
 * What happens to a slot: connect results, cancellation (`disconnectUser`, `removeServer`), eviction, the idle
 * timer, the last lease ending, the connection dying, `close()`.
 *
 * @example
 * ```ts
 * const e: SlotEvent = 'cancel';
 * ```
 */
export type SlotEvent =
  | 'connected'
  | 'connectedSuperseded'
  | 'failed'
  | 'cancel'
  | 'lastWaiterLeftSuperseded'
  | 'graceExpired'
  | 'evict'
  | 'idle'
  | 'lastRelease'
  | 'died'
  | 'closed'
  | 'poolClose';

function abortError(serverName: string, signal: AbortSignal): SwitchboardError {
  return new SwitchboardError('aborted', `Waiting for a connection to "${serverName}" was aborted`, { serverName, cause: signal.reason });
}

const DEFAULT_ABANDON_GRACE_MS = 60_000;

/**
 * A keyed pool of connections. Used by {@link UserConnectionManager} (one key per tenant, user and server)
 * and {@link AppConnectionPool} (one key per server). Hosts normally use those, not this class.
 *
 * @example
 * ```ts
 * const pool = new ConnectionPool<MCPConnection, { serverName: string; config: ServerConfig }>({
 *   connect: (_key, ctx, signal) => factory.create({ ...ctx, signal }),
 *   idleTimeoutMs: 60_000,
 * });
 * const lease = await pool.acquire({ key: 'github', serverName: 'github' }, { serverName: 'github', config }, 'config-v1');
 * try { await lease.connection.callTool('search', { q: 'x' }); } finally { lease.release(); }
 * ```
 */
export class ConnectionPool<C extends PoolableConnection, Ctx> {
  readonly #opts: ConnectionPoolOptions<C, Ctx>;
  readonly #now: () => number;
  readonly #abandonGraceMs: number;
  /** Key → its `ready` slot. */
  readonly #ready = new Map<string, Slot<C>>();
  /** Key → the connect that owns the key (`connecting`, not superseded). */
  readonly #connecting = new Map<string, Slot<C>>();
  /** Key → every slot of the key that has not reached `closed`, superseded and draining ones included. */
  readonly #byKey = new Map<string, Set<Slot<C>>>();
  /**
   * Idle slots (no lease), oldest release first: the LRU order for limit eviction. An intrusive linked list,
   * not a Map: deleting and re-inserting a key on every lease leaves tombstones that slow a large Map down
   * (a hot key in a pool of 100 000 cost tens of µs per call).
   */
  readonly #idle = new IdleList<Slot<C>>();
  /** Owner → keys that have a live slot. */
  readonly #owners = new Map<string, Set<string>>();
  readonly #counters: PoolCounters = {
    connects: 0,
    joins: 0,
    hits: 0,
    connectFailures: 0,
    evictions: { idle: 0, limit: 0, stale: 0, replaced: 0, removed: 0, disconnected: 0, closed: 0 },
  };
  #closing: Promise<void> | undefined;
  #seq = 0;
  /**
   * Closes in flight at once. Each close may DELETE a session within a bounded wait: closing a thousand at once
   * (a pool close, a server removal) would have most DELETEs wait out their bound and leave sessions behind.
   */
  readonly #closes = new KeyedSemaphore(32);

  constructor(opts: ConnectionPoolOptions<C, Ctx>) {
    if (!opts || typeof opts !== 'object') throw optionError('ConnectionPool: options', 'an object', opts);
    fn(opts.connect, 'ConnectionPool: connect', { required: true });
    positiveMsOrInfinity(opts.idleTimeoutMs, opts.limitNames?.idleTimeout ?? 'ConnectionPool: idleTimeoutMs');
    positiveInt(opts.maxPerOwner, opts.limitNames?.perOwner ?? 'ConnectionPool: maxPerOwner', undefined);
    positiveInt(opts.maxTotal, opts.limitNames?.total ?? 'ConnectionPool: maxTotal', undefined);
    positiveMs(opts.abandonGraceMs, 'ConnectionPool: abandonGraceMs', undefined);
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#abandonGraceMs = opts.abandonGraceMs ?? DEFAULT_ABANDON_GRACE_MS;
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * Leases the connection of `pk`, opening it if needed. A warm hit is O(1). `fingerprint` identifies the
   * config: an open connection made with another fingerprint is stale and replaced (its calls finish first).
   */
  acquire(pk: PoolKey, ctx: Ctx, fingerprint: string, opts: AcquireOptions = {}): Promise<Lease<C>> {
    if (this.#closing) return Promise.reject(new SwitchboardError('manager_closed', 'The connection pool is closed', { serverName: pk.serverName }));
    const { signal, forceNew = false } = opts;
    if (signal?.aborted) return Promise.reject(abortError(pk.serverName, signal));

    if (!forceNew) {
      const e = this.#ready.get(pk.key);
      if (e) {
        if (e.fingerprint === fingerprint && e.conn!.isConnected()) {
          this.#counters.hits++;
          return Promise.resolve(this.#lease(e));
        }
        void this.#retire(e, e.fingerprint === fingerprint ? 'disconnected' : 'stale');
      }
      const p = this.#connecting.get(pk.key);
      if (p && p.fingerprint === fingerprint) {
        this.#counters.joins++;
        return this.#wait(p, signal);
      }
    }
    let slot: Slot<C>;
    try {
      slot = this.#startConnect(pk, ctx, fingerprint, forceNew);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#wait(slot, signal);
  }

  /** The open connection of `pk`, if any, without leasing it. */
  peek(key: string): C | undefined {
    return this.#ready.get(key)?.conn;
  }

  /**
   * Evicts every connection (and cancels every connect) of an owner. Resolves when idle connections and cancelled
   * connects are closed; connections with calls in flight close when those end.
   */
  async evictOwner(ownerKey: string, reason: EvictReason): Promise<void> {
    const keys = this.#owners.get(ownerKey);
    if (!keys) return;
    await Promise.all([...keys].map((k) => this.evictKey(k, reason)));
  }

  /** Evicts every connection (and cancels every connect) matching `pred`. Not for hot paths: it scans the pool. */
  async evictWhere(pred: (pk: PoolKey) => boolean, reason: EvictReason): Promise<void> {
    const keys: string[] = [];
    for (const [k, slots] of this.#byKey) {
      const first = slots.values().next().value as Slot<C> | undefined;
      if (first && pred(first.pk)) keys.push(k);
    }
    await Promise.all(keys.map((k) => this.evictKey(k, reason)));
  }

  /**
   * Evicts one key: its connection leaves the pool (closed now if idle, else when its calls end) and every connect
   * of the key is cancelled (its waiters rejected; the connect completes, then is closed). Resolves when the
   * idle connection and the cancelled connects are closed. With reason `'stale'` (a config change) a connect in
   * flight is not cancelled: its waiters are served (or moved to the connect of a newer acquire, which
   * supersedes it), then it leaves the pool as stale, so no waiter of a connect fails for a config change and
   * none stays on the old config.
   */
  async evictKey(key: string, reason: EvictReason): Promise<void> {
    const slots = this.#byKey.get(key);
    if (!slots) return;
    const waits: Promise<void>[] = [];
    for (const s of [...slots]) {
      if (reason === 'stale' && s.state === 'connecting') {
        s.staleOnArrival = true;
        continue;
      }
      if (reason === 'stale' && s.state === 'abandoned') continue;
      if (s.state === 'connecting') {
        this.#cancel(s, reason);
        waits.push(s.done);
      } else if (s.state === 'abandoned') {
        waits.push(s.done);
      } else if (s.state === 'ready') {
        waits.push(this.#retire(s, reason));
      }
    }
    await Promise.all(waits);
  }

  /** Sizes and counters. */
  stats(): { owners: number; connections: number; pending: number; draining: number; abandoned: number; counters: PoolCounters } {
    let draining = 0;
    let abandoned = 0;
    for (const slots of this.#byKey.values()) {
      for (const s of slots) {
        if (s.state === 'draining') draining++;
        else if (s.state === 'abandoned') abandoned++;
      }
    }
    return {
      owners: this.#owners.size,
      connections: this.#ready.size,
      pending: this.#connecting.size,
      draining,
      abandoned,
      counters: { ...this.#counters, evictions: { ...this.#counters.evictions } },
    };
  }

  /**
   * Closes every connection now (in-flight calls on them fail), cancels every connect and clears every timer.
   * Resolves once every connection the pool ever started is closed, connects that were in flight included
   * (each completes its handshake within its own timeout, at most `abandonGraceMs`, and is then closed).
   * Idempotent: every call returns the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#closeAll();
    return this.#closing;
  }

  async #closeAll(): Promise<void> {
    const all: Slot<C>[] = [];
    for (const slots of this.#byKey.values()) all.push(...slots);
    for (const s of all) {
      if (s.state === 'connecting') this.#cancel(s, 'closed');
      else if (s.state === 'ready') void this.#retire(s, 'closed', true);
      else if (s.state === 'draining') void this.#closeSlot(s, 'closed');
    }
    await Promise.all(all.map((s) => s.done));
  }

  #transition(s: Slot<C>, event: SlotEvent): void {
    const to = SLOT_TRANSITIONS[s.state][event];
    if (to === undefined) throw new Error(`ConnectionPool: no transition from ${s.state} on ${event}`); // a bug of ours
    s.state = to;
  }

  #wait(s: Slot<C>, signal: AbortSignal | undefined): Promise<Lease<C>> {
    return new Promise<Lease<C>>((resolve, reject) => {
      const onAbort = () => {
        const slot = waiter.slot; // it may have been moved to a newer connect
        slot.waiters.delete(waiter);
        reject(abortError(slot.pk.serverName, signal!));
        // A superseded connect nobody waits for any more is of no use: close it once it completes. The current
        // connect of a key goes on, and its connection is kept for the next call.
        if (slot.waiters.size === 0 && slot.superseded && slot.state === 'connecting') this.#abandon(slot, 'lastWaiterLeftSuperseded', 'replaced');
      };
      const waiter: Waiter<C> = { slot: s, resolve, reject, cleanup: () => {} };
      s.waiters.add(waiter);
      // One listener on the caller's signal however many waits follow it (see followSignal).
      if (signal) waiter.cleanup = followSignal(signal, onAbort);
    });
  }

  #startConnect(pk: PoolKey, ctx: Ctx, fingerprint: string, forceNew: boolean): Slot<C> {
    this.#makeRoom(pk);
    let markDone!: () => void;
    const done = new Promise<void>((resolve) => (markDone = resolve));
    const s: Slot<C> = {
      state: 'connecting',
      pk,
      fingerprint,
      forceNew,
      controller: new AbortController(),
      waiters: new Set(),
      superseded: false,
      staleOnArrival: false,
      conn: undefined,
      announced: false,
      leases: 0,
      lastUsed: this.#now(),
      seq: 0,
      idlePrev: undefined,
      idleNext: undefined,
      inIdle: false,
      timer: undefined,
      reason: undefined,
      cancelError: undefined,
      onClose: undefined,
      done,
      markDone,
    };
    const previous = this.#connecting.get(pk.key);
    if (previous) {
      // The newer connect owns the key. Waiters of an older config move to it (they asked for this key's
      // connection, and the config changed); a forceNew connect keeps its own waiters.
      previous.superseded = true;
      if (!previous.forceNew) {
        for (const w of previous.waiters) {
          w.slot = s;
          s.waiters.add(w);
        }
        previous.waiters.clear();
      }
      if (previous.waiters.size === 0) this.#abandon(previous, 'lastWaiterLeftSuperseded', 'replaced');
    }
    this.#connecting.set(pk.key, s);
    this.#track(s);
    const started = this.#now();
    let promise: Promise<C>;
    try {
      promise = this.#opts.connect(pk, ctx, s.controller.signal);
    } catch (err) {
      promise = Promise.reject(err);
    }
    promise.then(
      (conn) => this.#connected(s, conn, this.#now() - started),
      (err) => this.#failed(s, err),
    );
    return s;
  }

  #connected(s: Slot<C>, conn: C, durationMs: number): void {
    this.#clearTimer(s);
    s.conn = conn;
    if (this.#connecting.get(s.pk.key) === s) this.#connecting.delete(s.pk.key);
    if (s.state === 'abandoned') {
      // Cancelled or superseded while connecting: it completed its handshake, so its session can be ended.
      this.#transition(s, 'connected');
      void this.#finishClose(s);
      return;
    }
    this.#counters.connects++;
    s.announced = true;
    s.onClose = (ev) => this.#onConnectionClosed(s, ev.error);
    conn.on('close', s.onClose);
    s.seq = ++this.#seq;
    if (s.superseded) {
      // A forceNew connect overtaken by a newer one: serve its own waiters once, then close.
      this.#transition(s, 'connectedSuperseded');
      s.reason = 'replaced';
      this.#opts.hooks?.onConnect?.(s.pk, conn, durationMs);
      const waiters = [...s.waiters];
      s.waiters.clear();
      for (const w of waiters) {
        const lease = this.#lease(s);
        settle(w, () => w.resolve(lease));
      }
      if (s.leases === 0) void this.#closeSlot(s, 'replaced');
      return;
    }
    this.#transition(s, 'connected');
    const old = this.#ready.get(s.pk.key);
    if (old) void this.#retire(old, s.forceNew ? 'replaced' : 'stale');
    this.#ready.set(s.pk.key, s);
    this.#opts.hooks?.onConnect?.(s.pk, conn, durationMs);
    const waiters = [...s.waiters];
    s.waiters.clear();
    if (waiters.length === 0) this.#markIdle(s);
    for (const w of waiters) {
      const lease = this.#lease(s);
      settle(w, () => w.resolve(lease));
    }
    // Made with a config that changed meanwhile: its waiters have it (their calls finish on it), the pool does not.
    if (s.staleOnArrival) void this.#retire(s, 'stale');
  }

  #failed(s: Slot<C>, err: unknown): void {
    this.#clearTimer(s);
    if (this.#connecting.get(s.pk.key) === s) this.#connecting.delete(s.pk.key);
    this.#transition(s, 'failed');
    this.#counters.connectFailures++;
    const reason = s.cancelError ?? err;
    for (const w of s.waiters) settle(w, () => w.reject(reason));
    s.waiters.clear();
    this.#untrack(s);
  }

  /** Cancels a connect: its waiters are rejected; the connect itself completes and is then closed. */
  #cancel(s: Slot<C>, reason: EvictReason, error?: SwitchboardError): void {
    s.cancelError =
      error ??
      new SwitchboardError('connection_closed', `The connection to "${s.pk.serverName}" was cancelled while connecting (${reason})`, {
        serverName: s.pk.serverName,
      });
    for (const w of s.waiters) settle(w, () => w.reject(s.cancelError));
    s.waiters.clear();
    this.#abandon(s, reason === 'closed' ? 'poolClose' : 'cancel', reason);
  }

  #abandon(s: Slot<C>, event: SlotEvent, reason: EvictReason): void {
    if (s.state !== 'connecting') return;
    this.#transition(s, event);
    s.reason = reason;
    if (this.#connecting.get(s.pk.key) === s) this.#connecting.delete(s.pk.key);
    // The bound on how long an abandoned connect may run (a connect bounds itself by its init timeout first).
    s.timer = setTimeout(() => {
      s.timer = undefined;
      this.#transition(s, 'graceExpired');
      s.controller.abort(
        s.cancelError ?? new SwitchboardError('connection_closed', `The connect to "${s.pk.serverName}" was abandoned`, { serverName: s.pk.serverName }),
      );
    }, this.#abandonGraceMs);
    s.timer.unref();
  }

  #lease(s: Slot<C>): Lease<C> {
    if (s.leases++ === 0) this.#idle.remove(s);
    let released = false;
    return {
      connection: s.conn!,
      release: (opts?: LeaseReleaseOptions) => {
        if (released) return;
        released = true;
        if (opts?.touch !== false) {
          s.lastUsed = this.#now();
          s.seq = ++this.#seq;
        }
        if (--s.leases > 0) return;
        if (s.state === 'draining') {
          this.#transition(s, 'lastRelease');
          void this.#finishClose(s);
        } else if (s.state === 'ready') {
          this.#markIdle(s);
        }
      },
    };
  }

  #markIdle(s: Slot<C>): void {
    this.#idle.append(s);
    // One timer per slot, re-armed only when it fires: a release on the hot path costs no timer work.
    if (s.timer === undefined && Number.isFinite(this.#opts.idleTimeoutMs)) {
      this.#armIdle(s, Math.max(0, s.lastUsed + this.#opts.idleTimeoutMs - this.#now()));
    }
  }

  #armIdle(s: Slot<C>, ms: number): void {
    s.timer = setTimeout(() => {
      s.timer = undefined;
      if (s.state !== 'ready' || s.leases > 0) return; // the next release re-arms
      const remaining = s.lastUsed + this.#opts.idleTimeoutMs - this.#now();
      if (remaining > 0) this.#armIdle(s, remaining);
      else void this.#retire(s, 'idle');
    }, ms);
    s.timer.unref();
  }

  /**
   * Takes a `ready` slot out of the pool; closes it now if idle (or `force`), else when its last lease ends.
   * Resolves when closed, or at once when it drains.
   */
  #retire(s: Slot<C>, reason: EvictReason, force = false): Promise<void> {
    if (s.state === 'draining') return force ? this.#closeSlot(s, reason) : Promise.resolve();
    if (s.state !== 'ready') return s.state === 'closing' ? s.done : Promise.resolve();
    this.#clearTimer(s);
    this.#idle.remove(s);
    if (this.#ready.get(s.pk.key) === s) this.#ready.delete(s.pk.key);
    this.#counters.evictions[reason]++;
    s.reason = reason;
    this.#opts.hooks?.onEvict?.(s.pk, reason, s.conn!);
    if (s.leases === 0 || force) {
      if (reason === 'closed') this.#transition(s, 'poolClose');
      else if (reason === 'idle') this.#transition(s, 'idle');
      else {
        this.#transition(s, 'evict');
        this.#transition(s, 'lastRelease');
      }
      return this.#finishClose(s);
    }
    this.#transition(s, 'evict');
    return Promise.resolve();
  }

  /** Closes a `draining` slot now (pool close: its calls fail). */
  #closeSlot(s: Slot<C>, reason: EvictReason): Promise<void> {
    if (s.state !== 'draining') return s.done;
    s.reason ??= reason;
    this.#transition(s, reason === 'closed' ? 'poolClose' : 'lastRelease');
    return this.#finishClose(s);
  }

  /** A slot in `closing`: close its connection, then report and untrack it. */
  async #finishClose(s: Slot<C>): Promise<void> {
    if (s.onClose) s.conn?.off('close', s.onClose);
    const release = this.#closes.tryEnter('close') ?? (await this.#closes.enter('close', undefined, s.pk.serverName));
    try {
      await s.conn?.close();
    } catch (err) {
      this.#opts.hooks?.onError?.(s.pk, err);
    } finally {
      release();
    }
    this.#transition(s, 'closed');
    this.#untrack(s);
    if (s.announced) this.#opts.hooks?.onDisconnect?.(s.pk, { reason: s.reason ?? 'closed' }, s.conn!);
  }

  #onConnectionClosed(s: Slot<C>, error: SwitchboardError | undefined): void {
    if (s.state !== 'ready' && s.state !== 'draining') return;
    if (s.onClose) s.conn?.off('close', s.onClose);
    this.#clearTimer(s);
    this.#idle.remove(s);
    if (this.#ready.get(s.pk.key) === s) this.#ready.delete(s.pk.key);
    this.#transition(s, 'died');
    this.#untrack(s);
    this.#opts.hooks?.onDisconnect?.(s.pk, error ? { error } : {}, s.conn!);
  }

  #clearTimer(s: Slot<C>): void {
    if (s.timer) clearTimeout(s.timer);
    s.timer = undefined;
  }

  /** Connections (ready, or connecting for the key) of an owner that count against `maxPerOwner`. */
  #ownerCount(keys: Set<string> | undefined): number {
    let n = 0;
    if (keys) for (const k of keys) if (this.#ready.has(k) || this.#connecting.has(k)) n++;
    return n;
  }

  #makeRoom(pk: PoolKey): void {
    const { maxPerOwner, maxTotal } = this.#opts;
    const names = this.#opts.limitNames ?? { perOwner: 'maxPerOwner', total: 'maxTotal' };
    const replacing = this.#ready.has(pk.key) || this.#connecting.has(pk.key);
    if (replacing) return; // a replacement takes the place of the connection it replaces
    if (maxPerOwner !== undefined && pk.ownerKey !== undefined) {
      const keys = this.#owners.get(pk.ownerKey);
      while (this.#ownerCount(keys) >= maxPerOwner) {
        let victim: Slot<C> | undefined;
        for (const k of keys!) {
          const e = this.#ready.get(k);
          if (e && e.leases === 0 && (!victim || e.seq < victim.seq)) victim = e;
        }
        if (!victim) throw this.#limitError(pk, names.perOwner, maxPerOwner);
        void this.#retire(victim, 'limit');
      }
    }
    if (maxTotal !== undefined) {
      while (this.#ready.size + this.#connectingWithoutReady() >= maxTotal) {
        const victim = this.#idle.first();
        if (!victim) throw this.#limitError(pk, names.total, maxTotal);
        void this.#retire(victim, 'limit');
      }
    }
  }

  #connectingWithoutReady(): number {
    let n = 0;
    for (const k of this.#connecting.keys()) if (!this.#ready.has(k)) n++;
    return n;
  }

  #limitError(pk: PoolKey, name: string, value: number): SwitchboardError {
    return new SwitchboardError('limit_reached', `Cannot open a connection to "${pk.serverName}": ${name} (${value}) reached and every connection is in use`, {
      serverName: pk.serverName,
      retryable: true,
    });
  }

  #track(s: Slot<C>): void {
    let slots = this.#byKey.get(s.pk.key);
    if (!slots) this.#byKey.set(s.pk.key, (slots = new Set()));
    slots.add(s);
    if (s.pk.ownerKey === undefined) return;
    let keys = this.#owners.get(s.pk.ownerKey);
    if (!keys) this.#owners.set(s.pk.ownerKey, (keys = new Set()));
    keys.add(s.pk.key);
  }

  #untrack(s: Slot<C>): void {
    const slots = this.#byKey.get(s.pk.key);
    slots?.delete(s);
    if (!slots || slots.size === 0) {
      this.#byKey.delete(s.pk.key);
      if (s.pk.ownerKey !== undefined) {
        const keys = this.#owners.get(s.pk.ownerKey);
        keys?.delete(s.pk.key);
        if (keys?.size === 0) this.#owners.delete(s.pk.ownerKey);
      }
    }
    s.markDone();
  }
}

function settle<C>(w: Waiter<C>, fn: () => void): void {
  w.cleanup();
  fn();
}
