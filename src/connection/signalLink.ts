/**
 * Following a caller's long-lived `AbortSignal` from many operations at once with one listener on it.
 * @module
 */

/**
 * The operations following each signal. A signal gets one `abort` listener however many calls follow it: hosts
 * commonly pass one signal for a whole session or request, and 50 concurrent calls must not add 50 listeners
 * (Node warns past 10). Keyed weakly by the caller's signal, so it holds nothing once the signal is gone; it is
 * module-level because two managers following the same caller signal must share the one listener too.
 */
const followers = new WeakMap<AbortSignal, Followers>();

/** The followers of one signal and the one listener that calls them. */
interface Followers {
  set: Set<() => void>;
  listener: () => void;
  /** The listener stays when the last follower leaves (see `keepListener`). */
  keep: boolean;
}

/**
 * Calls `onAbort` once when `signal` aborts, until the returned function is called (idempotent). `onAbort` runs
 * at once (synchronously) when the signal is already aborted. However many followers a signal has, it carries
 * one `abort` listener of ours, removed with the last follower; with `keepListener` it stays until the signal
 * aborts (or both are collected): for a signal that lives as long as its owner and is followed over and over
 * (a transport's, by each of its requests), where adding and removing a listener each time costs more than the
 * work it guards.
 *
 * @example
 * ```ts
 * const unfollow = followSignal(session.signal, () => controller.abort(session.signal.reason));
 * try {
 *   await work(controller.signal);
 * } finally {
 *   unfollow();
 * }
 * ```
 */
export function followSignal(signal: AbortSignal, onAbort: () => void, opts?: { keepListener?: boolean }): () => void {
  if (signal.aborted) {
    onAbort();
    return noop;
  }
  let group = followers.get(signal);
  if (!group) {
    const set = new Set<() => void>();
    const listener = (): void => {
      followers.delete(signal);
      // Each follower runs even if another threw, and none that left meanwhile (one follower may unfollow another).
      for (const f of [...set]) {
        if (!set.has(f)) continue;
        set.delete(f);
        try {
          f();
        } catch (err) {
          queueMicrotask(() => {
            throw err;
          });
        }
      }
    };
    group = { set, listener, keep: false };
    followers.set(signal, group);
    signal.addEventListener('abort', listener, { once: true });
  }
  if (opts?.keepListener) group.keep = true;
  const own = group;
  // A wrapper per follower, so that the same callback can follow twice and be removed once.
  const entry = (): void => onAbort();
  own.set.add(entry);
  return () => {
    if (!own.set.delete(entry) || own.set.size > 0 || own.keep || followers.get(signal) !== own) return;
    // The last follower left: the listener goes too (it would keep the group alive as long as the signal lives).
    followers.delete(signal);
    signal.removeEventListener('abort', own.listener);
  };
}

function noop(): void {}

/**
 * Follows `parent` until {@link SignalLink.dispose}. Hand `signal` to code that adds an abort listener and never
 * removes it (the SDK's `Protocol.request` does): a host that passes one `AbortSignal` for a whole session then
 * does not collect one listener per call on it, and concurrent calls share one listener ({@link followSignal}).
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
  readonly #unfollow: () => void;

  constructor(parent: AbortSignal) {
    this.#unfollow = followSignal(parent, () => this.#controller.abort(parent.reason));
  }

  /** Aborts when the parent does, until disposed. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Detaches from the parent. Idempotent. */
  dispose(): void {
    this.#unfollow();
  }
}
