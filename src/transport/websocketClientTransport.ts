/**
 * MCP over WebSocket (subprotocol `mcp`), client side, on undici's WebSocket so it can use our dispatcher.
 * @module
 */
import { WebSocket, type Dispatcher } from 'undici';
import { ErrorCode, JSONRPCMessageSchema, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { SwitchboardError, safeUrl } from '../errors.js';
import { PEEK_BYTES, peekEnvelope, type Envelope } from './envelopePeek.js';
import { localErrorAnswer } from './localAnswer.js';

/**
 * The WebSocket subprotocol of MCP.
 *
 * @example
 * ```ts
 * new WebSocketServer({ handleProtocols: (p) => (p.has(MCP_WEBSOCKET_SUBPROTOCOL) ? MCP_WEBSOCKET_SUBPROTOCOL : false) });
 * ```
 */
export const MCP_WEBSOCKET_SUBPROTOCOL = 'mcp';

/**
 * How long `close()` waits for the server to answer the closing handshake, in ms.
 *
 * @example
 * ```ts
 * await transport.close(); // resolves within CLOSE_WAIT_MS even if the server never answers
 * ```
 */
export const CLOSE_WAIT_MS = 2_000;

/**
 * Default largest message accepted or sent, in bytes (16 MiB): the same as the default result cap of a
 * connection (`limits.maxResultBytes`).
 *
 * @example
 * ```ts
 * new WebSocketClientTransport(url, { maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES * 2 });
 * ```
 */
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/**
 * The connection could not be opened: refused, unreachable, not upgraded, or the server did not accept the
 * subprotocol `mcp`. Not a `SwitchboardError` on purpose: the connection's error classification turns it, like any other
 * transport's connect failure, into a retryable `connect_failed` naming the server, with `url` (origin and
 * path only, never the query) in the message.
 *
 * @example
 * ```ts
 * try {
 *   await transport.start();
 * } catch (err) {
 *   if (err instanceof WebSocketOpenError) console.warn(`cannot reach ${err.url}`);
 * }
 * ```
 */
export class WebSocketOpenError extends Error {
  /** The server URL, origin and path only. */
  readonly url: string;
  constructor(url: URL, what: string, cause?: unknown) {
    const safe = safeUrl(url) ?? url.origin;
    super(`WebSocket to ${safe} ${what}`, cause === undefined ? undefined : { cause });
    this.name = 'WebSocketOpenError';
    this.url = safe;
  }
}

/**
 * Options of {@link WebSocketClientTransport}.
 *
 * @example
 * ```ts
 * const opts: WebSocketClientTransportOptions = { dispatcher: http.forConfig(config).dispatcher, maxMessageBytes: 1 << 20 };
 * ```
 */
export interface WebSocketClientTransportOptions {
  /** The undici dispatcher to connect through (SSRF guard, proxy); default undici's global one. */
  dispatcher?: Dispatcher;
  /** Headers of the opening handshake. */
  headers?: Record<string, string>;
  /**
   * Largest message accepted or sent, in bytes of UTF-8 (default {@link DEFAULT_MAX_MESSAGE_BYTES}); a positive
   * whole number, else a `TypeError`. The connection survives every over-size message:
   * - an answer to one of our requests → that request alone rejects with `SwitchboardError('too_large')` (given
   *   locally, see `localErrorAnswer`); the request is not sent again, so no tool runs twice;
   * - a request from the server → the server gets a JSON-RPC error answer instead of waiting for one;
   * - a notification, or a message whose `id` is not among its first or last 256 bytes → dropped, reported
   *   through `onerror` as `too_large` (a request it answered then ends by its timeout).
   *
   * The cap applies once undici has received the message whole: undici's WebSocket has no per-socket limit
   * and refuses earlier only by failing the connection (see {@link WebSocketClientTransport}), so a message is
   * buffered up to the dispatcher's own `webSocket.maxPayloadSize` (undici's default 128 MiB) before this cap
   * drops it. A message over that limit fails the connection. Outgoing messages over the cap are refused by
   * `send()` with `too_large`, nothing sent.
   */
  maxMessageBytes?: number;
}

/**
 * MCP over WebSocket (subprotocol "mcp") on undici's WebSocket (Node 20 has no global WebSocket). Implements
 * the SDK Transport interface (start/send/close/onmessage/onerror/onclose). `onclose` fires exactly once,
 * whether the server or `close()` ended the connection.
 *
 * Size cap ({@link WebSocketClientTransportOptions.maxMessageBytes}): an answer over the cap fails only the
 * request it answers, with `SwitchboardError('too_large')`, and the connection stays open. It is checked after
 * undici has buffered the message: undici 7's only earlier limit is the dispatcher's `webSocket.maxPayloadSize`
 * (`new Agent({ webSocket: { maxPayloadSize } })`), checked against each frame header before the payload is
 * read, but exceeding it fails the whole connection (close 1009 sent, the app sees 1006 and an empty error)
 * without the payload, so the request it answered cannot be named and every call in flight would be lost.
 *
 * @example
 * ```ts
 * import { Client } from '@modelcontextprotocol/sdk/client/index.js';
 * const client = new Client({ name: 'host', version: '1.0.0' });
 * await client.connect(new WebSocketClientTransport(new URL('ws://127.0.0.1:8080/mcp')));
 * const { tools } = await client.listTools();
 * ```
 */
export class WebSocketClientTransport implements Transport {
  /** Called when the connection is closed (once). */
  onclose?: () => void;
  /** Called on a protocol, parse or size error. */
  onerror?: (error: Error) => void;
  /** Called for each message received. */
  onmessage?: <T extends JSONRPCMessage>(message: T) => void;

  readonly #url: URL;
  readonly #opts: WebSocketClientTransportOptions;
  readonly #maxBytes: number;
  #socket: WebSocket | undefined;
  #closed = false;

  constructor(url: URL, opts: WebSocketClientTransportOptions = {}) {
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new TypeError('WebSocket URL must use ws or wss');
    const max = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    if (!Number.isInteger(max) || max <= 0) throw new TypeError('maxMessageBytes must be a positive whole number');
    this.#url = url;
    this.#opts = opts;
    this.#maxBytes = max;
  }

  /** Opens the connection; resolves once the handshake is done (with subprotocol `mcp`). */
  start(): Promise<void> {
    if (this.#socket) throw new Error('WebSocketClientTransport already started');
    return new Promise((resolve, reject) => {
      let opened = false;
      const socket = new WebSocket(this.#url, {
        protocols: [MCP_WEBSOCKET_SUBPROTOCOL],
        ...(this.#opts.dispatcher ? { dispatcher: this.#opts.dispatcher } : {}),
        ...(this.#opts.headers ? { headers: this.#opts.headers } : {}),
      });
      this.#socket = socket;
      socket.binaryType = 'arraybuffer';
      socket.onopen = () => {
        if (socket.protocol !== MCP_WEBSOCKET_SUBPROTOCOL) {
          const err = new WebSocketOpenError(this.#url, `was opened but the server did not accept subprotocol "${MCP_WEBSOCKET_SUBPROTOCOL}"`);
          reject(err);
          this.onerror?.(err);
          socket.close(4002, 'subprotocol mcp required');
          return;
        }
        opened = true;
        resolve();
      };
      socket.onerror = (event) => {
        const cause = (event as unknown as { error?: unknown }).error;
        // Before the handshake completed this is a failure to connect (refused, unreachable, not upgraded).
        const err = opened
          ? new SwitchboardError('transport_error', `WebSocket error on ${safeUrl(this.#url) ?? this.#url.origin}`, cause === undefined ? {} : { cause })
          : new WebSocketOpenError(this.#url, 'could not be opened', cause);
        if (!opened) reject(err);
        this.onerror?.(err);
      };
      socket.onclose = (event) => {
        if (!opened) reject(new WebSocketOpenError(this.#url, `closed before opening (code ${event.code})`));
        this.#finish();
      };
      socket.onmessage = (event) => this.#receive(event.data);
    });
  }

  /** Sends one message; rejects when not open or when the message is larger than `maxMessageBytes`. */
  async send(message: JSONRPCMessage): Promise<void> {
    const socket = this.#socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) throw new SwitchboardError('connection_closed', 'WebSocket is not open');
    const text = JSON.stringify(message);
    if (Buffer.byteLength(text) > this.#maxBytes) {
      throw new SwitchboardError('too_large', `Outgoing message exceeds ${this.#maxBytes} bytes`);
    }
    socket.send(text);
  }

  /** Closes the connection and waits (up to {@link CLOSE_WAIT_MS}) for the closing handshake; idempotent. */
  async close(): Promise<void> {
    const socket = this.#socket;
    if (socket && socket.readyState !== WebSocket.CLOSED) {
      const closed = new Promise<void>((resolve) => {
        socket.addEventListener('close', () => resolve(), { once: true });
        setTimeout(resolve, CLOSE_WAIT_MS).unref();
      });
      if (socket.readyState !== WebSocket.CLOSING) socket.close(1000);
      await closed;
    }
    this.#finish();
  }

  #receive(data: unknown): void {
    if (typeof data === 'string' ? overBytes(data, this.#maxBytes) : data instanceof ArrayBuffer && data.byteLength > this.#maxBytes) {
      this.#refuse(data as string | ArrayBuffer);
      return;
    }
    let message: JSONRPCMessage;
    try {
      const text = typeof data === 'string' ? data : Buffer.from(data as ArrayBuffer).toString('utf8');
      message = JSONRPCMessageSchema.parse(JSON.parse(text));
    } catch (err) {
      this.onerror?.(new SwitchboardError('transport_error', 'Invalid JSON-RPC message on WebSocket', { cause: err }));
      return;
    }
    this.onmessage?.(message);
  }

  /**
   * Drops a message over the cap without parsing it, and keeps the connection: the request it answers fails
   * locally with `too_large`; a request from the server gets an error answer; anything else is reported.
   */
  #refuse(data: string | ArrayBuffer): void {
    const size = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
    const what = `Incoming WebSocket message of ${size} bytes exceeds maxMessageBytes (${this.#maxBytes})`;
    const { id, fromServer } = peekEnds(data);
    if (id !== undefined && !fromServer) {
      this.onmessage?.(localErrorAnswer(id, new SwitchboardError('too_large', `${what}; the answer to request ${JSON.stringify(id)} was dropped`)));
      return;
    }
    if (id !== undefined && this.#socket?.readyState === WebSocket.OPEN) {
      const answer = { jsonrpc: '2.0', id, error: { code: ErrorCode.InvalidRequest, message: `Request larger than ${this.#maxBytes} bytes refused by the client` } };
      this.#socket.send(JSON.stringify(answer));
    }
    this.onerror?.(new SwitchboardError('too_large', `${what}; dropped`));
  }

  #finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.onclose?.();
  }
}

/** True when `text` is longer than `max` bytes of UTF-8, counting them only when the length cannot tell. */
function overBytes(text: string, max: number): boolean {
  // A UTF-16 code unit is 1 to 3 bytes of UTF-8 (a surrogate pair: 4 for 2).
  if (text.length > max) return true;
  if (text.length * 3 <= max) return false;
  return Buffer.byteLength(text) > max;
}

/**
 * The envelope of an over-size message from its first and last {@link PEEK_BYTES} characters (text frames) or
 * bytes (binary frames), without decoding the rest.
 */
function peekEnds(data: string | ArrayBuffer): Envelope {
  if (typeof data === 'string') return peekEnvelope(data.slice(0, PEEK_BYTES), data.slice(-PEEK_BYTES));
  const bytes = Buffer.from(data);
  // A character cut at either end decodes as U+FFFD, which no id or key of the envelope contains.
  return peekEnvelope(bytes.subarray(0, PEEK_BYTES).toString('utf8'), bytes.subarray(-PEEK_BYTES).toString('utf8'));
}
