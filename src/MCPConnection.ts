/**
 * One MCP client connection: the SDK `Client` over a transport, a small state machine, reconnects with
 * backoff and jitter after a transport loss, one re-initialize after an expired streamable HTTP session,
 * per-call cancellation and timeouts, and a bounded session DELETE on close.
 * @module
 */
import { EventEmitter, setMaxListeners } from 'node:events';
import { createRequire } from 'node:module';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type {
  CallToolResult,
  CompleteResult,
  CreateMessageRequest,
  CreateMessageResult,
  ElicitResult,
  GetPromptResult,
  LoggingLevel,
  Progress,
  Prompt,
  PromptReference,
  ReadResourceResult,
  Resource,
  ResourceTemplate,
  ResourceTemplateReference,
  Root,
  Tool,
} from '@modelcontextprotocol/sdk/types.js';
import type { ServerConfig } from './config/schema.js';
import { isCredentialFailure, summarizeCause, SwitchboardError } from './errors.js';
import { silentLogger, type Logger, type UserContext } from './types.js';
import { resolveReconnectOptions, type ReconnectOptions } from './connection/backoff.js';
import { RetryPolicy } from './connection/retryPolicy.js';
import { classifyError, isRequestTimeout, timeoutError, type ErrorTarget, type OperationPhase } from './connection/classifyError.js';
import {
  createProtocolClient,
  type ElicitationRequest,
  type ProtocolClient,
  type ProtocolClientHandlers,
  type ProtocolRequestOptions,
  type SdkClient,
} from './connection/protocolClient.js';
import { SignalLink } from './connection/signalLink.js';
import { OperationScope, type ScopeEndReason, type TimeoutDetail } from './connection/operationScope.js';
import { DEFAULT_MAX_RESULT_BYTES, exceedsBytes } from './connection/resultSize.js';
import type { CallerContext } from './connection/callerContext.js';
import type { jsonSchemaValidator } from '@modelcontextprotocol/sdk/validation';
import { defaultSchemaValidator } from './connection/schemaValidator.js';
import { fn, nonEmptyString, nonNegativeMs, oneOf, optionError, positiveInt, positiveMs } from './options.js';

/** One walk of a paged list over all pages, shared by the callers that join it. */
interface ListFlight<T> {
  generation: number;
  promise: Promise<T[]>;
  /** The caller whose credentials it is made with. */
  user: UserContext | undefined;
}

/** One paged list of the server (`tools/list`, `resources/list`, …): how to read it, and its cache. */
interface Listing<T> {
  /** The JSON-RPC method, for messages. */
  readonly method: string;
  /** What is listed, plural, for messages ("tools", "resource templates"). */
  readonly what: string;
  /** One page. */
  readonly page: (client: ProtocolClient, cursor: string | undefined, opts: ProtocolRequestOptions) => Promise<{ items: T[]; nextCursor?: string }>;
  readonly maxPages: number;
  readonly maxItems: number;
  /** The cached list; dropped on list_changed and on every new session. */
  items: T[] | undefined;
  /** Bumped whenever the list may have changed, so an in-flight listing is not cached stale. */
  generation: number;
  flight: ListFlight<T> | undefined;
}

/** The log levels of MCP (RFC 5424 severities), least severe first. */
const LOGGING_LEVELS: readonly LoggingLevel[] = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];

export type { ReconnectOptions } from './connection/backoff.js';
export type { ElicitationRequest, SdkClient } from './connection/protocolClient.js';

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
 * Caps on the lists a connection reads and the results it passes on, so a misbehaving server cannot make the
 * client page forever, hold unbounded lists or hand an unbounded result on.
 *
 * @example
 * ```ts
 * const limits: ConnectionLimits = { maxToolPages: 10, maxTools: 1_000, maxListItems: 10_000, maxResultBytes: 4 * 1024 * 1024 };
 * ```
 */
export interface ConnectionLimits {
  /** Most `tools/list` pages read (default 50). More → `SwitchboardError('too_large')`. */
  maxToolPages?: number;
  /** Most tools accepted (default 5 000). More → `SwitchboardError('too_large')`. */
  maxTools?: number;
  /**
   * Most pages read of each other list: `resources/list`, `resources/templates/list`, `prompts/list` (default
   * `maxToolPages`). More → `SwitchboardError('too_large')`.
   */
  maxListPages?: number;
  /**
   * Most resources, resource templates or prompts accepted, per list (default `maxTools`). More →
   * `SwitchboardError('too_large')`.
   */
  maxListItems?: number;
  /**
   * Largest result passed on (`tools/call`, `resources/read`, `prompts/get`), in bytes of its JSON (default
   * 16 MiB). More → `SwitchboardError('too_large')`, so an oversized result never reaches the caller (or a
   * model's context).
   */
  maxResultBytes?: number;
}

/**
 * What a handler of a server's request ({@link ConnectionHandlers}) is told about it.
 *
 * @example
 * ```ts
 * const roots = ({ serverName, user, signal }: ServerRequestContext) =>
 *   signal.aborted ? [] : [{ uri: `file:///home/${user?.id ?? 'shared'}/${serverName}` }];
 * ```
 */
export interface ServerRequestContext {
  /** The server's name in the config. */
  serverName: string;
  /**
   * The user of the connection (on a user connection, its most recent caller's context); absent on shared
   * app-level connections.
   */
  user?: UserContext;
  /** Aborted when the server cancels its request or the session ends. */
  signal: AbortSignal;
}

/**
 * How the host answers requests the server sends to the client. Each handler given declares its client
 * capability in `initialize` (`sampling: {}`, `roots: { listChanged: false }`, `elicitation: { form: {}, url: {} }`);
 * without handlers the client declares no capability and the server's request is refused ("Method not found"),
 * as the SDK does.
 *
 * Sampling and roots are part of MCP 2025-11-25 and deprecated by the 2026-07-28 revision: servers speaking
 * the newer revision will not send them. Elicitation (form and URL mode) follows MCP 2025-11-25, "Elicitation".
 *
 * @example
 * ```ts
 * const handlers: ConnectionHandlers = {
 *   sampling: async (request, { serverName, user }) => ({
 *     role: 'assistant',
 *     model: 'gpt-x',
 *     content: { type: 'text', text: `${serverName} asked ${request.messages.length} messages for ${user?.id ?? 'app'}` },
 *   }),
 *   roots: () => [{ uri: 'file:///workspace', name: 'workspace' }],
 * };
 * ```
 */
export interface ConnectionHandlers {
  /**
   * Answers `sampling/createMessage` (the server asks the host's model for a completion). Deprecated by MCP
   * 2026-07-28; still in 2025-11-25. A throwing handler answers the server with a JSON-RPC error.
   */
  sampling?: (request: CreateMessageRequest['params'], ctx: ServerRequestContext) => Promise<CreateMessageResult>;
  /** Answers `roots/list` (the host's roots for this server). Deprecated by MCP 2026-07-28; still in 2025-11-25. */
  roots?: (ctx: ServerRequestContext) => Promise<Root[]> | Root[];
  /**
   * Answers `elicitation/create` (MCP 2025-11-25, "Elicitation"): the server asks the user for input, in form
   * mode (`request.mode === 'form'`: a `message` and a flat `requestedSchema`) or URL mode (`'url'`: the user is
   * to open `request.url`; `request.elicitationId` names it). Answer `{ action: 'accept', content }` (form
   * mode; `content` may leave out fields whose schema has a `default`: the default is filled in, SEP-1034),
   * `{ action: 'accept' }` (URL mode: the user agreed to open it), `{ action: 'decline' }` or
   * `{ action: 'cancel' }`. Content that does not match `requestedSchema`, an invalid result, or a throw answers
   * the server with a JSON-RPC error (the text of a thrown error is not sent) and is logged.
   * On a shared app-level connection `ctx.user` is absent: no user's handler context is used there.
   *
   * @example
   * ```ts
   * const handlers: ConnectionHandlers = {
   *   elicitation: async (request, { user }) => {
   *     if (request.mode === 'url' || !user) return { action: 'decline' };
   *     return { action: 'accept', content: { email: user.email ?? 'unknown@example.com' } };
   *   },
   * };
   * ```
   */
  elicitation?: (request: ElicitationRequest, ctx: ServerRequestContext) => Promise<ElicitResult>;
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
  /** Caps on lists and results. */
  limits?: ConnectionLimits;
  /**
   * Answers to the server's requests (sampling, roots, elicitation); each one given is declared as a client capability.
   * Default none: no client capability is declared.
   */
  handlers?: ConnectionHandlers;
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
 * Payload of the `resourceUpdated` event: the server sent `notifications/resources/updated`.
 *
 * @example
 * ```ts
 * conn.on('resourceUpdated', async ({ uri }: ResourceUpdatedEvent) => {
 *   const { contents } = await conn.readResource(uri);
 *   cache.set(uri, contents);
 * });
 * ```
 */
export interface ResourceUpdatedEvent {
  /** The resource that changed (it may be a sub-resource of the URI subscribed to). */
  uri: string;
}

/**
 * Payload of the `serverLog` event: a log message the server sent (`notifications/message`). Its `data` is the
 * server's own and may hold anything: log it with care.
 *
 * @example
 * ```ts
 * conn.on('serverLog', ({ level, logger, data }: ServerLogEvent) => {
 *   if (level === 'error' || level === 'critical') log.warn({ logger, data }, 'MCP server reported an error');
 * });
 * ```
 */
export interface ServerLogEvent {
  /** Its severity: `debug` … `emergency` (RFC 5424). */
  level: LoggingLevel;
  /** The server-side logger's name, when the server gave one. */
  logger?: string;
  /** Any JSON value the server sent. */
  data: unknown;
}

/**
 * Payload of the `elicitationComplete` event: the server sent `notifications/elicitation/complete` (MCP
 * 2025-11-25, URL-mode elicitation): the out-of-band interaction it asked for with `elicitationId` is done.
 *
 * @example
 * ```ts
 * conn.on('elicitationComplete', ({ elicitationId }: ElicitationCompleteEvent) => pendingLinks.delete(elicitationId));
 * ```
 */
export interface ElicitationCompleteEvent {
  /** The `elicitationId` of the URL-mode `elicitation/create` request that finished. */
  elicitationId: string;
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
  /**
   * The server sent `notifications/resources/list_changed`; the cached resource and resource template lists
   * were dropped.
   */
  resourcesChanged: [];
  /** The server sent `notifications/prompts/list_changed`; the cached prompt list was dropped. */
  promptsChanged: [];
  /** The server sent `notifications/resources/updated` (for a resource subscribed with `subscribeResource`). */
  resourceUpdated: [event: ResourceUpdatedEvent];
  /** The server sent a log message (`notifications/message`); see {@link MCPConnection.setLoggingLevel}. */
  serverLog: [event: ServerLogEvent];
  /** The server sent `notifications/elicitation/complete`: a URL-mode elicitation finished (MCP 2025-11-25). */
  elicitationComplete: [event: ElicitationCompleteEvent];
  /** A reconnect attempt is about to be made. */
  reconnect: [event: ReconnectAttemptEvent];
}

/**
 * Per-call options of every request of an {@link MCPConnection} (`callTool`, `listResources`, `readResource`,
 * `getPrompt`, `complete`, …).
 *
 * @example
 * ```ts
 * const opts: ConnectionRequestOptions = { signal: req.signal, timeoutMs: 15_000, user, onProgress: (p) => log.debug(p) };
 * await conn.readResource('file:///notes/today.md', opts);
 * ```
 */
export interface ConnectionRequestOptions {
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

/**
 * Options of {@link MCPConnection.callTool}: the {@link ConnectionRequestOptions} of every request.
 *
 * @example
 * ```ts
 * const opts: CallToolOptions = { signal: req.signal, timeoutMs: 15_000 };
 * await conn.callTool('search', { q: 'mcp' }, opts);
 * ```
 */
export interface CallToolOptions extends ConnectionRequestOptions {}

/**
 * Parameters of {@link MCPConnection.complete} (`completion/complete`): which prompt or resource template
 * argument to complete, its partial value, and the values of the arguments already chosen.
 *
 * @example
 * ```ts
 * const params: CompleteParams = {
 *   ref: { type: 'ref/prompt', name: 'team-lead' },
 *   argument: { name: 'name', value: 'Al' },
 *   context: { arguments: { department: 'Engineering' } },
 * };
 * const { values } = await conn.complete(params);
 * ```
 */
export interface CompleteParams {
  /** The prompt (`ref/prompt`, by name) or resource template (`ref/resource`, by URI template). */
  ref: PromptReference | ResourceTemplateReference;
  /** The argument being completed and what was typed so far. */
  argument: { name: string; value: string };
  /** Values of other arguments already resolved. */
  context?: { arguments?: Record<string, string> };
}

/**
 * What {@link MCPConnection.complete} returns: the `completion` of the server's answer.
 *
 * @example
 * ```ts
 * const completion: Completion = await conn.complete({ ref: { type: 'ref/prompt', name: 'p' }, argument: { name: 'a', value: '' } });
 * console.log(completion.values, completion.hasMore);
 * ```
 */
export type Completion = CompleteResult['completion'];

/** Whether a call asks for progress handling (it then takes the full path, whose deadline progress can move). */
function tracksProgress(opts: ConnectionRequestOptions): boolean {
  return opts.onProgress !== undefined || opts.resetTimeoutOnProgress !== undefined || opts.maxTotalTimeoutMs !== undefined;
}

/** Checks the progress options of a call of `method` (a bad one is a `TypeError` naming it) and returns them. */
function checkProgressOptions(opts: ConnectionRequestOptions, method = 'callTool'): ConnectionRequestOptions {
  fn(opts.onProgress, `${method}: onProgress`);
  if (opts.resetTimeoutOnProgress !== undefined && typeof opts.resetTimeoutOnProgress !== 'boolean') {
    throw optionError(`${method}: resetTimeoutOnProgress`, 'a boolean', opts.resetTimeoutOnProgress);
  }
  if (opts.maxTotalTimeoutMs !== undefined) positiveMs(opts.maxTotalTimeoutMs, `${method}: maxTotalTimeoutMs`);
  return opts;
}

/** An `AbortSignal`, by what it does (signals of another realm or library pass too). */
function isAbortSignal(value: unknown): value is AbortSignal {
  const v = value as Partial<AbortSignal> | null;
  return typeof v === 'object' && v !== null && typeof v.aborted === 'boolean' && typeof v.addEventListener === 'function';
}

/**
 * Checks the options object of a call of `method` (not `callTool`, whose fast path checks only what it uses): a
 * bad one is a `TypeError` naming it.
 */
function checkRequestOptions(opts: unknown, method: string): ConnectionRequestOptions {
  if (opts === null || typeof opts !== 'object') throw optionError(`${method}: options`, 'an object', opts);
  const o = opts as ConnectionRequestOptions;
  if (o.signal !== undefined && !isAbortSignal(o.signal)) throw optionError(`${method}: signal`, 'an AbortSignal', o.signal);
  if (o.timeoutMs !== undefined) positiveMs(o.timeoutMs, `${method}: timeoutMs`);
  if (o.user !== undefined && (o.user === null || typeof o.user !== 'object')) throw optionError(`${method}: user`, 'a UserContext object', o.user);
  if (tracksProgress(o)) checkProgressOptions(o, method);
  return o;
}

/** Checks that `value` is a `Record<string, string>` (a `TypeError` naming `name` otherwise). */
function checkStringRecord(value: unknown, name: string): Record<string, string> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw optionError(name, 'an object of strings', value);
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw optionError(`${name}.${k}`, 'a string', v);
  }
  return value as Record<string, string>;
}

/** Checks the parameters of `complete` (a `TypeError` naming the bad one) and returns what is sent. */
function checkCompleteParams(params: CompleteParams): CompleteParams {
  if (params === null || typeof params !== 'object') throw optionError('complete: params', 'an object', params);
  const { ref, argument, context } = params;
  if (ref === null || typeof ref !== 'object') throw optionError('complete: ref', "a { type: 'ref/prompt', name } or { type: 'ref/resource', uri } object", ref);
  const type = oneOf(ref.type, ['ref/prompt', 'ref/resource'] as const, 'complete: ref.type');
  if (type === 'ref/prompt') nonEmptyString((ref as PromptReference).name, 'complete: ref.name');
  else nonEmptyString((ref as ResourceTemplateReference).uri, 'complete: ref.uri');
  if (argument === null || typeof argument !== 'object') throw optionError('complete: argument', 'a { name, value } object', argument);
  nonEmptyString(argument.name, 'complete: argument.name');
  if (typeof argument.value !== 'string') throw optionError('complete: argument.value', 'a string', argument.value);
  if (context !== undefined) {
    if (context === null || typeof context !== 'object') throw optionError('complete: context', 'an object', context);
    if (context.arguments !== undefined) checkStringRecord(context.arguments, 'complete: context.arguments');
  }
  return context === undefined ? { ref, argument } : { ref, argument, context };
}

/** Bound on the `ping` that tells a forgotten session from a refused request after a 400, in ms. */
const SESSION_PROBE_TIMEOUT_MS = 10_000;

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
 * - The whole client surface takes the same per-call options ({@link ConnectionRequestOptions}) and the same
 *   path (credentials of the call's `user`, one resend on a new session, progress, typed errors): tools,
 *   resources (lists cached until `list_changed`, subscriptions sent again on every new session), prompts,
 *   completions and the log level. Server notifications are events (`toolsChanged`, `resourcesChanged`,
 *   `promptsChanged`, `resourceUpdated`, `serverLog`); server requests go to `handlers` (sampling, roots, elicitation), whose
 *   presence alone declares the client capabilities. {@link MCPConnection.client} is the SDK escape hatch.
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
  readonly #maxResultBytes: number;
  readonly #handlers: ProtocolClientHandlers | undefined;
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
  /** Requests in flight per client (so that a replaced client is closed only after them). */
  readonly #inFlight = new WeakMap<ProtocolClient, number>();
  /** Replaced clients waiting for their requests to settle → whether to end their session then. */
  readonly #retiring = new Map<ProtocolClient, boolean>();
  /** Clients being closed by us: their transport's close is not a loss. */
  readonly #disposing = new WeakSet<ProtocolClient>();
  /** Clients replaced because the server forgot their session. */
  readonly #sessionLost = new WeakSet<ProtocolClient>();
  /** The `ping` deciding whether a client's session is gone after a 400, while it runs. */
  readonly #probes = new WeakMap<ProtocolClient, Promise<boolean>>();
  readonly #tools: Listing<Tool>;
  readonly #resources: Listing<Resource>;
  readonly #resourceTemplates: Listing<ResourceTemplate>;
  readonly #prompts: Listing<Prompt>;
  /** Resources subscribed to: subscribed again on every new session (a new session has none). */
  readonly #subscriptions = new Set<string>();
  /** The log level last set: set again on every new session. */
  #loggingLevel: LoggingLevel | undefined;
  /** The client of the connect attempt in progress, not yet current: its notifications are passed on. */
  #establishing: ProtocolClient | undefined;

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
    if (opts.limits !== undefined && (opts.limits === null || typeof opts.limits !== 'object')) throw optionError('MCPConnection: limits', 'an object', opts.limits);
    const maxToolPages = positiveInt(opts.limits?.maxToolPages, 'MCPConnection: limits.maxToolPages', 50);
    const maxTools = positiveInt(opts.limits?.maxTools, 'MCPConnection: limits.maxTools', 5000);
    const maxListPages = positiveInt(opts.limits?.maxListPages, 'MCPConnection: limits.maxListPages', maxToolPages);
    const maxListItems = positiveInt(opts.limits?.maxListItems, 'MCPConnection: limits.maxListItems', maxTools);
    const listing = <T>(method: string, what: string, maxPages: number, maxItems: number, page: Listing<T>['page']): Listing<T> => ({
      method,
      what,
      page,
      maxPages,
      maxItems,
      items: undefined,
      generation: 0,
      flight: undefined,
    });
    this.#tools = listing<Tool>('tools/list', 'tools', maxToolPages, maxTools, async (client, cursor, o) => {
      const r = await client.listTools(cursor, o);
      return { items: r.tools, nextCursor: r.nextCursor };
    });
    this.#resources = listing<Resource>('resources/list', 'resources', maxListPages, maxListItems, async (client, cursor, o) => {
      const r = await client.listResources(cursor, o);
      return { items: r.resources, nextCursor: r.nextCursor };
    });
    this.#resourceTemplates = listing<ResourceTemplate>('resources/templates/list', 'resource templates', maxListPages, maxListItems, async (client, cursor, o) => {
      const r = await client.listResourceTemplates(cursor, o);
      return { items: r.resourceTemplates, nextCursor: r.nextCursor };
    });
    this.#prompts = listing<Prompt>('prompts/list', 'prompts', maxListPages, maxListItems, async (client, cursor, o) => {
      const r = await client.listPrompts(cursor, o);
      return { items: r.prompts, nextCursor: r.nextCursor };
    });
    this.#handlers = this.#resolveHandlers(opts.handlers);
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
    let timeoutMs: number;
    try {
      timeoutMs = this.#timeoutOf(opts, 'callTool');
    } catch (err) {
      return Promise.reject(err);
    }
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
    this.#enter(client);
    try {
      call = this.#callers ? this.#callers.issue(opts.user, () => client.callTool(params, options)) : client.callTool(params, options);
    } catch (err) {
      call = Promise.reject(err);
    }
    return call.then(
      (result) => {
        link?.dispose();
        this.#leave(client);
        this.#failedInRow = 0;
        return this.#checkSize(result, name);
      },
      async (err: unknown) => {
        link?.dispose();
        // Judged against the client as it was when the request failed, before leaving may close it.
        const rejection = client.sessionRejection(err);
        this.#leave(client);
        const error = await this.#failure(err, client, undefined, opts.signal, opts.user, rejection);
        if (error) throw error;
        // The server no longer knew the session and did not process the request: resent once on a new one.
        return this.#fullCall(params, timeoutMs, opts, true);
      },
    );
  }

  /** The full path of `callTool`: see {@link #fullRequest}. */
  async #fullCall(params: { name: string; arguments: Record<string, unknown> }, timeoutMs: number, opts: CallToolOptions, resent: boolean): Promise<CallToolResult> {
    const result = await this.#fullRequest('callTool', timeoutMs, opts, (client, options) => client.callTool(params, options()), resent);
    return this.#checkSize(result, `tool "${params.name}"`);
  }

  /**
   * The full path of one call (of `method`, for option errors): a scope (own timer, the caller's signal through a
   * {@link SignalLink}-like follower, the connection's close), waiting for a connect or reconnect, the caller's
   * credentials, one resend on a new session, and progress handling. `send` gets the options of each request it
   * makes (fresh per request: a listing makes one per page), carrying the scope's signal and remaining time, and
   * the progress handler when the caller asked for progress.
   */
  async #fullRequest<T>(
    method: string,
    timeoutMs: number,
    opts: ConnectionRequestOptions,
    send: (client: ProtocolClient, options: () => ProtocolRequestOptions) => Promise<T>,
    resent = false,
  ): Promise<T> {
    const progress = tracksProgress(opts) ? checkProgressOptions(opts, method) : undefined;
    const scope = this.#scope('call', timeoutMs, opts.signal, progress?.maxTotalTimeoutMs);
    const onprogress = progress ? this.#progressHandler(scope, progress) : undefined;
    const options = (): ProtocolRequestOptions =>
      onprogress
        ? {
            signal: scope.signal,
            // The scope enforces the deadline and the total bound; the SDK's timer only needs to follow it.
            timeout: progress!.resetTimeoutOnProgress ? timeoutMs : scope.remaining(),
            onprogress,
            resetTimeoutOnProgress: progress!.resetTimeoutOnProgress ?? false,
            // The whole bound, not what is left of the first deadline (the scope enforces it exactly).
            ...(progress!.maxTotalTimeoutMs === undefined ? {} : { maxTotalTimeout: progress!.maxTotalTimeoutMs }),
          }
        : { signal: scope.signal, timeout: scope.remaining() };
    try {
      return await this.#request(scope, (client) => send(client, options), resent, opts.user);
    } finally {
      scope.dispose();
    }
  }

  /** The deadline of a call: its own `timeoutMs`, else `config.timeoutMs`, else 60 s. */
  #timeoutOf(opts: ConnectionRequestOptions, method = 'request'): number {
    // A zero or negative deadline is a programming error, not a timeout to retry.
    if (opts.timeoutMs !== undefined) positiveMs(opts.timeoutMs, `${method}: timeoutMs`);
    return opts.timeoutMs ?? this.config.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  }

  /** The SDK's progress handler of one call: moves the scope's deadline when asked, then tells the caller. */
  #progressHandler(scope: OperationScope, opts: ConnectionRequestOptions): (progress: Progress) => void {
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

  /** `result` (of `what`), unless it is larger than `limits.maxResultBytes`: then `SwitchboardError('too_large')`. */
  #checkSize<R>(result: R, what: string): R {
    if (exceedsBytes(result, this.#maxResultBytes)) {
      throw new SwitchboardError('too_large', `Result of ${what} from MCP server "${this.serverName}" is larger than ${this.#maxResultBytes} bytes`, {
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
  listTools(opts: ConnectionRequestOptions = {}): Promise<Tool[]> {
    return this.#list(this.#tools, 'listTools', opts);
  }

  /**
   * Lists every resource (`resources/list`), following `nextCursor` through all pages (at most
   * `limits.maxListPages` pages and `limits.maxListItems` resources, else `SwitchboardError('too_large')`; a
   * repeated cursor is a `server_error`). The list is cached until the server sends
   * `notifications/resources/list_changed` (then `resourcesChanged` is emitted) or the connection
   * re-initializes; concurrent callers share one listing. A caller asking for progress walks the pages on its own.
   *
   * @example
   * ```ts
   * const uris = (await conn.listResources({ timeoutMs: 10_000 })).map((r) => r.uri);
   * ```
   */
  async listResources(opts: ConnectionRequestOptions = {}): Promise<Resource[]> {
    return this.#list(this.#resources, 'listResources', checkRequestOptions(opts, 'listResources'));
  }

  /**
   * Lists every resource template (`resources/templates/list`), over all pages, with the caps and caching of
   * {@link listResources} (dropped on `notifications/resources/list_changed` too).
   *
   * @example
   * ```ts
   * const templates = await conn.listResourceTemplates();
   * console.log(templates.map((t) => t.uriTemplate)); // e.g. ['file:///notes/{name}']
   * ```
   */
  async listResourceTemplates(opts: ConnectionRequestOptions = {}): Promise<ResourceTemplate[]> {
    return this.#list(this.#resourceTemplates, 'listResourceTemplates', checkRequestOptions(opts, 'listResourceTemplates'));
  }

  /**
   * Reads a resource (`resources/read`): its text or base64 `blob` contents. A result larger than
   * `limits.maxResultBytes` is refused with `SwitchboardError('too_large')`.
   *
   * @example
   * ```ts
   * const { contents } = await conn.readResource('file:///notes/today.md', { signal });
   * for (const c of contents) console.log(c.uri, 'text' in c ? c.text : `${c.blob.length} base64 chars`);
   * ```
   */
  async readResource(uri: string, opts: ConnectionRequestOptions = {}): Promise<ReadResourceResult> {
    nonEmptyString(uri, 'readResource: uri');
    checkRequestOptions(opts, 'readResource');
    const result = await this.#fullRequest('readResource', this.#timeoutOf(opts), opts, (client, options) => client.readResource(uri, options()));
    return this.#checkSize(result, 'resources/read');
  }

  /**
   * Subscribes to a resource (`resources/subscribe`): the server then sends `notifications/resources/updated`,
   * emitted as `resourceUpdated` `{ uri }`. The subscription is remembered and sent again on every new session
   * (after a reconnect or a re-initialize: a new session has none), until {@link unsubscribeResource}.
   *
   * @example
   * ```ts
   * conn.on('resourceUpdated', ({ uri }) => void refresh(uri));
   * await conn.subscribeResource('file:///notes/today.md');
   * ```
   */
  async subscribeResource(uri: string, opts: ConnectionRequestOptions = {}): Promise<void> {
    nonEmptyString(uri, 'subscribeResource: uri');
    checkRequestOptions(opts, 'subscribeResource');
    await this.#fullRequest('subscribeResource', this.#timeoutOf(opts), opts, async (client, options) => {
      await client.subscribeResource(uri, options());
      this.#subscriptions.add(uri);
    });
  }

  /**
   * Unsubscribes from a resource (`resources/unsubscribe`). The subscription is forgotten first, so it is not
   * sent again on a new session even when this request fails.
   *
   * @example
   * ```ts
   * await conn.unsubscribeResource('file:///notes/today.md');
   * ```
   */
  async unsubscribeResource(uri: string, opts: ConnectionRequestOptions = {}): Promise<void> {
    nonEmptyString(uri, 'unsubscribeResource: uri');
    checkRequestOptions(opts, 'unsubscribeResource');
    this.#subscriptions.delete(uri);
    await this.#fullRequest('unsubscribeResource', this.#timeoutOf(opts), opts, (client, options) => client.unsubscribeResource(uri, options()));
  }

  /** The resources subscribed to (sent again on every new session). */
  get subscriptions(): readonly string[] {
    return [...this.#subscriptions];
  }

  /**
   * Lists every prompt (`prompts/list`), over all pages, with the caps of {@link listResources}. Cached until the
   * server sends `notifications/prompts/list_changed` (then `promptsChanged` is emitted) or the connection
   * re-initializes; concurrent callers share one listing.
   *
   * @example
   * ```ts
   * const prompts = await conn.listPrompts();
   * console.log(prompts.map((p) => `${p.name}(${(p.arguments ?? []).map((a) => a.name).join(', ')})`));
   * ```
   */
  async listPrompts(opts: ConnectionRequestOptions = {}): Promise<Prompt[]> {
    return this.#list(this.#prompts, 'listPrompts', checkRequestOptions(opts, 'listPrompts'));
  }

  /**
   * Gets a prompt (`prompts/get`) with its arguments filled in. A result larger than `limits.maxResultBytes` is
   * refused with `SwitchboardError('too_large')`.
   *
   * @example
   * ```ts
   * const { messages } = await conn.getPrompt('summarize', { style: 'bullets' }, { timeoutMs: 10_000 });
   * ```
   */
  async getPrompt(name: string, args?: Record<string, string>, opts: ConnectionRequestOptions = {}): Promise<GetPromptResult> {
    nonEmptyString(name, 'getPrompt: name');
    if (args !== undefined) checkStringRecord(args, 'getPrompt: args');
    checkRequestOptions(opts, 'getPrompt');
    const params = args === undefined ? { name } : { name, arguments: args };
    const result = await this.#fullRequest('getPrompt', this.#timeoutOf(opts), opts, (client, options) => client.getPrompt(params, options()));
    return this.#checkSize(result, `prompt "${name}"`);
  }

  /**
   * Asks the server for completions of a prompt or resource template argument (`completion/complete`); returns
   * the result's `completion` (`values`, at most 100, with `total` and `hasMore` when the server gives them).
   *
   * @example
   * ```ts
   * const { values } = await conn.complete({
   *   ref: { type: 'ref/resource', uri: 'file:///notes/{name}' },
   *   argument: { name: 'name', value: 'to' },
   * });
   * ```
   */
  async complete(params: CompleteParams, opts: ConnectionRequestOptions = {}): Promise<Completion> {
    const checked = checkCompleteParams(params);
    checkRequestOptions(opts, 'complete');
    const result = await this.#fullRequest('complete', this.#timeoutOf(opts), opts, (client, options) => client.complete(checked, options()));
    return result.completion;
  }

  /**
   * Sets the level of the log messages the server sends (`logging/setLevel`); they arrive as `serverLog` events.
   * The level is remembered and set again on every new session.
   *
   * @example
   * ```ts
   * conn.on('serverLog', ({ level, logger, data }) => log.info({ level, logger, data }, 'MCP server log'));
   * await conn.setLoggingLevel('warning');
   * ```
   */
  async setLoggingLevel(level: LoggingLevel, opts: ConnectionRequestOptions = {}): Promise<void> {
    oneOf(level, LOGGING_LEVELS, 'setLoggingLevel: level');
    checkRequestOptions(opts, 'setLoggingLevel');
    await this.#fullRequest('setLoggingLevel', this.#timeoutOf(opts), opts, (client, options) => client.setLoggingLevel(level, options()));
    this.#loggingLevel = level;
  }

  /**
   * The SDK `Client` of the current session: a read-only escape hatch for what this class does not wrap (e.g.
   * `getServerCapabilities()`, `getInstructions()`, `ping()`). `undefined` while (re)connecting and after close;
   * a different object after every reconnect or re-initialize, so do not keep it. Do not close it, connect it,
   * or replace its handlers: the connection owns it. Requests made on it bypass this connection's timeouts,
   * reconnects and per-caller credentials.
   *
   * @example
   * ```ts
   * const instructions = conn.client?.getInstructions();
   * const caps = conn.client?.getServerCapabilities();
   * ```
   */
  get client(): SdkClient | undefined {
    return this.#client?.sdkClient;
  }

  /**
   * One list: the cached copy when connected; else a walk over all pages, shared by concurrent callers (made with
   * the credentials of the caller that started it; each keeps its own signal and deadline). A caller asking for
   * progress walks on its own, within its own scope (progress belongs to one chain of requests).
   */
  async #list<T>(listing: Listing<T>, method: string, opts: ConnectionRequestOptions): Promise<T[]> {
    if (listing.items && this.#state === 'connected') return [...listing.items];
    const timeoutMs = this.#timeoutOf(opts);
    if (tracksProgress(opts)) {
      const generation = listing.generation;
      const items = await this.#fullRequest(method, timeoutMs, opts, (client, options) => this.#listAll(listing, client, options, opts.user));
      if (generation === listing.generation && this.#state !== 'closed') listing.items = items;
      return [...items];
    }
    const flightTimeout = Math.max(timeoutMs, this.config.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS);
    const flight = this.#listFlight(listing, flightTimeout, opts.user, false);
    const mine = this.#scope('call', timeoutMs, opts.signal);
    try {
      try {
        return [...(await mine.race(flight.promise))];
      } catch (err) {
        // Another caller's credentials failed the shared listing: this caller's own may be good.
        if (!opts.user || flight.user === opts.user || !isCredentialFailure(err)) throw err;
        return [...(await mine.race(this.#listFlight(listing, flightTimeout, opts.user, true).promise))];
      }
    } finally {
      mine.dispose();
    }
  }

  #listFlight<T>(listing: Listing<T>, timeoutMs: number, user: UserContext | undefined, own: boolean): ListFlight<T> {
    const generation = listing.generation;
    if (!own && listing.flight?.generation === generation) return listing.flight;
    const scope = this.#scope('call', timeoutMs, undefined);
    const options = (): ProtocolRequestOptions => ({ signal: scope.signal, timeout: scope.remaining() });
    const promise = this.#request(scope, (client) => this.#listAll(listing, client, options, user), false, user)
      .then((items) => {
        if (generation === listing.generation && this.#state !== 'closed') listing.items = items;
        return items;
      })
      .finally(() => {
        scope.dispose();
        if (listing.flight === flight) listing.flight = undefined;
      });
    promise.catch(() => {}); // each caller sees the rejection through its own race
    const flight: ListFlight<T> = { generation, promise, user };
    if (!own) listing.flight = flight;
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
    this.#dropLists();
    // Replaced clients still finishing their requests are closed now too (their requests fail connection_closed).
    const retiring = [...this.#retiring];
    this.#retiring.clear();
    await Promise.all([...(client ? [this.#disposeClient(client, true)] : []), ...retiring.map(([c, terminate]) => this.#disposeClient(c, terminate))]);
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
      // Its notifications count from now on (a subscribed resource may change while subscriptions are restored).
      this.#establishing = client;
      await scope.race(client.connect(transport, { signal: scope.signal, timeout: scope.remaining() }));
      scope.throwIfEnded();
      await this.#restoreSession(client, scope);
    } catch (err) {
      this.#establishing = undefined;
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
    this.#establishing = undefined;
    this.#client = client;
    this.#failedInRow = 0;
    this.#dropLists();
    if (this.#lostClients.has(client)) this.#onTransportLost(client, undefined);
  }

  /**
   * A new session has no subscriptions and no log level: sends again the log level set and every subscription,
   * as part of the connect attempt, with the credentials of the most recent caller (these requests belong to no
   * call). A refusal by the server is logged (the subscription stays remembered); a lost transport fails the
   * attempt, so that the reconnect loop tries again.
   */
  async #restoreSession(client: ProtocolClient, scope: OperationScope): Promise<void> {
    const level = this.#loggingLevel;
    const uris = [...this.#subscriptions];
    if (level === undefined && uris.length === 0) return;
    const options = (): ProtocolRequestOptions => ({ signal: scope.signal, timeout: scope.remaining() });
    const sends = [...(level === undefined ? [] : [client.setLoggingLevel(level, options())]), ...uris.map((uri) => client.subscribeResource(uri, options()))];
    const results = await scope.race(Promise.allSettled(sends));
    scope.throwIfEnded();
    if (this.#lostClients.has(client)) {
      throw new SwitchboardError('connect_failed', `MCP server "${this.serverName}" closed the connection while its subscriptions were restored`, {
        retryable: true,
        serverName: this.serverName,
      });
    }
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length > 0) {
      this.#logger.warn(
        { serverName: this.serverName, failed: failed.length, sent: sends.length, error: errorName(failed[0]!.reason) },
        'MCP server refused to restore subscriptions or the log level on a new session',
      );
    }
  }

  /** Whether `client`'s notifications are passed on: it is the current client, or the one being established. */
  #isCurrent(client: ProtocolClient): boolean {
    return client === this.#client || client === this.#establishing;
  }

  /** Checks the host's handlers and binds each to this connection's context. */
  #resolveHandlers(handlers: ConnectionHandlers | undefined): ProtocolClientHandlers | undefined {
    if (handlers === undefined) return undefined;
    if (handlers === null || typeof handlers !== 'object') throw optionError('MCPConnection: handlers', 'an object', handlers);
    const sampling = fn(handlers.sampling, 'MCPConnection: handlers.sampling');
    const roots = fn(handlers.roots, 'MCPConnection: handlers.roots');
    const elicitation = fn(handlers.elicitation, 'MCPConnection: handlers.elicitation');
    const ctx = (signal: AbortSignal): ServerRequestContext => {
      // The connection's (tenant, user); on a user connection, the context of its most recent caller.
      const user = this.#callers?.latest ?? this.user;
      return user ? { serverName: this.serverName, user, signal } : { serverName: this.serverName, signal };
    };
    return {
      ...(sampling ? { sampling: (params, { signal }) => sampling(params, ctx(signal)) } : {}),
      ...(roots ? { roots: ({ signal }) => roots(ctx(signal)) } : {}),
      ...(elicitation ? { elicitation: (params, { signal }) => elicitation(params, ctx(signal)) } : {}),
    };
  }

  #newClient(): ProtocolClient {
    // One JSON Schema validator (ajv, with a bounded cache of compiled tool output schemas) for every
    // connection, instead of the ajv instance each SDK Client otherwise builds for itself (~19 KB apiece).
    const client: ProtocolClient = createProtocolClient({
      clientInfo: this.#clientInfo,
      handlers: this.#handlers,
      jsonSchemaValidator: this.#jsonSchemaValidator ?? defaultSchemaValidator(),
      events: {
        lost: (cause) => this.#onTransportLost(client, cause),
        error: (err) => this.#logger.debug({ serverName: this.serverName, error: errorName(err) }, 'MCP transport error'),
        standbyRejected: () => this.#onStandbyRejected(client),
        toolsChanged: () => {
          if (client !== this.#client) return;
          this.#drop(this.#tools);
          this.#emit('toolsChanged');
        },
        resourcesChanged: () => {
          if (!this.#isCurrent(client)) return;
          this.#drop(this.#resources);
          this.#drop(this.#resourceTemplates);
          this.#emit('resourcesChanged');
        },
        promptsChanged: () => {
          if (!this.#isCurrent(client)) return;
          this.#drop(this.#prompts);
          this.#emit('promptsChanged');
        },
        resourceUpdated: (uri) => {
          if (this.#isCurrent(client)) this.#emit('resourceUpdated', { uri });
        },
        serverLog: (message) => {
          if (this.#isCurrent(client)) this.#emit('serverLog', message);
        },
        elicitationComplete: (elicitationId) => {
          if (this.#isCurrent(client)) this.#emit('elicitationComplete', { elicitationId });
        },
        handlerFailed: (method, err, invalidResult) => {
          this.#logger.warn(
            { serverName: this.serverName, method, error: errorName(err), ...(invalidResult === undefined ? {} : { invalidResult }) },
            'host handler of a server request failed; the server was answered with an error',
          );
        },
      },
    });
    return client;
  }

  #onTransportLost(client: ProtocolClient, cause: unknown): void {
    // Closed by us (a replaced client, once its requests settled): not a loss.
    if (this.#disposing.has(client)) return;
    this.#lostClients.add(client);
    if (client !== this.#client || this.#state !== 'connected') return;
    this.#logger.warn({ serverName: this.serverName, error: errorName(cause) }, 'MCP connection lost; reconnecting');
    void this.#beginReconnect(client, false);
  }

  /**
   * Replaces `failed` (if it is still the current client) by a new connection; joins a reconnect already
   * running. `immediate`: the first attempt is made without delay (expired session: nothing to wait for).
   */
  #beginReconnect(failed: ProtocolClient, immediate: boolean, retire?: { terminate: boolean }): Promise<void> {
    if (failed !== this.#client || this.#state !== 'connected') return this.#pending ?? Promise.resolve();
    this.#client = undefined;
    // A lost transport is closed at once (its requests are dead); a replaced one once its requests settle.
    if (retire) this.#retire(failed, retire.terminate);
    else void this.#disposeClient(failed, false);
    this.#dropLists();
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
      // With reconnecting disabled (maxAttempts 0), an expired session is still re-initialized once.
      if (budgeted === undefined && !(immediate && attempt === 0 && this.#retry.options.maxAttempts === 0)) break;
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
    this.#dropLists();
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
      this.#enter(client);
      try {
        const result = await scope.race(this.#callers ? this.#callers.issue(user, () => send(client)) : send(client));
        this.#leave(client);
        this.#failedInRow = 0;
        return result;
      } catch (err) {
        const rejection = resent ? undefined : client.sessionRejection(err);
        this.#leave(client);
        const error = await this.#failure(err, client, scope.error, undefined, user, rejection);
        if (error) throw error;
        resent = true;
      }
    }
  }

  /**
   * What one failed request means, the same for every call path. `undefined`: the server no longer knew the
   * session and did not process the request, a re-initialize has been started, and the request may be sent once
   * more (`rejection`: what the client made of the error when it failed). Otherwise the error to throw, in this order: the operation's own end (its deadline, the
   * caller's abort, the connection's close), an error of ours or of a credential provider (unchanged, as the
   * same object), a closed connection, a lost transport (retryable `transport_error`: the request may have run,
   * so it is not resent), then {@link classifyError}. Retryable transport failures in a row on one client
   * mark it lost, so that a connection whose every request fails does not stay `connected`.
   */
  async #failure(
    err: unknown,
    client: ProtocolClient,
    ended: Error | undefined,
    signal: AbortSignal | undefined,
    user: UserContext | undefined,
    rejection: 'not_found' | 'bad_request' | undefined,
  ): Promise<SwitchboardError | undefined> {
    if (ended instanceof SwitchboardError) return ended;
    if (signal?.aborted) return this.#scopeError('call', 'aborted', signal.reason);
    if (err instanceof SwitchboardError) return err;
    if (this.#closeController.signal.aborted || this.#state === 'closed') return this.#closedError();
    // A 404 says the session is gone; a 400 may be a gateway refusing this one request, so a ping on the same
    // session decides (one ping per client, shared by concurrent failures), and a live session is left alone.
    if (rejection && (rejection === 'not_found' || (await this.#sessionGone(client, user)))) {
      this.#reinitialize(client, user);
      return undefined;
    }
    const error = this.#lostDuringRequest(err, client) ?? classifyError(err, 'call', this.serverName, this.#target);
    if (error.code === 'transport_error' && error.retryable) this.#noteTransportFailure(client, error);
    return error;
  }

  /**
   * Whether `client`'s session is gone after a 400: true once it was replaced for that reason, else one `ping` on
   * it (shared by every request that failed meanwhile) says so by being rejected as well.
   */
  #sessionGone(client: ProtocolClient, user: UserContext | undefined): Promise<boolean> {
    if (this.#sessionLost.has(client)) return Promise.resolve(true);
    let probe = this.#probes.get(client);
    if (!probe) {
      const ping = () => client.ping({ timeout: Math.min(this.config.initTimeoutMs ?? DEFAULT_INIT_TIMEOUT_MS, SESSION_PROBE_TIMEOUT_MS) });
      probe = (this.#callers ? this.#callers.issue(user, ping) : ping()).then(
        () => false,
        (err: unknown) => client.sessionRejection(err) !== undefined,
      );
      this.#probes.set(client, probe);
      // A live session is probed again at the next 400: a refused request says nothing about the ones after it.
      void probe.then((gone) => {
        if (!gone) this.#probes.delete(client);
      });
    }
    return probe;
  }

  /**
   * Counts a retryable transport failure of `client`; enough in a row and the client is replaced (its requests
   * in flight go on, and its session is ended after them). Statuses a busy server answers (429, 408, any 4xx) do
   * not count: the connection is fine, the server asks to slow down.
   */
  #noteTransportFailure(client: ProtocolClient, error: SwitchboardError): void {
    const status = summarizeCause(error)?.status;
    if (status !== undefined && status > 0 && status < 500) return;
    if (client !== this.#client || ++this.#failedInRow < FAILURES_BEFORE_RECONNECT) return;
    this.#failedInRow = 0;
    this.#logger.warn({ serverName: this.serverName, failures: FAILURES_BEFORE_RECONNECT, error: errorName(error) }, 'MCP requests keep failing; reconnecting');
    if (this.#state === 'connected') void this.#beginReconnect(client, false, { terminate: true });
  }

  /** Counts a request in flight on `client`. */
  #enter(client: ProtocolClient): void {
    this.#inFlight.set(client, (this.#inFlight.get(client) ?? 0) + 1);
  }

  /** A request on `client` settled: a replaced client is closed once its last request has. */
  #leave(client: ProtocolClient): void {
    const left = (this.#inFlight.get(client) ?? 1) - 1;
    this.#inFlight.set(client, left);
    if (left > 0) return;
    const terminate = this.#retiring.get(client);
    if (terminate === undefined) return;
    this.#retiring.delete(client);
    void this.#disposeClient(client, terminate);
  }

  /**
   * Closes a replaced client now, or once the requests still in flight on it have settled (they are not cut:
   * a session replaced after failures or a refused request may still answer them; a forgotten one answers
   * 404 / 400 and they are resent on the new session). `terminate`: end its server-side session too.
   */
  #retire(client: ProtocolClient, terminate: boolean): void {
    if ((this.#inFlight.get(client) ?? 0) === 0) void this.#disposeClient(client, terminate);
    else this.#retiring.set(client, terminate);
  }

  /**
   * The server forgot the session (404, or 400 after a restart): start a re-initialize, or join one a concurrent
   * call started. The new session is opened with the credentials of the caller whose request met the rejection
   * (its `initialize` belongs to no call, so it uses the most recent caller: this one, from now on).
   */
  #reinitialize(client: ProtocolClient, user?: UserContext): void {
    if (user && client === this.#client) this.#callers?.observe(user);
    if (client === this.#client) this.#logger.info({ serverName: this.serverName }, 'MCP session expired; re-initializing');
    this.#sessionLost.add(client);
    // Failure shows up in #readyClient of the resend. The old session is gone: nothing to DELETE.
    void this.#beginReconnect(client, true, { terminate: false });
  }

  /**
   * The standby stream was refused for `client`'s session (the server restarted while the connection was idle):
   * once a `ping` on the session is refused too (a server may refuse GETs and keep the session), the session is
   * re-initialized at once, so that the server's messages outside a call reach us again before the next call.
   */
  #onStandbyRejected(client: ProtocolClient): void {
    if (client !== this.#client || this.#state !== 'connected') return;
    void this.#sessionGone(client, undefined).then((gone) => {
      if (gone && client === this.#client && this.#state === 'connected') this.#reinitialize(client);
    });
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

  /** Every page of `listing`, within its caps; a cursor seen before is a `server_error`. */
  async #listAll<T>(listing: Listing<T>, client: ProtocolClient, options: () => ProtocolRequestOptions, user: UserContext | undefined): Promise<T[]> {
    const items: T[] = [];
    const seen = new Set<string>();
    let cursor: string | undefined;
    for (let page = 0; page < listing.maxPages; page++) {
      const list = () => listing.page(client, cursor, options());
      const result = await (this.#callers ? this.#callers.issue(user, list) : list());
      items.push(...result.items);
      if (items.length > listing.maxItems) {
        throw new SwitchboardError('too_large', `MCP server "${this.serverName}" lists more than ${listing.maxItems} ${listing.what}`, { serverName: this.serverName });
      }
      cursor = result.nextCursor;
      if (cursor === undefined) return items;
      // A cursor seen before would walk the same pages again until the page cap: a server bug, said at once.
      if (seen.has(cursor)) {
        throw new SwitchboardError('server_error', `MCP server "${this.serverName}" repeated a ${listing.method} pagination cursor (page ${page + 2}); the listing was stopped`, {
          serverName: this.serverName,
        });
      }
      seen.add(cursor);
    }
    throw new SwitchboardError('too_large', `MCP server "${this.serverName}" lists ${listing.what} over more than ${listing.maxPages} pages`, {
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
    return timeoutError(phase, serverName, signalReason as TimeoutDetail | undefined);
  }

  /** The scope's own reason wins (the SDK reports an abort as a generic error); else classify. */
  #toError(err: unknown, scope: OperationScope, phase: OperationPhase): SwitchboardError {
    if (scope.error instanceof SwitchboardError) return scope.error;
    if (this.#state === 'closed' && !(err instanceof SwitchboardError)) return this.#closedError();
    // The SDK's timer (set to what the scope had left) may fire just before the scope's own: name the scope's limit.
    if (isRequestTimeout(err)) return this.#scopeError(phase, 'timeout', scope.timeoutDetail());
    return classifyError(err, phase, this.serverName, this.#target);
  }

  #closedError(): SwitchboardError {
    return new SwitchboardError('connection_closed', `Connection to MCP server "${this.serverName}" is closed`, { serverName: this.serverName });
  }

  #joinPending(signal: AbortSignal | undefined): Promise<void> {
    const pending = this.#pending ?? Promise.resolve();
    if (!signal) return pending;
    // A safety bound only, far past the connect's own `initTimeoutMs` (which ends the pending connect first), so
    // that it never reports a deadline the config did not set.
    const scope = this.#scope('connect', (this.config.initTimeoutMs ?? DEFAULT_INIT_TIMEOUT_MS) * 10, signal);
    return scope.race(pending).finally(() => scope.dispose());
  }

  /** Closes a client that is no longer current; DELETEs its session first when asked, within a bound. */
  async #disposeClient(client: ProtocolClient, terminate: boolean): Promise<void> {
    this.#disposing.add(client);
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

  /** Drops a cached list; a listing in flight is then not cached either. */
  #drop(listing: Listing<unknown>): void {
    listing.items = undefined;
    listing.generation++;
  }

  /** Drops every cached list (a new session, or none). */
  #dropLists(): void {
    this.#drop(this.#tools);
    this.#drop(this.#resources);
    this.#drop(this.#resourceTemplates);
    this.#drop(this.#prompts);
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
