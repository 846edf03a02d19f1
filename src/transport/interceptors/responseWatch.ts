/**
 * The response-watch stage: watches each response at the undici dispatcher level (a wrapper around the
 * request's own dispatch handler, so no extra web stream and no extra copy) and answers a request locally, with
 * an error of ours, when its response cannot come:
 *
 * - **lost response stream** (streamable HTTP): the `text/event-stream` answer to a POST ends or breaks before
 *   the response to its request id, and no event `id` made it resumable (the SDK resumes those itself). The SDK
 *   would report it only through a message-only `onerror`, leaving the call to wait for its timeout; it is
 *   answered with a retryable `transport_error` instead.
 * - **over-size message**: a POST's answer (event stream or `application/json`) with an event or body over
 *   `maxMessageBytes` is answered `too_large` first, and then that response alone is aborted, before it is
 *   buffered whole. On a long-lived GET event stream (the legacy SSE transport's, the standby stream), only
 *   complete events are passed on; an over-size event is dropped, and the request whose id it answers gets
 *   `too_large`. The stream itself lives on.
 *
 * Events are parsed with `eventsource-parser`'s `createParser`, the parser the SDK itself uses.
 * @module
 */
import { StringDecoder } from 'node:string_decoder';
import { createParser, type EventSourceMessage, type EventSourceParser } from 'eventsource-parser';
import type { JsonRpcId } from '../../connection/callerContext.js';
import { SwitchboardError } from '../../errors.js';
import { lastBytes, PEEK_BYTES, peekEnvelope } from '../envelopePeek.js';
import type { RequestInterceptor } from '../requestPath.js';
import { nextBoundary, seamAfter } from './eventFrames.js';
import { HandlerDecorator, wrappingDispatcher, type LegacyHandler } from './dispatchHandler.js';

/**
 * Which transport's streams are watched: `streamable-http` (POST answers and GET streams) or `sse` (the GET
 * event stream; its POSTs are answered `202` with nothing to watch).
 *
 * @example
 * ```ts
 * const streams: WatchedStreams = 'streamable-http';
 * ```
 */
export type WatchedStreams = 'streamable-http' | 'sse';

/**
 * Settings of {@link responseWatch}.
 *
 * @example
 * ```ts
 * const opts: ResponseWatchOptions = {
 *   serverName: 'docs', streams: 'streamable-http', maxMessageBytes: 16 * 1024 * 1024 + 65_536,
 *   answer: (id, error) => transport.onmessage?.(localErrorAnswer(id, error)),
 * };
 * ```
 */
export interface ResponseWatchOptions {
  /** For the errors' messages and `serverName`. */
  serverName: string;
  /** Which transport's streams these are. */
  streams: WatchedStreams;
  /** Largest message (one event, or one JSON body) accepted, in bytes. */
  maxMessageBytes: number;
  /** Answers request `id` locally (through the transport's `onmessage`, see `localErrorAnswer`). */
  answer: (id: JsonRpcId, error: SwitchboardError) => void;
  /** Whether lost POST response streams are answered (default true). Size caps apply either way. */
  detectLoss?: boolean;
}

/**
 * The response-watch stage (see the module comment). Puts a watching dispatcher in front of the request's
 * own for POSTs of a request (streamable HTTP) and for GETs; for every other request only the body of an error
 * answer (status 400 and up) is capped, at 1 MiB or `maxMessageBytes` when smaller.
 *
 * @example
 * ```ts
 * const stage = composeStages(sendWithUndici, [responseWatch({ serverName: 'docs', streams: 'sse', maxMessageBytes: 1 << 20, answer })]);
 * ```
 */
export function responseWatch(opts: ResponseWatchOptions): RequestInterceptor {
  if (!Number.isFinite(opts.maxMessageBytes) || opts.maxMessageBytes <= 0) throw new TypeError('responseWatch: maxMessageBytes must be a number > 0');
  return (next) => (req) => {
    const id = req.requestId;
    if (req.method === 'POST' && id !== undefined && opts.streams === 'streamable-http') {
      return next({ ...req, dispatcher: wrappingDispatcher(req.dispatcher, (h) => new WatchedResponse(h, opts, id, req.signal)) });
    }
    if (req.method === 'GET') return next({ ...req, dispatcher: wrappingDispatcher(req.dispatcher, (h) => new WatchedResponse(h, opts, undefined, req.signal)) });
    // Notifications, DELETE, the SSE transport's POSTs: only an error answer's body is capped (the SDK reads it
    // whole into its error message).
    return next({ ...req, dispatcher: wrappingDispatcher(req.dispatcher, (h) => new WatchedResponse(h, opts, undefined, req.signal, true)) });
  };
}

type Mode = 'none' | 'post-events' | 'post-json' | 'stream' | 'error-body';
/**
 * Largest error answer body (status 400 and up) passed on, in bytes (or `maxMessageBytes` when smaller): the SDK
 * reads such a body whole into an error message, so a server (or a small compressed bomb) must not make it
 * hold more.
 */
const MAX_ERROR_BODY_BYTES = 1024 * 1024;
/** What a finished handler points at instead of the request's own options. */
const SETTLED_OPTIONS: ResponseWatchOptions = { serverName: '', streams: 'streamable-http', maxMessageBytes: 1, answer: () => {} };
const EMPTY = Buffer.alloc(0);
/** The head of a dropped event is read raw: room for `event:`/`id:` lines before {@link PEEK_BYTES} of data. */
const HEAD_BYTES = 2 * PEEK_BYTES;

/** Wraps fetch's handler of one request; see the module comment. */
class WatchedResponse extends HandlerDecorator {
  #o: ResponseWatchOptions;
  /** The request id of a POST; undefined for a GET stream. */
  readonly #id: JsonRpcId | undefined;
  #signal: AbortSignal | undefined;
  #abort: ((err?: Error) => void) | undefined;
  #mode: Mode = 'none';
  /** Answered locally (or nothing left to watch): no more checks. */
  #done = false;
  /** This response was aborted for its size: nothing more of it is passed on. */
  #cut = false;
  /** Bytes of the current event (the whole body for JSON). */
  #eventBytes = 0;
  #seam: Buffer = EMPTY;
  // POST event streams: what the stream has said about the request.
  #parser: EventSourceParser | undefined;
  #decoder: StringDecoder | undefined;
  #answered = false;
  #resumable = false;
  // GET event streams: the incomplete event held back, or the over-size event being dropped.
  #held: Buffer[] = [];
  #dropping = false;
  #dropHead: Buffer = EMPTY;
  #dropTail: Buffer = EMPTY;

  /** Only an error answer's body is watched (a request whose answer carries no message of its own). */
  readonly #errorsOnly: boolean;
  /** What the stages below get when this response was cut and its request ended anyway. */
  #cutError: Error | undefined;

  constructor(handler: LegacyHandler, opts: ResponseWatchOptions, id: JsonRpcId | undefined, signal: AbortSignal | undefined, errorsOnly = false) {
    super(handler);
    this.#o = opts;
    this.#id = id;
    this.#signal = signal;
    this.#errorsOnly = errorsOnly;
  }

  override onConnect(abort: (err?: Error) => void, context?: unknown): void {
    this.#abort = abort;
    return this.inner.onConnect?.(abort, context);
  }

  override onHeaders(status: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (status >= 400) this.#mode = 'error-body';
    else if (status === 200 && !this.#errorsOnly) {
      const { type, length } = contentHeaders(rawHeaders);
      if (type.includes('text/event-stream')) this.#mode = this.#id === undefined ? 'stream' : 'post-events';
      else if (this.#id !== undefined && type.includes('application/json')) {
        this.#mode = 'post-json';
        if (length > this.#o.maxMessageBytes) {
          this.#tooLarge(this.#id);
          return true;
        }
      }
    }
    return this.inner.onHeaders ? this.inner.onHeaders(status, rawHeaders, resume, statusText) : true;
  }

  override onData(chunk: Buffer): boolean {
    if (this.#cut) return true;
    if (this.#done) return this.#forward(chunk);
    switch (this.#mode) {
      case 'post-json':
        this.#eventBytes += chunk.length;
        if (this.#eventBytes > this.#o.maxMessageBytes) return this.#tooLarge(this.#id!);
        return this.#forward(chunk);
      case 'post-events':
        if (this.#overSize(chunk)) return this.#tooLarge(this.#id!);
        if (this.#o.detectLoss !== false && !this.#answered && !this.#resumable) this.#parse(chunk);
        return this.#forward(chunk);
      case 'stream':
        return this.#frames(chunk);
      case 'error-body':
        this.#eventBytes += chunk.length;
        if (this.#eventBytes > Math.min(MAX_ERROR_BODY_BYTES, this.#o.maxMessageBytes)) return this.#cutErrorBody();
        return this.#forward(chunk);
      default:
        return this.#forward(chunk);
    }
  }

  override onComplete(trailers: Buffer[] | null): void {
    if (this.#cut) {
      // Cut after its last bytes had come (its abort came too late to end it): the stages below still need an end.
      const h = this.inner;
      const err = this.#cutError;
      this.#release();
      return h.onError?.(err ?? new Error('response cut'));
    }
    if (this.#mode === 'stream') this.#flushStream();
    else if (this.#mode === 'post-events') this.#checkLost();
    const h = this.inner;
    this.#release();
    return h.onComplete?.(trailers);
  }

  override onError(err: Error): void {
    // The transport closing aborts its requests: that is no lost stream (pending requests end with the close).
    if (this.#mode === 'post-events' && !this.#signal?.aborted) this.#checkLost();
    this.#done = true;
    const h = this.inner;
    this.#release();
    return h.onError?.(err);
  }

  /**
   * Drops what this handler holds once its response is over: undici keeps finished requests (and so their
   * handlers) in a client's queue for a while, and the options reach the transport (`answer`), which would stay
   * reachable after its connection closed.
   */
  #release(): void {
    this.releaseInner();
    this.#o = SETTLED_OPTIONS;
    this.#signal = undefined;
    this.#parser = undefined;
    this.#decoder = undefined;
    this.#held = [];
    this.#done = true;
  }

  #forward(chunk: Buffer): boolean {
    return this.inner.onData ? this.inner.onData(chunk) : true;
  }

  /** Counts the bytes of each event of a POST stream: true once one is over the cap. */
  #overSize(chunk: Buffer): boolean {
    const cap = this.#o.maxMessageBytes;
    let pos = 0;
    for (;;) {
      const end = nextBoundary(chunk, pos, pos === 0 ? this.#seam : EMPTY);
      if (end < 0) {
        this.#eventBytes += chunk.length - pos;
        break;
      }
      this.#eventBytes += end - pos;
      if (this.#eventBytes > cap) return true;
      this.#eventBytes = 0;
      pos = end;
    }
    this.#seam = seamAfter(this.#seam, chunk);
    return this.#eventBytes > cap;
  }

  #parse(chunk: Buffer): void {
    if (!this.#parser) {
      const id = this.#id!;
      this.#decoder = new StringDecoder('utf8');
      this.#parser = createParser({
        onEvent: (event: EventSourceMessage) => {
          if (event.id) this.#resumable = true;
          // The SDK reads only unnamed and `message` events.
          if (!this.#answered && event.data && (!event.event || event.event === 'message') && answersRequest(event.data, id)) this.#answered = true;
        },
      });
    }
    this.#parser.feed(this.#decoder!.write(chunk));
  }

  #checkLost(): void {
    if (this.#done || this.#answered || this.#resumable || this.#o.detectLoss === false) return;
    this.#done = true;
    const { serverName } = this.#o;
    this.#o.answer(
      this.#id!,
      new SwitchboardError('transport_error', `The response stream from MCP server "${serverName}" ended before the response`, { retryable: true, serverName }),
    );
  }

  /** Answers request `id` with `too_large` first, then aborts this response alone. */
  #tooLarge(id: JsonRpcId): boolean {
    this.#done = true;
    this.#cut = true;
    const error = this.#tooLargeError(id);
    this.#cutError = error;
    this.#o.answer(id, error);
    this.#abort?.(error);
    return true;
  }

  /** An error answer's body over its cap: the response is aborted; its reader gets the error, nobody is answered. */
  #cutErrorBody(): boolean {
    this.#done = true;
    this.#cut = true;
    const { serverName, maxMessageBytes } = this.#o;
    const error = new SwitchboardError('too_large', `An error response body from MCP server "${serverName}" is larger than ${Math.min(MAX_ERROR_BODY_BYTES, maxMessageBytes)} bytes`, { serverName });
    this.#cutError = error;
    this.#abort?.(error);
    return true;
  }

  #tooLargeError(id: JsonRpcId): SwitchboardError {
    const { serverName, maxMessageBytes } = this.#o;
    return new SwitchboardError('too_large', `The response to request ${JSON.stringify(id)} from MCP server "${serverName}" is larger than ${maxMessageBytes} bytes`, { serverName });
  }

  /** GET streams: passes on complete events only, dropping an over-size one. */
  #frames(chunk: Buffer): boolean {
    const cap = this.#o.maxMessageBytes;
    const out: Buffer[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      const end = nextBoundary(chunk, pos, pos === 0 ? this.#seam : EMPTY);
      const part = chunk.subarray(pos, end < 0 ? chunk.length : end);
      if (this.#dropping) this.#dropTail = lastBytes(this.#dropTail, part, PEEK_BYTES);
      else {
        this.#held.push(part);
        this.#eventBytes += part.length;
        if (this.#eventBytes > cap) this.#startDrop();
      }
      if (end < 0) break;
      if (this.#dropping) this.#endDrop();
      else for (const b of this.#held) out.push(b);
      this.#held = [];
      this.#eventBytes = 0;
      pos = end;
    }
    this.#seam = seamAfter(this.#seam, chunk);
    if (out.length === 0) return true;
    return this.#forward(out.length === 1 ? out[0]! : Buffer.concat(out));
  }

  #startDrop(): void {
    const held = Buffer.concat(this.#held);
    this.#dropping = true;
    this.#dropHead = Buffer.from(held.subarray(0, HEAD_BYTES));
    this.#dropTail = Buffer.from(held.subarray(-PEEK_BYTES));
    this.#held = [];
  }

  #endDrop(): void {
    this.#dropping = false;
    const { id, fromServer } = peekEnvelope(dataHead(this.#dropHead), this.#dropTail.toString('utf8'));
    this.#dropHead = this.#dropTail = EMPTY;
    // A request or notification of the server carries the server's id, not one of ours: nothing to answer.
    if (id !== undefined && !fromServer) this.#o.answer(id, this.#tooLargeError(id));
  }

  #flushStream(): void {
    if (this.#dropping) this.#endDrop();
    // What is left is an event the stream never finished: no parser dispatches it, but pass it on as sent.
    else if (this.#held.length > 0) this.#forward(Buffer.concat(this.#held));
    this.#held = [];
  }
}

/** `content-type` (lower-cased) and `content-length` (-1 when absent) of raw undici headers. */
function contentHeaders(raw: Buffer[]): { type: string; length: number } {
  let type = '';
  let length = -1;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    // Compare lengths first: most headers are neither, and need no string.
    if (name.length === 12 && name.toString('latin1').toLowerCase() === 'content-type') type = String(raw[i + 1]).toLowerCase();
    else if (name.length === 14 && name.toString('latin1').toLowerCase() === 'content-length') length = Number(String(raw[i + 1]));
  }
  return { type, length: Number.isFinite(length) ? length : -1 };
}

/** Above this, an event is judged by its two ends instead of being parsed a second time. */
const PARSE_LIMIT = 64 * 1024;

/**
 * Whether an event's data is the response (result or error) to request `id`. Small payloads are parsed; a large
 * one counts as the response unless its ends show a request or notification (a top-level `method`): a miss
 * here only falls back to the call's timeout, while a wrong "lost" would fail a call that succeeded.
 */
/**
 * Whether a response's `id` names request `id` as the SDK matches them: the SDK looks its handlers up by
 * `Number(id)`, so `"1"` answers request 1. Stricter here would report a stream lost whose response the SDK
 * delivers, and fail a call that succeeded.
 */
function sameId(got: unknown, id: JsonRpcId): boolean {
  if (got === id) return true;
  if ((typeof got !== 'string' && typeof got !== 'number') || got === '') return false;
  return Number(got) === Number(id);
}

function answersRequest(data: string, id: JsonRpcId): boolean {
  if (data.length > PARSE_LIMIT) return !peekEnvelope(data.slice(0, PEEK_BYTES), data.slice(-PEEK_BYTES)).fromServer;
  // Its envelope's two ends settle almost every event without parsing it a second time (the SDK parses it too):
  // an id there is the message's own. Only an event whose ends show no id is parsed.
  const ends = peekEnvelope(data.length > 2 * PEEK_BYTES ? data.slice(0, PEEK_BYTES) : data, data.length > 2 * PEEK_BYTES ? data.slice(-PEEK_BYTES) : data);
  if (ends.id !== undefined) return !ends.fromServer && sameId(ends.id, id) && (data.includes('"result"') || data.includes('"error"'));
  try {
    const msg = JSON.parse(data) as { id?: unknown; method?: unknown };
    return msg !== null && typeof msg === 'object' && sameId(msg.id, id) && msg.method === undefined && ('result' in msg || 'error' in msg);
  } catch {
    return false;
  }
}

/** The first bytes of an event's data (after `data:`), from the first bytes of the raw event. */
function dataHead(head: Buffer): string {
  const text = head.toString('utf8');
  const at = text.search(/(?:^|[\r\n])data:/);
  if (at < 0) return '';
  const start = text.indexOf('data:', at) + 5;
  return text.slice(text.charCodeAt(start) === 32 ? start + 1 : start);
}
