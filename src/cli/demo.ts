/**
 * The demo: a fully embedded, offline, loopback-only run of the whole library. It starts a real OIDC provider,
 * an OBO-protected MCP server that verifies every token's audience and subject, a shared MCP server needing no
 * auth and `@modelcontextprotocol/server-everything` over stdio, then simulates many users making concurrent
 * tool calls through one {@link MCPManager} with a short idle timeout, and reports what happened.
 *
 * Needs the dev dependencies of the test kit (`oidc-provider`, `@modelcontextprotocol/server-everything`).
 * @module
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createBearerVerifier } from '../auth/bearerVerifier.js';
import { createOboTokenResolver } from '../auth/oboTokenResolver.js';
import { MCPManager } from '../MCPManager.js';
import { startTestIdp } from '../testing/testIdp.js';
import { startTestMcpServer } from '../testing/testMcpServer.js';
import type { UserContext } from '../types.js';

/**
 * Options of {@link runDemo}.
 *
 * @example
 * ```ts
 * const options: DemoOptions = { users: 20, calls: 3, rounds: 1, progress: 'none' };
 * const report = await runDemo(options);
 * ```
 */
export interface DemoOptions {
  /** Simulated users (default 200). */
  users?: number;
  /** Concurrent tool calls per user per round (default 5). */
  calls?: number;
  /**
   * Idle timeout of user connections in ms (default {@link DEFAULT_DEMO_IDLE_MS}): the demo waits past it between
   * cold rounds so every user connection is evicted.
   */
  idleMs?: number;
  /**
   * Cold rounds of calls; between them the demo waits past the idle timeout (default 2). A warm round follows,
   * each of its calls made the moment the same call of the last cold round is answered.
   */
  rounds?: number;
  /** Sequential calls for the overhead comparison against the raw SDK (default 300). */
  overheadCalls?: number;
  /** Progress output: a bar on a TTY, lines otherwise, nothing with `none`. */
  progress?: 'auto' | 'bar' | 'lines' | 'none';
  /** Where progress goes (default `process.stderr`). */
  progressStream?: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean };
  /**
   * Whether to add `@modelcontextprotocol/server-everything` over stdio (default: when it is installed). Without
   * it, its share of the calls goes to the shared server.
   */
  everything?: boolean;
}

/**
 * Default idle timeout of the demo's user connections, ms: short, so that the wait between cold rounds is short.
 *
 * @example
 * ```ts
 * const idleMs = flags['idle-ms'] === undefined ? DEFAULT_DEMO_IDLE_MS : Number(flags['idle-ms']);
 * ```
 */
export const DEFAULT_DEMO_IDLE_MS = 1000;

/**
 * What {@link runDemo} found.
 *
 * @example
 * ```ts
 * const report: DemoReport = await runDemo({ users: 20, progress: 'none' });
 * console.log(`p95 ${report.latencyMs.p95} ms; ${report.obo.exchanges} exchanges for ${report.obo.lookups} lookups`);
 * if (report.errors || report.mismatches) console.error(report.sampleErrors);
 * ```
 */
export interface DemoReport {
  /** The scenario, with the servers used and the CPU cores the whole demo (servers and IdP included) ran on. */
  scenario: { users: number; callsPerUser: number; rounds: number; idleMs: number; totalCalls: number; servers: string[]; cpus: number };
  /**
   * Connections opened (`userOpened` per round in `userOpenedByRound`, the warm round last), concurrent connects
   * joined, evicted (by reason), open at the end.
   */
  connections: { userOpened: number; appOpened: number; userOpenedByRound: number[]; joined: number; evicted: Record<string, number>; openAtEnd: number };
  /** Wall time of each round of calls, ms, the warm round last (it overlaps the last cold round: see {@link runDemo}). */
  roundMs: number[];
  /** OBO lookups answered by an exchange at the IdP versus from the cache. */
  obo: { exchanges: number; cacheHits: number; lookups: number };
  /** Calls that failed (expected 0). */
  errors: number;
  /** Calls whose server-verified subject was not the caller (expected 0). */
  mismatches: number;
  /** Tool call latency through the manager over every call, ms (cold rounds include connects and exchanges). */
  latencyMs: { p50: number; p95: number; p99: number; max: number };
  /**
   * Latency of the warm round: every connection open, every token cached. Each call of the last cold round is made
   * again the moment it is answered, while other calls are still running, so on a few cores this is mostly time
   * spent queued behind the others.
   */
  warmLatencyMs: { p50: number; p95: number; p99: number; max: number };
  /** Mean sequential call time through the manager versus a raw SDK client on the same server. */
  overhead: { calls: number; managerMeanMs: number; rawSdkMeanMs: number; ratio: number };
  /** Heap used at the end (after GC when `--expose-gc`). */
  heapUsedMB: number;
  /** Wall time of the whole run. */
  durationMs: number;
  /** First few error messages, for diagnosis. */
  sampleErrors: string[];
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const round2 = (n: number) => Math.round(n * 100) / 100;
const textOf = (r: CallToolResult) => (r.content?.[0] as { text?: string } | undefined)?.text;

function progressReporter(total: number, opts: DemoOptions) {
  const stream = opts.progressStream ?? process.stderr;
  const mode = opts.progress === 'auto' || opts.progress === undefined ? (stream.isTTY ? 'bar' : 'lines') : opts.progress;
  let done = 0;
  let lastTenth = -1;
  let phase = '';
  let lastDraw = 0;
  let drawn = false;
  const draw = (force = false) => {
    const now = performance.now();
    if (!force && now - lastDraw < 80) return;
    lastDraw = now;
    const width = 30;
    const filled = Math.round((done / total) * width);
    stream.write(`\r\x1b[K[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} calls  ${phase}`);
    drawn = true;
  };
  return {
    tick() {
      done++;
      if (mode === 'bar') draw(done === total);
      else if (mode === 'lines') {
        const tenth = Math.floor((done / total) * 10);
        if (tenth !== lastTenth) {
          lastTenth = tenth;
          stream.write(`progress: ${done}/${total} calls\n`);
        }
      }
    },
    /** What is happening now: shown beside the bar, or as a line. */
    phase(text: string) {
      phase = text;
      if (mode === 'bar') draw(true);
      else if (mode === 'lines') stream.write(`${text}\n`);
    },
    /** Clears the bar before the report is printed. */
    end() {
      if (mode === 'bar' && drawn) stream.write('\r\x1b[K');
    },
  };
}

function serverEverythingEntry(wanted: boolean | undefined): string | undefined {
  if (wanted === false) return undefined;
  try {
    const require = createRequire(import.meta.url);
    return join(dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')), 'dist', 'index.js');
  } catch {
    return undefined;
  }
}

/**
 * Runs the demo scenario and returns its report. Everything listens on 127.0.0.1 and is closed before it returns.
 *
 * @example
 * ```ts
 * const report = await runDemo({ users: 50, calls: 4 });
 * if (report.errors || report.mismatches) process.exitCode = 1;
 * ```
 */
export async function runDemo(opts: DemoOptions = {}): Promise<DemoReport> {
  const users = opts.users ?? 200;
  const calls = opts.calls ?? 5;
  const idleMs = opts.idleMs ?? DEFAULT_DEMO_IDLE_MS;
  const rounds = opts.rounds ?? 2;
  const overheadCalls = opts.overheadCalls ?? 300;
  for (const [name, v] of [['users', users], ['calls', calls], ['idleMs', idleMs], ['rounds', rounds], ['overheadCalls', overheadCalls]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new TypeError(`${name} must be a positive integer, got ${v}`);
  }
  const started = performance.now();
  const everything = serverEverythingEntry(opts.everything);
  const totalCalls = users * calls * (rounds + 1);
  const progress = progressReporter(totalCalls, opts);

  const idp = await startTestIdp({ exchangedTokenTtlSec: 600 });
  const verifier = createBearerVerifier({ issuer: idp.issuer, audience: idp.downstreamAudience, allowInsecureRequests: true });
  const oboServer = await startTestMcpServer({
    transport: 'streamable-http',
    verifyBearer: async (authorization) => {
      const b = await verifier.verify(authorization);
      return { subject: `${b.tenantId ?? '-'}/${b.subject}` };
    },
  });
  const sharedServer = await startTestMcpServer({ transport: 'streamable-http' });
  let cacheHits = 0;
  let lookups = 0;
  const manager = new MCPManager({
    servers: {
      directory: { url: oboServer.url, obo: { scopes: `${idp.downstreamAudience}/.default` }, title: 'OBO-protected directory' },
      shared: { url: sharedServer.url, title: 'Shared, no identity' },
      ...(everything ? { everything: { command: process.execPath, args: [everything, 'stdio'], stderr: 'ignore' as const } } : {}),
    },
    oboTokenResolver: createOboTokenResolver({
      issuer: idp.issuer,
      clientId: idp.client.clientId,
      clientSecret: idp.client.clientSecret,
      allowInsecureRequests: true,
      onExchange: (e) => {
        lookups++;
        if (e.cacheHit) cacheHits++;
      },
    }),
    idleTimeoutMs: idleMs,
  });
  const opened = { user: 0, app: 0 };
  const userOpenedByRound: number[] = [];
  const roundMs: number[] = [];
  const evicted: Record<string, number> = {};
  // (user, server) pairs whose warm calls have started: a connect for one of them is a warm-round reconnect (expected none).
  const warmUsers = new Set<string>();
  let warmOpened = 0;
  manager.on('connect', (e) => {
    opened[e.scope]++;
    if (e.scope === 'user' && warmUsers.has(`${e.userId}\0${e.serverName}`)) warmOpened++;
  });
  manager.on('evict', (e) => void (evicted[e.reason] = (evicted[e.reason] ?? 0) + 1));

  const latencies: number[] = [];
  const warmLatencies: number[] = [];
  const sampleErrors: string[] = [];
  let errors = 0;
  let mismatches = 0;
  let overhead = { calls: overheadCalls, managerMeanMs: 0, rawSdkMeanMs: 0, ratio: 0 };
  let raw: Client | undefined;
  let statsAtEnd: ReturnType<MCPManager['stats']>;
  let exchanges: number;
  try {
    const people: UserContext[] = await Promise.all(
      Array.from({ length: users }, async (_, i) => {
        const tenantId = i % 3 === 0 ? 'fabrikam' : 'contoso';
        const id = `user-${String(i).padStart(4, '0')}`;
        return { id, tenantId, upstreamToken: await idp.mintAccessToken({ sub: id, tenantId }) };
      }),
    );
    const serverFor = (n: number) => (n % 3 === 0 ? 'directory' : n % 3 === 1 ? 'shared' : everything ? 'everything' : 'shared');
    const oneCall = async (user: UserContext, n: number, into: number[] = latencies) => {
      const kind = serverFor(n);
      const t0 = performance.now();
      try {
        if (kind === 'directory') {
          const r = await manager.callTool({ user, serverName: 'directory', toolName: 'whoami' });
          if (textOf(r) !== `${user.tenantId}/${user.id}`) mismatches++;
        } else if (kind === 'shared') {
          const r = await manager.callTool({ user, serverName: 'shared', toolName: 'echo', arguments: { text: user.id } });
          if (textOf(r) !== user.id) mismatches++;
        } else {
          const r = await manager.callTool({ user, serverName: 'everything', toolName: 'echo', arguments: { message: user.id } });
          if (!textOf(r)?.includes(user.id)) mismatches++;
        }
        into.push(performance.now() - t0);
      } catch (err) {
        errors++;
        if (sampleErrors.length < 5) sampleErrors.push(`${kind}: ${(err as Error).message}`);
      } finally {
        progress.tick();
      }
    };
    const evictedIdle = () => evicted.idle ?? 0;
    const callsOf = (user: UserContext, round: number, into?: number[]) => Promise.all(Array.from({ length: calls }, (_, n) => oneCall(user, n + round, into)));
    for (let round = 0; round < rounds; round++) {
      if (round > 0) {
        // Past the idle timeout: every user connection is evicted, and reopened on the next round.
        progress.phase(`waiting ${((idleMs + 150) / 1000).toFixed(1)} s for the idle timeout to close user connections (${evictedIdle()} closed so far)`);
        await delay(idleMs + 150);
      }
      const last = round === rounds - 1;
      progress.phase(
        `round ${round + 1} of ${rounds} (cold: connects and token exchanges)${round > 0 ? `; ${evictedIdle()} idle connections closed before it` : ''}${last ? '; then the warm round' : ''}`,
      );
      const userBefore = opened.user;
      const t0 = performance.now();
      if (!last) {
        await Promise.all(people.map((user) => callsOf(user, round)));
        roundMs.push(Math.round(performance.now() - t0));
        userOpenedByRound.push(opened.user - userBefore);
        continue;
      }
      // The last cold round, and the warm round chained to it call by call: each call is made again, to the same
      // server, the moment it is answered, so the connection it used never sits idle in between. (Started all
      // together after the round, a call answered early would have waited for the slowest one: on a busy machine
      // longer than the idle timeout, and its "warm" repeat would have reconnected.)
      let coldEnd = 0;
      let warmStart = Infinity;
      await Promise.all(
        people.flatMap((user) =>
          Array.from({ length: calls }, async (_, n) => {
            await oneCall(user, n + round);
            const now = performance.now();
            coldEnd = Math.max(coldEnd, now);
            warmStart = Math.min(warmStart, now);
            warmUsers.add(`${user.id}\0${serverFor(n + round)}`);
            await oneCall(user, n + round, warmLatencies);
          }),
        ),
      );
      roundMs.push(Math.round(coldEnd - t0), Math.round(performance.now() - warmStart));
      userOpenedByRound.push(opened.user - userBefore - warmOpened, warmOpened);
    }

    // Overhead: the same sequential calls on the shared server, through the manager and through a raw SDK client.
    raw = new Client({ name: 'raw-sdk-baseline', version: '1.0.0' });
    await raw.connect(new StreamableHTTPClientTransport(new URL(sharedServer.url)));
    const measure = async (fn: () => Promise<unknown>) => {
      for (let i = 0; i < 20; i++) await fn(); // warm-up
      const t0 = performance.now();
      for (let i = 0; i < overheadCalls; i++) await fn();
      return (performance.now() - t0) / overheadCalls;
    };
    progress.phase(`measuring the overhead: ${overheadCalls} sequential calls, raw SDK then mcp-switchboard`);
    const rawMean = await measure(() => raw!.callTool({ name: 'echo', arguments: { text: 'x' } }));
    const mgrMean = await measure(() => manager.callTool({ serverName: 'shared', toolName: 'echo', arguments: { text: 'x' } }));
    overhead = { calls: overheadCalls, managerMeanMs: round2(mgrMean), rawSdkMeanMs: round2(rawMean), ratio: round2(mgrMean / rawMean) };
  } finally {
    progress.end();
    await raw?.close().catch(() => {});
    statsAtEnd = manager.stats();
    await manager.close();
    await Promise.all([oboServer.close(), sharedServer.close()]);
    exchanges = idp.stats().exchanges;
    await idp.close();
  }
  (globalThis as { gc?: () => void }).gc?.();
  const summary = (xs: number[]) => {
    const sorted = [...xs].sort((a, b) => a - b);
    return { p50: round2(percentile(sorted, 50)), p95: round2(percentile(sorted, 95)), p99: round2(percentile(sorted, 99)), max: round2(sorted.at(-1) ?? 0) };
  };
  return {
    scenario: { users, callsPerUser: calls, rounds, idleMs, totalCalls, servers: ['directory', 'shared', ...(everything ? ['everything'] : [])], cpus: availableParallelism() },
    roundMs,
    connections: {
      userOpened: opened.user,
      appOpened: opened.app,
      userOpenedByRound,
      joined: statsAtEnd.userPool.joins + statsAtEnd.appPool.joins,
      evicted,
      openAtEnd: statsAtEnd.userConnections + statsAtEnd.appConnections,
    },
    obo: { exchanges, cacheHits, lookups },
    errors,
    mismatches,
    latencyMs: summary([...latencies, ...warmLatencies]),
    warmLatencyMs: summary(warmLatencies),
    overhead,
    heapUsedMB: round2(process.memoryUsage().heapUsed / 2 ** 20),
    durationMs: Math.round(performance.now() - started),
    sampleErrors,
  };
}

const fmt = (n: number) => n.toLocaleString('en-US');
const ms = (n: number) => `${fmt(n)} ms`;

/**
 * Renders a report for people: each figure with a short line saying what it is and what to expect, for a reader
 * who has never seen the code.
 *
 * @example
 * ```ts
 * process.stdout.write(formatDemoReport(await runDemo()));
 * ```
 */
export function formatDemoReport(r: DemoReport): string {
  const ok = r.errors === 0 && r.mismatches === 0;
  const { users, callsPerUser, rounds, idleMs, totalCalls, cpus } = r.scenario;
  const perRound = users * callsPerUser;
  const expectedUser = users * rounds;
  const warmOpened = r.connections.userOpenedByRound.at(-1) ?? 0;
  const evicted = Object.entries(r.connections.evicted);
  const row = (label: string, value: string, ...notes: string[]) => [`  ${label.padEnd(22)} ${value}`, ...notes.map((n) => `  ${''.padEnd(22)}   ${n}`)];
  const lat = (l: DemoReport['latencyMs']) => `p50 ${ms(l.p50)}, p95 ${ms(l.p95)}, p99 ${ms(l.p99)}, max ${ms(l.max)}`;
  const servers = [
    'directory (needs On-Behalf-Of: one connection per user, each with that user\'s exchanged token)',
    'shared (no identity: one connection for everyone)',
    ...(r.scenario.servers.includes('everything') ? ['everything (@modelcontextprotocol/server-everything over stdio: one process for everyone)'] : []),
  ];
  const lines = [
    '',
    'mcp-switchboard demo',
    `  ${fmt(users)} simulated users each start ${callsPerUser} tool calls at once, in ${rounds} cold round${rounds === 1 ? '' : 's'} and 1 warm round: ${fmt(totalCalls)} calls.`,
    `  Between cold rounds the demo waits past the idle timeout (${ms(idleMs)}), so every user connection is closed and reopened.`,
    '  The warm round makes each call of the last cold round again the moment it is answered: on the open connection, with the cached token.',
    `  Servers (all on 127.0.0.1, with a test identity provider): ${servers.join('; ')}.`,
    `  Everything (servers, identity provider, ${fmt(perRound)} concurrent calls per round) shares ${cpus} CPU core${cpus === 1 ? '' : 's'}.`,
    '',
    'Connections',
    ...row('user connections', `${fmt(r.connections.userOpened)} opened`, `one per user per cold round is ${fmt(expectedUser)}; ${warmOpened === 0 ? 'none' : fmt(warmOpened)} opened in the warm round (expected none)`),
    ...(warmOpened > 0
      ? [`  ${''.padEnd(22)}   the warm round had to reopen ${fmt(warmOpened)}: see "connections closed" for why they were closed`]
      : []),
    ...row('shared connections', `${fmt(r.connections.appOpened)} opened`, 'servers needing no identity: one connection serves every user'),
    ...row('connects joined', fmt(r.connections.joined), `calls that found their connection still being opened and waited for that connect, instead of opening another`),
    ...row('connections closed', evicted.length ? evicted.map(([k, v]) => `${fmt(v)} ${k}`).join(', ') : '0', '"idle": closed after the idle timeout with no call in flight'),
    ...row('open at the end', fmt(r.connections.openAtEnd), 'before the demo shut everything down'),
    '',
    'On-Behalf-Of (each user\'s token exchanged at the identity provider for one for the directory server)',
    ...row('token exchanges', fmt(r.obo.exchanges), `requests to the identity provider: one per user (${fmt(users)}) when the cache works`),
    ...row('answered from cache', `${fmt(r.obo.cacheHits)} of ${fmt(r.obo.lookups)} lookups`, 'token lookups that needed no request to the identity provider'),
    '',
    'Correctness',
    ...row('errors', fmt(r.errors), 'calls that failed (expected 0)'),
    ...row('cross-user answers', fmt(r.mismatches), 'answers the server verified for a different user than the caller (expected 0)'),
    '',
    'Time (ms from a call\'s start to its answer, as the caller sees it; p50 = half the calls were faster)',
    ...row('rounds', r.roundMs.map((t, i) => `${i === r.roundMs.length - 1 ? 'warm' : `cold ${i + 1}`} ${ms(t)}`).join(', '), 'wall time of each round of calls'),
    ...row('all calls', lat(r.latencyMs), 'cold rounds include opening connections and exchanging tokens'),
    ...row(
      'warm round',
      lat(r.warmLatencyMs),
      `${fmt(perRound)} calls, up to ${fmt(perRound)} at a time, share ${cpus} core${cpus === 1 ? '' : 's'} with the servers: most of this is waiting in line;`,
      'it shows how a burst queues, not what one call costs (that is the next line)',
    ),
    ...row(
      'cost of one call',
      `${ms(r.overhead.managerMeanMs)} through mcp-switchboard, ${ms(r.overhead.rawSdkMeanMs)} with the bare MCP SDK (×${r.overhead.ratio})`,
      `mean of ${fmt(r.overhead.calls)} calls made one after another on the shared server: the library's own overhead`,
    ),
    '',
    ...row('heap used', `${r.heapUsedMB} MB`, 'memory held at the end'),
    ...row('wall time', `${(r.durationMs / 1000).toFixed(1)} s`, 'the whole demo, startup and shutdown included'),
    ...(r.sampleErrors.length ? ['', '  first errors:', ...r.sampleErrors.map((e) => `    ${e}`)] : []),
    '',
    ok ? 'OK: no errors, no cross-user answers.' : 'FAILED: see the errors above.',
    '',
  ];
  return lines.join('\n');
}
