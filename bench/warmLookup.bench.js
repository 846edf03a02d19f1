/**
 * Benchmark 1: the cost of a warm lookup does not grow with the number of tracked user connections.
 *
 * One user's warm `MCPManager.getConnection` (and, one layer down, `UserConnectionManager.acquire` + `release`)
 * with 10 user connections in the pool versus with 100,000. Transports are fakes (no I/O), so the figure is
 * the pool's own cost. The two pools live in one process and are measured in alternation.
 * @module
 */
import { MCPManager, UserConnectionManager, parseServersConfig } from '../dist/index.js';
import { FakeConnection, FakeConnectionFactory } from './lib/fakes.js';
import { fmt, interleave, timeSequential } from './lib/measure.js';
import { row, runIfMain } from './lib/harness.js';

const SMALL = 10;
const LARGE = 100_000;
// Kept modest: a warm lookup repeated on one key in a large pool gets slower with every repetition (see README).
const OPS = 10_000;
const REPS = 5;

// A user placeholder in a header makes the server user-scoped (one connection per user). Never contacted.
const SERVERS = { svc: { url: 'http://127.0.0.1:9/mcp', headers: { 'X-User-Id': '{{user.id}}' } } };

/** Fills `n` user connections through `open(i)`, `batch` at a time. */
async function populate(n, open, batch = 1000) {
  for (let i = 0; i < n; i += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, n - i) }, (_, j) => open(i + j)));
  }
}

async function managerWith(n) {
  const factory = new FakeConnectionFactory();
  const manager = new MCPManager({ servers: SERVERS, connectionFactory: factory });
  await populate(n, (i) => manager.getConnection({ user: { id: `user-${i}` }, serverName: 'svc' }));
  const stats = manager.stats();
  if (stats.userConnections !== n) throw new Error(`expected ${n} user connections, got ${stats.userConnections}`);
  return { manager, factory };
}

async function userPoolWith(n) {
  const config = parseServersConfig(SERVERS).svc;
  const users = new UserConnectionManager({
    connect: async (req) => new FakeConnection(req.serverName),
    getServerConfig: () => config,
  });
  await populate(n, async (i) => (await users.acquire({ id: `user-${i}` }, 'svc')).release());
  if (users.stats().userConnections !== n) throw new Error(`expected ${n} user connections`);
  return users;
}

/**
 * Runs benchmark 1 and returns its rows.
 *
 * @param {(line: string) => void} log
 * @returns {Promise<import('./lib/harness.js').ResultRow[]>}
 * @example
 * ```js
 * const rows = await run(console.log);
 * ```
 */
async function run(log) {
  log(`populating ${fmt(SMALL)} and ${fmt(LARGE)} user connections (fake transports)…`);
  const small = await managerWith(SMALL);
  const large = await managerWith(LARGE);
  const smallPool = await userPoolWith(SMALL);
  const largePool = await userPoolWith(LARGE);
  try {
    // A user in the middle of the large pool, and one of the small; the same args object every call.
    const smallArgs = { user: { id: 'user-3' }, serverName: 'svc' };
    const largeArgs = { user: { id: `user-${LARGE / 2}` }, serverName: 'svc' };
    const mgr = await interleave(
      {
        small: () => timeSequential(() => small.manager.getConnection(smallArgs), OPS),
        large: () => timeSequential(() => large.manager.getConnection(largeArgs), OPS),
      },
      { reps: REPS, warmup: 1 },
    );
    log(`MCPManager.getConnection: ${fmt(mgr.medians.large)} ns/op with ${fmt(LARGE)} vs ${fmt(mgr.medians.small)} ns/op with ${fmt(SMALL)}`);
    log(`  per repetition of ${fmt(OPS)} ops, ${fmt(LARGE)} conns: ${mgr.samples.large.map(fmt).join(', ')} ns/op`);

    const acquireRelease = (pool, user) => async () => (await pool.acquire(user, 'svc')).release();
    const smallOp = acquireRelease(smallPool, { id: 'user-3' });
    const largeOp = acquireRelease(largePool, { id: `user-${LARGE / 2}` });
    const ucm = await interleave(
      { small: () => timeSequential(smallOp, OPS), large: () => timeSequential(largeOp, OPS) },
      { reps: REPS, warmup: 1 },
    );
    log(`UserConnectionManager.acquire+release: ${fmt(ucm.medians.large)} ns/op with ${fmt(LARGE)} vs ${fmt(ucm.medians.small)} ns/op with ${fmt(SMALL)}`);
    log(`  per repetition of ${fmt(OPS)} ops, ${fmt(LARGE)} conns: ${ucm.samples.large.map(fmt).join(', ')} ns/op`);
    if (small.factory.created !== SMALL || large.factory.created !== LARGE) throw new Error('a warm lookup opened a connection');

    const target = { of: 'ratio', op: '<=', value: 1.5 };
    return [
      row({
        benchmark: `warm getConnection, ${fmt(LARGE)} vs ${SMALL} user conns`,
        ours: mgr.medians.large,
        baseline: mgr.medians.small,
        unit: 'ns/op',
        baselineName: `same, ${SMALL} user conns`,
        target,
      }),
      row({
        benchmark: `warm acquire+release, ${fmt(LARGE)} vs ${SMALL} user conns`,
        ours: ucm.medians.large,
        baseline: ucm.medians.small,
        unit: 'ns/op',
        baselineName: `same, ${SMALL} user conns`,
        target,
      }),
    ];
  } finally {
    await Promise.all([small.manager.close(), large.manager.close(), smallPool.close(), largePool.close()]);
    await Promise.all([small.factory.close(), large.factory.close()]);
  }
}

/**
 * This benchmark, for `run.js` (which runs it in its own process) or for a direct run.
 *
 * @type {import('./lib/harness.js').Benchmark}
 * @example
 * ```sh
 * node bench/run.js warm-lookup                      # through the runner, with the table
 * node --expose-gc bench/warmLookup.bench.js     # alone
 * ```
 */
export const benchmark = {
  name: 'warm-lookup',
  title: `Warm getConnection / acquire cost: ${LARGE.toLocaleString('en-US')} vs ${SMALL} tracked user connections`,
  run,
};

runIfMain(import.meta.url, benchmark);
