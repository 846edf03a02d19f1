/**
 * The last stage of the request path: one HTTP request dispatched on the hop's undici dispatcher, answered with a
 * fetch `Response` whose body is fed straight from the dispatch handler.
 *
 * undici's `fetch` does much more per request than a request path that has already done its own redirects,
 * credentials and signal handling needs: a `Request` object and its WebIDL checks, a clone of the request (a tee
 * of its body) for the redirect mode we never let it follow, a fetch controller, a Node stream turned into a web
 * stream, an abort listener per request. For the MCP transports' bodies (a JSON string, or none) this stage sends
 * the request itself and builds the `Response` once. What callers see is still a fetch's: a network failure is
 * `TypeError('fetch failed', { cause })`, an abort is the signal's reason, a body that breaks off fails its
 * reader with `TypeError('terminated', { cause })`, redirects come back as they are (`redirect: 'manual'`), and
 * `User-Agent` and `Accept` are sent when the caller set none. Content codings are undone below, at the
 * dispatcher (the `contentDecoding` stage), so that the response watch reads decoded bytes too. Other bodies
 * (streams, `Blob`, `FormData`) go to the fallback stage it is given (undici's `fetch`).
 * @module
 */
import type { Dispatcher } from 'undici';
import { followSignal } from '../connection/signalLink.js';
import { addFetchDefaults, dispatchBody, isNullBodyStatus } from './fetchInit.js';
import type { LegacyHandler } from './interceptors/dispatchHandler.js';
import type { OutgoingRequest, RequestStage } from './requestPath.js';

/**
 * The stage that sends `req` on `req.dispatcher` and resolves with its response (see the module comment); bodies
 * other than a string, bytes or `URLSearchParams` go to `fallback`. The request's `signal` is followed with one
 * listener for the signal's life (a transport's signal is followed by every request it makes), released when the
 * response has ended.
 *
 * @example
 * ```ts
 * const send = sendOnDispatcher(requestSignal()(sendWithUndici));
 * const res = await send({ url: new URL('http://127.0.0.1:3000/mcp'), method: 'POST', headers: { 'content-type': 'application/json' },
 *   body: '{"jsonrpc":"2.0","id":1,"method":"ping"}', redirect: 'manual', forceRefresh: false, crossOrigin: false, dispatcher });
 * ```
 */
export function sendOnDispatcher(fallback: RequestStage): RequestStage {
  return (req) => {
    const headers = { ...req.headers };
    const body = dispatchBody(req.body, headers);
    if (body === undefined) return fallback(req);
    addFetchDefaults(headers);
    return new Promise<Response>((resolve, reject) => {
      if (req.signal?.aborted) {
        reject(req.signal.reason);
        return;
      }
      const refused = refusedUrl(req.url) ?? refusedMethod(req.method);
      if (refused) {
        reject(refused);
        return;
      }
      const handler = new ResponseFeed(req, resolve, reject);
      try {
        const { url } = req;
        const options: Dispatcher.DispatchOptions = { origin: url.origin, path: `${url.pathname}${url.search}`, method: req.method as Dispatcher.HttpMethod, headers, body };
        req.dispatcher.dispatch(options, handler as unknown as Dispatcher.DispatchHandler);
      } catch (err) {
        handler.onError(err as Error);
      }
    });
  };
}

function noop(): void {}

/** What fetch refuses before sending: URLs with credentials, schemes other than http(s). */
function refusedUrl(url: URL): TypeError | undefined {
  if (url.username || url.password) return new TypeError('Request cannot be constructed from a URL that includes credentials');
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return new TypeError('fetch failed', { cause: new Error(`unsupported scheme ${url.protocol}`) });
  return undefined;
}

/** A method token (RFC 9110 §9): what fetch accepts, less what it forbids. */
const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FORBIDDEN_METHODS = new Set(['CONNECT', 'TRACE', 'TRACK']);

/** What fetch refuses of a method: one that is no token, and CONNECT, TRACE and TRACK (a tunnel is no request). */
function refusedMethod(method: string): TypeError | undefined {
  if (!METHOD.test(method)) return new TypeError(`'${method.slice(0, 40)}' is not a valid HTTP method.`);
  if (FORBIDDEN_METHODS.has(method.toUpperCase())) return new TypeError(`'${method}' HTTP method is unsupported.`);
  return undefined;
}

/** Chunks buffered in a body before the socket is paused (by their byte length). */
const BODY_STRATEGY: QueuingStrategy<Uint8Array> = { highWaterMark: 64 * 1024, size: (chunk) => chunk.byteLength };

type State = 'dispatched' | 'streaming' | 'settled';

/**
 * The dispatch handler of one request (undici's legacy `on*` callbacks, the ones `fetch` itself passes, so the
 * response-watch stage wraps it the same way): resolves the `Response` at the headers, feeds its body, ends it.
 */
class ResponseFeed implements LegacyHandler {
  #state: State = 'dispatched';
  readonly #method: string;
  #resolve: ((res: Response) => void) | undefined;
  #reject: ((err: unknown) => void) | undefined;
  #signal: AbortSignal | undefined;
  #abort: ((err?: Error) => void) | undefined;
  #resume: (() => void) | undefined;
  #controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  #unfollow: () => void = noop;

  constructor(req: OutgoingRequest, resolve: (res: Response) => void, reject: (err: unknown) => void) {
    this.#method = req.method;
    this.#resolve = resolve;
    this.#reject = reject;
    const signal = req.signal;
    if (signal && !signal.aborted) {
      this.#signal = signal;
      this.#unfollow = followSignal(signal, () => this.#aborted(signal.reason), { keepListener: true });
    }
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    if (this.#state === 'settled') abort(new Error('request already settled'));
  }

  onHeaders(status: number, rawHeaders: (Buffer | Buffer[])[], resume: () => void, statusText: string): boolean {
    if (status < 200) return true;
    if (this.#state !== 'dispatched') return false;
    let headers: Headers;
    try {
      headers = headersOf(rawHeaders);
    } catch (err) {
      this.#fail(new TypeError('fetch failed', { cause: err }), true);
      return false;
    }
    const empty = this.#method === 'HEAD' || isNullBodyStatus(status);
    let body: ReadableStream<Uint8Array> | null = null;
    if (!empty) {
      this.#resume = resume;
      body = this.#body();
    }
    let response: Response;
    try {
      response = responseOf(body, status, statusText, headers);
    } catch (err) {
      this.#fail(new TypeError('fetch failed', { cause: err }), true);
      return false;
    }
    const resolve = this.#resolve!;
    this.#resolve = this.#reject = undefined;
    if (empty) this.#settle();
    else this.#state = 'streaming';
    resolve(response);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.#state !== 'streaming') return true;
    const c = this.#controller!;
    // A copy, as fetch gives: undici's chunk is a view of the socket's read, headers and all.
    c.enqueue(new Uint8Array(chunk));
    return (c.desiredSize ?? 0) > 0;
  }

  onComplete(): void {
    if (this.#state !== 'streaming') return this.#settle();
    const c = this.#controller;
    this.#settle();
    c?.close();
  }

  onError(err: Error): void {
    if (this.#state === 'settled') return;
    if (this.#state === 'dispatched') return this.#fail(this.#signal?.aborted ? this.#signal.reason : new TypeError('fetch failed', { cause: err }), false);
    // The body was being read: it fails with the error (fetch's reader sees a TypeError too).
    const reason = this.#signal?.aborted ? this.#signal.reason : new TypeError('terminated', { cause: err });
    const c = this.#controller;
    this.#settle();
    c?.error(reason);
  }

  /** Unused legacy callbacks, present so that wrapping handlers find them. */
  onResponseStarted(): void {}
  onBodySent(): void {}
  onRequestSent(): void {}
  /** An upgrade is no answer to a request of ours: the socket is closed and the request fails. */
  onUpgrade(_status: number, _headers: unknown, socket: { destroy?: () => void }): void {
    socket?.destroy?.();
    this.#fail(new TypeError('fetch failed', { cause: new Error('unexpected protocol upgrade') }), true);
  }

  #body(): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          this.#controller = c;
        },
        pull: () => this.#resume?.(),
        cancel: (reason) => this.#cancelled(reason),
      },
      BODY_STRATEGY,
    );
  }

  /** The caller cancelled the body: the request is aborted so that its socket is not left half-read. */
  #cancelled(reason: unknown): void {
    if (this.#state !== 'streaming') return;
    this.#settle();
    this.#abort?.(reason instanceof Error ? reason : new Error('response body cancelled'));
  }

  /** The request's signal aborted. */
  #aborted(reason: unknown): void {
    const state = this.#state;
    if (state === 'settled') return;
    if (state === 'dispatched') this.#fail(reason, false);
    else {
      const c = this.#controller;
      this.#settle();
      c?.error(reason);
    }
    this.#abort?.(reason instanceof Error ? reason : new Error('request aborted'));
  }

  /** Rejects the response; `abort`: also ends the request (when undici has not ended it itself). */
  #fail(err: unknown, abort: boolean): void {
    const reject = this.#reject;
    this.#resolve = this.#reject = undefined;
    this.#settle();
    if (abort) this.#abort?.(err instanceof Error ? err : new Error('request failed'));
    reject?.(err);
  }

  /** Nothing more of this response is handled: the signal is let go (the handler may stay queued in undici). */
  #settle(): void {
    this.#state = 'settled';
    this.#unfollow();
    this.#unfollow = noop;
    this.#signal = undefined;
    this.#resume = undefined;
    this.#controller = undefined;
  }
}

/**
 * The `Response`; a reason phrase that a `Response` refuses (undici reads it as UTF-8, a `Response` takes Latin-1
 * only) is dropped rather than failing a request whose answer is fine.
 */
function responseOf(body: ReadableStream<Uint8Array> | null, status: number, statusText: string, headers: Headers): Response {
  try {
    return new Response(body, { status, statusText, headers });
  } catch (err) {
    if (statusText === '') throw err;
    return new Response(body, { status, statusText: '', headers });
  }
}

/** undici's raw header pairs as `Headers` (values are bytes; latin1, as fetch reads them). */
function headersOf(raw: (Buffer | Buffer[])[]): Headers {
  const headers = new Headers();
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    const value = raw[i + 1]!;
    if (Array.isArray(value)) for (const v of value) headers.append(name, v.toString('latin1'));
    else headers.append(name, value.toString('latin1'));
  }
  return headers;
}
