/**
 * The content-decoding stage: asks for `gzip, deflate, br` (as fetch does) and undoes a response's content
 * codings at the dispatcher, nearest the network, so that every stage above it (the response watch's event
 * parsing and size caps above all) and the SDK read the bytes the server meant. A compressed body counts against
 * `maxResultBytes` by its decoded size: a small gzip that inflates past the cap is `too_large`, not a gigabyte
 * in memory. Decoding is lenient as fetch's is (zlib's sync flush), at most 5 codings are accepted (more fail the
 * request, as in fetch), and a coding it does not know leaves the body as it came.
 * @module
 */
import type { Transform } from 'node:stream';
import { constants as zlib, createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { Dispatcher } from 'undici';
import type { RequestInterceptor } from '../requestPath.js';

/**
 * The content-decoding stage (see the module comment). Place it before the stages that read response bytes: it
 * wraps the request's dispatcher, and the stages after it wrap what it made, so its handler sees the network's
 * bytes first.
 *
 * @example
 * ```ts
 * const stage = composeStages(send, [credentials(opts), contentDecoding(), responseWatch(watch)]);
 * ```
 */
export function contentDecoding(): RequestInterceptor {
  // One wrapping dispatcher per underlying one (a connection's requests all go through the same Agent).
  let inner: Dispatcher | undefined;
  let wrapped: Dispatcher | undefined;
  return (next) => (req) => {
    if (req.dispatcher !== inner) {
      const d = req.dispatcher;
      inner = d;
      // undici only calls `dispatch` on the dispatcher of one request: a plain object is enough.
      wrapped = { dispatch: (o: Dispatcher.DispatchOptions, h: LegacyHandler) => d.dispatch(o, new DecodingHandler(h, o.method) as never) } as unknown as Dispatcher;
    }
    const headers = 'accept-encoding' in req.headers ? req.headers : { ...req.headers, 'accept-encoding': 'gzip, deflate, br' };
    return next({ ...req, headers, dispatcher: wrapped! });
  };
}

/** undici's legacy dispatch handler (what fetch, `request` and our own stages pass). */
interface LegacyHandler {
  onConnect?(abort: (err?: Error) => void, context?: unknown): void;
  onResponseStarted?(): void;
  onHeaders?(status: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean;
  onData?(chunk: Buffer): boolean;
  onComplete?(trailers: Buffer[] | null): void;
  onError?(err: Error): void;
  onUpgrade?(status: number, rawHeaders: Buffer[], socket: unknown): void;
  onBodySent?(chunk: unknown): void;
  onRequestSent?(): void;
}

const MAX_CODINGS = 5;
const NULL_BODY = new Set([204, 205, 304]);

/**
 * Passes one request's callbacks through, decoding the body when the response has content codings. Downstream
 * back-pressure pauses the decoder's output; a full decoder pauses the socket until it drains.
 */
class DecodingHandler implements LegacyHandler {
  readonly #h: LegacyHandler;
  readonly #method: string;
  #abort: ((err?: Error) => void) | undefined;
  #decoders: Transform[] | undefined;
  /** The network's input has ended (onComplete came): undici can no longer abort, errors go down directly. */
  #inputEnded = false;
  #finished = false;
  #trailers: Buffer[] | null = null;

  constructor(handler: LegacyHandler, method: string) {
    this.#h = handler;
    this.#method = method;
  }

  onConnect(abort: (err?: Error) => void, context?: unknown): void {
    this.#abort = abort;
    return this.#h.onConnect?.(abort, context);
  }

  onResponseStarted(): void {
    return this.#h.onResponseStarted?.();
  }

  onHeaders(status: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    const coding = status < 200 || NULL_BODY.has(status) || this.#method === 'HEAD' ? undefined : contentEncoding(rawHeaders);
    if (!coding) return this.#h.onHeaders ? this.#h.onHeaders(status, rawHeaders, resume, statusText) : true;
    const decoders = decodersFor(coding);
    if (decoders === undefined) {
      this.#abort?.(new Error(`too many content codings in response (over ${MAX_CODINGS})`));
      return false;
    }
    if (decoders.length === 0) return this.#h.onHeaders ? this.#h.onHeaders(status, rawHeaders, resume, statusText) : true;
    this.#decoders = decoders;
    for (let i = 0; i < decoders.length - 1; i++) decoders[i]!.pipe(decoders[i + 1]!);
    const first = decoders[0]!;
    const last = decoders[decoders.length - 1]!;
    first.on('drain', resume);
    for (const d of decoders) d.on('error', (err) => this.#failed(err));
    last.on('data', (chunk: Buffer) => {
      if (this.#finished) return;
      if (this.#h.onData?.(chunk) === false) last.pause();
    });
    last.on('end', () => {
      if (this.#finished) return;
      this.#finished = true;
      this.#h.onComplete?.(this.#trailers);
    });
    // The decoded body no longer has the coding or the length the server declared.
    const kept: Buffer[] = [];
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]!.toString('latin1').toLowerCase();
      if (name !== 'content-encoding' && name !== 'content-length') kept.push(rawHeaders[i]!, rawHeaders[i + 1]!);
    }
    const resumeDecoded = (): void => {
      last.resume();
    };
    return this.#h.onHeaders ? this.#h.onHeaders(status, kept, resumeDecoded, statusText) : true;
  }

  onData(chunk: Buffer): boolean {
    const decoders = this.#decoders;
    if (!decoders) return this.#h.onData ? this.#h.onData(chunk) : true;
    return decoders[0]!.write(chunk);
  }

  onComplete(trailers: Buffer[] | null): void {
    const decoders = this.#decoders;
    if (!decoders) return this.#h.onComplete?.(trailers);
    this.#inputEnded = true;
    this.#trailers = trailers;
    decoders[0]!.end();
  }

  onError(err: Error): void {
    const decoders = this.#decoders;
    if (decoders) for (const d of decoders) d.destroy();
    if (this.#finished) return;
    this.#finished = true;
    return this.#h.onError?.(err);
  }

  onUpgrade(status: number, rawHeaders: Buffer[], socket: unknown): void {
    return this.#h.onUpgrade?.(status, rawHeaders, socket);
  }

  onBodySent(chunk: unknown): void {
    return this.#h.onBodySent?.(chunk);
  }

  onRequestSent(): void {
    return this.#h.onRequestSent?.();
  }

  /** A decoder failed (a corrupt body): the request is aborted, or, once its input has ended, failed here. */
  #failed(err: Error): void {
    if (this.#finished) return;
    if (this.#inputEnded || !this.#abort) this.onError(err);
    else this.#abort(err);
  }
}

/** The `Content-Encoding` of raw header pairs (repeated fields joined), or undefined. */
function contentEncoding(raw: Buffer[]): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // 16 = 'content-encoding'.length: skip the decode for every other header.
    if (name.length !== 16 || name.toString('latin1').toLowerCase() !== 'content-encoding') continue;
    const v = raw[i + 1]!.toString('latin1');
    value = value === undefined ? v : `${value},${v}`;
  }
  return value;
}

/**
 * The decoders for a `Content-Encoding` value, first applied last; `[]` when there is none or one is unknown
 * (the body passes as it came, as in fetch); undefined when there are too many.
 */
function decodersFor(value: string): Transform[] | undefined {
  const codings = value.toLowerCase().split(',');
  if (codings.length > MAX_CODINGS) return undefined;
  const decoders: Transform[] = [];
  const lenient = { flush: zlib.Z_SYNC_FLUSH, finishFlush: zlib.Z_SYNC_FLUSH };
  for (let i = codings.length - 1; i >= 0; i--) {
    const coding = codings[i]!.trim();
    if (coding === 'gzip' || coding === 'x-gzip') decoders.push(createGunzip(lenient));
    else if (coding === 'deflate') decoders.push(createInflate(lenient));
    else if (coding === 'br') decoders.push(createBrotliDecompress({ flush: zlib.BROTLI_OPERATION_FLUSH, finishFlush: zlib.BROTLI_OPERATION_FLUSH }));
    else if (coding !== 'identity' && coding !== '') {
      for (const d of decoders) d.destroy();
      return [];
    }
  }
  return decoders;
}
