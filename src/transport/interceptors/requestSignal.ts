/**
 * The request-signal stage: each request gets its own abort signal, following the SDK transport's long-lived one
 * until the response has ended. undici's fetch adds an `abort` listener to the signal it is given and removes it
 * only when the `Request` is garbage collected, so handing it the transport's signal piles up one listener per
 * request on it (Node warned at 1,501 in a busy demo). The per-request signal follows the transport's through
 * one shared listener ({@link followSignal}, kept for the transport's life); a request stops following when its
 * response completes or fails, so a transport's close still aborts every request and stream in flight.
 * @module
 */
import { followSignal } from '../../connection/signalLink.js';
import type { RequestInterceptor } from '../requestPath.js';
import { HandlerDecorator, wrappingDispatcher, type LegacyHandler } from './dispatchHandler.js';

/**
 * The request-signal stage (see the module comment). Requests without a signal pass as they are.
 *
 * @example
 * ```ts
 * const stage = composeStages(sendWithUndici, [credentials(opts), requestSignal()]);
 * ```
 */
export function requestSignal(): RequestInterceptor {
  return (next) => async (req) => {
    const parent = req.signal;
    if (!parent) return next(req);
    const controller = new AbortController();
    // The transport's signal keeps its one listener for its life: adding and removing one per request cost more
    // than the request's own abort controller.
    const release = followSignal(parent, () => controller.abort(parent.reason), { keepListener: true });
    const dispatcher = wrappingDispatcher(req.dispatcher, (handler) => new ReleasingHandler(handler, release));
    try {
      return await next({ ...req, signal: controller.signal, dispatcher });
    } catch (err) {
      release();
      throw err;
    }
  };
}

/** fetch's handler, forwarded as is; the signal link is released, and the handler let go, when it settles. */
class ReleasingHandler extends HandlerDecorator {
  readonly #release: () => void;

  constructor(inner: LegacyHandler, release: () => void) {
    super(inner);
    this.#release = release;
  }

  override onComplete(trailers: Buffer[] | null): void {
    this.#release();
    try {
      return super.onComplete(trailers);
    } finally {
      this.releaseInner();
    }
  }

  override onError(err: Error): void {
    this.#release();
    try {
      return super.onError(err);
    } finally {
      this.releaseInner();
    }
  }
}
