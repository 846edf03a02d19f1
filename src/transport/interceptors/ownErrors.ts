/**
 * How an error the request path raised itself (the auth provider's, the SSRF guard's, a `ConfigError`) reaches
 * `connect()` as the very same object, even through the SSE transport, whose `EventSource` turns any failed
 * fetch of the event stream into a generic `SseError`.
 * @module
 */
import { SwitchboardError } from '../../errors.js';
import type { RequestInterceptor } from '../requestPath.js';
import type { Transport } from '../types.js';

/**
 * Remembers the last error of ours that a request of one connection attempt failed with, and hands it to the
 * transport's `start()` in place of the error the transport made of it. Place {@link OwnErrors.interceptor}
 * in the request path and call {@link OwnErrors.keepOnStart} on the transport of the same attempt.
 *
 * "Ours" is a `SwitchboardError` (an `OboError`, `ConfigError`, `ssrf_blocked`, a refused redirect): the
 * network's own failures (`fetch failed`, aborts) are left to the transport.
 *
 * @example
 * ```ts
 * const own = new OwnErrors();
 * const fetch = createRequestPath({ dispatcher, authHeaders, ownErrors: own });
 * const transport = own.keepOnStart(new SSEClientTransport(new URL(url), { fetch }));
 * await transport.start(); // rejects with the provider's error object itself
 * ```
 */
export class OwnErrors {
  #last: Error | undefined;

  /** The request-path stage that remembers errors of ours on their way to the transport. */
  readonly interceptor: RequestInterceptor = (next) => async (req) => {
    try {
      return await next(req);
    } catch (err) {
      // Ours (a credential provider's, the SSRF guard's) or the network's own (ECONNREFUSED in its cause chain):
      // the SSE transport's EventSource keeps neither, and connect would only say "SSE error".
      if (err instanceof SwitchboardError || err instanceof Error) this.#last = err;
      throw err;
    }
  };

  /** The last error of ours, if any. */
  get last(): Error | undefined {
    return this.#last;
  }

  /** Makes `transport.start()` reject with the remembered error of ours, when there is one. Returns `transport`. */
  keepOnStart<T extends Transport>(transport: T): T {
    const start = transport.start.bind(transport);
    transport.start = async () => {
      try {
        await start();
      } catch (err) {
        throw this.#last ?? err;
      }
    };
    return transport;
  }
}
