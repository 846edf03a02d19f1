/**
 * The connection pool's per-connect state machine, walked pair by pair: every (slot state × event) a user can
 * cause, with what users depend on (which connection each acquire gets or which typed error it rejects with,
 * how often each connection is closed, `stats()`, the hook events, when `close()`/eviction promises resolve).
 *
 * The table `ROWS` below is the coverage: one row per pair (some pairs have a second, variant row). A pair
 * that cannot happen carries `na` (the reason) instead of a test. Each row lists the `SLOT_TRANSITIONS` entries
 * it exercises; the last tests check that every (state, event) pair of the table and every entry of
 * `SLOT_TRANSITIONS` is covered.
 *
 * Every test runs on jest fake timers (idle timer, abandon grace); promises settle via `flush()`
 * (`new Promise(setImmediate)`, left real), never a wall-clock wait.
 */
import { jest } from '@jest/globals';
import { EventEmitter } from 'node:events';
import {
  ConnectionPool,
  SLOT_TRANSITIONS,
  type AcquireOptions,
  type Lease,
  type PoolKey,
  type SlotEvent,
  type SlotState,
} from '../../src/pool/ConnectionPool.js';
import { SwitchboardError } from '../../src/errors.js';
import { deferred, type Deferred } from '../support/deferred.js';

// ---------------------------------------------------------------------------------------------------------
// Helpers copied from ConnectionPool.test.ts (not exported there). FakeConn also records whether it died;
// makePool's onConnect names the connection; SlowCloseConn holds its close() open until `gate` resolves.
// ---------------------------------------------------------------------------------------------------------

class FakeConn extends EventEmitter {
  static made = 0;
  readonly id = ++FakeConn.made;
  connected = true;
  closeCalls = 0;
  died = false;
  isConnected() {
    return this.connected;
  }
  async close() {
    this.closeCalls++;
    this.connected = false;
  }
  die(error?: SwitchboardError) {
    this.died = true;
    this.connected = false;
    this.emit('close', { error });
  }
}

/** A connection whose close (session DELETE) takes until `gate` resolves: its slot stays in `closing`. */
class SlowCloseConn extends FakeConn {
  readonly gate = deferred<void>();
  override async close() {
    this.closeCalls++;
    this.connected = false;
    await this.gate.promise;
  }
}


const key = (user: string, server = 's'): PoolKey => ({ key: `${user}/${server}`, ownerKey: user, serverName: server });

function makePool(opts: Partial<ConstructorParameters<typeof ConnectionPool<FakeConn, unknown>>[0]> = {}) {
  const connects: { pk: PoolKey; signal: AbortSignal; d: Deferred<FakeConn> }[] = [];
  const events: string[] = [];
  const pool = new ConnectionPool<FakeConn, unknown>({
    idleTimeoutMs: 1000,
    connect: (pk, _ctx, signal) => {
      const d = deferred<FakeConn>();
      connects.push({ pk, signal, d });
      return d.promise;
    },
    hooks: {
      onConnect: (_pk, conn) => events.push(`connect #${conn.id}`),
      onEvict: (_pk, reason) => events.push(`evict ${reason}`),
      onDisconnect: (_pk, e) => events.push(`disconnect ${e.reason ?? e.error?.code ?? ''}`),
    },
    ...opts,
  });
  return { pool, connects, events };
}

// ---------------------------------------------------------------------------------------------------------
// The world a row runs in: one pool, one key (owner u1), the subject slot put in its state by a setup.
// ---------------------------------------------------------------------------------------------------------

const IDLE = 1000;
const GRACE = 5000;
const PK = key('u1');

/** Lets every settled promise's continuations run (setImmediate is not faked). */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

interface Tracked<T> {
  readonly promise: Promise<T>;
  settled: boolean;
  value?: T;
  error?: unknown;
}
function track<T>(promise: Promise<T>): Tracked<T> {
  const t: Tracked<T> = { promise, settled: false };
  promise.then(
    (v) => {
      t.settled = true;
      t.value = v;
    },
    (e: unknown) => {
      t.settled = true;
      t.error = e;
    },
  );
  return t;
}

function expectLease(t: Tracked<Lease<FakeConn>> | undefined, conn: FakeConn): Lease<FakeConn> {
  expect(t?.settled).toBe(true);
  expect(t?.error).toBeUndefined();
  expect(t?.value?.connection).toBe(conn);
  return t!.value!;
}
function expectRejected(t: Tracked<unknown> | undefined, code: string): void {
  expect(t?.settled).toBe(true);
  expect(t?.error).toBeInstanceOf(SwitchboardError);
  expect(t?.error).toMatchObject({ code });
}
function expectPending(t: Tracked<unknown> | undefined): void {
  expect(t?.settled).toBe(false);
}

type Sizes = { owners: number; connections: number; pending: number; draining: number; abandoned: number };
const EMPTY: Sizes = { owners: 0, connections: 0, pending: 0, draining: 0, abandoned: 0 };
const sizes = (s: Partial<Sizes>): Sizes => ({ ...EMPTY, ...s });

class World {
  readonly pool: ConnectionPool<FakeConn, unknown>;
  readonly connects: ReturnType<typeof makePool>['connects'];
  /** Hook events since the setup ended. */
  readonly events: string[];
  /** Every connection handed to the pool. */
  readonly conns: FakeConn[] = [];
  readonly #settledConnects = new Set<number>();
  /** The subject's connection (ready, draining, closing, closed). */
  conn: FakeConn | undefined;
  /** An outstanding lease on the subject. */
  lease: Lease<FakeConn> | undefined;
  /** A lease on the subject already released (ready idle). */
  released: Lease<FakeConn> | undefined;
  /** The subject connect's waiter, and the AbortController of its signal. */
  waiter: Tracked<Lease<FakeConn>> | undefined;
  abort: AbortController | undefined;
  /** connecting (superseded): the newer forceNew connect (index 1) and its waiter. */
  other: Tracked<Lease<FakeConn>> | undefined;
  /** The eviction the setup started and that is still pending (abandoned, closing). */
  eviction: Tracked<void> | undefined;

  constructor(readonly slowSubject = false) {
    const { pool, connects, events } = makePool({ idleTimeoutMs: IDLE, abandonGraceMs: GRACE });
    this.pool = pool;
    this.connects = connects;
    this.events = events;
  }

  acquire(fingerprint = 'v1', opts: AcquireOptions = {}): Tracked<Lease<FakeConn>> {
    return track(this.pool.acquire(PK, {}, fingerprint, opts));
  }

  /** Resolves connect number `i` with `conn`. */
  resolve<T extends FakeConn>(i: number, conn: T): T;
  resolve(i: number): FakeConn;
  resolve(i: number, conn: FakeConn = new FakeConn()): FakeConn {
    expect(this.#settledConnects.has(i)).toBe(false);
    this.#settledConnects.add(i);
    this.conns.push(conn);
    this.connects[i]!.d.resolve(conn);
    return conn;
  }

  reject(i: number, err: unknown = new SwitchboardError('connect_failed', 'boom')): unknown {
    expect(this.#settledConnects.has(i)).toBe(false);
    this.#settledConnects.add(i);
    this.connects[i]!.d.reject(err);
    return err;
  }

  sizes(): Sizes {
    const { owners, connections, pending, draining, abandoned } = this.pool.stats();
    return { owners, connections, pending, draining, abandoned };
  }

  /** Ends the test: completes every connect and close still running, closes the pool, checks the invariants. */
  async teardown(): Promise<void> {
    for (let i = 0; i < this.connects.length; i++) if (!this.#settledConnects.has(i)) this.resolve(i);
    for (const c of this.conns) if (c instanceof SlowCloseConn) c.gate.resolve();
    await this.pool.close();
    const eventsAtClose = this.events.length;
    await flush();
    expect(this.events).toHaveLength(eventsAtClose); // nothing is reported after close() resolved
    expect(jest.getTimerCount()).toBe(0);
    expect(this.sizes()).toEqual(EMPTY);
    for (const c of this.conns) {
      // Closed exactly once by the pool; a connection that died on its own may have been closed before it died.
      if (c.died) expect(c.closeCalls).toBeLessThanOrEqual(1);
      else expect(c.closeCalls).toBe(1);
    }
  }
}

/** Events compared as a multiset: which hooks fired and how often, not their interleaving. */
function expectEvents(w: World, expected: string[]): void {
  expect([...w.events].sort()).toEqual([...expected].sort());
}

// ---------------------------------------------------------------------------------------------------------
// States and their setups.
// ---------------------------------------------------------------------------------------------------------

const STATES = ['connecting', 'connecting (superseded)', 'abandoned', 'ready idle', 'ready leased', 'draining', 'closing', 'closed'] as const;
type StateName = (typeof STATES)[number];

const SETUPS: Record<StateName, (w: World) => Promise<void>> = {
  /** Connect #0 (v1) runs; waiter `w.waiter` (with an abort signal) waits for it. */
  async connecting(w) {
    w.abort = new AbortController();
    w.waiter = w.acquire('v1', { signal: w.abort.signal });
    await flush();
    expect(w.connects).toHaveLength(1);
    expectPending(w.waiter);
    expect(w.sizes()).toEqual(sizes({ owners: 1, pending: 1 }));
  },

  /** forceNew connect #0 (waiter `w.waiter`) overtaken by forceNew connect #1 (waiter `w.other`). */
  async 'connecting (superseded)'(w) {
    w.abort = new AbortController();
    w.waiter = w.acquire('v1', { forceNew: true, signal: w.abort.signal });
    w.other = w.acquire('v1', { forceNew: true });
    await flush();
    expect(w.connects).toHaveLength(2);
    expectPending(w.waiter);
    expectPending(w.other);
    // #0 still serves its waiter: not abandoned. `pending` counts the key's current connect (#1).
    expect(w.sizes()).toEqual(sizes({ owners: 1, pending: 1 }));
  },

  /** Connect #0 cancelled by evictKey: its waiter rejected, the eviction (`w.eviction`) waits for it. */
  async abandoned(w) {
    w.waiter = w.acquire('v1');
    w.eviction = track(w.pool.evictKey(PK.key, 'removed'));
    await flush();
    expectRejected(w.waiter, 'connection_closed');
    expectPending(w.eviction);
    expect(w.connects[0]!.signal.aborted).toBe(false); // not cut mid-handshake
    expect(w.sizes()).toEqual(sizes({ owners: 1, abandoned: 1 }));
  },

  /** Connection `w.conn` in the pool, its one lease (`w.released`) released at t=0: idle timer due at t=1000. */
  async 'ready idle'(w) {
    const p = w.acquire('v1');
    w.conn = w.resolve(0, w.slowSubject ? new SlowCloseConn() : new FakeConn());
    await flush();
    w.released = expectLease(p, w.conn);
    w.released.release();
    expect(w.sizes()).toEqual(sizes({ owners: 1, connections: 1 }));
    expect(w.events).toEqual([`connect #${w.conn.id}`]);
  },

  /** As `ready idle`, then leased again (a warm hit) as `w.lease`: leased, with the idle timer still due at t=1000. */
  async 'ready leased'(w) {
    await SETUPS['ready idle'](w);
    const hit = w.acquire('v1');
    await flush();
    w.lease = expectLease(hit, w.conn!);
    expect(w.pool.stats().counters).toMatchObject({ connects: 1, hits: 1 });
  },

  /** `ready leased`, then evictOwner (like disconnectUser): out of the pool, still leased by `w.lease`. */
  async draining(w) {
    await SETUPS['ready leased'](w);
    await w.pool.evictOwner('u1', 'disconnected'); // resolves at once: the call in flight keeps it open
    expect(w.conn!.closeCalls).toBe(0);
    expect(w.sizes()).toEqual(sizes({ owners: 1, draining: 1 }));
    expect(w.pool.peek(PK.key)).toBeUndefined();
  },

  /** An idle SlowCloseConn evicted by evictOwner: its close has started and not finished; `w.eviction` waits. */
  async closing(w) {
    const p = w.acquire('v1');
    w.conn = w.resolve(0, new SlowCloseConn());
    await flush();
    expectLease(p, w.conn).release();
    w.eviction = track(w.pool.evictOwner('u1', 'disconnected'));
    await flush();
    expect(w.conn.closeCalls).toBe(1);
    expectPending(w.eviction);
    expect(w.sizes()).toEqual(sizes({ owners: 1 }));
    expect(w.pool.peek(PK.key)).toBeUndefined();
  },

  /** `ready leased`, then the connection died on its own: gone from the pool, `w.lease` still outstanding. */
  async closed(w) {
    await SETUPS['ready leased'](w);
    w.conn!.die(new SwitchboardError('connection_closed', 'gone'));
    await flush();
    expect(w.sizes()).toEqual(EMPTY);
    expect(w.events.at(-1)).toBe('disconnect connection_closed');
  },
};

// ---------------------------------------------------------------------------------------------------------
// Events and the table.
// ---------------------------------------------------------------------------------------------------------

const EVENTS = [
  'acquire same fingerprint',
  'acquire different fingerprint',
  'acquire forceNew',
  'lease release',
  'lease release({ touch: false })',
  'idle timer fires',
  'evictKey/evictOwner/evictWhere',
  'pool.close()',
  'connect resolves',
  'connect rejects',
  'connection dies',
  'abandonGraceMs expires',
  'waiter aborts',
] as const;
type EventName = (typeof EVENTS)[number];

type Transition = `${SlotState}.${SlotEvent}`;

interface BaseRow {
  state: StateName;
  event: EventName;
  /** Distinguishes a second row of the same pair. */
  variant?: string;
}
interface TestRow extends BaseRow {
  expect: string;
  /** The SLOT_TRANSITIONS entries this row drives the subject (or a slot it spawns) through. */
  covers: Transition[];
  /** The subject's connection closes slowly (a SlowCloseConn), so "resolves after the close finished" shows. */
  slowSubject?: boolean;
  run(w: World): Promise<void>;
}
interface NaRow extends BaseRow {
  /** Why the pair cannot happen. */
  na: string;
}
type Row = TestRow | NaRow;

const NO_LEASE_WHILE_CONNECTING = 'no lease exists: a lease is only handed out once the connect resolved';
const ALREADY_SETTLED = 'its connect already settled (a connect settles once)';
const NO_CONNECTION_YET = 'no connection exists before the connect resolves';
const NO_WAITER = 'nobody waits on this slot (waiters exist only while a connect runs and has not been cancelled)';
const GRACE_ONLY_ABANDONED = 'only an abandoned connect has a grace timer';

// Shared row bodies -----------------------------------------------------------------------------------------

const ACQUIRES: [EventName, string, AcquireOptions][] = [
  ['acquire same fingerprint', 'v1', {}],
  ['acquire different fingerprint', 'v2', {}],
  ['acquire forceNew', 'v1', { forceNew: true }],
];

/** Starts a new connect for an acquire that must neither join nor reuse the subject; resolves it; returns it. */
async function acquireGetsNewConnect(w: World, fp: string, opts: AcquireOptions): Promise<{ lease: Lease<FakeConn>; fresh: FakeConn }> {
  const n = w.connects.length;
  const t = w.acquire(fp, opts);
  await flush();
  expect(w.connects).toHaveLength(n + 1);
  expectPending(t);
  const fresh = w.resolve(n);
  await flush();
  const lease = expectLease(t, fresh);
  expect(w.pool.peek(PK.key)).toBe(fresh);
  return { lease, fresh };
}

/** connecting × config change / forceNew: the waiter moves to the new connect; the old one is closed unannounced. */
function waiterMovesToNewConnect(fp: string, opts: AcquireOptions) {
  return async (w: World) => {
    const b = w.acquire(fp, opts);
    await flush();
    expect(w.connects).toHaveLength(2);
    expect(w.sizes()).toEqual(sizes({ owners: 1, pending: 1, abandoned: 1 }));
    expect(w.connects[0]!.signal.aborted).toBe(false);
    const old = w.resolve(0, new FakeConn());
    await flush();
    expect(old.closeCalls).toBe(1); // completed its handshake, then closed, never handed out
    expectPending(w.waiter); // it waits for the new connect
    expect(w.events).toEqual([]); // no onConnect/onDisconnect for the abandoned connect
    expect(w.sizes()).toEqual(sizes({ owners: 1, pending: 1 }));
    const fresh = w.resolve(1);
    await flush();
    expectLease(w.waiter, fresh);
    expectLease(b, fresh);
    expect(w.events).toEqual([`connect #${fresh.id}`]);
    expect(w.sizes()).toEqual(sizes({ owners: 1, connections: 1 }));
    expect(old.closeCalls).toBe(1);
  };
}

/** connecting × config change / forceNew, then the moved waiter aborts: it must not keep a lease. */
function movedWaiterAborts(fp: string, opts: AcquireOptions) {
  return async (w: World) => {
    const b = w.acquire(fp, opts);
    await flush();
    w.abort!.abort();
    await flush();
    expectRejected(w.waiter, 'aborted');
    const fresh = w.resolve(1);
    await flush();
    const lease = expectLease(b, fresh);
    lease.release(); // the only lease anybody holds
    w.resolve(0); // the abandoned old connect completes (and is closed)
    await flush();
    expect(w.sizes()).toEqual(sizes({ owners: 1, connections: 1 }));
    // Nobody holds it: it is idle and the idle timer closes it.
    jest.advanceTimersByTime(IDLE);
    await flush();
    expect(fresh.closeCalls).toBe(1);
    expect(w.sizes()).toEqual(EMPTY);
  };
}

/** connecting (superseded) × a newer acquire that starts connect #2: #0 still serves its own waiter only. */
function supersededKeepsItsWaiter(fp: string, opts: AcquireOptions) {
  return async (w: World) => {
    const c = w.acquire(fp, opts);
    await flush();
    expect(w.connects).toHaveLength(3);
    expect(w.sizes()).toEqual(sizes({ owners: 1, pending: 1 }));
    const x = w.resolve(0);
    const y = w.resolve(1);
    const z = w.resolve(2);
    await flush();
    const la = expectLease(w.waiter, x);
    const lb = expectLease(w.other, y);
    const lc = expectLease(c, z);
    expect(w.pool.peek(PK.key)).toBe(z);
    expect(w.sizes()).toEqual(sizes({ owners: 1, connections: 1, draining: 2 }));
    expect(x.closeCalls + y.closeCalls).toBe(0); // never closed under a call
    la.release();
    lb.release();
    await flush();
    expect([x.closeCalls, y.closeCalls, z.closeCalls]).toEqual([1, 1, 0]);
    expectEvents(w, [`connect #${x.id}`, `connect #${y.id}`, `connect #${z.id}`, 'disconnect replaced', 'disconnect replaced']);
    lc.release();
    expect(w.sizes()).toEqual(sizes({ owners: 1, connections: 1 }));
  };
}

/** abandoned × any acquire: a new connect (never the abandoned one); the eviction still waits for the abandoned one. */
function abandonedAcquire(fp: string, opts: AcquireOptions) {
  return async (w: World) => {
    const { lease, fresh } = await acquireGetsNewConnect(w, fp, opts);
    expectPending(w.eviction);
    const late = w.resolve(0, new SlowCloseConn());
    await flush();
    expect(late.closeCalls).toBe(1);
    expectPending(w.eviction); // its close has not finished
    late.gate.resolve();
    await flush();
    expect(w.eviction?.settled).toBe(true);
    expect(w.events).toEqual([`connect #${fresh.id}`]); // nothing for the abandoned connect
    expect(w.sizes()).toEqual(sizes({ owners: 1, connections: 1 }));
    lease.release();
    expect(fresh.closeCalls).toBe(0);
  };
}

/** draining × any acquire: a new connect; the draining connection is closed once its call ends, not before. */
function drainingAcquire(fp: string, opts: AcquireOptions) {
  return async (w: World) => {
    const { lease, fresh } = await acquireGetsNewConnect(w, fp, opts);
    expect(w.conn!.closeCalls).toBe(0);
    expect(w.sizes()).toEqual(sizes({ owners: 1, connections: 1, draining: 1 }));
    w.lease!.release();
    await flush();
    expect(w.conn!.closeCalls).toBe(1);
    expectEvents(w, [`connect #${fresh.id}`, 'disconnect disconnected']);
    expect(w.sizes()).toEqual(sizes({ owners: 1, connections: 1 }));
    lease.release();
  };
}

/** closing × any acquire: a new connect at once; the closing connection is never handed out nor closed twice. */
function closingAcquire(fp: string, opts: AcquireOptions) {
  return async (w: World) => {
    const { lease, fresh } = await acquireGetsNewConnect(w, fp, opts);
    expectPending(w.eviction);
    (w.conn as SlowCloseConn).gate.resolve();
    await flush();
    expect(w.eviction?.settled).toBe(true);
    expect(w.conn!.closeCalls).toBe(1);
    expectEvents(w, [`connect #${fresh.id}`, 'disconnect disconnected']);
    expect(w.sizes()).toEqual(sizes({ owners: 1, connections: 1 }));
    lease.release();
  };
}

/** closed × any acquire: a new connect, never the dead connection. */
function closedAcquire(fp: string, opts: AcquireOptions) {
  return async (w: World) => {
    const { lease, fresh } = await acquireGetsNewConnect(w, fp, opts);
    expect(w.conn!.closeCalls).toBe(0);
    expect(w.events).toEqual([`connect #${fresh.id}`]);
    lease.release();
  };
}

/** A connect cancelled by `cancel` (an eviction or close()) completes, is closed, and only then `cancel` resolves. */
async function cancelledConnectsAreClosedBeforeResolving(w: World, cancel: () => Promise<void>, indexes: number[]): Promise<void> {
  const done = track(cancel());
  await flush();
  for (const i of indexes) expect(w.connects[i]!.signal.aborted).toBe(false);
  expectPending(done);
  const late = indexes.map((i) => w.resolve(i, new SlowCloseConn()));
  await flush();
  for (const c of late) expect(c.closeCalls).toBe(1);
  expectPending(done); // completed and closing, not yet closed
  for (const c of late) c.gate.resolve();
  await flush();
  expect(done.settled).toBe(true);
  expect(done.error).toBeUndefined();
  for (const c of late) expect(c.closeCalls).toBe(1);
  expect(w.events).toEqual([]); // never announced: no onConnect, no onDisconnect
  expect(w.sizes()).toEqual(EMPTY);
}

// The table ---------------------------------------------------------------------------------------------

const ROWS: Row[] = [
  // connecting ----------------------------------------------------------------------------------------
  {
    state: 'connecting',
    event: 'acquire same fingerprint',
    expect: 'joins the connect: one connect, both waiters get its connection',
    covers: ['connecting.connected'],
    async run(w) {
      const b = w.acquire('v1');
      await flush();
      expect(w.connects).toHaveLength(1);
      expect(w.pool.stats().counters.joins).toBe(1);
      const x = w.resolve(0);
      await flush();
      const la = expectLease(w.waiter, x);
      const lb = expectLease(b, x);
      expect(w.events).toEqual([`connect #${x.id}`]);
      expect(w.sizes()).toEqual(sizes({ owners: 1, connections: 1 }));
      la.release();
      lb.release();
      expect(x.closeCalls).toBe(0);
    },
  },
  {
    state: 'connecting',
    event: 'acquire different fingerprint',
    expect: 'config change: a new connect owns the key and takes the waiter; the old one is abandoned, closed unannounced',
    covers: ['connecting.lastWaiterLeftSuperseded', 'abandoned.connected', 'closing.closed', 'connecting.connected'],
    run: waiterMovesToNewConnect('v2', {}),
  },
  {
    state: 'connecting',
    event: 'acquire different fingerprint',
    variant: 'then the moved waiter aborts',
    expect: 'the aborted waiter rejects `aborted` and holds no lease: the new connection is idle-evicted once its real lease ends',
    covers: ['connecting.lastWaiterLeftSuperseded'],
    run: movedWaiterAborts('v2', {}),
  },
  {
    state: 'connecting',
    event: 'acquire forceNew',
    expect: 'the forceNew connect owns the key and takes the waiter; the old one is abandoned, closed unannounced',
    covers: ['connecting.lastWaiterLeftSuperseded', 'abandoned.connected', 'closing.closed'],
    run: waiterMovesToNewConnect('v1', { forceNew: true }),
  },
  {
    state: 'connecting',
    event: 'acquire forceNew',
    variant: 'then the moved waiter aborts',
    expect: 'the aborted waiter rejects `aborted` and holds no lease: the new connection is idle-evicted once its real lease ends',
    covers: ['connecting.lastWaiterLeftSuperseded'],
    run: movedWaiterAborts('v1', { forceNew: true }),
  },
  { state: 'connecting', event: 'lease release', na: NO_LEASE_WHILE_CONNECTING },
  { state: 'connecting', event: 'lease release({ touch: false })', na: NO_LEASE_WHILE_CONNECTING },
  {
    state: 'connecting',
    event: 'idle timer fires',
    expect: 'no idle timer runs while connecting: a slow connect is neither aborted nor evicted, and its connection gets a full idle period after use',
    covers: [],
    async run(w) {
      jest.advanceTimersByTime(3 * IDLE);
      await flush();
      expect(w.connects[0]!.signal.aborted).toBe(false);
      expectPending(w.waiter);
      const x = w.resolve(0);
      await flush();
      expectLease(w.waiter, x).release();
      jest.advanceTimersByTime(IDLE - 1);
      await flush();
      expect(x.closeCalls).toBe(0);
      jest.advanceTimersByTime(1);
      await flush();
      expect(x.closeCalls).toBe(1);
      expectEvents(w, [`connect #${x.id}`, 'evict idle', 'disconnect idle']);
    },
  },
  {
    state: 'connecting',
    event: 'evictKey/evictOwner/evictWhere',
    expect: 'evictOwner: waiter rejects `connection_closed`; the connect completes, is closed unannounced, then the eviction resolves',
    covers: ['connecting.cancel', 'abandoned.connected', 'closing.closed'],
    async run(w) {
      const ev = track(w.pool.evictOwner('u1', 'disconnected'));
      await flush();
      expectRejected(w.waiter, 'connection_closed');
      expect(w.sizes()).toEqual(sizes({ owners: 1, abandoned: 1 }));
      expectPending(ev);
      const late = w.resolve(0, new SlowCloseConn());
      await flush();
      expect(late.closeCalls).toBe(1);
      expectPending(ev);
      late.gate.resolve();
      await flush();
      expect(ev.settled).toBe(true);
      expect(w.events).toEqual([]);
      expect(w.sizes()).toEqual(EMPTY);
      // the next acquire gets a new connect, never the cancelled one
      const { fresh } = await acquireGetsNewConnect(w, 'v1', {});
      expect(fresh).not.toBe(late);
    },
  },
  {
    state: 'connecting',
    event: 'pool.close()',
    expect: 'waiter rejects `connection_closed`, later acquires `manager_closed`; close() resolves once the connect completed and was closed; no onConnect',
    covers: ['connecting.poolClose', 'abandoned.connected', 'closing.closed'],
    async run(w) {
      const closing = track(w.pool.close());
      await flush();
      expectRejected(w.waiter, 'connection_closed');
      const after = w.acquire('v1');
      await flush();
      expectRejected(after, 'manager_closed');
      expect(w.connects).toHaveLength(1);
      expect(w.sizes()).toEqual(sizes({ owners: 1, abandoned: 1 }));
      const late = w.resolve(0, new SlowCloseConn());
      await flush();
      expect(late.closeCalls).toBe(1);
      expectPending(closing);
      late.gate.resolve();
      await flush();
      expect(closing.settled).toBe(true);
      expect(w.events).toEqual([]);
      expect(w.sizes()).toEqual(EMPTY);
      expect(jest.getTimerCount()).toBe(0);
    },
  },
  {
    state: 'connecting',
    event: 'connect resolves',
    expect: 'ready: the waiter gets the connection, onConnect fires once, it is in the pool',
    covers: ['connecting.connected'],
    async run(w) {
      const x = w.resolve(0);
      await flush();
      const lease = expectLease(w.waiter, x);
      expect(w.events).toEqual([`connect #${x.id}`]);
      expect(w.sizes()).toEqual(sizes({ owners: 1, connections: 1 }));
      expect(w.pool.stats().counters.connects).toBe(1);
      expect(w.pool.peek(PK.key)).toBe(x);
      lease.release();
      expect(x.closeCalls).toBe(0);
    },
  },
  {
    state: 'connecting',
    event: 'connect rejects',
    expect: 'closed: the waiter rejects with the connect error, nothing is cached or announced; the next acquire connects again',
    covers: ['connecting.failed'],
    async run(w) {
      const err = w.reject(0);
      await flush();
      expect(w.waiter?.error).toBe(err);
      expect(w.sizes()).toEqual(EMPTY);
      expect(w.events).toEqual([]);
      expect(w.pool.stats().counters.connectFailures).toBe(1);
      (await acquireGetsNewConnect(w, 'v1', {})).lease.release();
    },
  },
  { state: 'connecting', event: 'connection dies', na: NO_CONNECTION_YET },
  {
    state: 'connecting',
    event: 'abandonGraceMs expires',
    expect: 'no grace timer for a connect that is not abandoned: it is never aborted, its waiter still gets it',
    covers: [],
    async run(w) {
      jest.advanceTimersByTime(2 * GRACE);
      await flush();
      expect(w.connects[0]!.signal.aborted).toBe(false);
      expectPending(w.waiter);
      expect(w.sizes()).toEqual(sizes({ owners: 1, pending: 1 }));
      const x = w.resolve(0);
      await flush();
      expectLease(w.waiter, x).release();
    },
  },
  {
    state: 'connecting',
    event: 'waiter aborts',
    expect: 'the waiter rejects `aborted`; the connect goes on (not aborted, not abandoned) and its connection is kept for the next acquire',
    covers: [],
    async run(w) {
      w.abort!.abort();
      await flush();
      expectRejected(w.waiter, 'aborted');
      expect(w.connects[0]!.signal.aborted).toBe(false);
      expect(w.sizes()).toEqual(sizes({ owners: 1, pending: 1 }));
      const x = w.resolve(0);
      await flush();
      expect(x.closeCalls).toBe(0);
      expect(w.events).toEqual([`connect #${x.id}`]);
      const again = w.acquire('v1');
      await flush();
      expectLease(again, x).release();
      expect(w.connects).toHaveLength(1);
    },
  },

  // connecting (superseded) ---------------------------------------------------------------------------------
  {
    state: 'connecting (superseded)',
    event: 'acquire same fingerprint',
    expect: 'joins the newer connect, never the superseded one',
    covers: [],
    async run(w) {
      const c = w.acquire('v1');
      await flush();
      expect(w.connects).toHaveLength(2);
      expect(w.pool.stats().counters.joins).toBe(1);
      const x = w.resolve(0);
      const y = w.resolve(1);
      await flush();
      expectLease(w.waiter, x).release();
      expectLease(w.other, y).release();
      expectLease(c, y).release();
      await flush();
      expect([x.closeCalls, y.closeCalls]).toEqual([1, 0]);
      expect(w.pool.peek(PK.key)).toBe(y);
    },
  },
  {
    state: 'connecting (superseded)',
    event: 'acquire different fingerprint',
    expect: 'a third connect; the superseded one still serves only its own waiter, then is closed',
    covers: ['connecting.connectedSuperseded', 'draining.lastRelease', 'closing.closed'],
    run: supersededKeepsItsWaiter('v2', {}),
  },
  {
    state: 'connecting (superseded)',
    event: 'acquire forceNew',
    expect: 'a third connect; the superseded one still serves only its own waiter, then is closed',
    covers: ['connecting.connectedSuperseded', 'draining.lastRelease', 'closing.closed'],
    run: supersededKeepsItsWaiter('v1', { forceNew: true }),
  },
  { state: 'connecting (superseded)', event: 'lease release', na: NO_LEASE_WHILE_CONNECTING },
  { state: 'connecting (superseded)', event: 'lease release({ touch: false })', na: NO_LEASE_WHILE_CONNECTING },
  {
    state: 'connecting (superseded)',
    event: 'idle timer fires',
    expect: 'no idle timer while connecting: both connects keep running, their waiters keep waiting',
    covers: [],
    async run(w) {
      jest.advanceTimersByTime(3 * IDLE);
      await flush();
      expect(w.connects.map((c) => c.signal.aborted)).toEqual([false, false]);
      expectPending(w.waiter);
      expectPending(w.other);
      expect(w.sizes()).toEqual(sizes({ owners: 1, pending: 1 }));
    },
  },
  {
    state: 'connecting (superseded)',
    event: 'evictKey/evictOwner/evictWhere',
    expect: 'evictOwner: both connects cancelled (waiters reject `connection_closed`); the eviction resolves once both completed and were closed',
    covers: ['connecting.cancel', 'abandoned.connected', 'closing.closed'],
    async run(w) {
      const ev = track(w.pool.evictOwner('u1', 'disconnected'));
      await flush();
      expectRejected(w.waiter, 'connection_closed');
      expectRejected(w.other, 'connection_closed');
      expect(w.sizes()).toEqual(sizes({ owners: 1, abandoned: 2 }));
      const x = w.resolve(0, new SlowCloseConn());
      x.gate.resolve();
      await flush();
      expect(x.closeCalls).toBe(1);
      expectPending(ev); // #1 still connecting
      const y = w.resolve(1, new SlowCloseConn());
      await flush();
      expectPending(ev); // #1 closing
      y.gate.resolve();
      await flush();
      expect(ev.settled).toBe(true);
      expect([x.closeCalls, y.closeCalls]).toEqual([1, 1]);
      expect(w.events).toEqual([]);
      expect(w.sizes()).toEqual(EMPTY);
    },
  },
  {
    state: 'connecting (superseded)',
    event: 'pool.close()',
    expect: 'both waiters reject `connection_closed`; close() resolves once both connects completed and were closed; no onConnect',
    covers: ['connecting.poolClose', 'abandoned.connected', 'closing.closed'],
    async run(w) {
      const closing = w.pool.close();
      await flush();
      expectRejected(w.waiter, 'connection_closed');
      expectRejected(w.other, 'connection_closed');
      await cancelledConnectsAreClosedBeforeResolving(w, () => closing, [0, 1]);
    },
  },
  {
    state: 'connecting (superseded)',
    event: 'connect resolves',
    expect: 'serves its own waiter only, out of the pool (draining); closed once that lease ends (onDisconnect replaced)',
    covers: ['connecting.connectedSuperseded', 'draining.lastRelease', 'closing.closed'],
    async run(w) {
      const x = w.resolve(0);
      await flush();
      const la = expectLease(w.waiter, x);
      expect(w.events).toEqual([`connect #${x.id}`]);
      expect(w.sizes()).toEqual(sizes({ owners: 1, pending: 1, draining: 1 }));
      expect(w.pool.peek(PK.key)).toBeUndefined();
      const c = w.acquire('v1'); // joins #1, never gets x
      await flush();
      expectPending(c);
      expect(w.connects).toHaveLength(2);
      expect(x.closeCalls).toBe(0);
      la.release();
      await flush();
      expect(x.closeCalls).toBe(1);
      expect(w.events).toEqual([`connect #${x.id}`, 'disconnect replaced']);
      expect(w.sizes()).toEqual(sizes({ owners: 1, pending: 1 }));
      const y = w.resolve(1);
      await flush();
      expectLease(c, y).release();
      expectLease(w.other, y).release();
    },
  },
  {
    state: 'connecting (superseded)',
    event: 'connect rejects',
    expect: 'its waiter rejects with the connect error; the newer connect is unaffected',
    covers: ['connecting.failed'],
    async run(w) {
      const err = w.reject(0);
      await flush();
      expect(w.waiter?.error).toBe(err);
      expectPending(w.other);
      expect(w.sizes()).toEqual(sizes({ owners: 1, pending: 1 }));
      const y = w.resolve(1);
      await flush();
      expectLease(w.other, y).release();
      expect(w.events).toEqual([`connect #${y.id}`]);
    },
  },
  { state: 'connecting (superseded)', event: 'connection dies', na: NO_CONNECTION_YET },
  {
    state: 'connecting (superseded)',
    event: 'abandonGraceMs expires',
    expect: 'not abandoned while it has a waiter: never aborted, its waiter still gets its connection',
    covers: [],
    async run(w) {
      jest.advanceTimersByTime(2 * GRACE);
      await flush();
      expect(w.connects[0]!.signal.aborted).toBe(false);
      expectPending(w.waiter);
      const x = w.resolve(0);
      await flush();
      expectLease(w.waiter, x).release();
      await flush();
      expect(x.closeCalls).toBe(1);
    },
  },
  {
    state: 'connecting (superseded)',
    event: 'waiter aborts',
    expect: 'its last waiter gone: abandoned (aborted only after abandonGraceMs), closed unannounced; the newer connect is unaffected',
    covers: ['connecting.lastWaiterLeftSuperseded', 'abandoned.graceExpired', 'abandoned.connected', 'closing.closed'],
    async run(w) {
      w.abort!.abort();
      await flush();
      expectRejected(w.waiter, 'aborted');
      expect(w.sizes()).toEqual(sizes({ owners: 1, pending: 1, abandoned: 1 }));
      jest.advanceTimersByTime(GRACE - 1);
      expect(w.connects[0]!.signal.aborted).toBe(false);
      jest.advanceTimersByTime(1);
      expect(w.connects[0]!.signal.aborted).toBe(true);
      expect(w.connects[1]!.signal.aborted).toBe(false);
      const x = w.resolve(0); // completed anyway
      await flush();
      expect(x.closeCalls).toBe(1);
      expect(w.events).toEqual([]);
      expectPending(w.other);
      const y = w.resolve(1);
      await flush();
      expectLease(w.other, y).release();
      expect(w.events).toEqual([`connect #${y.id}`]);
      expect(w.sizes()).toEqual(sizes({ owners: 1, connections: 1 }));
    },
  },

  // abandoned -------------------------------------------------------------------------------------------------
  ...ACQUIRES.map(
    ([event, fp, opts]): Row => ({
      state: 'abandoned',
      event,
      expect: 'a new connect (never the abandoned one); the pending eviction still waits for the abandoned one to be closed',
      covers: ['abandoned.connected', 'closing.closed'],
      run: abandonedAcquire(fp, opts),
    }),
  ),
  { state: 'abandoned', event: 'lease release', na: 'an abandoned connect is never handed out: no lease of it exists' },
  { state: 'abandoned', event: 'lease release({ touch: false })', na: 'an abandoned connect is never handed out: no lease of it exists' },
  { state: 'abandoned', event: 'idle timer fires', na: 'no idle timer: its one timer is the grace timer (row abandonGraceMs expires)' },
  {
    state: 'abandoned',
    event: 'evictKey/evictOwner/evictWhere',
    expect: 'evictWhere again: it too resolves only once the abandoned connect completed and was closed (once)',
    covers: ['abandoned.connected', 'closing.closed'],
    async run(w) {
      await cancelledConnectsAreClosedBeforeResolving(w, () => w.pool.evictWhere((pk) => pk.ownerKey === 'u1', 'removed'), [0]);
      expect(w.eviction?.settled).toBe(true);
    },
  },
  {
    state: 'abandoned',
    event: 'pool.close()',
    expect: 'later acquires reject `manager_closed`; close() resolves once the abandoned connect completed and was closed; no onConnect',
    covers: ['abandoned.poolClose', 'abandoned.connected', 'closing.closed'],
    async run(w) {
      const closing = w.pool.close();
      const after = w.acquire('v1');
      await flush();
      expectRejected(after, 'manager_closed');
      await cancelledConnectsAreClosedBeforeResolving(w, () => closing, [0]);
      expect(w.eviction?.settled).toBe(true);
      expect(jest.getTimerCount()).toBe(0);
    },
  },
  {
    state: 'abandoned',
    event: 'connect resolves',
    expect: 'closed without being handed out or announced; the eviction resolves once the close finished',
    covers: ['abandoned.connected', 'closing.closed'],
    async run(w) {
      const late = w.resolve(0, new SlowCloseConn());
      await flush();
      expect(late.closeCalls).toBe(1);
      expectPending(w.eviction);
      expect(w.sizes()).toEqual(sizes({ owners: 1 }));
      late.gate.resolve();
      await flush();
      expect(w.eviction?.settled).toBe(true);
      expect(late.closeCalls).toBe(1);
      expect(w.events).toEqual([]);
      expect(w.sizes()).toEqual(EMPTY);
      expect(jest.getTimerCount()).toBe(0); // grace timer cleared
    },
  },
  {
    state: 'abandoned',
    event: 'connect rejects',
    expect: 'closed; the eviction resolves; nothing announced',
    covers: ['abandoned.failed'],
    async run(w) {
      w.reject(0);
      await flush();
      expect(w.eviction?.settled).toBe(true);
      expect(w.eviction?.error).toBeUndefined();
      expect(w.events).toEqual([]);
      expect(w.sizes()).toEqual(EMPTY);
      expect(jest.getTimerCount()).toBe(0);
    },
  },
  { state: 'abandoned', event: 'connection dies', na: NO_CONNECTION_YET },
  {
    state: 'abandoned',
    event: 'abandonGraceMs expires',
    expect: 'its connect signal is aborted (`connection_closed`); the eviction resolves once the connect gave up',
    covers: ['abandoned.graceExpired', 'abandoned.failed'],
    async run(w) {
      const signal = w.connects[0]!.signal;
      jest.advanceTimersByTime(GRACE - 1);
      expect(signal.aborted).toBe(false);
      jest.advanceTimersByTime(1);
      expect(signal.aborted).toBe(true);
      expect(signal.reason).toMatchObject({ code: 'connection_closed' });
      await flush();
      expectPending(w.eviction);
      expect(w.sizes()).toEqual(sizes({ owners: 1, abandoned: 1 }));
      w.reject(0, signal.reason); // what a connect does when its signal aborts
      await flush();
      expect(w.eviction?.settled).toBe(true);
      expect(w.events).toEqual([]);
      expect(w.sizes()).toEqual(EMPTY);
    },
  },
  { state: 'abandoned', event: 'waiter aborts', na: 'its waiters were rejected when it was cancelled' },

  // ready idle ------------------------------------------------------------------------------------------------
  {
    state: 'ready idle',
    event: 'acquire same fingerprint',
    expect: 'a warm hit on the same connection, no connect; leased, so the idle timer no longer closes it',
    covers: [],
    async run(w) {
      const b = w.acquire('v1');
      await flush();
      const lease = expectLease(b, w.conn!);
      expect(w.connects).toHaveLength(1);
      expect(w.pool.stats().counters.hits).toBe(1);
      jest.advanceTimersByTime(5 * IDLE);
      await flush();
      expect(w.conn!.closeCalls).toBe(0);
      lease.release();
    },
  },
  {
    state: 'ready idle',
    event: 'acquire different fingerprint',
    expect: 'stale: closed at once (onEvict/onDisconnect stale); the acquire gets a new connection',
    covers: ['ready.evict', 'draining.lastRelease', 'closing.closed'],
    async run(w) {
      const b = w.acquire('v2');
      await flush();
      expect(w.conn!.closeCalls).toBe(1);
      expect(w.events).toEqual(['evict stale', 'disconnect stale']);
      expect(w.sizes()).toEqual(sizes({ owners: 1, pending: 1 }));
      const y = w.resolve(1);
      await flush();
      expectLease(b, y).release();
      expect(w.pool.stats().counters.evictions.stale).toBe(1);
      expect(w.sizes()).toEqual(sizes({ owners: 1, connections: 1 }));
    },
  },
  {
    state: 'ready idle',
    event: 'acquire forceNew',
    expect: 'a new connect; the old connection serves until it is ready, then is closed (replaced)',
    covers: ['ready.evict', 'draining.lastRelease', 'closing.closed'],
    async run(w) {
      const b = w.acquire('v1', { forceNew: true });
      await flush();
      expect(w.connects).toHaveLength(2);
      expect(w.pool.peek(PK.key)).toBe(w.conn);
      expect(w.sizes()).toEqual(sizes({ owners: 1, connections: 1, pending: 1 }));
      const y = w.resolve(1);
      await flush();
      expectLease(b, y).release();
      expect(w.conn!.closeCalls).toBe(1);
      expect(w.pool.peek(PK.key)).toBe(y);
      expectEvents(w, [`connect #${y.id}`, 'evict replaced', 'disconnect replaced']);
    },
  },
  {
    state: 'ready idle',
    event: 'lease release',
    expect: 'a second release of the already released lease is ignored: it does not restart the idle clock',
    covers: [],
    async run(w) {
      jest.advanceTimersByTime(600);
      w.released!.release();
      jest.advanceTimersByTime(399);
      await flush();
      expect(w.conn!.closeCalls).toBe(0);
      jest.advanceTimersByTime(1);
      await flush();
      expect(w.conn!.closeCalls).toBe(1);
      expect(w.events).toEqual(['evict idle', 'disconnect idle']);
    },
  },
  { state: 'ready idle', event: 'lease release({ touch: false })', na: 'no lease is outstanding; an extra release is ignored whatever its options (row lease release)' },
  {
    state: 'ready idle',
    event: 'idle timer fires',
    expect: 'closed after exactly idleTimeoutMs (onEvict/onDisconnect idle); the next acquire connects again',
    covers: ['ready.idle', 'closing.closed'],
    async run(w) {
      jest.advanceTimersByTime(IDLE - 1);
      await flush();
      expect(w.conn!.closeCalls).toBe(0);
      jest.advanceTimersByTime(1);
      await flush();
      expect(w.conn!.closeCalls).toBe(1);
      expect(w.events).toEqual(['evict idle', 'disconnect idle']);
      expect(w.sizes()).toEqual(EMPTY);
      expect(w.pool.stats().counters.evictions.idle).toBe(1);
      (await acquireGetsNewConnect(w, 'v1', {})).lease.release();
    },
  },
  {
    state: 'ready idle',
    event: 'evictKey/evictOwner/evictWhere',
    expect: 'evictOwner: closed at once; the eviction resolves after the close finished',
    covers: ['ready.evict', 'draining.lastRelease', 'closing.closed'],
    slowSubject: true,
    async run(w) {
      const ev = track(w.pool.evictOwner('u1', 'disconnected'));
      await flush();
      expect(w.conn!.closeCalls).toBe(1);
      expect(w.sizes()).toEqual(sizes({ owners: 1 }));
      expectPending(ev);
      (w.conn as SlowCloseConn).gate.resolve();
      await flush();
      expect(ev.settled).toBe(true);
      expect(w.events).toEqual(['evict disconnected', 'disconnect disconnected']);
      expect(w.sizes()).toEqual(EMPTY);
      expect(w.conn!.closeCalls).toBe(1);
    },
  },
  {
    state: 'ready idle',
    event: 'pool.close()',
    expect: 'closed (onEvict/onDisconnect closed); close() resolves after the close finished; later acquires reject `manager_closed`',
    covers: ['ready.poolClose', 'closing.closed'],
    slowSubject: true,
    async run(w) {
      const closing = track(w.pool.close());
      await flush();
      expect(w.conn!.closeCalls).toBe(1);
      expectPending(closing);
      (w.conn as SlowCloseConn).gate.resolve();
      await flush();
      expect(closing.settled).toBe(true);
      expect(w.conn!.closeCalls).toBe(1);
      expect(w.events).toEqual(['evict closed', 'disconnect closed']);
      expect(w.sizes()).toEqual(EMPTY);
      expect(jest.getTimerCount()).toBe(0);
      const after = w.acquire('v1');
      await flush();
      expectRejected(after, 'manager_closed');
    },
  },
  { state: 'ready idle', event: 'connect resolves', na: ALREADY_SETTLED },
  { state: 'ready idle', event: 'connect rejects', na: ALREADY_SETTLED },
  {
    state: 'ready idle',
    event: 'connection dies',
    expect: 'dropped (onDisconnect with the error), not closed again, its idle timer cleared; the next acquire connects again',
    covers: ['ready.died'],
    async run(w) {
      w.conn!.die(new SwitchboardError('connection_closed', 'gone'));
      expect(w.sizes()).toEqual(EMPTY);
      expect(w.events).toEqual(['disconnect connection_closed']);
      expect(jest.getTimerCount()).toBe(0);
      await flush();
      expect(w.conn!.closeCalls).toBe(0);
      (await acquireGetsNewConnect(w, 'v1', {})).lease.release();
    },
  },
  { state: 'ready idle', event: 'abandonGraceMs expires', na: GRACE_ONLY_ABANDONED },
  { state: 'ready idle', event: 'waiter aborts', na: NO_WAITER },

  // ready leased ----------------------------------------------------------------------------------------------
  {
    state: 'ready leased',
    event: 'acquire same fingerprint',
    expect: 'a second lease on the same connection; it stays open until the last lease ends, then idles out',
    covers: ['ready.lastRelease', 'ready.idle', 'closing.closed'],
    async run(w) {
      const b = w.acquire('v1');
      await flush();
      const lb = expectLease(b, w.conn!);
      expect(w.connects).toHaveLength(1);
      w.lease!.release();
      jest.advanceTimersByTime(5 * IDLE);
      await flush();
      expect(w.conn!.closeCalls).toBe(0);
      lb.release();
      jest.advanceTimersByTime(IDLE);
      await flush();
      expect(w.conn!.closeCalls).toBe(1);
    },
  },
  {
    state: 'ready leased',
    event: 'acquire different fingerprint',
    expect: 'stale: out of the pool (draining), not closed under the call; the acquire gets a new connection; closed when the call ends',
    covers: ['ready.evict', 'draining.lastRelease', 'closing.closed'],
    async run(w) {
      const b = w.acquire('v2');
      await flush();
      expect(w.conn!.closeCalls).toBe(0);
      expect(w.events).toEqual(['evict stale']);
      expect(w.sizes()).toEqual(sizes({ owners: 1, pending: 1, draining: 1 }));
      const y = w.resolve(1);
      await flush();
      const lb = expectLease(b, y);
      expect(w.conn!.closeCalls).toBe(0);
      w.lease!.release();
      await flush();
      expect(w.conn!.closeCalls).toBe(1);
      expectEvents(w, ['evict stale', `connect #${y.id}`, 'disconnect stale']);
      expect(w.sizes()).toEqual(sizes({ owners: 1, connections: 1 }));
      lb.release();
    },
  },
  {
    state: 'ready leased',
    event: 'acquire forceNew',
    expect: 'a new connect; once ready the old one drains (replaced) and is closed when its call ends',
    covers: ['ready.evict', 'draining.lastRelease', 'closing.closed'],
    async run(w) {
      const b = w.acquire('v1', { forceNew: true });
      await flush();
      expect(w.sizes()).toEqual(sizes({ owners: 1, connections: 1, pending: 1 }));
      const y = w.resolve(1);
      await flush();
      const lb = expectLease(b, y);
      expect(w.conn!.closeCalls).toBe(0);
      expect(w.sizes()).toEqual(sizes({ owners: 1, connections: 1, draining: 1 }));
      expectEvents(w, [`connect #${y.id}`, 'evict replaced']);
      w.lease!.release();
      await flush();
      expect(w.conn!.closeCalls).toBe(1);
      expectEvents(w, [`connect #${y.id}`, 'evict replaced', 'disconnect replaced']);
      expect(w.sizes()).toEqual(sizes({ owners: 1, connections: 1 }));
      lb.release();
    },
  },
  {
    state: 'ready leased',
    event: 'lease release',
    expect: 'idle; the idle clock restarts at the release: closed idleTimeoutMs after it',
    covers: ['ready.lastRelease', 'ready.idle', 'closing.closed'],
    async run(w) {
      jest.advanceTimersByTime(500);
      w.lease!.release();
      expect(w.sizes()).toEqual(sizes({ owners: 1, connections: 1 }));
      jest.advanceTimersByTime(IDLE - 1);
      await flush();
      expect(w.conn!.closeCalls).toBe(0);
      jest.advanceTimersByTime(1);
      await flush();
      expect(w.conn!.closeCalls).toBe(1);
      expect(w.events).toEqual(['evict idle', 'disconnect idle']);
    },
  },
  {
    state: 'ready leased',
    event: 'lease release({ touch: false })',
    expect: 'idle, but the idle clock keeps counting from the last touching use (t=0): closed at t=idleTimeoutMs',
    covers: ['ready.lastRelease', 'ready.idle', 'closing.closed'],
    async run(w) {
      jest.advanceTimersByTime(800);
      w.lease!.release({ touch: false });
      jest.advanceTimersByTime(IDLE - 800 - 1);
      await flush();
      expect(w.conn!.closeCalls).toBe(0);
      jest.advanceTimersByTime(1);
      await flush();
      expect(w.conn!.closeCalls).toBe(1);
      expect(w.events).toEqual(['evict idle', 'disconnect idle']);
    },
  },
  {
    state: 'ready leased',
    event: 'idle timer fires',
    expect: 'nothing while leased; the idle clock starts at the release',
    covers: ['ready.lastRelease', 'ready.idle', 'closing.closed'],
    async run(w) {
      jest.advanceTimersByTime(5 * IDLE);
      await flush();
      expect(w.conn!.closeCalls).toBe(0);
      expect(w.events).toEqual([]);
      expect(w.sizes()).toEqual(sizes({ owners: 1, connections: 1 }));
      w.lease!.release();
      jest.advanceTimersByTime(IDLE - 1);
      await flush();
      expect(w.conn!.closeCalls).toBe(0);
      jest.advanceTimersByTime(1);
      await flush();
      expect(w.conn!.closeCalls).toBe(1);
    },
  },
  {
    state: 'ready leased',
    event: 'evictKey/evictOwner/evictWhere',
    expect: 'evictOwner: draining, the eviction resolves at once, the connection is closed when the call ends',
    covers: ['ready.evict', 'draining.lastRelease', 'closing.closed'],
    async run(w) {
      const ev = track(w.pool.evictOwner('u1', 'disconnected'));
      await flush();
      expect(ev.settled).toBe(true);
      expect(w.conn!.closeCalls).toBe(0);
      expect(w.events).toEqual(['evict disconnected']);
      expect(w.sizes()).toEqual(sizes({ owners: 1, draining: 1 }));
      w.lease!.release();
      await flush();
      expect(w.conn!.closeCalls).toBe(1);
      expect(w.events).toEqual(['evict disconnected', 'disconnect disconnected']);
      expect(w.sizes()).toEqual(EMPTY);
    },
  },
  {
    state: 'ready leased',
    event: 'pool.close()',
    expect: 'closed now even though leased (only close() may); the late release changes nothing',
    covers: ['ready.poolClose', 'closing.closed'],
    async run(w) {
      await w.pool.close();
      expect(w.conn!.closeCalls).toBe(1);
      expect(w.events).toEqual(['evict closed', 'disconnect closed']);
      expect(w.sizes()).toEqual(EMPTY);
      w.lease!.release();
      await flush();
      expect(w.conn!.closeCalls).toBe(1);
      expect(w.events).toEqual(['evict closed', 'disconnect closed']);
      expect(jest.getTimerCount()).toBe(0);
      const after = w.acquire('v1');
      await flush();
      expectRejected(after, 'manager_closed');
    },
  },
  { state: 'ready leased', event: 'connect resolves', na: ALREADY_SETTLED },
  { state: 'ready leased', event: 'connect rejects', na: ALREADY_SETTLED },
  {
    state: 'ready leased',
    event: 'connection dies',
    expect: 'dropped (onDisconnect with the error); the late release closes nothing; the next acquire connects again',
    covers: ['ready.died'],
    async run(w) {
      w.conn!.die(new SwitchboardError('connection_closed', 'gone'));
      expect(w.sizes()).toEqual(EMPTY);
      expect(w.events).toEqual(['disconnect connection_closed']);
      w.lease!.release();
      await flush();
      expect(w.conn!.closeCalls).toBe(0);
      expect(w.sizes()).toEqual(EMPTY);
      expect(w.events).toEqual(['disconnect connection_closed']);
      (await acquireGetsNewConnect(w, 'v1', {})).lease.release();
    },
  },
  { state: 'ready leased', event: 'abandonGraceMs expires', na: GRACE_ONLY_ABANDONED },
  { state: 'ready leased', event: 'waiter aborts', na: NO_WAITER },

  // draining --------------------------------------------------------------------------------------------------
  ...ACQUIRES.map(
    ([event, fp, opts]): Row => ({
      state: 'draining',
      event,
      expect: 'a new connect (never the draining connection); the draining one is closed when its call ends',
      covers: ['draining.lastRelease', 'closing.closed'],
      run: drainingAcquire(fp, opts),
    }),
  ),
  ...(['lease release', 'lease release({ touch: false })'] as const).map(
    (event): Row => ({
      state: 'draining',
      event,
      expect: 'the last lease ended: closed once (onDisconnect with the eviction reason)',
      covers: ['draining.lastRelease', 'closing.closed'],
      async run(w) {
        w.lease!.release(event === 'lease release' ? undefined : { touch: false });
        await flush();
        expect(w.conn!.closeCalls).toBe(1);
        expect(w.events).toEqual(['disconnect disconnected']);
        expect(w.sizes()).toEqual(EMPTY);
      },
    }),
  ),
  {
    state: 'draining',
    event: 'idle timer fires',
    expect: 'no idle timer once out of the pool: never closed under the call',
    covers: ['draining.lastRelease', 'closing.closed'],
    async run(w) {
      jest.advanceTimersByTime(5 * IDLE);
      await flush();
      expect(w.conn!.closeCalls).toBe(0);
      expect(w.sizes()).toEqual(sizes({ owners: 1, draining: 1 }));
      expect(w.events).toEqual([]);
      w.lease!.release();
      await flush();
      expect(w.conn!.closeCalls).toBe(1);
    },
  },
  {
    state: 'draining',
    event: 'evictKey/evictOwner/evictWhere',
    expect: 'evictWhere again: resolves at once, no second eviction, still closed only when the call ends',
    covers: ['draining.lastRelease', 'closing.closed'],
    async run(w) {
      const ev = track(w.pool.evictWhere((pk) => pk.ownerKey === 'u1', 'removed'));
      await flush();
      expect(ev.settled).toBe(true);
      expect(w.conn!.closeCalls).toBe(0);
      expect(w.events).toEqual([]);
      expect(w.sizes()).toEqual(sizes({ owners: 1, draining: 1 }));
      w.lease!.release();
      await flush();
      expect(w.conn!.closeCalls).toBe(1);
      expect(w.events).toHaveLength(1);
      expect(w.events[0]).toMatch(/^disconnect /);
    },
  },
  {
    state: 'draining',
    event: 'pool.close()',
    expect: 'closed now (its call fails), close() resolves after it; the late release changes nothing',
    covers: ['draining.poolClose', 'closing.closed'],
    async run(w) {
      await w.pool.close();
      expect(w.conn!.closeCalls).toBe(1);
      expect(w.events).toHaveLength(1);
      expect(w.events[0]).toMatch(/^disconnect (disconnected|closed)$/);
      expect(w.sizes()).toEqual(EMPTY);
      w.lease!.release();
      await flush();
      expect(w.conn!.closeCalls).toBe(1);
      expect(w.events).toHaveLength(1);
    },
  },
  { state: 'draining', event: 'connect resolves', na: ALREADY_SETTLED },
  { state: 'draining', event: 'connect rejects', na: ALREADY_SETTLED },
  {
    state: 'draining',
    event: 'connection dies',
    expect: 'dropped (onDisconnect with the error), not closed again; the late release changes nothing',
    covers: ['draining.died'],
    async run(w) {
      w.conn!.die(new SwitchboardError('connection_closed', 'gone'));
      expect(w.sizes()).toEqual(EMPTY);
      expect(w.events).toEqual(['disconnect connection_closed']);
      w.lease!.release();
      await flush();
      expect(w.conn!.closeCalls).toBe(0);
      expect(w.events).toEqual(['disconnect connection_closed']);
    },
  },
  { state: 'draining', event: 'abandonGraceMs expires', na: GRACE_ONLY_ABANDONED },
  { state: 'draining', event: 'waiter aborts', na: NO_WAITER },

  // closing ---------------------------------------------------------------------------------------------------
  ...ACQUIRES.map(
    ([event, fp, opts]): Row => ({
      state: 'closing',
      event,
      expect: 'a new connect at once (never the closing connection, which is closed once)',
      covers: ['closing.closed'],
      run: closingAcquire(fp, opts),
    }),
  ),
  { state: 'closing', event: 'lease release', na: 'a slot closed by eviction has no lease; release after close() under a lease is row ready leased × pool.close()' },
  { state: 'closing', event: 'lease release({ touch: false })', na: 'as lease release' },
  { state: 'closing', event: 'idle timer fires', na: 'its idle timer was cleared when it left the pool' },
  {
    state: 'closing',
    event: 'evictKey/evictOwner/evictWhere',
    expect: 'evictOwner again: no second close, no second eviction or disconnect report',
    covers: ['closing.closed'],
    async run(w) {
      const ev = track(w.pool.evictOwner('u1', 'disconnected'));
      await flush();
      expect(w.conn!.closeCalls).toBe(1);
      expect(w.events).toEqual([]);
      (w.conn as SlowCloseConn).gate.resolve();
      await flush();
      expect(ev.settled).toBe(true);
      expect(w.eviction?.settled).toBe(true);
      expect(w.conn!.closeCalls).toBe(1);
      expect(w.events).toEqual(['disconnect disconnected']);
      expect(w.sizes()).toEqual(EMPTY);
    },
  },
  {
    state: 'closing',
    event: 'pool.close()',
    expect: 'close() resolves only once the close in progress finished; no second close',
    covers: ['closing.closed'],
    async run(w) {
      const closing = track(w.pool.close());
      await flush();
      expectPending(closing);
      expect(w.conn!.closeCalls).toBe(1);
      (w.conn as SlowCloseConn).gate.resolve();
      await flush();
      expect(closing.settled).toBe(true);
      expect(w.eviction?.settled).toBe(true);
      expect(w.conn!.closeCalls).toBe(1);
      expect(w.events).toEqual(['disconnect disconnected']);
    },
  },
  { state: 'closing', event: 'connect resolves', na: ALREADY_SETTLED },
  { state: 'closing', event: 'connect rejects', na: ALREADY_SETTLED },
  {
    state: 'closing',
    event: 'connection dies',
    expect: 'its close event while being closed is not reported as a failure: one onDisconnect, with the eviction reason',
    covers: ['closing.closed'],
    async run(w) {
      w.conn!.die(new SwitchboardError('connection_closed', 'gone'));
      await flush();
      expect(w.events).toEqual([]);
      (w.conn as SlowCloseConn).gate.resolve();
      await flush();
      expect(w.eviction?.settled).toBe(true);
      expect(w.events).toEqual(['disconnect disconnected']);
      expect(w.conn!.closeCalls).toBe(1);
      expect(w.sizes()).toEqual(EMPTY);
    },
  },
  { state: 'closing', event: 'abandonGraceMs expires', na: GRACE_ONLY_ABANDONED },
  { state: 'closing', event: 'waiter aborts', na: NO_WAITER },

  // closed ----------------------------------------------------------------------------------------------------
  ...ACQUIRES.map(
    ([event, fp, opts]): Row => ({
      state: 'closed',
      event,
      expect: 'a new connect, never the dead connection',
      covers: [],
      run: closedAcquire(fp, opts),
    }),
  ),
  ...(['lease release', 'lease release({ touch: false })'] as const).map(
    (event): Row => ({
      state: 'closed',
      event,
      expect: 'the late release of a lease on the dead connection changes nothing',
      covers: [],
      async run(w) {
        w.lease!.release(event === 'lease release' ? undefined : { touch: false });
        await flush();
        expect(w.conn!.closeCalls).toBe(0);
        expect(w.events).toEqual([]);
        expect(w.sizes()).toEqual(EMPTY);
        expect(jest.getTimerCount()).toBe(0);
      },
    }),
  ),
  { state: 'closed', event: 'idle timer fires', na: 'a closed slot has no timer (its idle timer was cleared when it died)' },
  {
    state: 'closed',
    event: 'evictKey/evictOwner/evictWhere',
    expect: 'evictOwner resolves at once; nothing is closed or reported',
    covers: [],
    async run(w) {
      const ev = track(w.pool.evictOwner('u1', 'disconnected'));
      await flush();
      expect(ev.settled).toBe(true);
      expect(w.conn!.closeCalls).toBe(0);
      expect(w.events).toEqual([]);
    },
  },
  {
    state: 'closed',
    event: 'pool.close()',
    expect: 'close() resolves; the dead connection is not closed again or reported',
    covers: [],
    async run(w) {
      await w.pool.close();
      expect(w.conn!.closeCalls).toBe(0);
      expect(w.events).toEqual([]);
      expect(jest.getTimerCount()).toBe(0);
    },
  },
  { state: 'closed', event: 'connect resolves', na: ALREADY_SETTLED },
  { state: 'closed', event: 'connect rejects', na: ALREADY_SETTLED },
  {
    state: 'closed',
    event: 'connection dies',
    expect: 'a second close event is not reported again',
    covers: [],
    async run(w) {
      w.conn!.die(new SwitchboardError('connection_closed', 'again'));
      await flush();
      expect(w.events).toEqual([]);
      expect(w.sizes()).toEqual(EMPTY);
    },
  },
  { state: 'closed', event: 'abandonGraceMs expires', na: GRACE_ONLY_ABANDONED },
  { state: 'closed', event: 'waiter aborts', na: NO_WAITER },
];

// ---------------------------------------------------------------------------------------------------------

const isTest = (r: Row): r is TestRow => 'run' in r;
const title = (r: TestRow) => `${r.event}${r.variant ? ` (${r.variant})` : ''} → ${r.expect}`;

beforeEach(() => {
  jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
});
afterEach(() => {
  jest.useRealTimers();
});

describe('ConnectionPool slot states × events', () => {
  describe.each(STATES.map((s) => [s]))('%s', (state) => {
    const cases = ROWS.filter((r): r is TestRow => r.state === state && isTest(r)).map((r) => [title(r), r] as const);
    it.each(cases)('%s', async (_title, row) => {
      const w = new World(row.slowSubject);
      await SETUPS[row.state](w);
      w.events.length = 0; // rows assert the hook events after the setup
      await row.run(w);
      await w.teardown();
    });
  });

  it('the table has a row (a test or a reason) for every state × event pair, and no pair twice unless a variant', () => {
    const seen = new Map<string, number>();
    for (const r of ROWS) {
      const k = `${r.state} × ${r.event}${r.variant ? ` (${r.variant})` : ''}`;
      seen.set(k, (seen.get(k) ?? 0) + 1);
      if (isTest(r)) expect(r.expect.length).toBeGreaterThan(0);
      else expect(r.na.length).toBeGreaterThan(0);
    }
    expect([...seen].filter(([, n]) => n > 1)).toEqual([]);
    const missing: string[] = [];
    for (const s of STATES) for (const e of EVENTS) if (!ROWS.some((r) => r.state === s && r.event === e)) missing.push(`${s} × ${e}`);
    expect(missing).toEqual([]);
  });

  it('every (state, event) entry of SLOT_TRANSITIONS is exercised by at least one row, and rows name only real entries', () => {
    const entries = Object.entries(SLOT_TRANSITIONS).flatMap(([s, events]) => Object.keys(events).map((e) => `${s}.${e}`));
    expect(entries.length).toBeGreaterThan(0);
    const covered = new Set(ROWS.filter(isTest).flatMap((r) => r.covers));
    expect(entries.filter((t) => !covered.has(t as Transition))).toEqual([]);
    expect([...covered].filter((t) => !entries.includes(t))).toEqual([]);
  });
});
