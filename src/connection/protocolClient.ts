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
import { ToolListChangedNotificationSchema, type CallToolResult, type ListToolsResult } from '@modelcontextprotocol/sdk/types.js';
import type { jsonSchemaValidator } from '@modelcontextprotocol/sdk/validation';

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
  /** The server sent `notifications/tools/list_changed`. */
  toolsChanged(): void;
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
  /** The streamable HTTP session id (`Mcp-Session-Id`), when the transport has one. */
  readonly sessionId: string | undefined;
  /** Ends the server-side session (streamable HTTP `DELETE`); `undefined` when there is none to end. */
  terminateSession(): Promise<void> | undefined;
  /** Closes the transport (for stdio, the child process). */
  close(): Promise<void>;
  /**
   * Whether `err` says the server no longer knows this session: HTTP 404, or 400 (what the SDK's own example
   * servers answer after a restart), to a request that carried a session id. The request was not processed and
   * may be sent once more on a new session.
   */
  isSessionRejected(err: unknown): boolean;
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
    const { events } = opts;
    const client = new Client(opts.clientInfo, {
      capabilities: {},
      ...(opts.jsonSchemaValidator ? { jsonSchemaValidator: opts.jsonSchemaValidator } : {}),
    });
    client.onclose = () => events.lost(undefined);
    client.onerror = (err: Error) => {
      events.error(err);
      // The SSE transport's event stream broke: nothing can reach us any more on this connection. Reported on
      // a microtask: EventSource arms its own reconnect timer right after this callback returns, and only a
      // close() after that clears it (our reconnect policy, not EventSource's, decides what happens next).
      if (err instanceof SseError) queueMicrotask(() => events.lost(err));
    };
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => events.toolsChanged());
    this.#client = client;
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

  isSessionRejected(err: unknown): boolean {
    return err instanceof StreamableHTTPError && (err.code === 404 || err.code === 400) && this.sessionId !== undefined;
  }
}
