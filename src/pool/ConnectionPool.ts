/**
 * The mechanics shared by the per-user pool and the app pool: one connection per key, concurrent acquires of a
 * key joined into one connect, leases that keep a connection open while calls are in flight, idle eviction by
 * per-entry timers (no sweep), LRU eviction under limits, retirement of stale or replaced connections once
 * their calls end.
 * @module
 */
import { SwitchboardError } from '../errors.js';
import type { EvictReason } from '../events.js';

/**
 * What the pool needs of a connection. `MCPConnection` has it; tests may pass fakes.
 *
 * @example
 * ```ts
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
  /** Ends the lease; the idle clock of the connection restarts when its last lease ends. */
  release(): void;
}

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
  /** A connection left the pool; it is closed once its leases end. */
  onEvict?(key: PoolKey, reason: EvictReason): void;
  /** A connection closed (`reason` when the pool closed it, `error` when it died). */
  onDisconnect?(key: PoolKey, e: { reason?: EvictReason; error?: SwitchboardError }): void;
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
  /** Opens a connection. `signal` aborts when every waiter gave up or the pool closed. */
  connect(key: PoolKey, ctx: Ctx, signal: AbortSignal): Promise<C>;
  /** Idle time after the last lease ends before the connection is evicted; `Infinity` disables it. */
  idleTimeoutMs: number;
  /** Most connections (open or connecting) per owner. */
  maxPerOwner?: number;
  /** Most connections (open or connecting) in the pool. */
  maxTotal?: number;
  /** Names used in limit errors, e.g. `maxConnectionsPerUser`. */
  limitNames?: { perOwner: string; total: string };
  /** Event hooks. */
  hooks?: PoolHooks<C>;
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

interface Entry<C> extends IdleLinks<Entry<C>> {
  pk: PoolKey;
  conn: C;
  fingerprint: string;
  leases: number;
  lastUsed: number;
  /** Release order, for LRU choices that must not depend on clock resolution. */
  seq: number;
  timer: NodeJS.Timeout | undefined;
  retired: EvictReason | undefined;
  closed: boolean;
  onClose: (e: { error?: SwitchboardError }) => void;
}

interface Waiter<C> {
  resolve(lease: Lease<C>): void;
  reject(err: unknown): void;
  cleanup(): void;
}

interface Pending<C> {
  pk: PoolKey;
  fingerprint: string;
  controller: AbortController;
  waiters: Set<Waiter<C>>;
  cancelled: SwitchboardError | undefined;
  /** A newer connect of the same key started (config changed or forceNew): this one must not be installed. */
  superseded: boolean;
  forceNew: boolean;
}

function abortError(serverName: string, signal: AbortSignal): SwitchboardError {
  return new SwitchboardError('aborted', `Waiting for a connection to "${serverName}" was aborted`, { serverName, cause: signal.reason });
}

/**
 * A keyed pool of connections. Used by {@link UserConnectionManager} (one key per tenant, user and server)
 * and {@link AppConnectionPool} (one key per server). Hosts normally use those, not this class.
 *
 * @example
 * ```ts
 * const pool = new ConnectionPool({ connect: (pk, ctx, signal) => factory.create({ ...ctx, signal }), idleTimeoutMs: 60_000 });
 * const lease = await pool.acquire({ key: 'github', serverName: 'github' }, ctx, fingerprint);
 * try { await lease.connection.callTool('search', { q: 'x' }); } finally { lease.release(); }
 * ```
 */
export class ConnectionPool<C extends PoolableConnection, Ctx> {
  readonly #opts: ConnectionPoolOptions<C, Ctx>;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry<C>>();
  readonly #pending = new Map<string, Pending<C>>();
  /**
   * Idle entries (no lease), oldest release first: the LRU order for limit eviction. An intrusive linked list,
   * not a Map: deleting and re-inserting a key on every lease leaves tombstones that slow a large Map down
   * (a hot key in a pool of 100 000 cost tens of µs per call).
   */
  readonly #idle = new IdleList<Entry<C>>();
  /** Owner → keys that have an entry or a pending connect. */
  readonly #owners = new Map<string, Set<string>>();
  /** Retired entries still draining their leases. */
  readonly #draining = new Set<Entry<C>>();
  readonly #counters: PoolCounters = {
    connects: 0,
    joins: 0,
    hits: 0,
    connectFailures: 0,
    evictions: { idle: 0, limit: 0, stale: 0, replaced: 0, removed: 0, disconnected: 0, closed: 0 },
  };
  #closed = false;
  #seq = 0;

  constructor(opts: ConnectionPoolOptions<C, Ctx>) {
    if (!(opts.idleTimeoutMs > 0)) throw new TypeError('idleTimeoutMs must be a positive number (or Infinity)');
    for (const [name, v] of [['maxPerOwner', opts.maxPerOwner], ['maxTotal', opts.maxTotal]] as const) {
      if (v !== undefined && !(Number.isInteger(v) && v > 0)) throw new TypeError(`${name} must be a positive integer`);
    }
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Leases the connection of `pk`, opening it if needed. A warm hit is O(1). `fingerprint` identifies the
   * config: an open connection made with another fingerprint is stale and replaced (its calls finish first).
   */
  acquire(pk: PoolKey, ctx: Ctx, fingerprint: string, opts: AcquireOptions = {}): Promise<Lease<C>> {
    if (this.#closed) return Promise.reject(new SwitchboardError('manager_closed', 'The connection pool is closed', { serverName: pk.serverName }));
    const { signal, forceNew = false } = opts;
    if (signal?.aborted) return Promise.reject(abortError(pk.serverName, signal));

    if (!forceNew) {
      const e = this.#entries.get(pk.key);
      if (e) {
        if (e.fingerprint === fingerprint && e.conn.isConnected()) {
          this.#counters.hits++;
          return Promise.resolve(this.#lease(e));
        }
        this.#retire(e, e.fingerprint === fingerprint ? 'disconnected' : 'stale');
      }
      const p = this.#pending.get(pk.key);
      if (p && p.fingerprint === fingerprint && !p.cancelled) {
        this.#counters.joins++;
        return this.#wait(p, signal);
      }
    }
    let p: Pending<C>;
    try {
      p = this.#startConnect(pk, ctx, fingerprint, forceNew);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#wait(p, signal);
  }

  /** The open connection of `pk`, if any, without leasing it. */
  peek(key: string): C | undefined {
    return this.#entries.get(key)?.conn;
  }

  /** Evicts every connection (and cancels every pending connect) of an owner. */
  async evictOwner(ownerKey: string, reason: EvictReason): Promise<void> {
    const keys = this.#owners.get(ownerKey);
    if (!keys) return;
    await Promise.all([...keys].map((k) => this.evictKey(k, reason)));
  }

  /** Evicts every connection (and cancels every pending connect) matching `pred`. Not for hot paths. */
  async evictWhere(pred: (pk: PoolKey) => boolean, reason: EvictReason): Promise<void> {
    const keys = new Set<string>();
    for (const [k, e] of this.#entries) if (pred(e.pk)) keys.add(k);
    for (const [k, p] of this.#pending) if (pred(p.pk)) keys.add(k);
    await Promise.all([...keys].map((k) => this.evictKey(k, reason)));
  }

  /** Evicts one key's connection and cancels its pending connect. Resolves when closed (after its leases end). */
  async evictKey(key: string, reason: EvictReason): Promise<void> {
    const p = this.#pending.get(key);
    if (p) this.#cancel(p, reason);
    const e = this.#entries.get(key);
    if (e) await this.#retire(e, reason);
  }

  /** Sizes and counters. */
  stats(): { owners: number; connections: number; pending: number; draining: number; counters: PoolCounters } {
    return {
      owners: this.#owners.size,
      connections: this.#entries.size,
      pending: this.#pending.size,
      draining: this.#draining.size,
      counters: { ...this.#counters, evictions: { ...this.#counters.evictions } },
    };
  }

  /**
   * Closes every connection now (in-flight calls on them fail), cancels pending connects (a connection that
   * arrives late is closed at once) and clears every timer. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of [...this.#pending.values()]) this.#cancel(p, 'closed');
    const closing: Promise<void>[] = [];
    for (const e of [...this.#entries.values()]) closing.push(this.#retire(e, 'closed', true));
    for (const e of [...this.#draining]) closing.push(this.#closeEntry(e, 'closed'));
    await Promise.all(closing);
  }

  #wait(p: Pending<C>, signal: AbortSignal | undefined): Promise<Lease<C>> {
    return new Promise<Lease<C>>((resolve, reject) => {
      const onAbort = () => {
        p.waiters.delete(waiter);
        reject(abortError(p.pk.serverName, signal!));
        // Nobody wants this connection any more: stop connecting.
        if (p.waiters.size === 0 && this.#pending.get(p.pk.key) === p) {
          this.#cancel(p, 'disconnected', abortError(p.pk.serverName, signal!));
        }
      };
      const waiter: Waiter<C> = {
        resolve,
        reject,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      p.waiters.add(waiter);
    });
  }

  #startConnect(pk: PoolKey, ctx: Ctx, fingerprint: string, forceNew: boolean): Pending<C> {
    this.#makeRoom(pk);
    const previous = this.#pending.get(pk.key);
    if (previous) previous.superseded = true; // it keeps serving its own waiters, then closes
    const p: Pending<C> = {
      pk,
      fingerprint,
      controller: new AbortController(),
      waiters: new Set(),
      cancelled: undefined,
      superseded: false,
      forceNew,
    };
    this.#pending.set(pk.key, p);
    this.#index(pk);
    const started = this.#now();
    let promise: Promise<C>;
    try {
      promise = this.#opts.connect(pk, ctx, p.controller.signal);
    } catch (err) {
      promise = Promise.reject(err);
    }
    promise.then(
      (conn) => this.#connected(p, conn, this.#now() - started),
      (err) => this.#failed(p, err),
    );
    return p;
  }

  #connected(p: Pending<C>, conn: C, durationMs: number): void {
    if (this.#pending.get(p.pk.key) === p) this.#pending.delete(p.pk.key);
    if (p.cancelled) {
      // Disconnected or closed while connecting: never leave it open and untracked.
      this.#unindexIfUnused(p.pk);
      void conn.close().catch((err) => this.#opts.hooks?.onError?.(p.pk, err));
      for (const w of p.waiters) settle(w, () => w.reject(p.cancelled));
      return;
    }
    this.#counters.connects++;
    const e: Entry<C> = {
      pk: p.pk,
      conn,
      fingerprint: p.fingerprint,
      leases: 0,
      lastUsed: this.#now(),
      seq: ++this.#seq,
      idlePrev: undefined,
      idleNext: undefined,
      inIdle: false,
      timer: undefined,
      retired: undefined,
      closed: false,
      onClose: (ev) => this.#onConnectionClosed(e, ev.error),
    };
    conn.on('close', e.onClose);
    this.#opts.hooks?.onConnect?.(p.pk, conn, durationMs);
    if (p.superseded) {
      // A newer connect owns the key: serve this one's waiters once, then close it.
      e.retired = 'stale';
      if (p.waiters.size === 0) {
        void this.#closeEntry(e, 'stale');
        return;
      }
      this.#draining.add(e);
    } else {
      const old = this.#entries.get(p.pk.key);
      if (old) void this.#retire(old, p.forceNew ? 'replaced' : 'stale');
      this.#entries.set(p.pk.key, e);
      if (p.waiters.size === 0) this.#markIdle(e);
    }
    for (const w of p.waiters) {
      const lease = this.#lease(e);
      settle(w, () => w.resolve(lease));
    }
  }

  #failed(p: Pending<C>, err: unknown): void {
    if (this.#pending.get(p.pk.key) === p) this.#pending.delete(p.pk.key);
    this.#unindexIfUnused(p.pk);
    this.#counters.connectFailures++;
    const reason = p.cancelled ?? err;
    for (const w of p.waiters) settle(w, () => w.reject(reason));
  }

  #cancel(p: Pending<C>, reason: EvictReason, error?: SwitchboardError): void {
    if (p.cancelled) return;
    p.cancelled =
      error ??
      new SwitchboardError('connection_closed', `The connection to "${p.pk.serverName}" was cancelled while connecting (${reason})`, {
        serverName: p.pk.serverName,
      });
    if (this.#pending.get(p.pk.key) === p) this.#pending.delete(p.pk.key);
    this.#unindexIfUnused(p.pk);
    p.controller.abort(p.cancelled);
    for (const w of p.waiters) settle(w, () => w.reject(p.cancelled));
    p.waiters.clear();
  }

  #lease(e: Entry<C>): Lease<C> {
    if (e.leases++ === 0) this.#idle.remove(e);
    let released = false;
    return {
      connection: e.conn,
      release: () => {
        if (released) return;
        released = true;
        e.lastUsed = this.#now();
        e.seq = ++this.#seq;
        if (--e.leases > 0) return;
        if (e.retired) void this.#closeEntry(e, e.retired);
        else this.#markIdle(e);
      },
    };
  }

  #markIdle(e: Entry<C>): void {
    this.#idle.append(e);
    // One timer per entry, re-armed only when it fires: a release on the hot path costs no timer work.
    if (e.timer === undefined && Number.isFinite(this.#opts.idleTimeoutMs)) this.#armIdle(e, this.#opts.idleTimeoutMs);
  }

  #armIdle(e: Entry<C>, ms: number): void {
    e.timer = setTimeout(() => {
      e.timer = undefined;
      if (e.retired || e.leases > 0) return; // the next release re-arms
      const remaining = e.lastUsed + this.#opts.idleTimeoutMs - this.#now();
      if (remaining > 0) this.#armIdle(e, remaining);
      else void this.#retire(e, 'idle');
    }, ms);
    e.timer.unref();
  }

  /** Removes an entry from the pool; closes it now if idle, else when its last lease ends. */
  #retire(e: Entry<C>, reason: EvictReason, force = false): Promise<void> {
    if (e.retired) return force ? this.#closeEntry(e, reason) : Promise.resolve();
    e.retired = reason;
    if (e.timer) clearTimeout(e.timer);
    e.timer = undefined;
    this.#idle.remove(e);
    if (this.#entries.get(e.pk.key) === e) this.#entries.delete(e.pk.key);
    this.#unindexIfUnused(e.pk);
    this.#counters.evictions[reason]++;
    this.#opts.hooks?.onEvict?.(e.pk, reason);
    if (e.leases === 0 || force) return this.#closeEntry(e, reason);
    this.#draining.add(e);
    return Promise.resolve();
  }

  async #closeEntry(e: Entry<C>, reason: EvictReason): Promise<void> {
    this.#draining.delete(e);
    if (e.closed) return;
    e.closed = true;
    e.conn.off('close', e.onClose);
    try {
      await e.conn.close();
    } catch (err) {
      this.#opts.hooks?.onError?.(e.pk, err);
    }
    this.#opts.hooks?.onDisconnect?.(e.pk, { reason });
  }

  #onConnectionClosed(e: Entry<C>, error: SwitchboardError | undefined): void {
    if (e.closed) return;
    e.closed = true;
    e.conn.off('close', e.onClose);
    this.#draining.delete(e);
    if (!e.retired) {
      e.retired = 'disconnected';
      if (e.timer) clearTimeout(e.timer);
      e.timer = undefined;
      this.#idle.remove(e);
      if (this.#entries.get(e.pk.key) === e) this.#entries.delete(e.pk.key);
      this.#unindexIfUnused(e.pk);
    }
    this.#opts.hooks?.onDisconnect?.(e.pk, error ? { error } : {});
  }

  #makeRoom(pk: PoolKey): void {
    const { maxPerOwner, maxTotal } = this.#opts;
    const names = this.#opts.limitNames ?? { perOwner: 'maxPerOwner', total: 'maxTotal' };
    const replacing = this.#entries.has(pk.key) || this.#pending.has(pk.key);
    if (replacing) return; // a replacement takes the place of the connection it replaces
    if (maxPerOwner !== undefined && pk.ownerKey !== undefined) {
      const keys = this.#owners.get(pk.ownerKey);
      while (keys && keys.size >= maxPerOwner) {
        let victim: Entry<C> | undefined;
        for (const k of keys) {
          const e = this.#entries.get(k);
          if (e && e.leases === 0 && (!victim || e.seq < victim.seq)) victim = e;
        }
        if (!victim) throw this.#limitError(pk, names.perOwner, maxPerOwner);
        void this.#retire(victim, 'limit');
      }
    }
    if (maxTotal !== undefined) {
      while (this.#entries.size + this.#pendingWithoutEntry() >= maxTotal) {
        const victim = this.#idle.first();
        if (!victim) throw this.#limitError(pk, names.total, maxTotal);
        void this.#retire(victim, 'limit');
      }
    }
  }

  #pendingWithoutEntry(): number {
    let n = 0;
    for (const k of this.#pending.keys()) if (!this.#entries.has(k)) n++;
    return n;
  }

  #limitError(pk: PoolKey, name: string, value: number): SwitchboardError {
    return new SwitchboardError('limit_reached', `Cannot open a connection to "${pk.serverName}": ${name} (${value}) reached and every connection is in use`, {
      serverName: pk.serverName,
      retryable: true,
    });
  }

  #index(pk: PoolKey): void {
    if (pk.ownerKey === undefined) return;
    let keys = this.#owners.get(pk.ownerKey);
    if (!keys) this.#owners.set(pk.ownerKey, (keys = new Set()));
    keys.add(pk.key);
  }

  #unindexIfUnused(pk: PoolKey): void {
    if (pk.ownerKey === undefined || this.#entries.has(pk.key) || this.#pending.has(pk.key)) return;
    const keys = this.#owners.get(pk.ownerKey);
    if (!keys) return;
    keys.delete(pk.key);
    if (keys.size === 0) this.#owners.delete(pk.ownerKey);
  }
}

function settle<C>(w: Waiter<C>, fn: () => void): void {
  w.cleanup();
  fn();
}
