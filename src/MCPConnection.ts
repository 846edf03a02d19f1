/**
 * One MCP client connection: the SDK `Client` over a transport, a small state machine, reconnects with
 * backoff and jitter after a transport loss, one re-initialize after an expired streamable HTTP session,
 * per-call cancellation and timeouts, and a bounded session DELETE on close.
 * @module
 */
import { EventEmitter, setMaxListeners } from 'node:events';
import { createRequire } from 'node:module';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { CallToolResult, Progress, Tool } from '@modelcontextprotocol/sdk/types.js';
import type { ServerConfig } from './config/schema.js';
import { isCredentialFailure, SwitchboardError } from './errors.js';
import { silentLogger, type Logger, type UserContext } from './types.js';
import { resolveReconnectOptions, type ReconnectOptions } from './connection/backoff.js';
import { RetryPolicy } from './connection/retryPolicy.js';
import { classifyError, type ErrorTarget, type OperationPhase } from './connection/classifyError.js';
import { createProtocolClient, type ProtocolClient, type ProtocolRequestOptions } from './connection/protocolClient.js';
import { SignalLink } from './connection/signalLink.js';
import { OperationScope, type ScopeEndReason } from './connection/operationScope.js';
import { DEFAULT_MAX_RESULT_BYTES, exceedsBytes } from './connection/resultSize.js';
import type { CallerContext } from './connection/callerContext.js';
import type { jsonSchemaValidator } from '@modelcontextprotocol/sdk/validation';
import { defaultSchemaValidator } from './connection/schemaValidator.js';
import { fn, nonEmptyString, nonNegativeMs, optionError, positiveInt, positiveMs } from './options.js';

/** One `tools/list` walk over all pages, shared by the callers that join it. */
interface ToolsFlight {
  generation: number;
  promise: Promise<Tool[]>;
  /** The caller whose credentials it is made with. */
  user: UserContext | undefined;
}

export type { ReconnectOptions } from './connection/backoff.js';

/**
 * The life of a connection: `idle` → `connecting` → `connected` ⇄ `reconnecting` → `closed`.
 * `closed` is final; a failed first connect also ends in `closed`.
 *
 * @example
 * ```ts
 * conn.on('state', ({ to }: { to: ConnectionState }) => {
 *   if (to === 'reconnecting') metrics.increment('mcp.reconnects');
 * });
 * ```
 */
export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

/**
 * Caps on `listTools` and tool results, so a misbehaving server cannot make the client page forever, hold
 * unbounded lists or hand an unbounded result on.
 *
 * @example
 * ```ts
 * const limits: ConnectionLimits = { maxToolPages: 10, maxTools: 1_000, maxResultBytes: 4 * 1024 * 1024 };
 * ```
 */
export interface ConnectionLimits {
  /** Most `tools/list` pages read (default 50). More → `SwitchboardError('too_large')`. */
  maxToolPages?: number;
  /** Most tools accepted (default 5 000). More → `SwitchboardError('too_large')`. */
  maxTools?: number;
  /**
   * Largest tool result passed on, in bytes of its JSON (default 16 MiB). More → `SwitchboardError('too_large')`,
   * so an oversized result never reaches the caller (or a model's context).
   */
  maxResultBytes?: number;
}

/**
 * Options of {@link MCPConnection}.
 *
 * A bad option is a `TypeError` thrown by the constructor, whose message names the option as spelled here and
 * says what was expected (e.g. `MCPConnection: limits.maxTools must be a positive integer (got 0)`); nothing is silently defaulted.
 *
 * @example
 * ```ts
 * import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
 * const opts: MCPConnectionOptions = {
 *   serverName: 'notes',
 *   config: parseServerConfig('notes', { command: 'notes-mcp' }),
 *   createTransport: async () => {
 *     const [client, server] = InMemoryTransport.createLinkedPair();
 *     await notesServer.connect(server);
 *     return client;
 *   },
 * };
 * ```
 */
export interface MCPConnectionOptions {
  /** The server's name in the config. */
  serverName: string;
  /** The config as parsed (placeholders unresolved); kept for staleness checks and timeouts. */
  config: ServerConfig;
  /** The user the connection is for; absent for shared app-level connections. */
  user?: UserContext;
  /** Creates the transport of each connect and reconnect attempt; `signal` aborts the attempt. */
  createTransport: (signal?: AbortSignal) => Promise<Transport>;
  /** Sent in `initialize`; default `{ name: 'mcp-switchboard', version: <package version> }`. */
  clientInfo?: { name: string; version: string };
  /** Reconnect loop settings (attempts, backoff base and cap). */
  reconnect?: ReconnectOptions;
  /** Caps on `listTools`. */
  limits?: ConnectionLimits;
  /** Where diagnostics go (never a token); default silent. */
  logger?: Logger;
  /** Source of jitter in [0, 1); default `Math.random`. Tests inject a fixed one. */
  random?: () => number;
  /** Bound on the wait for the session DELETE in `close()`, in ms (default 2 000). */
  closeTimeoutMs?: number;
  /**
   * Who each request is made for, on user connections (set by {@link MCPConnectionFactory}): a call's requests
   * carry the credentials of the `user` passed to that call.
   */
  callers?: CallerContext;
  /**
   * Validates tool output schemas (the SDK `Client`'s `jsonSchemaValidator`). Default: one validator shared by
   * every connection, with a bounded cache of compiled schemas, created on first use.
   */
  jsonSchemaValidator?: jsonSchemaValidator;
}

/**
 * Payload of the `state` event.
 *
 * @example
 * ```ts
 * conn.on('state', (e: StateChangeEvent) => log.info(e, 'mcp connection state'));
 * ```
 */
export interface StateChangeEvent {
  /** The state left. */
  from: ConnectionState;
  /** The state entered. */
  to: ConnectionState;
}

/**
 * Payload of the `close` event.
 *
 * @example
 * ```ts
 * conn.on('close', ({ error }: ConnectionCloseEvent) => {
 *   if (error) log.warn({ code: error.code }, 'mcp connection gave up');
 * });
 * ```
 */
export interface ConnectionCloseEvent {
  /** Why the connection closed on its own (failed connect, reconnects exhausted); absent after `close()`. */
  error?: SwitchboardError;
}

/**
 * Payload of the `reconnect` event, emitted before each reconnect attempt.
 *
 * @example
 * ```ts
 * conn.on('reconnect', ({ attempt, delayMs }: ReconnectAttemptEvent) => log.debug({ attempt, delayMs }, 'reconnecting'));
 * ```
 */
export interface ReconnectAttemptEvent {
  /** 1-based attempt number. */
  attempt: number;
  /** How long the connection waits before this attempt. */
  delayMs: number;
}

/**
 * The events of an {@link MCPConnection} and their payloads.
 *
 * @example
 * ```ts
 * const onToolsChanged: (...args: MCPConnectionEvents['toolsChanged']) => void = () => cache.clear();
 * conn.on('toolsChanged', onToolsChanged);
 * ```
 */
export interface MCPConnectionEvents {
  /** Every state change. */
  state: [event: StateChangeEvent];
  /** The final close: by `close()`, a failed first connect, or reconnects exhausted. Emitted once. */
  close: [event: ConnectionCloseEvent];
  /** The server sent `notifications/tools/list_changed`; the cached tool list was dropped. */
  toolsChanged: [];
  /** A reconnect attempt is about to be made. */
  reconnect: [event: ReconnectAttemptEvent];
}

/**
 * Options of {@link MCPConnection.callTool}.
 *
 * @example
 * ```ts
 * const opts: CallToolOptions = { signal: req.signal, timeoutMs: 15_000 };
 * await conn.callTool('search', { q: 'mcp' }, opts);
 * ```
 */
export interface CallToolOptions {
  /** Aborts the call: it rejects with `SwitchboardError('aborted')` and the server gets `notifications/cancelled`. */
  signal?: AbortSignal;
  /** Deadline of the call in ms, including any wait for a reconnect; default `config.timeoutMs` or 60 000. */
  timeoutMs?: number;
  /**
   * The caller, on a user connection: the call's requests carry this context's credentials (its upstream
   * assertion, `vars`, OAuth grant), not the ones seen when the connection was opened. Must be the same
   * (tenant, user) as the connection's. Default: the most recent caller of the connection.
   */
  user?: UserContext;
  /**
   * Receives the server's `notifications/progress` for this call (MCP 2025-11-25, "Progress"). Giving it makes
   * the request carry a `progressToken`. A throwing handler is logged and ignored.
   */
  onProgress?: (progress: Progress) => void;
  /**
   * Restart the `timeoutMs` deadline whenever the server reports progress (default `false`): a long call that
   * keeps reporting progress is not timed out while progress keeps coming, up to `maxTotalTimeoutMs`.
   */
  resetTimeoutOnProgress?: boolean;
  /** Bound on the whole call in ms, however much progress arrives; default none (`timeoutMs` alone). */
  maxTotalTimeoutMs?: number;
}

/** Whether a call asks for progress handling (it then takes the full path, whose deadline progress can move). */
function tracksProgress(opts: CallToolOptions): boolean {
  return opts.onProgress !== undefined || opts.resetTimeoutOnProgress !== undefined || opts.maxTotalTimeoutMs !== undefined;
}

/** Checks the progress options of a call (a bad one is a `TypeError` naming it) and returns them. */
function checkProgressOptions(opts: CallToolOptions): CallToolOptions {
  fn(opts.onProgress, 'callTool: onProgress');
  if (opts.resetTimeoutOnProgress !== undefined && typeof opts.resetTimeoutOnProgress !== 'boolean') {
    throw optionError('callTool: resetTimeoutOnProgress', 'a boolean', opts.resetTimeoutOnProgress);
  }
  if (opts.maxTotalTimeoutMs !== undefined) positiveMs(opts.maxTotalTimeoutMs, 'callTool: maxTotalTimeoutMs');
  return opts;
}

/** Consecutive retryable transport failures of a connected client after which it is treated as lost. */
const FAILURES_BEFORE_RECONNECT = 3;

const DEFAULT_INIT_TIMEOUT_MS = 30_000;
const DEFAULT_CALL_TIMEOUT_MS = 60_000;
const DEFAULT_CLOSE_TIMEOUT_MS = 2_000;

let packageVersion: string | undefined;
/** The package version, read once on first use (never at import). */
function defaultClientInfo(): { name: string; version: string } {
  if (packageVersion === undefined) {
    try {
      // src/ and dist/ both sit one level below package.json.
      packageVersion = String((createRequire(import.meta.url)('../package.json') as { version?: unknown }).version ?? '0.0.0');
    } catch {
      packageVersion = '0.0.0';
    }
  }
  return { name: 'mcp-switchboard', version: packageVersion };
}

/**
 * One MCP client connection with a state machine (`idle` → `connecting` → `connected` ⇄ `reconnecting` →
 * `closed`, each change emitted as a `state` event).
 *
 * - Every call takes an optional `AbortSignal` and a timeout (`config.timeoutMs`, default 60 s); both are
 *   handed to the SDK, which sends `notifications/cancelled`. An aborted or timed-out call leaves the
 *   connection usable. Errors are {@link SwitchboardError}s: `aborted`, `call_timeout` (retryable),
 *   `server_error` (JSON-RPC error; the `McpError` is the `cause`), `transport_error`, `connection_closed`.
 *   An error thrown by the auth header provider (an `OboError`, any `SwitchboardError`) reaches the caller
 *   unchanged, as the same object.
 * - A transport loss (the transport closed without `close()`, an SSE stream broke, or three requests in a row
 *   failed with a retryable `transport_error`) starts reconnecting with exponential backoff and full jitter
 *   above a floor. The attempt budget (`reconnect.maxAttempts`) is shared by successive losses and restored
 *   only after the connection stayed healthy for `reconnect.healthyAfterMs`; once it is spent the connection
 *   closes with `SwitchboardError('connection_closed')`. Calls made while (re)connecting wait for it, within
 *   their own timeout and signal; a call that was in flight when the transport was lost fails with
 *   `transport_error` (it may or may not have run, so it is not resent).
 * - A streamable HTTP 404 or 400 to a request that carried a session id (the session expired, or the server
 *   restarted and forgot it) re-initializes once (new transport, new session) and resends the request once:
 *   the server did not process it.
 * - The caller's `AbortSignal` is never handed to the SDK (which would keep one listener per call on it): a
 *   host may pass one signal for a whole session.
 * - `close()` is idempotent: it DELETEs the streamable HTTP session (waiting at most `closeTimeoutMs`), then
 *   closes the transport (for stdio, the child process).
 *
 * @example
 * ```ts
 * const conn = new MCPConnection({ serverName: 'notes', config, createTransport });
 * conn.on('state', ({ from, to }) => log.info({ from, to }, 'connection state'));
 * await conn.connect();
 * const tools = await conn.listTools();
 * const result = await conn.callTool('search', { q: 'mcp' }, { timeoutMs: 10_000 });
 * await conn.close();
 * ```
 */
export class MCPConnection extends EventEmitter<MCPConnectionEvents> {
  /** The server's name in the config. */
  readonly serverName: string;
  /** The config as parsed (unresolved), for staleness checks. */
  readonly config: ServerConfig;
  /** The user the connection is for; absent for shared app-level connections. */
  readonly user?: UserContext;
  /** When the connection object was created (epoch ms). */
  readonly createdAt: number;

  readonly #createTransport: MCPConnectionOptions['createTransport'];
  readonly #clientInfo: { name: string; version: string };
  /** One reconnect budget for the life of the connection (see {@link ReconnectOptions.healthyAfterMs}). */
  readonly #retry: RetryPolicy;
  readonly #target: ErrorTarget | undefined;
  readonly #maxToolPages: number;
  readonly #maxTools: number;
  readonly #maxResultBytes: number;
  readonly #logger: Logger;
  readonly #random: () => number;
  readonly #closeTimeoutMs: number;
  readonly #callers: CallerContext | undefined;
  readonly #jsonSchemaValidator: jsonSchemaValidator | undefined;
  /** Aborted by `close()` or a final failure: ends every scope and backoff wait at once. */
  readonly #closeController = new AbortController();

  #state: ConnectionState = 'idle';
  #client: ProtocolClient | undefined;
  /** The running connect or reconnect; calls made meanwhile wait on it. */
  #pending: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #closeEmitted = false;
  /** Clients whose transport has closed: a call failing on one of them lost its connection. */
  readonly #lostClients = new WeakSet<ProtocolClient>();
  /** Retryable transport failures in a row on the current client; reset by any success. */
  #failedInRow = 0;
  #tools: Tool[] | undefined;
  /** Bumped whenever the tool list may have changed, so an in-flight listing is not cached stale. */
  #toolsGeneration = 0;

  constructor(opts: MCPConnectionOptions) {
    super();
    if (!opts || typeof opts !== 'object') throw optionError('MCPConnection: options', 'an object', opts);
    nonEmptyString(opts.serverName, 'MCPConnection: serverName');
    if (!opts.config || typeof opts.config !== 'object') throw optionError('MCPConnection: config', 'a parsed server config object', opts.config);
    fn(opts.createTransport, 'MCPConnection: createTransport', { required: true });
    this.serverName = opts.serverName;
    this.config = opts.config;
    if (opts.user) this.user = opts.user;
    this.createdAt = Date.now();
    this.#createTransport = opts.createTransport;
    this.#clientInfo = opts.clientInfo ?? defaultClientInfo();
    this.#random = opts.random ?? Math.random;
    this.#retry = new RetryPolicy(resolveReconnectOptions(opts.reconnect), { random: this.#random });
    this.#target = 'url' in opts.config ? { url: opts.config.url } : undefined;
    this.#maxToolPages = positiveInt(opts.limits?.maxToolPages, 'MCPConnection: limits.maxToolPages', 50);
    this.#maxTools = positiveInt(opts.limits?.maxTools, 'MCPConnection: limits.maxTools', 5000);
    this.#maxResultBytes = positiveInt(opts.limits?.maxResultBytes, 'MCPConnection: limits.maxResultBytes', DEFAULT_MAX_RESULT_BYTES);
    this.#logger = opts.logger ?? silentLogger;
    this.#closeTimeoutMs = nonNegativeMs(opts.closeTimeoutMs, 'MCPConnection: closeTimeoutMs', DEFAULT_CLOSE_TIMEOUT_MS);
    this.#callers = opts.callers;
    this.#jsonSchemaValidator = opts.jsonSchemaValidator;
    // Every in-flight call listens on the close signal: hundreds of concurrent calls are normal, not a leak.
    setMaxListeners(0, this.#closeController.signal);
  }

  /** The current state; see {@link ConnectionState}. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** The streamable HTTP session id (`Mcp-Session-Id`), if the transport has one. */
  get sessionId(): string | undefined {
    return this.#client?.sessionId;
  }

  /**
   * Connects and initializes, within `config.initTimeoutMs` (default 30 s). Only the first call starts a
   * connect; later calls wait for it (or resolve at once when connected). A failed first connect closes the
   * connection: it rejects with `connect_timeout`, `connect_failed`, `aborted`, `server_error` or the auth
   * provider's own error, and the `close` event carries it.
   *
   * @example
   * ```ts
   * await conn.connect({ signal: AbortSignal.timeout(5_000) });
   * ```
   */
  connect(opts: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#state === 'connected') return Promise.resolve();
    if (this.#state === 'closed') return Promise.reject(this.#closedError());
    if (this.#state !== 'idle') return this.#joinPending(opts.signal);
    this.#setState('connecting');
    const attempt = (async () => {
      const scope = this.#scope('connect', this.config.initTimeoutMs ?? DEFAULT_INIT_TIMEOUT_MS, opts.signal);
      try {
        await this.#establish(scope);
      } catch (err) {
        if (!this.#closeController.signal.aborted) this.#finish(err as SwitchboardError);
        throw err;
      } finally {
        scope.dispose();
      }
      this.#setState('connected');
    })();
    this.#pending = attempt;
    attempt.catch(() => {});
    return attempt;
  }

  /**
   * Calls a tool. A tool's own failure (`isError: true`) is a normal result, not an exception. A result larger than
   * `limits.maxResultBytes` (default 16 MiB) is refused with `SwitchboardError('too_large')`.
   *
   * @example
   * ```ts
   * const controller = new AbortController();
   * const result = await conn.callTool('search', { q: 'mcp' }, { signal: controller.signal, timeoutMs: 10_000 });
   * if (result.isError) console.warn(result.content);
   * ```
   */
  callTool(name: string, args: Record<string, unknown> = {}, opts: CallToolOptions = {}): Promise<CallToolResult> {
    if (typeof name !== 'string' || !name) return Promise.reject(new TypeError('callTool: name must be a non-empty string'));
    const timeoutMs = opts.timeoutMs ?? this.config.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    const params = { name, arguments: args };
    // Fast path, connected: the SDK's own timeout and the caller's signal suffice (a close rejects the SDK's
    // pending requests), so no scope or timer per call. No async frame of its own either: the SDK's promise is
    // chained once. Progress handling takes the full path, whose deadline progress can move.
    const client = this.#state === 'connected' && !opts.signal?.aborted && !tracksProgress(opts) ? this.#client : undefined;
    if (!client) return this.#fullCall(params, timeoutMs, opts, false);
    // The SDK never removes the abort listener it adds to a request's signal: the caller's own (often one signal
    // for a whole session) is linked per call instead, and unlinked when the call settles.
    const link = opts.signal ? new SignalLink(opts.signal) : undefined;
    const options: ProtocolRequestOptions = link ? { signal: link.signal, timeout: timeoutMs } : { timeout: timeoutMs };
    let call: Promise<CallToolResult>;
    try {
      call = this.#callers ? this.#callers.issue(opts.user, () => client.callTool(params, options)) : client.callTool(params, options);
    } catch (err) {
      call = Promise.reject(err);
    }
    return call.then(
      (result) => {
        link?.dispose();
        this.#failedInRow = 0;
        return this.#checkSize(result, name);
      },
      (err: unknown) => {
        link?.dispose();
        const error = this.#failure(err, client, undefined, opts.signal, opts.user, true);
        if (error) throw error;
        // The server no longer knew the session and did not process the request: resent once on a new one.
        return this.#fullCall(params, timeoutMs, opts, true);
      },
    );
  }

  /** The full path: a scope (own timer and signal), waiting for a connect or reconnect, one resend on a new session. */
  async #fullCall(params: { name: string; arguments: Record<string, unknown> }, timeoutMs: number, opts: CallToolOptions, resent: boolean): Promise<CallToolResult> {
    const progress = tracksProgress(opts) ? checkProgressOptions(opts) : undefined;
    const scope = this.#scope('call', timeoutMs, opts.signal, progress?.maxTotalTimeoutMs);
    const onprogress = progress ? this.#progressHandler(scope, progress) : undefined;
    try {
      const result = await this.#request(
        scope,
        (client) =>
          client.callTool(
            params,
            onprogress
              ? {
                  signal: scope.signal,
                  // The scope enforces the deadline and the total bound; the SDK's timer only needs to follow it.
                  timeout: progress!.resetTimeoutOnProgress ? timeoutMs : scope.remaining(),
                  onprogress,
                  resetTimeoutOnProgress: progress!.resetTimeoutOnProgress ?? false,
                  ...(progress!.maxTotalTimeoutMs === undefined ? {} : { maxTotalTimeout: scope.remaining() }),
                }
              : { signal: scope.signal, timeout: scope.remaining() },
          ),
        resent,
        opts.user,
      );
      return this.#checkSize(result, params.name);
    } finally {
      scope.dispose();
    }
  }

  /** The SDK's progress handler of one call: moves the scope's deadline when asked, then tells the caller. */
  #progressHandler(scope: OperationScope, opts: CallToolOptions): (progress: Progress) => void {
    return (progress) => {
      if (opts.resetTimeoutOnProgress) scope.touch();
      if (!opts.onProgress) return;
      try {
        opts.onProgress(progress);
      } catch (err) {
        this.#logger.warn({ serverName: this.serverName, error: errorName(err) }, 'onProgress handler threw');
      }
    };
  }

  /** `result`, unless it is larger than `limits.maxResultBytes`: then `SwitchboardError('too_large')`. */
  #checkSize(result: CallToolResult, name: string): CallToolResult {
    if (exceedsBytes(result, this.#maxResultBytes)) {
      throw new SwitchboardError('too_large', `Result of tool "${name}" from MCP server "${this.serverName}" is larger than ${this.#maxResultBytes} bytes`, {
        serverName: this.serverName,
      });
    }
    return result;
  }

  /**
   * Lists every tool, following `nextCursor` through all pages (at most `limits.maxToolPages` pages and
   * `limits.maxTools` tools, else `SwitchboardError('too_large')`). The list is cached until the server sends
   * `notifications/tools/list_changed` or the connection re-initializes.
   *
   * @example
   * ```ts
   * const names = (await conn.listTools()).map((t) => t.name);
   * ```
   */
  async listTools(opts: { signal?: AbortSignal; timeoutMs?: number; user?: UserContext } = {}): Promise<Tool[]> {
    if (this.#tools && this.#state === 'connected') return [...this.#tools];
    const timeoutMs = opts.timeoutMs ?? this.config.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    // Concurrent callers share one listing (made with the credentials of the caller that started it); each
    // keeps its own signal and deadline.
    const flightTimeout = Math.max(timeoutMs, this.config.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS);
    const flight = this.#listFlight(flightTimeout, opts.user, false);
    const mine = this.#scope('call', timeoutMs, opts.signal);
    try {
      try {
        return [...(await mine.race(flight.promise))];
      } catch (err) {
        // Another caller's credentials failed the shared listing: this caller's own may be good.
        if (!opts.user || flight.user === opts.user || !isCredentialFailure(err)) throw err;
        return [...(await mine.race(this.#listFlight(flightTimeout, opts.user, true).promise))];
      }
    } finally {
      mine.dispose();
    }
  }

  #toolsFlight: ToolsFlight | undefined;

  #listFlight(timeoutMs: number, user: UserContext | undefined, own: boolean): ToolsFlight {
    const generation = this.#toolsGeneration;
    if (!own && this.#toolsFlight?.generation === generation) return this.#toolsFlight;
    const scope = this.#scope('call', timeoutMs, undefined);
    const promise = this.#request(scope, (client) => this.#listAllTools(client, scope, user), false, user)
      .then((tools) => {
        if (generation === this.#toolsGeneration && this.#state !== 'closed') this.#tools = tools;
        return tools;
      })
      .finally(() => {
        scope.dispose();
        if (this.#toolsFlight === flight) this.#toolsFlight = undefined;
      });
    promise.catch(() => {}); // each caller sees the rejection through its own race
    const flight: ToolsFlight = { generation, promise, user };
    if (!own) this.#toolsFlight = flight;
    return flight;
  }

  /** True when the connection is `connected`. */
  isConnected(): boolean {
    return this.#state === 'connected';
  }

  /**
   * True when the config changed after this connection was created: `updatedAt` (default the connection's
   * own `config.updatedAt`) is later than {@link createdAt}.
   *
   * @example
   * ```ts
   * if (conn.isStale(latestConfig.updatedAt)) await conn.close();
   * ```
   */
  isStale(updatedAt?: number | string | Date): boolean {
    const value = updatedAt ?? this.config.updatedAt;
    if (value === undefined) return false;
    const ms = typeof value === 'number' ? value : value instanceof Date ? value.getTime() : Date.parse(value);
    return Number.isFinite(ms) && ms > this.createdAt;
  }

  /**
   * Closes the connection. Idempotent: every call returns the same promise. Pending calls reject with
   * `connection_closed`; a streamable HTTP session is DELETEd (waiting at most `closeTimeoutMs`) so the
   * server frees it; then the transport is closed (a stdio child is ended) and every timer cleared.
   *
   * @example
   * ```ts
   * await conn.close();
   * ```
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    this.#closeController.abort();
    const client = this.#client;
    this.#client = undefined;
    this.#setState('closed');
    this.#dropTools();
    if (client) await this.#disposeClient(client, true);
    // An attempt still running closes its own transport once the close signal reaches it.
    await this.#pending?.catch(() => {});
    this.#emitClose({});
  }

  /** One attempt: create a transport, connect and initialize within `scope`, then install the client. */
  async #establish(scope: OperationScope): Promise<void> {
    const transportPromise = this.#createTransport(scope.signal);
    let transport: Transport | undefined;
    let client: ProtocolClient | undefined;
    try {
      transport = await scope.race(transportPromise);
      client = this.#newClient();
      await scope.race(client.connect(transport, { signal: scope.signal, timeout: scope.remaining() }));
      scope.throwIfEnded();
    } catch (err) {
      // Read before disposing (which closes the transport too): did the peer go away during initialize? The
      // SDK then rejects with McpError(ConnectionClosed), which must not pass for a server's JSON-RPC error.
      const lost = client !== undefined && this.#lostClients.has(client);
      if (client) await this.#disposeClient(client, false);
      else if (transport) await transport.close().catch(() => {});
      // A transport that arrives after the scope ended is closed as soon as it exists.
      else transportPromise.then((t) => t.close()).catch(() => {});
      const error = this.#toError(err, scope, 'connect');
      if (lost && error.code === 'server_error' && !(err instanceof SwitchboardError)) {
        throw new SwitchboardError('connect_failed', `MCP server "${this.serverName}" closed the connection during initialize`, {
          cause: err,
          retryable: true,
          serverName: this.serverName,
        });
      }
      throw error;
    }
    this.#client = client;
    this.#failedInRow = 0;
    this.#dropTools();
    if (this.#lostClients.has(client)) this.#onTransportLost(client, undefined);
  }

  #newClient(): ProtocolClient {
    // One JSON Schema validator (ajv, with a bounded cache of compiled tool output schemas) for every
    // connection, instead of the ajv instance each SDK Client otherwise builds for itself (~19 KB apiece).
    const client: ProtocolClient = createProtocolClient({
      clientInfo: this.#clientInfo,
      jsonSchemaValidator: this.#jsonSchemaValidator ?? defaultSchemaValidator(),
      events: {
        lost: (cause) => this.#onTransportLost(client, cause),
        error: (err) => this.#logger.debug({ serverName: this.serverName, error: errorName(err) }, 'MCP transport error'),
        toolsChanged: () => {
          if (client !== this.#client) return;
          this.#dropTools();
          this.#emit('toolsChanged');
        },
      },
    });
    return client;
  }

  #onTransportLost(client: ProtocolClient, cause: unknown): void {
    this.#lostClients.add(client);
    if (client !== this.#client || this.#state !== 'connected') return;
    this.#logger.warn({ serverName: this.serverName, error: errorName(cause) }, 'MCP connection lost; reconnecting');
    void this.#beginReconnect(client, false);
  }

  /**
   * Replaces `failed` (if it is still the current client) by a new connection; joins a reconnect already
   * running. `immediate`: the first attempt is made without delay (expired session: nothing to wait for).
   */
  #beginReconnect(failed: ProtocolClient, immediate: boolean): Promise<void> {
    if (failed !== this.#client || this.#state !== 'connected') return this.#pending ?? Promise.resolve();
    this.#client = undefined;
    void this.#disposeClient(failed, false);
    this.#dropTools();
    this.#setState('reconnecting');
    const loop = this.#reconnectLoop(immediate);
    this.#pending = loop;
    loop.catch(() => {});
    return loop;
  }

  async #reconnectLoop(immediate: boolean): Promise<void> {
    let last: SwitchboardError | undefined;
    let attempt = 0;
    for (;; attempt++) {
      // One budget across successive losses, restored only after the connection stayed healthy for a while: a
      // server that accepts and drops at once cannot keep this loop going. An expired session is re-initialized
      // once, without delay, even when the budget is spent or reconnecting is disabled.
      const budgeted = this.#retry.nextDelay();
      if (budgeted === undefined && !(immediate && attempt === 0)) break;
      const delayMs = immediate && attempt === 0 ? 0 : budgeted!;
      this.#emit('reconnect', { attempt: attempt + 1, delayMs });
      if (delayMs > 0) await this.#delay(delayMs);
      if (this.#closeController.signal.aborted) throw this.#closedError();
      const scope = this.#scope('connect', this.config.initTimeoutMs ?? DEFAULT_INIT_TIMEOUT_MS, undefined);
      try {
        await this.#establish(scope);
        this.#setState('connected');
        this.#retry.healthy();
        this.#logger.info({ serverName: this.serverName, attempt: attempt + 1 }, 'MCP connection re-established');
        return;
      } catch (err) {
        if (this.#closeController.signal.aborted) throw this.#closedError();
        last = err as SwitchboardError;
        this.#logger.warn({ serverName: this.serverName, attempt: attempt + 1, error: errorName(err) }, 'MCP reconnect attempt failed');
        // Retrying cannot help (refused credentials, bad config, server rejected initialize): stop, and let the
        // waiting calls see that reason itself.
        if (!last.retryable) {
          this.#finish(this.#gaveUp(attempt + 1, last));
          throw last;
        }
      } finally {
        scope.dispose();
      }
    }
    const error = this.#gaveUp(attempt, last);
    this.#finish(error);
    throw error;
  }

  #gaveUp(attempts: number, cause: SwitchboardError | undefined): SwitchboardError {
    return new SwitchboardError(
      'connection_closed',
      `Connection to MCP server "${this.serverName}" lost; gave up after ${attempts} reconnect attempt${attempts === 1 ? '' : 's'}`,
      { cause, retryable: true, serverName: this.serverName },
    );
  }

  /** A final failure: the connection closes on its own and says why. */
  #finish(error: SwitchboardError): void {
    // The close signal is left alone: calls waiting on the failed attempt get its error from #pending
    // (aborting here would hand them a generic connection_closed first). Nothing else is running.
    this.#closing ??= Promise.resolve();
    const client = this.#client;
    this.#client = undefined;
    if (client) void this.#disposeClient(client, true);
    this.#setState('closed');
    this.#dropTools();
    this.#emitClose({ error });
  }

  /**
   * Runs one request on the current client, waiting for a connect or reconnect in progress. On a 404 / 400 for an
   * expired session it re-initializes once and resends once.
   */
  async #request<T>(scope: OperationScope, send: (client: ProtocolClient) => Promise<T>, alreadyResent = false, user?: UserContext): Promise<T> {
    let resent = alreadyResent;
    for (;;) {
      const client = await this.#readyClient(scope);
      try {
        const result = await scope.race(this.#callers ? this.#callers.issue(user, () => send(client)) : send(client));
        this.#failedInRow = 0;
        return result;
      } catch (err) {
        const error = this.#failure(err, client, scope.error, undefined, user, !resent);
        if (error) throw error;
        resent = true;
      }
    }
  }

  /**
   * What one failed request means, the same for every call path. `undefined`: the server no longer knew the
   * session and did not process the request, a re-initialize has been started, and the request may be sent once
   * more (`mayResend`). Otherwise the error to throw, in this order: the operation's own end (its deadline, the
   * caller's abort, the connection's close), an error of ours or of a credential provider (unchanged, as the
   * same object), a closed connection, a lost transport (retryable `transport_error`: the request may have run,
   * so it is not resent), then {@link classifyError}. Retryable transport failures in a row on one client
   * mark it lost, so that a connection whose every request fails does not stay `connected`.
   */
  #failure(
    err: unknown,
    client: ProtocolClient,
    ended: Error | undefined,
    signal: AbortSignal | undefined,
    user: UserContext | undefined,
    mayResend: boolean,
  ): SwitchboardError | undefined {
    if (ended instanceof SwitchboardError) return ended;
    if (signal?.aborted) return this.#scopeError('call', 'aborted', signal.reason);
    if (err instanceof SwitchboardError) return err;
    if (this.#closeController.signal.aborted || this.#state === 'closed') return this.#closedError();
    if (mayResend && client.isSessionRejected(err)) {
      this.#reinitialize(client, user);
      return undefined;
    }
    const error = this.#lostDuringRequest(err, client) ?? classifyError(err, 'call', this.serverName, this.#target);
    if (error.code === 'transport_error' && error.retryable) this.#noteTransportFailure(client, error);
    return error;
  }

  /** Counts a retryable transport failure of `client`; enough in a row and the client is treated as lost. */
  #noteTransportFailure(client: ProtocolClient, error: SwitchboardError): void {
    if (client !== this.#client || ++this.#failedInRow < FAILURES_BEFORE_RECONNECT) return;
    this.#failedInRow = 0;
    this.#logger.warn({ serverName: this.serverName, failures: FAILURES_BEFORE_RECONNECT, error: errorName(error) }, 'MCP requests keep failing; reconnecting');
    this.#lostClients.add(client);
    this.#onTransportLost(client, error);
  }

  /**
   * The server forgot the session (404, or 400 after a restart): start a re-initialize, or join one a concurrent
   * call started. The new session is opened with the credentials of the caller whose request met the rejection
   * (its `initialize` belongs to no call, so it uses the most recent caller: this one, from now on).
   */
  #reinitialize(client: ProtocolClient, user?: UserContext): void {
    if (user && client === this.#client) this.#callers?.observe(user);
    this.#logger.info({ serverName: this.serverName }, 'MCP session expired; re-initializing');
    // Failure shows up in #readyClient of the resend.
    void this.#beginReconnect(client, true);
  }

  /** A request that failed because its client's transport was lost (it may have run): retryable `transport_error`. */
  #lostDuringRequest(err: unknown, client: ProtocolClient): SwitchboardError | undefined {
    if (err instanceof SwitchboardError || !this.#lostClients.has(client)) return undefined;
    return new SwitchboardError('transport_error', `Connection to MCP server "${this.serverName}" was lost during the request`, {
      cause: err,
      retryable: true,
      serverName: this.serverName,
    });
  }

  async #readyClient(scope: OperationScope): Promise<ProtocolClient> {
    for (;;) {
      scope.throwIfEnded();
      if (this.#state === 'connected' && this.#client) return this.#client;
      if (this.#state === 'closed') throw this.#closedError();
      if (this.#state === 'idle') {
        throw new SwitchboardError('not_connected', `Connection to MCP server "${this.serverName}" is not connected; call connect() first`, {
          serverName: this.serverName,
        });
      }
      // connecting / reconnecting: wait for it within the caller's own deadline and signal.
      await scope.race(this.#pending ?? Promise.resolve());
    }
  }

  async #listAllTools(client: ProtocolClient, scope: OperationScope, user: UserContext | undefined): Promise<Tool[]> {
    const tools: Tool[] = [];
    const seen = new Set<string>();
    let cursor: string | undefined;
    for (let page = 0; page < this.#maxToolPages; page++) {
      const list = () => client.listTools(cursor, { signal: scope.signal, timeout: scope.remaining() });
      const result = await (this.#callers ? this.#callers.issue(user, list) : list());
      tools.push(...result.tools);
      if (tools.length > this.#maxTools) {
        throw new SwitchboardError('too_large', `MCP server "${this.serverName}" lists more than ${this.#maxTools} tools`, { serverName: this.serverName });
      }
      cursor = result.nextCursor;
      if (cursor === undefined) return tools;
      // A cursor seen before would walk the same pages again until the page cap: a server bug, said at once.
      if (seen.has(cursor)) {
        throw new SwitchboardError('server_error', `MCP server "${this.serverName}" repeated a tools/list pagination cursor (page ${page + 2}); the listing was stopped`, {
          serverName: this.serverName,
        });
      }
      seen.add(cursor);
    }
    throw new SwitchboardError('too_large', `MCP server "${this.serverName}" lists tools over more than ${this.#maxToolPages} pages`, {
      serverName: this.serverName,
    });
  }

  #scope(phase: OperationPhase, timeoutMs: number, signal: AbortSignal | undefined, maxTotalMs?: number): OperationScope {
    return new OperationScope({
      timeoutMs,
      ...(maxTotalMs === undefined ? {} : { maxTotalMs }),
      ...(signal ? { signal } : {}),
      closeSignal: this.#closeController.signal,
      toError: (reason, signalReason) => this.#scopeError(phase, reason, signalReason),
    });
  }

  #scopeError(phase: OperationPhase, reason: ScopeEndReason, signalReason: unknown): SwitchboardError {
    const serverName = this.serverName;
    if (reason === 'closed') return this.#closedError();
    if (reason === 'aborted') {
      const what = phase === 'connect' ? 'Connecting to' : 'Request to';
      return new SwitchboardError('aborted', `${what} MCP server "${serverName}" was aborted`, { cause: signalReason, serverName });
    }
    return phase === 'connect'
      ? new SwitchboardError('connect_timeout', `Connecting to MCP server "${serverName}" timed out`, { retryable: true, serverName })
      : new SwitchboardError('call_timeout', `Request to MCP server "${serverName}" timed out`, { retryable: true, serverName });
  }

  /** The scope's own reason wins (the SDK reports an abort as a generic error); else classify. */
  #toError(err: unknown, scope: OperationScope, phase: OperationPhase): SwitchboardError {
    if (scope.error instanceof SwitchboardError) return scope.error;
    if (this.#state === 'closed' && !(err instanceof SwitchboardError)) return this.#closedError();
    return classifyError(err, phase, this.serverName, this.#target);
  }

  #closedError(): SwitchboardError {
    return new SwitchboardError('connection_closed', `Connection to MCP server "${this.serverName}" is closed`, { serverName: this.serverName });
  }

  #joinPending(signal: AbortSignal | undefined): Promise<void> {
    const pending = this.#pending ?? Promise.resolve();
    if (!signal) return pending;
    const scope = this.#scope('connect', DEFAULT_INIT_TIMEOUT_MS * 10, signal);
    return scope.race(pending).finally(() => scope.dispose());
  }

  /** Closes a client that is no longer current; DELETEs its session first when asked, within a bound. */
  async #disposeClient(client: ProtocolClient, terminate: boolean): Promise<void> {
    const terminating = terminate ? client.terminateSession() : undefined;
    if (terminating) {
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.#closeTimeoutMs);
        timer.unref?.();
      });
      const deleted = terminating.catch((err: unknown) => {
        this.#logger.debug({ serverName: this.serverName, error: errorName(err) }, 'MCP session DELETE failed');
      });
      await Promise.race([deleted, bound]);
      clearTimeout(timer);
    }
    await client.close().catch(() => {});
  }

  /** Waits `ms` (timer unref'd); rejects at once with `connection_closed` when the connection closes. */
  #delay(ms: number): Promise<void> {
    const signal = this.#closeController.signal;
    return new Promise<void>((resolve, reject) => {
      if (signal.aborted) return reject(this.#closedError());
      const onClose = () => {
        clearTimeout(timer);
        reject(this.#closedError());
      };
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onClose);
        resolve();
      }, ms);
      timer.unref?.();
      signal.addEventListener('abort', onClose, { once: true });
    });
  }

  #dropTools(): void {
    this.#tools = undefined;
    this.#toolsGeneration++;
  }

  #setState(to: ConnectionState): void {
    const from = this.#state;
    if (from === to || from === 'closed') return;
    this.#state = to;
    this.#emit('state', { from, to });
  }

  #emitClose(event: ConnectionCloseEvent): void {
    if (this.#closeEmitted) return;
    this.#closeEmitted = true;
    this.#emit('close', event);
  }

  /** Emits without letting a throwing listener break the state machine. */
  #emit<K extends keyof MCPConnectionEvents>(event: K, ...args: MCPConnectionEvents[K]): void {
    try {
      (this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args);
    } catch (err) {
      this.#logger.error({ serverName: this.serverName, event, error: errorName(err) }, 'MCPConnection event listener threw');
    }
  }
}

/** A log-safe description of an error: its name and code, never its message (which may echo a server). */
function errorName(err: unknown): string | undefined {
  if (err === undefined) return undefined;
  if (err instanceof SwitchboardError) return `${err.name}(${err.code})`;
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return code === undefined ? err.name : `${err.name}(${String(code)})`;
  }
  return typeof err;
}
