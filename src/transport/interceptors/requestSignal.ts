/**
 * The request-signal stage: each request gets its own abort signal, following the SDK transport's long-lived one
 * until the response has ended. undici's fetch adds an `abort` listener to the signal it is given and removes it
 * only when the `Request` is garbage collected, so handing it the transport's signal piles up one listener per
 * request on it (Node warned at 1,501 in a busy demo). The per-request signal follows the transport's through
 * one shared listener ({@link followSignal}, kept for the transport's life); a request stops following when its
 * response completes or fails, so a transport's close still aborts every request and stream in flight.
 * @module
 */
import type { Dispatcher } from 'undici';
import { followSignal } from '../../connection/signalLink.js';
import type { RequestInterceptor } from '../requestPath.js';

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
    const inner = req.dispatcher;
    // undici's fetch only calls `dispatch` on its dispatcher: a plain object per request is enough.
    const dispatcher = {
      dispatch: (o: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler) => inner.dispatch(o, releasing(handler, release) as never),
    } as unknown as Dispatcher;
    try {
      return await next({ ...req, signal: controller.signal, dispatcher });
    } catch (err) {
      release();
      throw err;
    }
  };
}

/** The legacy handler undici 7's fetch passes, forwarded as is, with the link released when it settles. */
type LegacyHandler = Record<string, ((...args: unknown[]) => unknown) | undefined>;

function releasing(handler: unknown, release: () => void): LegacyHandler {
  // Dropped once the response is over: undici keeps finished requests (and their handlers) queued for a while.
  let h: LegacyHandler | undefined = handler as LegacyHandler;
  const settle = (): LegacyHandler | undefined => {
    release();
    const last = h;
    h = undefined;
    return last;
  };
  return {
    onConnect: (...a) => h?.onConnect?.(...a),
    onResponseStarted: (...a) => h?.onResponseStarted?.(...a),
    onHeaders: (...a) => h?.onHeaders?.(...a),
    onData: (...a) => h?.onData?.(...a),
    onBodySent: (...a) => h?.onBodySent?.(...a),
    onRequestSent: (...a) => h?.onRequestSent?.(...a),
    onUpgrade: (...a) => h?.onUpgrade?.(...a),
    onComplete: (...a) => settle()?.onComplete?.(...a),
    onError: (...a) => settle()?.onError?.(...a),
  };
}
