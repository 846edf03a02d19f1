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
import { constants as zlib, createBrotliDecompress, createGunzip, createInflate, createInflateRaw } from 'node:zlib';
import type { Dispatcher } from 'undici';
import type { RequestInterceptor } from '../requestPath.js';
import { isNullBodyStatus } from '../fetchInit.js';
import { HandlerDecorator, wrappingDispatcher, type LegacyHandler } from './dispatchHandler.js';

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
      wrapped = wrappingDispatcher(d, (h, o) => new DecodingHandler(h, o.method));
    }
    const headers = 'accept-encoding' in req.headers ? req.headers : { ...req.headers, 'accept-encoding': 'gzip, deflate, br' };
    return next({ ...req, headers, dispatcher: wrapped! });
  };
}

const MAX_CODINGS = 5;

/**
 * Passes one request's callbacks through, decoding the body when the response has content codings. Downstream
 * back-pressure pauses the decoder's output; a full decoder pauses the socket until it drains.
 */
class DecodingHandler extends HandlerDecorator {
  readonly #method: string;
  #abort: ((err?: Error) => void) | undefined;
  /** The codings to undo, in the order they are undone; set when the response has any. */
  #codings: string[] | undefined;
  /** Built at the body's first bytes. */
  #decoders: Transform[] | undefined;
  #resume: (() => void) | undefined;
  /** The network's input has ended (onComplete came): undici can no longer abort, errors go down directly. */
  #inputEnded = false;
  #finished = false;
  #trailers: Buffer[] | null = null;

  constructor(handler: LegacyHandler, method: string) {
    super(handler);
    this.#method = method;
  }

  override onConnect(abort: (err?: Error) => void, context?: unknown): void {
    this.#abort = abort;
    // The stages above get an abort of ours: once the network's input has ended, undici's own does nothing, but
    // the decoders may still be inflating what came (a small bomb arrives with its headers), and the body must
    // still end for whoever reads it.
    return this.inner.onConnect?.((err) => this.#abortFromAbove(err), context);
  }

  override onHeaders(status: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    const coding = status < 200 || isNullBodyStatus(status) || this.#method === 'HEAD' ? undefined : contentEncoding(rawHeaders);
    if (!coding) return this.inner.onHeaders ? this.inner.onHeaders(status, rawHeaders, resume, statusText) : true;
    const codings = decodingOrder(coding);
    if (codings === undefined) {
      this.#abort?.(new Error(`too many content codings in response (over ${MAX_CODINGS})`));
      return false;
    }
    if (codings.length === 0) return this.inner.onHeaders ? this.inner.onHeaders(status, rawHeaders, resume, statusText) : true;
    this.#codings = codings;
    this.#resume = resume;
    // The decoded body no longer has the coding or the length the server declared.
    const kept: Buffer[] = [];
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]!.toString('latin1').toLowerCase();
      if (name !== 'content-encoding' && name !== 'content-length') kept.push(rawHeaders[i]!, rawHeaders[i + 1]!);
    }
    return this.inner.onHeaders ? this.inner.onHeaders(status, kept, () => this.#decoders?.at(-1)?.resume(), statusText) : true;
  }

  override onData(chunk: Buffer): boolean {
    if (!this.#codings) return this.inner.onData ? this.inner.onData(chunk) : true;
    if (this.#finished) return true;
    return (this.#decoders ?? this.#chain(chunk))[0]!.write(chunk);
  }

  override onComplete(trailers: Buffer[] | null): void {
    const decoders = this.#decoders;
    // No coding, or a coded body that came empty: nothing to decode.
    if (!decoders) return this.#finished ? undefined : this.inner.onComplete?.(trailers);
    this.#inputEnded = true;
    this.#trailers = trailers;
    decoders[0]!.end();
  }

  /** Builds the decoders at the body's first bytes (which tell raw deflate from zlib-wrapped) and wires them. */
  #chain(first: Buffer): Transform[] {
    const decoders = this.#codings!.map((coding, i) => decoderFor(coding, i === 0 ? first[0] : undefined));
    this.#decoders = decoders;
    for (let i = 0; i < decoders.length - 1; i++) decoders[i]!.pipe(decoders[i + 1]!);
    const last = decoders[decoders.length - 1]!;
    decoders[0]!.on('drain', () => this.#resume?.());
    for (const d of decoders) d.on('error', (err) => this.#failed(err));
    last.on('data', (chunk: Buffer) => {
      if (this.#finished) return;
      if (this.inner.onData?.(chunk) === false) last.pause();
    });
    last.on('end', () => {
      if (this.#finished) return;
      this.#finished = true;
      this.inner.onComplete?.(this.#trailers);
    });
    return decoders;
  }

  override onError(err: Error): void {
    const decoders = this.#decoders;
    if (decoders) for (const d of decoders) d.destroy();
    if (this.#finished) return;
    this.#finished = true;
    return this.inner.onError?.(err);
  }

  /** A stage above aborts: undici aborts the request; once its input has ended, the decoding stops here. */
  #abortFromAbove(err?: Error): void {
    if (!this.#inputEnded || !this.#codings) return this.#abort?.(err);
    this.onError(err ?? new Error('request aborted'));
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
 * The codings of a `Content-Encoding` value in the order they are undone (the last applied first); `[]` when
 * there is none or one is unknown (the body passes as it came, as in fetch); undefined when there are too many.
 */
function decodingOrder(value: string): string[] | undefined {
  const codings = value.toLowerCase().split(',');
  if (codings.length > MAX_CODINGS) return undefined;
  const order: string[] = [];
  for (let i = codings.length - 1; i >= 0; i--) {
    const coding = codings[i]!.trim();
    if (coding === 'identity' || coding === '') continue;
    if (coding !== 'gzip' && coding !== 'x-gzip' && coding !== 'deflate' && coding !== 'br') return [];
    order.push(coding);
  }
  return order;
}

/**
 * One decoder, lenient as fetch's (zlib's sync flush). `deflate` as servers send it: zlib-wrapped, as RFC 9110
 * defines it, or raw, as some do (fetch accepts both); the body's first byte decides where it is known (a zlib
 * header's low nibble is 8, the deflate method).
 */
function decoderFor(coding: string, firstByte: number | undefined): Transform {
  const lenient = { flush: zlib.Z_SYNC_FLUSH, finishFlush: zlib.Z_SYNC_FLUSH };
  if (coding === 'br') return createBrotliDecompress({ flush: zlib.BROTLI_OPERATION_FLUSH, finishFlush: zlib.BROTLI_OPERATION_FLUSH });
  if (coding === 'deflate') return firstByte !== undefined && (firstByte & 0x0f) !== 0x08 ? createInflateRaw(lenient) : createInflate(lenient);
  return createGunzip(lenient);
}
