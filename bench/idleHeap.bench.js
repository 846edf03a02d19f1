/**
 * Benchmark 3: heap held per idle, connected user connection, versus a raw SDK `Client` over a
 * `StreamableHTTPClientTransport`.
 *
 * N users each get one connected connection (initialize done, event stream open) to a streamable HTTP test
 * server running in a child process (so its heap is not counted). `heapUsed` is read after full GCs before and
 * after; the difference over N is the cost of one connection. Manager and raw rounds alternate; medians reported.
 * @module
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { MCPManager } from '../dist/index.js';
import { fmt, median, settledHeapUsed } from './lib/measure.js';
import { row, runIfMain } from './lib/harness.js';
import { startServerProcess } from './lib/serverProcess.js';

const N = 300;
const ROUNDS = 3;
const OPEN_CONCURRENCY = 25;
const SETTLE_LIMIT_MS = 60_000;

/** Runs `fn(i)` for i < n, `limit` at a time. */
async function forEachLimited(n, limit, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, n) }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

/** Waits (bounded) until the server's counters satisfy `ok`: event streams opened, sessions closed. */
async function serverSettled(srv, ok, what) {
  const deadline = Date.now() + SETTLE_LIMIT_MS;
  for (;;) {
    const s = await srv.stats();
    if (ok(s)) return s;
    if (Date.now() > deadline) throw new Error(`server did not reach: ${what} (${JSON.stringify(s)})`);
    await nextTurn();
  }
}

/** Our side: one MCPManager, N users, one user-scoped server (a user placeholder in a header). */
async function openManager(url, n) {
  const manager = new MCPManager({ servers: { svc: { url, headers: { 'X-User-Id': '{{user.id}}' } } } });
  await forEachLimited(n, OPEN_CONCURRENCY, (i) => manager.getConnection({ user: { id: `user-${i}` }, serverName: 'svc' }));
  if (manager.stats().userConnections !== n) throw new Error(`expected ${n} user connections, got ${manager.stats().userConnections}`);
  return { close: () => manager.close() };
}

/** The baseline: N raw SDK clients, each with its own transport and the same per-user header. */
async function openRaw(url, n) {
  const clients = [];
  await forEachLimited(n, OPEN_CONCURRENCY, async (i) => {
    const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { 'X-User-Id': `user-${i}` } } });
    const client = new Client({ name: 'raw-sdk-baseline', version: '1.0.0' });
    await client.connect(transport);
    clients.push({ client, transport });
  });
  return {
    close: () =>
      Promise.all(
        clients.map(async ({ client, transport }) => {
          await transport.terminateSession().catch(() => {});
          await client.close();
        }),
      ),
  };
}

/** One measured round: bytes of heap per connection for `open`. */
async function measureRound(srv, open, n) {
  const before = await srv.stats();
  const heap0 = await settledHeapUsed();
  const handle = await open(srv.url, n);
  // Steady state: every connection's event stream (GET) has reached the server.
  await serverSettled(srv, (s) => s.gets >= before.gets + n && s.liveSessions === before.liveSessions + n, `${n} more event streams`);
  const heap1 = await settledHeapUsed();
  await handle.close();
  await serverSettled(srv, (s) => s.liveSessions === before.liveSessions, 'sessions closed');
  return (heap1 - heap0) / n;
}

/**
 * Runs benchmark 3 and returns its rows.
 *
 * @param {(line: string) => void} log
 * @returns {Promise<import('./lib/harness.js').ResultRow[]>}
 * @example
 * ```js
 * const rows = await run(console.log);
 * ```
 */
async function run(log) {
  const srv = await startServerProcess();
  try {
    // Warm-up: load and compile both paths before anything is counted.
    await measureRound(srv, openManager, 20);
    await measureRound(srv, openRaw, 20);
    const ours = [];
    const raw = [];
    for (let r = 0; r < ROUNDS; r++) {
      // Alternate which side goes first.
      if (r % 2 === 0) {
        ours.push(await measureRound(srv, openManager, N));
        raw.push(await measureRound(srv, openRaw, N));
      } else {
        raw.push(await measureRound(srv, openRaw, N));
        ours.push(await measureRound(srv, openManager, N));
      }
      log(`round ${r + 1}: manager ${fmt(ours.at(-1))} B/conn, raw SDK ${fmt(raw.at(-1))} B/conn (${N} idle connections each)`);
    }
    const s = await srv.stats();
    log(`server: ${s.sessionsOpened} sessions opened, ${s.sessionsClosed} closed by the client (DELETE), ${s.liveSessions} still open`);
    return [
      row({
        benchmark: `heap per idle user connection (${N} conns)`,
        ours: median(ours),
        baseline: median(raw),
        unit: 'bytes/conn',
        baselineName: 'raw SDK Client + StreamableHTTPClientTransport',
        target: { of: 'ratio', op: '<=', value: 1.2 },
      }),
    ];
  } finally {
    await srv.close();
  }
}

/**
 * This benchmark, for `run.js` (which runs it in its own process) or for a direct run.
 *
 * @type {import('./lib/harness.js').Benchmark}
 * @example
 * ```sh
 * node bench/run.js idle-heap                      # through the runner, with the table
 * node --expose-gc bench/idleHeap.bench.js     # alone
 * ```
 */
export const benchmark = {
  name: 'idle-heap',
  title: `Heap per idle user connection (${N}) vs raw SDK Client + StreamableHTTPClientTransport`,
  run,
};

runIfMain(import.meta.url, benchmark);
