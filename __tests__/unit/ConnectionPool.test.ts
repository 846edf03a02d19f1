import { jest } from '@jest/globals';
import { EventEmitter } from 'node:events';
import { ConnectionPool, type PoolKey } from '../../src/pool/ConnectionPool.js';
import { SwitchboardError } from '../../src/errors.js';
import { deferred, type Deferred } from '../support/deferred.js';

class FakeConn extends EventEmitter {
  static made = 0;
  readonly id = ++FakeConn.made;
  connected = true;
  closeCalls = 0;
  isConnected() {
    return this.connected;
  }
  async close() {
    this.closeCalls++;
    this.connected = false;
  }
  die(error?: SwitchboardError) {
    this.connected = false;
    this.emit('close', { error });
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
      onConnect: (pk) => events.push(`connect ${pk.key}`),
      onEvict: (pk, reason) => events.push(`evict ${pk.key} ${reason}`),
      onDisconnect: (pk, e) => events.push(`disconnect ${pk.key} ${e.reason ?? e.error?.code ?? ''}`),
    },
    ...opts,
  });
  return { pool, connects, events };
}

afterEach(() => {
  jest.useRealTimers();
});

describe('ConnectionPool', () => {
  it('joins concurrent acquires of one key into a single connect and serves warm hits', async () => {
    const { pool, connects } = makePool();
    const leases = Array.from({ length: 300 }, () => pool.acquire(key('u1'), {}, 'fp'));
    expect(connects).toHaveLength(1);
    const conn = new FakeConn();
    connects[0]!.d.resolve(conn);
    const got = await Promise.all(leases);
    expect(new Set(got.map((l) => l.connection))).toEqual(new Set([conn]));
    got.forEach((l) => l.release());
    const warm = await pool.acquire(key('u1'), {}, 'fp');
    expect(warm.connection).toBe(conn);
    expect(connects).toHaveLength(1);
    const s = pool.stats();
    expect(s.counters).toMatchObject({ connects: 1, joins: 299, hits: 1 });
    warm.release();
    await pool.close();
  });

  it('gives every joined waiter the same error and does not cache the failure', async () => {
    const { pool, connects } = makePool();
    const a = pool.acquire(key('u1'), {}, 'fp');
    const b = pool.acquire(key('u1'), {}, 'fp');
    const err = new SwitchboardError('connect_failed', 'boom');
    connects[0]!.d.reject(err);
    await expect(a).rejects.toBe(err);
    await expect(b).rejects.toBe(err);
    const c = pool.acquire(key('u1'), {}, 'fp');
    expect(connects).toHaveLength(2);
    connects[1]!.d.resolve(new FakeConn());
    (await c).release();
    await pool.close();
  });

  it("a waiter's abort never cuts the shared connect; with every waiter gone it still completes and is kept", async () => {
    const { pool, connects } = makePool();
    const ac1 = new AbortController();
    const a = pool.acquire(key('u1'), {}, 'fp', { signal: ac1.signal });
    const b = pool.acquire(key('u1'), {}, 'fp');
    ac1.abort();
    await expect(a).rejects.toMatchObject({ code: 'aborted' });
    expect(connects[0]!.signal.aborted).toBe(false);
    connects[0]!.d.resolve(new FakeConn());
    (await b).release();

    const ac2 = new AbortController();
    const c = pool.acquire(key('u2'), {}, 'fp', { signal: ac2.signal });
    ac2.abort();
    await expect(c).rejects.toMatchObject({ code: 'aborted' });
    // Cutting the handshake would orphan the server's session: the connect goes on, and its connection is
    // kept for the next call instead of being thrown away.
    expect(connects[1]!.signal.aborted).toBe(false);
    const late = new FakeConn();
    connects[1]!.d.resolve(late);
    await new Promise(setImmediate);
    expect(late.closeCalls).toBe(0);
    const again = await pool.acquire(key('u2'), {}, 'fp');
    expect(again.connection).toBe(late);
    expect(connects).toHaveLength(2);
    again.release();
    await pool.close();
  });

  it('a connect cancelled by an eviction completes its handshake, is then closed, and the eviction waits for that', async () => {
    const { pool, connects, events } = makePool();
    const a = pool.acquire(key('u1'), {}, 'fp');
    let evicted = false;
    const eviction = pool.evictOwner('u1', 'disconnected').then(() => (evicted = true));
    await expect(a).rejects.toMatchObject({ code: 'connection_closed' });
    expect(connects[0]!.signal.aborted).toBe(false);
    expect(pool.stats()).toMatchObject({ pending: 0, abandoned: 1 });
    await new Promise(setImmediate);
    expect(evicted).toBe(false);
    const late = new FakeConn();
    connects[0]!.d.resolve(late);
    await eviction;
    expect(late.closeCalls).toBe(1);
    expect(pool.stats()).toMatchObject({ connections: 0, pending: 0, owners: 0, abandoned: 0 });
    expect(events).toEqual([]); // never announced, never handed out
    // A new acquire after the eviction gets a new connect, never the cancelled one.
    const b = pool.acquire(key('u1'), {}, 'fp');
    expect(connects).toHaveLength(2);
    connects[1]!.d.resolve(new FakeConn());
    expect((await b).connection).not.toBe(late);
    await pool.close();
  });

  it('an abandoned connect that hangs is aborted after abandonGraceMs, so close() is bounded', async () => {
    jest.useFakeTimers();
    const { pool, connects } = makePool({ abandonGraceMs: 5_000 });
    const a = pool.acquire(key('u1'), {}, 'fp');
    const closing = pool.close();
    await expect(a).rejects.toMatchObject({ code: 'connection_closed' });
    jest.advanceTimersByTime(4_999);
    expect(connects[0]!.signal.aborted).toBe(false);
    jest.advanceTimersByTime(1);
    expect(connects[0]!.signal.aborted).toBe(true);
    connects[0]!.d.reject(connects[0]!.signal.reason); // what a connect does when its signal aborts
    await closing;
    expect(jest.getTimerCount()).toBe(0);
  });

  it('evicts idle connections after idleTimeoutMs of no use, never under an in-flight call', async () => {
    jest.useFakeTimers();
    const { pool, connects, events } = makePool({ idleTimeoutMs: 1000 });
    const p = pool.acquire(key('u1'), {}, 'fp');
    const conn = new FakeConn();
    connects[0]!.d.resolve(conn);
    const lease = await p;
    jest.advanceTimersByTime(5000); // in flight: nothing happens
    expect(conn.closeCalls).toBe(0);
    lease.release();
    jest.advanceTimersByTime(600);
    (await pool.acquire(key('u1'), {}, 'fp')).release(); // use restarts the idle clock
    jest.advanceTimersByTime(600);
    expect(conn.closeCalls).toBe(0);
    jest.advanceTimersByTime(500);
    await Promise.resolve();
    expect(conn.closeCalls).toBe(1);
    expect(events).toEqual(['connect u1/s', 'evict u1/s idle', 'disconnect u1/s idle']);
    expect(pool.stats().counters.evictions.idle).toBe(1);
    await pool.close();
  });

  it('replaces a stale connection once its in-flight calls end', async () => {
    const { pool, connects } = makePool();
    const p = pool.acquire(key('u1'), {}, 'v1');
    const old = new FakeConn();
    connects[0]!.d.resolve(old);
    const inflight = await p;
    const q = pool.acquire(key('u1'), {}, 'v2');
    expect(connects).toHaveLength(2);
    const fresh = new FakeConn();
    connects[1]!.d.resolve(fresh);
    const lease2 = await q;
    expect(lease2.connection).toBe(fresh);
    expect(old.closeCalls).toBe(0);
    inflight.release();
    await new Promise(setImmediate);
    expect(old.closeCalls).toBe(1);
    lease2.release();
    expect(pool.stats().counters.evictions.stale).toBe(1);
    await pool.close();
  });

  it('forceNew is never joined and replaces the old connection after its calls', async () => {
    const { pool, connects, events } = makePool();
    const p = pool.acquire(key('u1'), {}, 'fp');
    const old = new FakeConn();
    connects[0]!.d.resolve(old);
    const l1 = await p;
    const forced = pool.acquire(key('u1'), {}, 'fp', { forceNew: true });
    const joined = pool.acquire(key('u1'), {}, 'fp', { forceNew: true });
    expect(connects).toHaveLength(3);
    connects[1]!.d.resolve(new FakeConn());
    connects[2]!.d.resolve(new FakeConn());
    const [l2, l3] = await Promise.all([forced, joined]);
    expect(l2.connection).not.toBe(old);
    expect(l3.connection).not.toBe(l2.connection);
    expect(old.closeCalls).toBe(0);
    l1.release();
    l2.release();
    l3.release();
    await new Promise(setImmediate);
    expect(old.closeCalls).toBe(1);
    expect(events.filter((e) => e.startsWith('evict'))).toContain('evict u1/s replaced');
    await pool.close();
  });

  it('enforces limits by evicting the least recently used idle connection, else a typed error', async () => {
    const { pool, connects } = makePool({ maxPerOwner: 2, maxTotal: 3, limitNames: { perOwner: 'maxConnectionsPerUser', total: 'maxUserConnections' } });
    const open = async (pk: PoolKey) => {
      const p = pool.acquire(pk, {}, 'fp');
      connects.at(-1)!.d.resolve(new FakeConn());
      return p;
    };
    const a = await open(key('u1', 'a'));
    const b = await open(key('u1', 'b'));
    await expect(pool.acquire(key('u1', 'c'), {}, 'fp')).rejects.toMatchObject({ code: 'limit_reached', message: expect.stringContaining('maxConnectionsPerUser (2)') });
    b.release();
    a.release(); // a is now the most recently used; b goes first
    const c = await open(key('u1', 'c'));
    expect(pool.peek('u1/b')).toBeUndefined();
    expect(pool.peek('u1/a')).toBeDefined();
    const d = await open(key('u2', 'a'));
    // total 3 reached (u1/a idle, u1/c, u2/a): u1/a is the only idle one.
    const e = await open(key('u3', 'a'));
    expect(pool.peek('u1/a')).toBeUndefined();
    await expect(pool.acquire(key('u4', 'a'), {}, 'fp')).rejects.toMatchObject({ code: 'limit_reached', message: expect.stringContaining('maxUserConnections (3)') });
    for (const l of [c, d, e]) l.release();
    expect(pool.stats().counters.evictions.limit).toBe(2);
    await pool.close();
  });

  it('drops a connection that died on its own and reconnects on next use', async () => {
    const { pool, connects, events } = makePool();
    const p = pool.acquire(key('u1'), {}, 'fp');
    const conn = new FakeConn();
    connects[0]!.d.resolve(conn);
    (await p).release();
    conn.die(new SwitchboardError('connection_closed', 'gone'));
    expect(pool.stats().connections).toBe(0);
    expect(events.at(-1)).toBe('disconnect u1/s connection_closed');
    const q = pool.acquire(key('u1'), {}, 'fp');
    expect(connects).toHaveLength(2);
    connects[1]!.d.resolve(new FakeConn());
    (await q).release();
    await pool.close();
  });

  it('close() closes everything, waits for connects in flight and closes them, is idempotent and rejects later use', async () => {
    jest.useFakeTimers();
    const { pool, connects, events } = makePool();
    const p = pool.acquire(key('u1'), {}, 'fp');
    const conn = new FakeConn();
    connects[0]!.d.resolve(conn);
    (await p).release();
    const pending = pool.acquire(key('u2'), {}, 'fp');
    let closed = false;
    const closing = Promise.all([pool.close(), pool.close()]).then(() => (closed = true));
    await expect(pending).rejects.toMatchObject({ code: 'connection_closed' });
    await Promise.resolve();
    expect(closed).toBe(false); // the u2 connect is still in its handshake
    const late = new FakeConn();
    connects[1]!.d.resolve(late);
    await closing;
    expect(conn.closeCalls).toBe(1);
    expect(late.closeCalls).toBe(1);
    expect(events.filter((e) => e.startsWith('connect'))).toEqual(['connect u1/s']); // no connect event after close
    expect(jest.getTimerCount()).toBe(0);
    await expect(pool.acquire(key('u1'), {}, 'fp')).rejects.toMatchObject({ code: 'manager_closed' });
  });

  it('rejects bad options with a TypeError naming the option', () => {
    expect(() => makePool({ idleTimeoutMs: 0 })).toThrow(/idleTimeoutMs/);
    expect(() => makePool({ maxTotal: 1.5 })).toThrow(/maxTotal/);
  });
});
