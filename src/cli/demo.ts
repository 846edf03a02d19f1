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
  /** Idle timeout of user connections in ms (default 1000), short so evictions happen between rounds. */
  idleMs?: number;
  /** Rounds of calls; between rounds the demo waits past the idle timeout (default 2). A last, warm round follows at once. */
  rounds?: number;
  /** Sequential calls for the overhead comparison against the raw SDK (default 300). */
  overheadCalls?: number;
  /** Progress output: a bar on a TTY, lines otherwise, nothing with `none`. */
  progress?: 'auto' | 'bar' | 'lines' | 'none';
  /** Where progress goes (default `process.stderr`). */
  progressStream?: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean };
}

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
  /** The scenario. */
  scenario: { users: number; callsPerUser: number; rounds: number; idleMs: number; totalCalls: number };
  /** Connections opened, joined and evicted. */
  connections: { userOpened: number; appOpened: number; joined: number; evicted: Record<string, number>; openAtEnd: number };
  /** OBO lookups answered by an exchange at the IdP versus from the cache. */
  obo: { exchanges: number; cacheHits: number; lookups: number };
  /** Calls that failed (expected 0). */
  errors: number;
  /** Calls whose server-verified subject was not the caller (expected 0). */
  mismatches: number;
  /** Tool call latency through the manager over every call, ms (cold rounds include connects and exchanges). */
  latencyMs: { p50: number; p95: number; p99: number; max: number };
  /** Latency of the last round, run at once after the previous one: every connection warm, every token cached. */
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
  return {
    tick() {
      done++;
      if (mode === 'bar') {
        if (done % 25 !== 0 && done !== total) return;
        const width = 30;
        const filled = Math.round((done / total) * width);
        stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} calls`);
        if (done === total) stream.write('\n');
      } else if (mode === 'lines') {
        const tenth = Math.floor((done / total) * 10);
        if (tenth !== lastTenth) {
          lastTenth = tenth;
          stream.write(`progress: ${done}/${total} calls\n`);
        }
      }
    },
    note(line: string) {
      if (mode !== 'none') stream.write(`${mode === 'bar' ? '\n' : ''}${line}\n`);
    },
  };
}

function serverEverythingEntry(): string | undefined {
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
  const idleMs = opts.idleMs ?? 1000;
  const rounds = opts.rounds ?? 2;
  const overheadCalls = opts.overheadCalls ?? 300;
  for (const [name, v] of [['users', users], ['calls', calls], ['idleMs', idleMs], ['rounds', rounds], ['overheadCalls', overheadCalls]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new TypeError(`${name} must be a positive integer, got ${v}`);
  }
  const started = performance.now();
  const everything = serverEverythingEntry();
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
  const evicted: Record<string, number> = {};
  manager.on('connect', (e) => void opened[e.scope]++);
  manager.on('evict', (e) => void (evicted[e.reason] = (evicted[e.reason] ?? 0) + 1));

  const latencies: number[] = [];
  let warmFrom = 0;
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
    const oneCall = async (user: UserContext, n: number) => {
      const kind = n % 3 === 0 ? 'directory' : n % 3 === 1 ? 'shared' : everything ? 'everything' : 'shared';
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
        latencies.push(performance.now() - t0);
      } catch (err) {
        errors++;
        if (sampleErrors.length < 5) sampleErrors.push(`${kind}: ${(err as Error).message}`);
      } finally {
        progress.tick();
      }
    };
    for (let round = 0; round < rounds; round++) {
      if (round > 0) {
        // Past the idle timeout: every user connection is evicted, and reopened on the next round.
        await delay(idleMs + 150);
        progress.note(`round ${round + 1}: ${JSON.stringify(evicted)} evicted so far`);
      }
      await Promise.all(people.flatMap((user) => Array.from({ length: calls }, (_, n) => oneCall(user, n + round))));
    }
    // The warm round: same calls again at once, on open connections with cached tokens.
    warmFrom = latencies.length;
    await Promise.all(people.flatMap((user) => Array.from({ length: calls }, (_, n) => oneCall(user, n + rounds))));

    // Overhead: the same sequential calls on the shared server, through the manager and through a raw SDK client.
    raw = new Client({ name: 'raw-sdk-baseline', version: '1.0.0' });
    await raw.connect(new StreamableHTTPClientTransport(new URL(sharedServer.url)));
    const measure = async (fn: () => Promise<unknown>) => {
      for (let i = 0; i < 20; i++) await fn(); // warm-up
      const t0 = performance.now();
      for (let i = 0; i < overheadCalls; i++) await fn();
      return (performance.now() - t0) / overheadCalls;
    };
    const rawMean = await measure(() => raw!.callTool({ name: 'echo', arguments: { text: 'x' } }));
    const mgrMean = await measure(() => manager.callTool({ serverName: 'shared', toolName: 'echo', arguments: { text: 'x' } }));
    overhead = { calls: overheadCalls, managerMeanMs: round2(mgrMean), rawSdkMeanMs: round2(rawMean), ratio: round2(mgrMean / rawMean) };
  } finally {
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
    scenario: { users, callsPerUser: calls, rounds, idleMs, totalCalls },
    connections: {
      userOpened: opened.user,
      appOpened: opened.app,
      joined: statsAtEnd.userPool.joins + statsAtEnd.appPool.joins,
      evicted,
      openAtEnd: statsAtEnd.userConnections + statsAtEnd.appConnections,
    },
    obo: { exchanges, cacheHits, lookups },
    errors,
    mismatches,
    latencyMs: summary(latencies),
    warmLatencyMs: summary(latencies.slice(warmFrom)),
    overhead,
    heapUsedMB: round2(process.memoryUsage().heapUsed / 2 ** 20),
    durationMs: Math.round(performance.now() - started),
    sampleErrors,
  };
}

/**
 * Renders a report for people.
 *
 * @example
 * ```ts
 * process.stdout.write(formatDemoReport(await runDemo()));
 * ```
 */
export function formatDemoReport(r: DemoReport): string {
  const ok = r.errors === 0 && r.mismatches === 0;
  const lines = [
    '',
    `mcp-switchboard demo: ${r.scenario.users} users × ${r.scenario.callsPerUser} concurrent calls × (${r.scenario.rounds} cold rounds + 1 warm) = ${r.scenario.totalCalls} tool calls (idle timeout ${r.scenario.idleMs} ms)`,
    '',
    `  connections opened      user ${r.connections.userOpened}, app ${r.connections.appOpened}`,
    `  connects joined         ${r.connections.joined}`,
    `  connections evicted     ${Object.entries(r.connections.evicted).map(([k, v]) => `${k} ${v}`).join(', ') || '0'}`,
    `  OBO                     ${r.obo.exchanges} IdP exchanges, ${r.obo.cacheHits} cache hits (${r.obo.lookups} lookups)`,
    `  errors                  ${r.errors} (expected 0)`,
    `  cross-user mismatches   ${r.mismatches} (expected 0)`,
    `  latency ms, all calls   p50 ${r.latencyMs.p50}, p95 ${r.latencyMs.p95}, p99 ${r.latencyMs.p99}, max ${r.latencyMs.max} (cold rounds include connects and exchanges)`,
    `  latency ms, warm round  p50 ${r.warmLatencyMs.p50}, p95 ${r.warmLatencyMs.p95}, p99 ${r.warmLatencyMs.p99}, max ${r.warmLatencyMs.max}`,
    `  overhead vs raw SDK     ${r.overhead.managerMeanMs} ms vs ${r.overhead.rawSdkMeanMs} ms per call (ratio ${r.overhead.ratio}, ${r.overhead.calls} sequential calls)`,
    `  heap used               ${r.heapUsedMB} MB`,
    `  wall time               ${(r.durationMs / 1000).toFixed(1)} s`,
    ...(r.sampleErrors.length ? ['', '  first errors:', ...r.sampleErrors.map((e) => `    ${e}`)] : []),
    '',
    ok ? 'OK: no errors, no mismatches.' : 'FAILED: see errors above.',
    '',
  ];
  return lines.join('\n');
}
