/**
 * A per-operation signal that follows a caller's long-lived one, detached when the operation settles.
 * @module
 */

/**
 * Follows `parent` until {@link SignalLink.dispose}. Hand `signal` to code that adds an abort listener and never
 * removes it (the SDK's `Protocol.request` does): a host that passes one `AbortSignal` for a whole session then
 * does not collect one listener per call on it.
 *
 * @example
 * ```ts
 * const link = new SignalLink(sessionSignal);
 * try {
 *   await client.callTool(params, undefined, { signal: link.signal });
 * } finally {
 *   link.dispose();
 * }
 * ```
 */
export class SignalLink {
  readonly #controller = new AbortController();
  readonly #parent: AbortSignal;
  readonly #onAbort = (): void => this.#controller.abort(this.#parent.reason);

  constructor(parent: AbortSignal) {
    this.#parent = parent;
    if (parent.aborted) this.#controller.abort(parent.reason);
    else parent.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** Aborts when the parent does, until disposed. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Detaches from the parent. Idempotent. */
  dispose(): void {
    this.#parent.removeEventListener('abort', this.#onAbort);
  }
}
