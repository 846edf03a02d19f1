/**
 * What the stages that watch or change a response at the dispatcher share: undici's dispatch handler (the legacy
 * `on*` callbacks, what `fetch`, `request` and our own last stage pass) and a dispatcher that wraps each request's
 * handler.
 * @module
 */
import type { Dispatcher } from 'undici';

/**
 * undici's legacy dispatch handler; `this` is the handler.
 *
 * @example
 * ```ts
 * const logStatus = (inner: LegacyHandler): LegacyHandler => ({ ...inner, onHeaders: (status, raw, resume, text) => (console.log(status), inner.onHeaders?.(status, raw, resume, text) ?? true) });
 * ```
 */
export interface LegacyHandler {
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

/**
 * A dispatcher that sends through `inner` with each request's handler wrapped by `wrap`. A plain object with only
 * `dispatch`: the stages of the request path call nothing else, and it is far cheaper than a `Dispatcher` (an
 * `EventEmitter`) per request.
 *
 * @example
 * ```ts
 * const counting = wrappingDispatcher(agent, (handler) => handler);
 * ```
 */
export function wrappingDispatcher(inner: Dispatcher, wrap: (handler: LegacyHandler, opts: Dispatcher.DispatchOptions) => LegacyHandler): Dispatcher {
  const dispatcher = { dispatch: (o: Dispatcher.DispatchOptions, handler: LegacyHandler) => inner.dispatch(o, wrap(handler, o) as never) };
  return dispatcher as unknown as Dispatcher;
}

/** What a decorator points at once it has let go of the handler it wrapped. */
const RELEASED: LegacyHandler = {};

/**
 * A handler that passes every callback to the handler it wraps; a stage extends it and overrides the callbacks it
 * acts on (the model is undici's `DecoratorHandler`).
 *
 * @example
 * ```ts
 * class CountingHandler extends HandlerDecorator {
 *   bytes = 0;
 *   override onData(chunk: Buffer): boolean {
 *     this.bytes += chunk.length;
 *     return super.onData(chunk);
 *   }
 * }
 * ```
 */
export class HandlerDecorator implements LegacyHandler {
  #inner: LegacyHandler;

  constructor(inner: LegacyHandler) {
    this.#inner = inner;
  }

  /** The wrapped handler: the stages above this one. */
  protected get inner(): LegacyHandler {
    return this.#inner;
  }

  /** Lets go of the wrapped handler once the response is over: undici may keep finished handlers queued a while. */
  protected releaseInner(): void {
    this.#inner = RELEASED;
  }

  onConnect(abort: (err?: Error) => void, context?: unknown): void {
    return this.#inner.onConnect?.(abort, context);
  }

  onResponseStarted(): void {
    return this.#inner.onResponseStarted?.();
  }

  onHeaders(status: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    return this.#inner.onHeaders ? this.#inner.onHeaders(status, rawHeaders, resume, statusText) : true;
  }

  onData(chunk: Buffer): boolean {
    return this.#inner.onData ? this.#inner.onData(chunk) : true;
  }

  onComplete(trailers: Buffer[] | null): void {
    return this.#inner.onComplete?.(trailers);
  }

  onError(err: Error): void {
    return this.#inner.onError?.(err);
  }

  onUpgrade(status: number, rawHeaders: Buffer[], socket: unknown): void {
    return this.#inner.onUpgrade?.(status, rawHeaders, socket);
  }

  onBodySent(chunk: unknown): void {
    return this.#inner.onBodySent?.(chunk);
  }

  onRequestSent(): void {
    return this.#inner.onRequestSent?.();
  }
}
