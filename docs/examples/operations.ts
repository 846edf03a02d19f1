/**
 * Running a manager in production: limits, a proxy and an SSRF guard through a shared HttpClient, events
 * turned into metrics, process-wide diagnostics_channel subscribers, periodic stats, and a graceful shutdown.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { performance } from 'node:perf_hooks';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import {
  DIAGNOSTICS_CHANNELS,
  HttpClient,
  MCPConnectionFactory,
  MCPManager,
  SwitchboardError,
  type Logger,
  type MCPManagerOptions,
  type OboExchangeEvent,
  type OboTokenResolver,
  type ToolCallContext,
} from 'mcp-switchboard';

/** Whatever metrics library you use (prom-client, OpenTelemetry, StatsD…). */
export interface Metrics {
  increment(name: string, labels?: Record<string, string>): void;
  observe(name: string, value: number, labels?: Record<string, string>): void;
  gauge(name: string, value: number): void;
}

export function createProductionManager(servers: Record<string, unknown>, oboTokenResolver: OboTokenResolver, logger: Logger) {
  // One HttpClient per manager: keep-alive sockets shared by every connection, proxy from HTTPS_PROXY /
  // NO_PROXY, and the SSRF guard for every server, not only for user-written (`source: 'user'`) configs.
  const httpClient = new HttpClient({
    proxy: 'env',
    ssrf: { blockPrivate: true, allowHosts: ['*.mcp.internal.example.com'] },
    connectTimeoutMs: 5_000,
  });
  const connectionFactory = new MCPConnectionFactory({ httpClient, reconnect: { maxAttempts: 3 }, logger });
  const manager = new MCPManager({
    servers,
    oboTokenResolver,
    connectionFactory,
    idleTimeoutMs: 10 * 60_000, // per (user, server) connection
    maxConnectionsPerUser: 10, // the user's least recently used idle connection makes room
    maxUserConnections: 5_000, // across users; least recently used idle connection first
    circuitBreaker: { failureThreshold: 5, maxBackoffMs: 30_000 },
    logger,
  });

  let closing: Promise<void> | undefined;
  // Order matters: connections first (their session DELETEs still need the sockets), then the sockets.
  const shutdown = () =>
    (closing ??= (async () => {
      await manager.close();
      await connectionFactory.close();
      await httpClient.close();
    })());
  return { manager, shutdown };
}

/** The manager's events as metrics. Returns a function that removes the listeners. */
export function instrument(manager: MCPManager, metrics: Metrics): () => void {
  const onConnect = (e: { serverName: string; scope: string; durationMs: number }) =>
    metrics.observe('mcp_connect_seconds', e.durationMs / 1000, { server: e.serverName, scope: e.scope });
  const onEvict = (e: { serverName: string; reason: string }) => metrics.increment('mcp_evictions_total', { server: e.serverName, reason: e.reason });
  const onObo = (e: OboExchangeEvent) => {
    const outcome = !e.ok ? (e.reason ?? 'error') : e.cacheHit ? 'cache_hit' : 'exchanged';
    metrics.increment('mcp_obo_lookups_total', { server: e.serverName, outcome });
    if (e.ok && !e.cacheHit) metrics.observe('mcp_obo_exchange_seconds', e.durationMs / 1000, { server: e.serverName });
  };
  const onError = (e: { serverName?: string; error: Error }) =>
    metrics.increment('mcp_background_errors_total', { server: e.serverName ?? '', error: e.error.name });
  manager.on('connect', onConnect).on('evict', onEvict).on('oboExchange', onObo).on('error', onError);

  // Sizes: poll, do not count events (a gauge that drifts is worse than none).
  const timer = setInterval(() => {
    const s = manager.stats();
    metrics.gauge('mcp_users', s.users);
    metrics.gauge('mcp_user_connections', s.userConnections);
    metrics.gauge('mcp_app_connections', s.appConnections);
    metrics.gauge('mcp_pending_connects', s.pendingConnects);
  }, 15_000);
  timer.unref();

  return () => {
    clearInterval(timer);
    manager.off('connect', onConnect).off('evict', onEvict).off('oboExchange', onObo).off('error', onError);
  };
}

/**
 * Per-call metrics through the `wrapToolCall` extension point. It wraps the call itself: failures before it
 * (unknown server, OBO, connect, limits) reject `callTool` without reaching it, so count those at the call site.
 */
export class MeteredManager extends MCPManager {
  readonly #metrics: Metrics;

  constructor(opts: MCPManagerOptions, metrics: Metrics) {
    super(opts);
    this.#metrics = metrics;
  }

  protected override async wrapToolCall(ctx: ToolCallContext, next: () => Promise<CallToolResult>): Promise<CallToolResult> {
    const started = performance.now();
    let outcome = 'ok';
    try {
      const result = await next();
      if (result.isError) outcome = 'tool_error';
      return result;
    } catch (err) {
      outcome = err instanceof SwitchboardError ? err.code : 'error';
      throw err;
    } finally {
      const labels = { server: ctx.serverName, tool: ctx.toolName, scope: ctx.scope, outcome };
      this.#metrics.observe('mcp_tool_call_seconds', (performance.now() - started) / 1000, labels);
    }
  }
}

/** Every manager in the process, without a reference to any of them (e.g. from an APM agent). */
export function subscribeDiagnostics(onMessage: (channel: string, message: unknown) => void): () => void {
  const subscriptions = Object.values(DIAGNOSTICS_CHANNELS).map((name) => {
    const listener = (message: unknown) => onMessage(name, message);
    diagnosticsChannel.subscribe(name, listener);
    return () => diagnosticsChannel.unsubscribe(name, listener);
  });
  return () => subscriptions.forEach((unsubscribe) => unsubscribe());
}

/**
 * Graceful shutdown on SIGTERM or SIGINT (Ctrl-C): stop taking requests first, then close the manager, which ends
 * every stdio server's process group (they do not get the terminal's signals themselves).
 */
export function closeOnSigterm(stopAccepting: () => Promise<void>, shutdown: () => Promise<void>): void {
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void stopAccepting()
      .then(shutdown)
      .finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
