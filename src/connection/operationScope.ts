/**
 * One operation's cancellation: the caller's signal, a deadline and the connection's close, merged into the
 * one signal handed to the SDK (so it sends `notifications/cancelled`) and to every await of the operation.
 * @module
 */
import { followSignal } from './signalLink.js';

/**
 * Why an {@link OperationScope} ended early.
 *
 * @example
 * ```ts
 * const reason: ScopeEndReason | undefined = scope.endedBy; // 'aborted' | 'timeout' | 'closed'
 * ```
 */
export type ScopeEndReason = 'aborted' | 'timeout' | 'closed';

/**
 * What `toError` gets as its second argument when a scope timed out: which deadline ran out, and its length in ms
 * (`timeoutMs`, restarted by progress, or the `maxTotalMs` bound).
 *
 * @example
 * ```ts
 * const detail: TimeoutDetail = { limit: 'maxTotalMs', ms: 800 };
 * ```
 */
export interface TimeoutDetail {
  limit: 'timeoutMs' | 'maxTotalMs';
  ms: number;
}

/**
 * Options of {@link OperationScope}.
 *
 * @example
 * ```ts
 * const opts: OperationScopeOptions = { timeoutMs: 5_000, signal, toError: (reason) => new Error(reason) };
 * ```
 */
export interface OperationScopeOptions {
  /** Deadline of the whole operation in ms from now (restarted by {@link OperationScope.touch}). */
  timeoutMs: number;
  /** Bound in ms from now that {@link OperationScope.touch} never extends the deadline past; default none. */
  maxTotalMs?: number;
  /** The caller's signal. */
  signal?: AbortSignal;
  /** Aborted when the connection closes. */
  closeSignal?: AbortSignal;
  /** Builds the error an ended scope rejects with. */
  toError: (reason: ScopeEndReason, signalReason: unknown) => Error;
}

/**
 * Merges a caller's signal, a deadline and a close signal. `signal` aborts on the first of them, `endedBy`
 * says which, and {@link OperationScope.race} rejects every await with the matching error at once.
 * The timer is `unref()`'d; {@link OperationScope.dispose} clears it and detaches every listener.
 *
 * @example
 * ```ts
 * const scope = new OperationScope({ timeoutMs: 5_000, signal, toError: (r) => new Error(r) });
 * try {
 *   await scope.race(doWork(scope.signal));
 * } finally {
 *   scope.dispose();
 * }
 * ```
 */
export class OperationScope {
  readonly #controller = new AbortController();
  #deadline: number;
  readonly #timeoutMs: number;
  readonly #hardDeadline: number;
  #timer: NodeJS.Timeout | undefined;
  /** Disposed: a late progress notification must not arm a new timer. */
  #disposed = false;
  readonly #toError: OperationScopeOptions['toError'];
  readonly #maxTotalMs: number | undefined;
  readonly #cleanups: (() => void)[] = [];
  #endedBy: ScopeEndReason | undefined;
  #error: Error | undefined;

  constructor(opts: OperationScopeOptions) {
    const now = Date.now();
    this.#timeoutMs = opts.timeoutMs;
    this.#hardDeadline = opts.maxTotalMs === undefined ? Infinity : now + opts.maxTotalMs;
    this.#maxTotalMs = opts.maxTotalMs;
    this.#deadline = Math.min(now + opts.timeoutMs, this.#hardDeadline);
    this.#toError = opts.toError;
    this.#watch(opts.signal, 'aborted');
    this.#watch(opts.closeSignal, 'closed');
    if (!this.#endedBy) {
      this.#arm(this.#deadline - now);
      this.#cleanups.push(() => clearTimeout(this.#timer));
    }
  }

  /**
   * Restarts the deadline at `timeoutMs` from now, never past `maxTotalMs` from the start: a long operation that
   * keeps reporting progress is not timed out while progress keeps coming.
   */
  touch(): void {
    if (this.#endedBy || this.#disposed) return;
    const now = Date.now();
    this.#deadline = Math.min(now + this.#timeoutMs, this.#hardDeadline);
    clearTimeout(this.#timer);
    this.#arm(this.#deadline - now);
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(() => this.#end('timeout', this.timeoutDetail()), Math.max(0, ms));
    this.#timer.unref?.();
  }

  /**
   * The deadline now in force, which the scope's own timeout error reports: which limit it comes from
   * (`maxTotalMs` when the total bound comes first) and its length. Also for an error about a timeout reported by
   * someone else (the SDK's own request timer, set to {@link remaining}).
   */
  timeoutDetail(): TimeoutDetail {
    return this.#deadline === this.#hardDeadline ? { limit: 'maxTotalMs', ms: this.#maxTotalMs! } : { limit: 'timeoutMs', ms: this.#timeoutMs };
  }

  /** Aborts when the scope ends for any reason; pass it to the SDK and to transports. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Why the scope ended, or `undefined` while it runs. */
  get endedBy(): ScopeEndReason | undefined {
    return this.#endedBy;
  }

  /** The error matching {@link endedBy}, or `undefined` while the scope runs. */
  get error(): Error | undefined {
    return this.#error;
  }

  /** Milliseconds left before the deadline (at least 1, so it is always a valid SDK timeout). */
  remaining(): number {
    return Math.max(1, this.#deadline - Date.now());
  }

  /** Throws the scope's error if it has ended. */
  throwIfEnded(): void {
    if (this.#error) throw this.#error;
  }

  /** Settles like `promise`, or rejects with the scope's error as soon as the scope ends. */
  race<T>(promise: Promise<T>): Promise<T> {
    if (this.#error) {
      promise.catch(() => {});
      return Promise.reject(this.#error);
    }
    return new Promise<T>((resolve, reject) => {
      const onEnd = () => reject(this.#error);
      this.#controller.signal.addEventListener('abort', onEnd, { once: true });
      promise.then(
        (v) => {
          this.#controller.signal.removeEventListener('abort', onEnd);
          resolve(v);
        },
        (e: unknown) => {
          this.#controller.signal.removeEventListener('abort', onEnd);
          reject(e);
        },
      );
    });
  }

  /** Clears the timer and detaches from the caller's and the close signal. Idempotent. */
  dispose(): void {
    this.#disposed = true;
    for (const cleanup of this.#cleanups.splice(0)) cleanup();
  }

  #watch(signal: AbortSignal | undefined, reason: ScopeEndReason): void {
    if (!signal || this.#endedBy) return;
    if (signal.aborted) {
      this.#end(reason, signal.reason);
      return;
    }
    // One listener on a caller's signal however many operations follow it (see followSignal).
    this.#cleanups.push(followSignal(signal, () => this.#end(reason, signal.reason)));
  }

  #end(reason: ScopeEndReason, signalReason: unknown): void {
    if (this.#endedBy) return;
    this.#endedBy = reason;
    this.#error = this.#toError(reason, signalReason);
    this.#controller.abort(this.#error);
    this.dispose();
  }
}
