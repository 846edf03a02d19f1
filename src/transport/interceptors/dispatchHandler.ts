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
