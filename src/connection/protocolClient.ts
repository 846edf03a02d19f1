/**
 * The one seam between a connection and the MCP protocol engine. {@link MCPConnection} speaks to the server
 * only through {@link ProtocolClient}; this module is the only place that knows the SDK `Client`, its error
 * classes and its notification schemas. A second engine (the stateless 2026-07-28 protocol of the SDK's v2
 * client packages) can be added behind the same interface without touching connections or pools.
 * @module
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SseError } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { RequestOptions } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import {
  CreateMessageRequestSchema,
  ElicitationCompleteNotificationSchema,
  ElicitRequestSchema,
  ErrorCode,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  McpError,
  PromptListChangedNotificationSchema,
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
  type CallToolResult,
  type ClientCapabilities,
  type CompleteRequest,
  type CompleteResult,
  type CreateMessageRequest,
  type CreateMessageResult,
  type ElicitRequestFormParams,
  type ElicitRequestURLParams,
  type ElicitResult,
  type GetPromptResult,
  type ListPromptsResult,
  type ListResourcesResult,
  type ListResourceTemplatesResult,
  type ListToolsResult,
  type LoggingLevel,
  type ReadResourceResult,
  type Root,
} from '@modelcontextprotocol/sdk/types.js';
import type { JsonSchemaType, jsonSchemaValidator } from '@modelcontextprotocol/sdk/validation';
import { defaultSchemaValidator } from './schemaValidator.js';

/**
 * Per-request options handed to the engine (the SDK's `RequestOptions`: `signal`, `timeout` in ms,
 * `onprogress`, `resetTimeoutOnProgress`, `maxTotalTimeout` in ms).
 *
 * @example
 * ```ts
 * const opts: ProtocolRequestOptions = { timeout: 30_000, resetTimeoutOnProgress: true, onprogress: (p) => log(p.progress) };
 * ```
 */
export type ProtocolRequestOptions = RequestOptions;

/**
 * What the engine reports to its connection.
 *
 * @example
 * ```ts
 * const events: ProtocolClientEvents = {
 *   lost: (cause) => reconnect(cause),
 *   error: (err) => log.debug({ name: err.name }, 'transport error'),
 *   toolsChanged: () => cache.clear(),
 * };
 * ```
 */
export interface ProtocolClientEvents {
  /** The transport is gone (closed, or an event stream broke for good): nothing more will arrive. */
  lost(cause: unknown): void;
  /** A transport error that does not by itself end the connection (logged, never a token). */
  error(err: Error): void;
  /**
   * The standby stream (the GET a streamable HTTP connection keeps open for server messages) was refused for
   * this session: 404, or 400 as the SDK's example servers answer after a restart. Nothing else may notice while
   * the connection is idle.
   */
  standbyRejected?(rejection: 'not_found' | 'bad_request'): void;
  /** The server sent `notifications/tools/list_changed`. */
  toolsChanged(): void;
  /** The server sent `notifications/resources/list_changed` (resources and resource templates). */
  resourcesChanged?(): void;
  /** The server sent `notifications/prompts/list_changed`. */
  promptsChanged?(): void;
  /** The server sent `notifications/resources/updated` for a subscribed resource. */
  resourceUpdated?(uri: string): void;
  /** The server sent a log message (`notifications/message`). */
  serverLog?(message: ProtocolLogMessage): void;
  /**
   * The server sent `notifications/elicitation/complete`: the URL-mode elicitation `elicitationId` is done
   * (listened to only when an `elicitation` handler is given).
   */
  elicitationComplete?(elicitationId: string): void;
  /**
   * A handler of a server request failed (it threw, or returned an invalid result): the server is answered
   * with a JSON-RPC error; this reports it to the host. `method` is the request's, e.g. `elicitation/create`;
   * `invalidResult` says what was wrong with the result, when the handler returned one (never the result's values).
   */
  handlerFailed?(method: string, err: unknown, invalidResult?: string): void;
}

/**
 * A server's log message (`notifications/message`), as the engine reports it.
 *
 * @example
 * ```ts
 * const message: ProtocolLogMessage = { level: 'warning', logger: 'db', data: { slowQueryMs: 900 } };
 * ```
 */
export interface ProtocolLogMessage {
  /** Its severity (RFC 5424 levels, as in the MCP spec). */
  level: LoggingLevel;
  /** The server-side logger's name, when the server gave one. */
  logger?: string;
  /** Anything JSON-serialisable the server sent. */
  data: unknown;
}

/**
 * What a server request handed to the host carries besides its params.
 *
 * @example
 * ```ts
 * const handlers: ProtocolClientHandlers = {
 *   roots: ({ signal }: ProtocolHandlerExtra) => (signal.aborted ? [] : [{ uri: 'file:///workspace' }]),
 * };
 * ```
 */
export interface ProtocolHandlerExtra {
  /** Aborted when the server cancels its request or the session ends. */
  signal: AbortSignal;
}

/**
 * An `elicitation/create` request's params as handed to the host (MCP 2025-11-25, "Elicitation"): form mode
 * (`mode: 'form'`, also when the server left `mode` out) with `message` and a flat `requestedSchema`, or URL
 * mode (`mode: 'url'`) with `message`, `url` and `elicitationId`.
 *
 * @example
 * ```ts
 * const describe = (request: ElicitationRequest) =>
 *   request.mode === 'url' ? `open ${request.url} (${request.elicitationId})` : `fill in ${Object.keys(request.requestedSchema.properties).join(', ')}`;
 * ```
 */
export type ElicitationRequest = (ElicitRequestFormParams & { mode: 'form' }) | ElicitRequestURLParams;

/**
 * Answers to requests the server sends the client. A client capability is declared only for a handler given
 * (`sampling: {}`, `roots: { listChanged: false }`, `elicitation: { form: {}, url: {} }`); without it the
 * capability is absent and the SDK answers the server's request with "Method not found".
 *
 * @example
 * ```ts
 * const handlers: ProtocolClientHandlers = {
 *   sampling: async (params) => ({ role: 'assistant', model: 'm', content: { type: 'text', text: `${params.messages.length} messages` } }),
 *   roots: () => [{ uri: 'file:///workspace', name: 'workspace' }],
 * };
 * ```
 */
export interface ProtocolClientHandlers {
  /** `sampling/createMessage`. */
  sampling?: (params: CreateMessageRequest['params'], extra: ProtocolHandlerExtra) => Promise<CreateMessageResult>;
  /** `roots/list`. */
  roots?: (extra: ProtocolHandlerExtra) => Promise<Root[]> | Root[];
  /**
   * `elicitation/create`, form and URL mode. The result is checked before it is sent: on `accept` in form mode
   * the schema's defaults fill the fields left out (SEP-1034), then the content must match `requestedSchema`;
   * an invalid result answers the server with a JSON-RPC error (and is reported as `handlerFailed`).
   */
  elicitation?: (params: ElicitationRequest, extra: ProtocolHandlerExtra) => Promise<ElicitResult>;
}

/**
 * One protocol session over one transport: what a connection needs of an MCP client engine.
 *
 * @example
 * ```ts
 * const client: ProtocolClient = createProtocolClient({ clientInfo, events });
 * await client.connect(transport, { timeout: 30_000 });
 * const result = await client.callTool({ name: 'search', arguments: { q: 'mcp' } }, { timeout: 10_000 });
 * ```
 */
export interface ProtocolClient {
  /** Starts `transport` and runs the `initialize` handshake. */
  connect(transport: Transport, opts: ProtocolRequestOptions): Promise<void>;
  /** `tools/call`. */
  callTool(params: { name: string; arguments?: Record<string, unknown> }, opts: ProtocolRequestOptions): Promise<CallToolResult>;
  /** One page of `tools/list`. */
  listTools(cursor: string | undefined, opts: ProtocolRequestOptions): Promise<ListToolsResult>;
  /** One page of `resources/list`. */
  listResources(cursor: string | undefined, opts: ProtocolRequestOptions): Promise<ListResourcesResult>;
  /** One page of `resources/templates/list`. */
  listResourceTemplates(cursor: string | undefined, opts: ProtocolRequestOptions): Promise<ListResourceTemplatesResult>;
  /** `resources/read`. */
  readResource(uri: string, opts: ProtocolRequestOptions): Promise<ReadResourceResult>;
  /** `resources/subscribe`. */
  subscribeResource(uri: string, opts: ProtocolRequestOptions): Promise<void>;
  /** `resources/unsubscribe`. */
  unsubscribeResource(uri: string, opts: ProtocolRequestOptions): Promise<void>;
  /** One page of `prompts/list`. */
  listPrompts(cursor: string | undefined, opts: ProtocolRequestOptions): Promise<ListPromptsResult>;
  /** `prompts/get`. */
  getPrompt(params: { name: string; arguments?: Record<string, string> }, opts: ProtocolRequestOptions): Promise<GetPromptResult>;
  /** `completion/complete`. */
  complete(params: CompleteRequest['params'], opts: ProtocolRequestOptions): Promise<CompleteResult>;
  /** `logging/setLevel`. */
  setLoggingLevel(level: LoggingLevel, opts: ProtocolRequestOptions): Promise<void>;
  /**
   * The SDK v1 `Client` of this session, for what the package does not wrap; `undefined` for an engine that has
   * none. Not to be closed or given other handlers by its users.
   */
  readonly sdkClient: SdkClient | undefined;
  /** The streamable HTTP session id (`Mcp-Session-Id`), when the transport has one. */
  readonly sessionId: string | undefined;
  /** Ends the server-side session (streamable HTTP `DELETE`); `undefined` when there is none to end. */
  terminateSession(): Promise<void> | undefined;
  /** Closes the transport (for stdio, the child process). */
  close(): Promise<void>;
  /**
   * Whether `err` says the server may no longer know this session, for a request that carried a session id:
   * `'not_found'` for HTTP 404 (the spec's answer for an unknown session: it is gone), `'bad_request'` for HTTP 400
   * (what the SDK's own example servers answer after a restart, but also what a gateway answers to a request it
   * refuses: to be confirmed with a `ping`). `undefined` for anything else. A rejected request was not processed.
   */
  sessionRejection(err: unknown): 'not_found' | 'bad_request' | undefined;
  /** `ping`: a request the server answers at once, used to tell a dead session from a refused request. */
  ping(opts: ProtocolRequestOptions): Promise<void>;
}

/**
 * Options of {@link createProtocolClient}.
 *
 * @example
 * ```ts
 * const opts: ProtocolClientOptions = { clientInfo: { name: 'portal', version: '1.0.0' }, events };
 * ```
 */
export interface ProtocolClientOptions {
  /** Sent in `initialize`. */
  clientInfo: { name: string; version: string };
  /** Validates tool output schemas; default the SDK's own. */
  jsonSchemaValidator?: jsonSchemaValidator;
  /** Where the engine reports losses, errors and notifications. */
  events: ProtocolClientEvents;
  /** Answers to the server's requests; each one given declares its client capability. */
  handlers?: ProtocolClientHandlers;
}

/**
 * The SDK v1 `Client` class, as the engine exposes it (`ProtocolClient.sdkClient`, `MCPConnection.client`): the
 * type only, so that connections name it without importing the SDK `Client` themselves.
 *
 * @example
 * ```ts
 * const sdk: SdkClient | undefined = protocolClient.sdkClient;
 * console.log(sdk?.getServerCapabilities());
 * ```
 */
export type SdkClient = Client;

/**
 * The client capabilities declared for a set of handlers: `sampling: {}`, `roots: { listChanged: false }` and
 * `elicitation: { form: {}, url: {} }` (both modes of MCP 2025-11-25) only for a handler given; nothing else
 * (tasks and experimental capabilities are not declared).
 *
 * @example
 * ```ts
 * clientCapabilitiesFor({ roots: () => [] }); // { roots: { listChanged: false } }
 * clientCapabilitiesFor({ elicitation: async () => ({ action: 'decline' }) }); // { elicitation: { form: {}, url: {} } }
 * clientCapabilitiesFor(undefined); // {}
 * ```
 */
export function clientCapabilitiesFor(handlers: ProtocolClientHandlers | undefined): ClientCapabilities {
  return {
    ...(handlers?.sampling ? { sampling: {} } : {}),
    ...(handlers?.roots ? { roots: { listChanged: false } } : {}),
    ...(handlers?.elicitation ? { elicitation: { form: {}, url: {} } } : {}),
  };
}

/**
 * The result of the host's elicitation handler, checked and completed for the wire: `action` must be `accept`,
 * `decline` or `cancel`; `content` goes only with `accept` in form mode, where the defaults of
 * `requestedSchema` fill the fields left out (SEP-1034: string, number, integer, boolean and enum defaults) and
 * the content must then match `requestedSchema`. Anything else throws an `McpError` saying what is wrong.
 */
function completeElicitResult(params: ElicitationRequest, result: unknown, validator: jsonSchemaValidator): ElicitResult {
  if (result === null || typeof result !== 'object' || Array.isArray(result)) {
    throw new McpError(ErrorCode.InternalError, `The host's elicitation handler returned ${result === null ? 'null' : typeof result}, not an elicitation result`);
  }
  const { action, content, _meta } = result as { action?: unknown; content?: unknown; _meta?: unknown };
  if (action !== 'accept' && action !== 'decline' && action !== 'cancel') {
    throw new McpError(ErrorCode.InternalError, `The host's elicitation handler returned action ${JSON.stringify(action) ?? 'undefined'}; expected 'accept', 'decline' or 'cancel'`);
  }
  const meta = _meta !== null && typeof _meta === 'object' && !Array.isArray(_meta) ? { _meta: _meta as ElicitResult['_meta'] } : {};
  if (action !== 'accept' || params.mode === 'url') return { action, ...meta };
  if (content !== undefined && (content === null || typeof content !== 'object' || Array.isArray(content))) {
    throw new McpError(ErrorCode.InternalError, `The host's elicitation handler accepted with content that is not an object`);
  }
  const filled: Record<string, unknown> = { ...(content as Record<string, unknown> | undefined) };
  for (const [key, prop] of Object.entries(params.requestedSchema.properties)) {
    if (filled[key] === undefined && prop !== null && typeof prop === 'object' && 'default' in prop && prop.default !== undefined) filled[key] = prop.default;
  }
  for (const key of Object.keys(filled)) if (filled[key] === undefined) delete filled[key];
  let check;
  try {
    check = validator.getValidator(params.requestedSchema as JsonSchemaType)(filled);
  } catch {
    // A schema the validator cannot compile: the server checks the content against its own schema anyway.
    check = { valid: true as const };
  }
  if (!check.valid) {
    throw new McpError(ErrorCode.InternalError, `The host's elicitation handler accepted with content that does not match the requested schema: ${check.errorMessage ?? 'invalid'}`);
  }
  return { action, content: filled as NonNullable<ElicitResult['content']>, ...meta };
}

/** A streamable HTTP client transport, recognised by what it can do rather than by class. */
interface SessionTransport extends Transport {
  terminateSession(): Promise<void>;
}

/**
 * The SDK v1 `Client` behind {@link ProtocolClient}.
 *
 * @example
 * ```ts
 * const client = createProtocolClient({ clientInfo: { name: 'portal', version: '1.0.0' }, events });
 * ```
 */
export function createProtocolClient(opts: ProtocolClientOptions): ProtocolClient {
  return new SdkProtocolClient(opts);
}

class SdkProtocolClient implements ProtocolClient {
  readonly #client: Client;

  constructor(opts: ProtocolClientOptions) {
    const { events, handlers } = opts;
    const client = new Client(opts.clientInfo, {
      capabilities: clientCapabilitiesFor(handlers),
      ...(opts.jsonSchemaValidator ? { jsonSchemaValidator: opts.jsonSchemaValidator } : {}),
    });
    client.onclose = () => events.lost(undefined);
    client.onerror = (err: Error) => {
      events.error(err);
      // The SDK reports a refused standby GET (and its reopenings) only here, as a StreamableHTTPError whose
      // message it starts with "Failed to open SSE stream" (a refused POST is also thrown to its caller).
      if (events.standbyRejected && err instanceof StreamableHTTPError && err.message.includes('Failed to open SSE stream')) {
        const rejection = this.sessionRejection(err);
        if (rejection) events.standbyRejected(rejection);
      }
      // The SSE transport's event stream broke: nothing can reach us any more on this connection. Reported on
      // a microtask: EventSource arms its own reconnect timer right after this callback returns, and only a
      // close() after that clears it (our reconnect policy, not EventSource's, decides what happens next).
      if (err instanceof SseError) queueMicrotask(() => events.lost(err));
    };
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => events.toolsChanged());
    const { resourcesChanged, promptsChanged, resourceUpdated, serverLog } = events;
    if (resourcesChanged) client.setNotificationHandler(ResourceListChangedNotificationSchema, () => resourcesChanged.call(events));
    if (promptsChanged) client.setNotificationHandler(PromptListChangedNotificationSchema, () => promptsChanged.call(events));
    if (resourceUpdated) client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => resourceUpdated.call(events, n.params.uri));
    if (serverLog) {
      client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
        const { level, logger, data } = n.params;
        serverLog.call(events, logger === undefined ? { level, data } : { level, logger, data });
      });
    }
    const sampling = handlers?.sampling;
    if (sampling) {
      client.setRequestHandler(CreateMessageRequestSchema, async (request, extra) => {
        try {
          return await sampling(request.params, { signal: extra.signal });
        } catch (err) {
          events.handlerFailed?.('sampling/createMessage', err);
          throw err;
        }
      });
    }
    const roots = handlers?.roots;
    if (roots) client.setRequestHandler(ListRootsRequestSchema, async (_request, extra) => ({ roots: await roots({ signal: extra.signal }) }));
    const elicitation = handlers?.elicitation;
    if (elicitation) {
      const validator = opts.jsonSchemaValidator ?? defaultSchemaValidator();
      // The SDK checks the request (and that its mode was declared) before this runs, and the result's shape after.
      client.setRequestHandler(ElicitRequestSchema, async (request, extra) => {
        const params: ElicitationRequest = request.params.mode === 'url' ? request.params : { ...request.params, mode: 'form' };
        let answer: unknown;
        try {
          answer = await elicitation(params, { signal: extra.signal });
        } catch (err) {
          events.handlerFailed?.('elicitation/create', err);
          // The server is never sent the text of the host's own errors (an McpError is the host's deliberate answer).
          throw err instanceof McpError ? err : new McpError(ErrorCode.InternalError, 'The client could not answer the elicitation request');
        }
        try {
          return completeElicitResult(params, answer, validator);
        } catch (err) {
          events.handlerFailed?.('elicitation/create', err, (err as Error).message);
          throw err;
        }
      });
      const { elicitationComplete } = events;
      if (elicitationComplete) client.setNotificationHandler(ElicitationCompleteNotificationSchema, (n) => elicitationComplete.call(events, n.params.elicitationId));
    }
    this.#client = client;
  }

  get sdkClient(): Client {
    return this.#client;
  }

  connect(transport: Transport, opts: ProtocolRequestOptions): Promise<void> {
    return this.#client.connect(transport, opts);
  }

  callTool(params: { name: string; arguments?: Record<string, unknown> }, opts: ProtocolRequestOptions): Promise<CallToolResult> {
    return this.#client.callTool(params, undefined, opts) as Promise<CallToolResult>;
  }

  listTools(cursor: string | undefined, opts: ProtocolRequestOptions): Promise<ListToolsResult> {
    return this.#client.listTools(cursor === undefined ? undefined : { cursor }, opts);
  }

  listResources(cursor: string | undefined, opts: ProtocolRequestOptions): Promise<ListResourcesResult> {
    return this.#client.listResources(cursor === undefined ? undefined : { cursor }, opts);
  }

  listResourceTemplates(cursor: string | undefined, opts: ProtocolRequestOptions): Promise<ListResourceTemplatesResult> {
    return this.#client.listResourceTemplates(cursor === undefined ? undefined : { cursor }, opts);
  }

  readResource(uri: string, opts: ProtocolRequestOptions): Promise<ReadResourceResult> {
    return this.#client.readResource({ uri }, opts);
  }

  async subscribeResource(uri: string, opts: ProtocolRequestOptions): Promise<void> {
    await this.#client.subscribeResource({ uri }, opts);
  }

  async unsubscribeResource(uri: string, opts: ProtocolRequestOptions): Promise<void> {
    await this.#client.unsubscribeResource({ uri }, opts);
  }

  listPrompts(cursor: string | undefined, opts: ProtocolRequestOptions): Promise<ListPromptsResult> {
    return this.#client.listPrompts(cursor === undefined ? undefined : { cursor }, opts);
  }

  getPrompt(params: { name: string; arguments?: Record<string, string> }, opts: ProtocolRequestOptions): Promise<GetPromptResult> {
    return this.#client.getPrompt(params, opts);
  }

  complete(params: CompleteRequest['params'], opts: ProtocolRequestOptions): Promise<CompleteResult> {
    return this.#client.complete(params, opts);
  }

  async setLoggingLevel(level: LoggingLevel, opts: ProtocolRequestOptions): Promise<void> {
    await this.#client.setLoggingLevel(level, opts);
  }

  get sessionId(): string | undefined {
    return this.#client.transport?.sessionId;
  }

  terminateSession(): Promise<void> | undefined {
    const t = this.#client.transport as Partial<SessionTransport> | undefined;
    return t && typeof t.terminateSession === 'function' && t.sessionId !== undefined ? (t as SessionTransport).terminateSession() : undefined;
  }

  close(): Promise<void> {
    return this.#client.close();
  }

  sessionRejection(err: unknown): 'not_found' | 'bad_request' | undefined {
    if (!(err instanceof StreamableHTTPError) || this.sessionId === undefined) return undefined;
    return err.code === 404 ? 'not_found' : err.code === 400 ? 'bad_request' : undefined;
  }

  async ping(opts: ProtocolRequestOptions): Promise<void> {
    await this.#client.ping(opts);
  }
}
