/**
 * Extending MCPManager, one extension point each: per-user configs from a database (async), a user pool
 * subclass with a tenant policy, a hook around every operation, a wrapper around the shared pool, a connection
 * factory subclass, a circuit breaker of your own, a leased connection for what the manager does not wrap, a
 * per-call config, sampling and roots, elicitation, and the events of a user's connections.
 * __tests__/unit/extending.test.ts runs each of these, and __tests__/unit/extending-collaborators.test.ts the
 * connection factory and the circuit breaker.
 */
import type { CallToolResult, CreateMessageResult, ElicitResult } from '@modelcontextprotocol/sdk/types.js';
import {
  MCPConnectionFactory,
  MCPManager,
  SwitchboardError,
  UserConnectionManager,
  parseServerConfig,
  type AppConnectionPoolOptions,
  type CircuitBreakerOptions,
  type ConnectionCircuitBreaker,
  type CreateConnectionRequest,
  type Lease,
  type MCPConnection,
  type MCPConnectionFactoryOptions,
  type MCPManagerOptions,
  type OperationContext,
  type ServerConfig,
  type SharedConnectionPool,
  type ToolCallContext,
  type UserConnectionManagerOptions,
  type UserContext,
  type UserGetOptions,
} from 'mcp-switchboard';

/** Where your app keeps per-tenant server configs (a database table, a settings service…). */
export interface ServerConfigStore {
  find(tenantId: string, serverName: string): Promise<unknown>;
}

/**
 * Per-tenant configs, loaded asynchronously. A config that differs from the registered one is served from
 * each user's own pool: tenants never share, or take turns replacing, one connection.
 */
export class TenantConfigManager extends MCPManager {
  readonly #store: ServerConfigStore;
  /** Parsed once per (tenant, server): resolveServerConfig runs on every operation. */
  readonly #parsed = new Map<string, Promise<ServerConfig | undefined>>();

  constructor(options: MCPManagerOptions, store: ServerConfigStore) {
    super(options);
    this.#store = store;
  }

  protected override resolveServerConfig(serverName: string, user: UserContext | undefined) {
    if (user?.tenantId === undefined) return super.resolveServerConfig(serverName, user);
    const key = JSON.stringify([user.tenantId, serverName]);
    let config = this.#parsed.get(key);
    if (!config) {
      config = this.#store.find(user.tenantId, serverName).then((row) => (row === undefined ? undefined : parseServerConfig(serverName, row)));
      this.#parsed.set(key, config);
    }
    return config.then((found) => found ?? super.resolveServerConfig(serverName, user));
  }
}

/** Thrown for users of a suspended tenant, before any connection is made. */
export class TenantSuspendedError extends Error {
  constructor(readonly tenantId: string) {
    super(`Tenant ${tenantId} is suspended`);
    this.name = 'TenantSuspendedError';
  }
}

/** A user pool with a tenant policy: every user-scoped operation of the manager leases through `acquire`. */
export class SuspendablePool extends UserConnectionManager {
  readonly suspended = new Set<string>();

  override acquire(user: UserContext, serverName: string, opts?: UserGetOptions): Promise<Lease<MCPConnection>> {
    if (user.tenantId !== undefined && this.suspended.has(user.tenantId)) return Promise.reject(new TenantSuspendedError(user.tenantId));
    return super.acquire(user, serverName, opts);
  }

  /** Suspends a tenant: its users' connections are closed once their calls end. */
  async suspend(tenantId: string, userIds: string[]): Promise<void> {
    this.suspended.add(tenantId);
    await Promise.all(userIds.map((id) => this.disconnectUser(id, tenantId)));
  }
}

export class SuspendingManager extends MCPManager {
  /** Made on first use (after this constructor, so fields like this one exist by then). */
  pool: SuspendablePool | undefined;

  protected override createUserPool(options: UserConnectionManagerOptions): UserConnectionManager {
    // Keep `connect` and `hooks` (credentials, circuit breaker, events); change the limits if you like.
    this.pool = new SuspendablePool({ ...options, maxConnectionsPerUser: 8 });
    return this.pool;
  }
}

/** One audit line per operation, whatever it is. */
export interface AuditEntry {
  operation: string;
  serverName: string;
  userId: string | undefined;
  scope: 'user' | 'app';
  ok: boolean;
}

export class AuditedManager extends MCPManager {
  readonly entries: AuditEntry[] = [];

  /** Around every operation (calls, lists, reads, subscriptions, prompts, completions, withConnection). */
  protected override async wrapOperation<T>(ctx: OperationContext, run: () => Promise<T>): Promise<T> {
    let ok = false;
    try {
      const result = await run();
      ok = true;
      return result;
    } finally {
      this.entries.push({ operation: ctx.operation, serverName: ctx.serverName, userId: ctx.user?.id, scope: ctx.scope, ok });
    }
  }

  /** Around tool calls only (inside wrapOperation): here, a result filter. */
  protected override async wrapToolCall(ctx: ToolCallContext, next: () => Promise<CallToolResult>): Promise<CallToolResult> {
    const result = await next();
    return ctx.scope === 'app' ? result : { ...result, _meta: { ...result._meta, forUser: ctx.user?.id } };
  }
}

/** Counts leases of the shared pool per server, delegating everything to the manager's own pool. */
export class SharedPoolMetricsManager extends MCPManager {
  readonly sharedAcquires = new Map<string, number>();

  protected override createAppPool(options: AppConnectionPoolOptions): SharedConnectionPool {
    const pool = super.createAppPool(options);
    return {
      acquire: (serverName, config, opts) => {
        this.sharedAcquires.set(serverName, (this.sharedAcquires.get(serverName) ?? 0) + 1);
        return pool.acquire(serverName, config, opts);
      },
      removeServer: (serverName, reason) => pool.removeServer(serverName, reason),
      stats: () => pool.stats(),
      close: () => pool.close(),
    };
  }
}

/** One connect the manager asked the factory for: which server, for whom, how long, and whether it worked. */
export interface ConnectRecord {
  serverName: string;
  userId: string | undefined;
  ms: number;
  ok: boolean;
}

/** Every connect of the manager goes through `create`: here, timed per server and user. */
export class TimedConnectionFactory extends MCPConnectionFactory {
  readonly connects: ConnectRecord[] = [];

  override async create(req: CreateConnectionRequest): Promise<MCPConnection> {
    const started = performance.now();
    let ok = false;
    try {
      // Pass the request on whole: it carries the manager's credentials (`auth`), caller record and handlers.
      const connection = await super.create(req);
      ok = true;
      return connection;
    } finally {
      this.connects.push({ serverName: req.serverName, userId: req.user?.id, ms: performance.now() - started, ok });
    }
  }
}

export function createTimedManager(options: MCPManagerOptions, factoryOptions: MCPConnectionFactoryOptions = {}) {
  const factory = new TimedConnectionFactory({ reconnect: { maxAttempts: 3 }, ...factoryOptions });
  // An injected factory is yours to close, after the manager.
  return { manager: new MCPManager({ ...options, connectionFactory: factory }), factory };
}

/** Your ops switches: a feature-flag service, a Redis key, a status page… */
export interface MaintenanceWindows {
  isDown(serverName: string): boolean;
}

/** Servers the ops team marked down get no new connections, as if their circuit were open. */
export class MaintenanceAwareManager extends MCPManager {
  readonly #maintenance: MaintenanceWindows;

  constructor(options: MCPManagerOptions, maintenance: MaintenanceWindows) {
    super(options);
    this.#maintenance = maintenance;
  }

  /** Made at the first connect (after this constructor, so `#maintenance` exists by then). */
  protected override createCircuitBreaker(options: CircuitBreakerOptions): ConnectionCircuitBreaker {
    const breaker = super.createCircuitBreaker(options); // the manager's own: failure counting and backoff
    const maintenance = this.#maintenance;
    return {
      check(serverName) {
        if (maintenance.isDown(serverName)) {
          throw new SwitchboardError('circuit_open', `"${serverName}" is down for maintenance`, { serverName, retryable: true });
        }
        return breaker.check(serverName);
      },
      success: (serverName) => breaker.success(serverName),
      failure: (serverName, principal, error, trial) => breaker.failure(serverName, principal, error, trial),
      reset: (serverName) => breaker.reset(serverName),
    };
  }
}

/** What the manager does not wrap, on a leased connection: nothing evicts it until the callback ends. */
export function serverInfo(manager: MCPManager, user: UserContext, serverName: string) {
  return manager.withConnection({ user, serverName }, async (connection) => {
    // Undefined only if the session ended meanwhile (the server went away): say so rather than skip the ping.
    const client = connection.client;
    if (!client) throw new Error(`"${serverName}" is not connected`);
    await client.ping();
    return { version: client.getServerVersion(), instructions: client.getInstructions() };
  });
}

/** A server the user added themselves, kept by the host per user: passed with each call. */
export function callUserServer(manager: MCPManager, user: UserContext, url: string, toolName: string) {
  return manager.callTool({ user, serverName: 'my-server', serverConfig: { url, source: 'user' }, toolName });
}

/** Your model gateway. */
export type Complete = (req: { userId: string | undefined; serverName: string; prompt: string; maxTokens: number }) => Promise<string>;

/** Servers may ask the host's model (sampling) and the host's roots; each request names the server and the user. */
export function createManagerWithSampling(options: MCPManagerOptions, complete: Complete): MCPManager {
  return new MCPManager({
    ...options,
    onSampling: async (request, { user, serverName }): Promise<CreateMessageResult> => {
      const prompt = request.messages
        .flatMap((m) => (Array.isArray(m.content) ? m.content : [m.content]))
        .map((c) => (c.type === 'text' ? c.text : `[${c.type}]`))
        .join('\n');
      const text = await complete({ userId: user?.id, serverName, prompt, maxTokens: request.maxTokens });
      return { role: 'assistant', model: 'host-model', content: { type: 'text', text } };
    },
    roots: ({ user }) => [{ uri: `file:///workspaces/${user?.id ?? 'shared'}`, name: 'workspace' }],
  });
}

/** Your UI: shows a form or a link to the user and resolves with what they did. */
export interface AskUser {
  form(req: { userId: string; serverName: string; message: string; schema: object }): Promise<Record<string, string | number | boolean> | 'declined' | 'dismissed'>;
  link(req: { userId: string; serverName: string; message: string; url: string; elicitationId: string }): Promise<boolean>;
  done(req: { userId: string; serverName: string; elicitationId: string }): void;
}

/** Servers may ask the user for input (elicitation): only a user connection has a user to ask. */
export function createManagerWithElicitation(options: MCPManagerOptions, ui: AskUser): MCPManager {
  const manager = new MCPManager({
    ...options,
    onElicitation: async (request, { user, serverName }): Promise<ElicitResult> => {
      if (!user) return { action: 'decline' }; // a shared server: nobody to ask
      if (request.mode === 'url') {
        const { message, url, elicitationId } = request;
        return (await ui.link({ userId: user.id, serverName, message, url, elicitationId })) ? { action: 'accept' } : { action: 'decline' };
      }
      const answer = await ui.form({ userId: user.id, serverName, message: request.message, schema: request.requestedSchema });
      if (answer === 'declined') return { action: 'decline' };
      if (answer === 'dismissed') return { action: 'cancel' };
      return { action: 'accept', content: answer }; // fields left out get the schema's defaults
    },
  });
  manager.on('elicitationComplete', (e) => {
    if (e.userId !== undefined) ui.done({ userId: e.userId, serverName: e.serverName, elicitationId: e.elicitationId });
  });
  return manager;
}

/** Server notifications, per user: each event names the server and, on a user connection, its user. */
export function forwardServerEvents(manager: MCPManager, push: (userId: string, message: object) => void): void {
  manager.on('resourceUpdated', (e) => {
    if (e.userId !== undefined) push(e.userId, { type: 'resource-updated', server: e.serverName, uri: e.uri });
  });
  manager.on('toolsChanged', (e) => {
    if (e.userId !== undefined) push(e.userId, { type: 'tools-changed', server: e.serverName });
  });
}
