/**
 * Admission control for connects: at most N handshakes in flight per origin (or per stdio command). A burst of a
 * thousand users calling one cold server then queues here instead of starting a thousand handshakes at once,
 * each racing its own `initTimeoutMs` on a saturated event loop. Time spent waiting for admission does not count
 * against `initTimeoutMs`; the caller's own signal still applies. Only handshakes hold a place: an open
 * connection (and its standby stream's socket) does not, so the bound cannot deadlock.
 * @module
 */
import { SwitchboardError } from '../errors.js';
import { followSignal } from './signalLink.js';

interface Waiter {
  grant(): void;
}

/**
 * A counting semaphore per key, FIFO, abort-aware: the factory bounds handshakes per origin with it, the pool
 * bounds concurrent closes.
 *
 * @example
 * ```ts
 * const admission = new KeyedSemaphore(16);
 * const release = await admission.enter('https://mcp.example.com', signal, 'files');
 * try { await connection.connect(); } finally { release(); }
 * ```
 */
export class KeyedSemaphore {
  readonly #limit: number;
  readonly #active = new Map<string, number>();
  readonly #queues = new Map<string, Waiter[]>();

  /** @param limit Most handshakes in flight per key; `Infinity` admits everything at once. */
  constructor(limit: number) {
    if (!(limit >= 1)) throw new TypeError('maxConcurrentConnects must be a number >= 1 (or Infinity)');
    this.#limit = limit;
  }

  /** Handshakes in flight and waiting, over all keys. */
  stats(): { active: number; waiting: number } {
    let active = 0;
    let waiting = 0;
    for (const n of this.#active.values()) active += n;
    for (const q of this.#queues.values()) waiting += q.length;
    return { active, waiting };
  }

  /** Takes a place under `key` if one is free now (no microtask spent); `undefined` when the caller must wait. */
  tryEnter(key: string): (() => void) | undefined {
    const active = this.#active.get(key) ?? 0;
    if (active >= this.#limit) return undefined;
    this.#active.set(key, active + 1);
    return this.#releaser(key);
  }

  /**
   * Waits for a place under `key`; resolves to the function that gives it back (call it exactly once; extra calls
   * are ignored). Rejects with `SwitchboardError('aborted')` if `signal` aborts first.
   */
  enter(key: string, signal: AbortSignal | undefined, serverName: string): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(aborted(serverName, signal));
    const active = this.#active.get(key) ?? 0;
    if (active < this.#limit) {
      this.#active.set(key, active + 1);
      return Promise.resolve(this.#releaser(key));
    }
    return new Promise<() => void>((resolve, reject) => {
      const queue = this.#queues.get(key) ?? [];
      this.#queues.set(key, queue);
      const onAbort = () => {
        const i = queue.indexOf(waiter);
        if (i >= 0) queue.splice(i, 1);
        if (queue.length === 0) this.#queues.delete(key);
        reject(aborted(serverName, signal!));
      };
      let unfollow = (): void => {};
      const waiter: Waiter = {
        grant: () => {
          unfollow();
          resolve(this.#releaser(key));
        },
      };
      queue.push(waiter);
      if (signal) unfollow = followSignal(signal, onAbort);
    });
  }

  #releaser(key: string): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const queue = this.#queues.get(key);
      const next = queue?.shift();
      if (queue && queue.length === 0) this.#queues.delete(key);
      // The place passes straight to the next waiter: the count under `key` stays the same.
      if (next) return next.grant();
      const n = (this.#active.get(key) ?? 1) - 1;
      if (n <= 0) this.#active.delete(key);
      else this.#active.set(key, n);
    };
  }
}

function aborted(serverName: string, signal: AbortSignal): SwitchboardError {
  return new SwitchboardError('aborted', `Waiting to connect to MCP server "${serverName}" was aborted`, { serverName, cause: signal.reason });
}
