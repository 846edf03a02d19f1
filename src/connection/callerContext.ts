/**
 * Which caller a request of a user connection is made for. A connection outlives the call that opened it, so the
 * credentials on each request (the OBO assertion, `vars`, the OAuth grant) must come from the caller of that
 * request, not from the context seen at connect. Requests that belong to no call (the standby GET stream,
 * reconnects, the closing DELETE, `notifications/initialized`) use the most recent context seen for the key.
 *
 * How a request is tied to its caller without `AsyncLocalStorage` (whose promise hooks cost about a third of
 * the in-memory call throughput on Node 20): the SDK's `Protocol.request` hands the JSON-RPC message to
 * `transport.send` synchronously, inside the call to `client.callTool()` and friends. {@link CallerContext.issue}
 * marks that synchronous window, the patched `send` records the message id under the caller, and the HTTP layer
 * looks the caller up by the id found in the request body.
 * @module
 */
import type { UserContext } from '../types.js';

/**
 * A JSON-RPC request id.
 *
 * @example
 * ```ts
 * const id: JsonRpcId = 7;
 * ```
 */
export type JsonRpcId = string | number;

/**
 * The caller of each request of one user connection, and the most recent caller of its key.
 *
 * @example
 * ```ts
 * const callers = new CallerContext(firstUser);
 * callers.observe(nextUser);                                  // every acquire of the key
 * const result = callers.issue(nextUser, () => client.callTool({ name: 'me' })); // the request is nextUser's
 * ```
 */
export class CallerContext {
  #latest: UserContext;
  /** Set only during the synchronous window in which one SDK request is issued. */
  #issuing: UserContext | undefined;
  /** In-flight requests → their caller; an entry lives from `send` until the send settles. */
  readonly #byId = new Map<JsonRpcId, UserContext>();

  constructor(initial: UserContext) {
    this.#latest = initial;
  }

  /** The most recent context seen for this (tenant, user, server). */
  get latest(): UserContext {
    return this.#latest;
  }

  /** Records the context of a new caller of the key: requests that belong to no call use it from now on. */
  observe(user: UserContext): void {
    this.#latest = user;
  }

  /**
   * Runs `fn`, which issues SDK requests synchronously, with `user` as the caller of every message sent in
   * that synchronous window. Without a user, `fn` just runs.
   */
  issue<T>(user: UserContext | undefined, fn: () => T): T {
    if (user === undefined) return fn();
    const previous = this.#issuing;
    this.#issuing = user;
    try {
      return fn();
    } finally {
      this.#issuing = previous;
    }
  }

  /**
   * Called by the transport's `send` for each outgoing message: the caller it is sent for. A request sent inside
   * an {@link issue} window is remembered by id until {@link settle}.
   */
  onSend(id: JsonRpcId | undefined): UserContext {
    const user = this.#issuing;
    if (user === undefined) return this.#latest;
    if (id !== undefined) this.#byId.set(id, user);
    return user;
  }

  /**
   * The send of request `id` for `user` settled: forget its caller. Ids restart with each SDK client (after a
   * reconnect), so an entry a newer request of the same id has taken over is left alone.
   */
  settle(id: JsonRpcId | undefined, user: UserContext): void {
    if (id !== undefined && this.#byId.get(id) === user) this.#byId.delete(id);
  }

  /** The caller of the request carrying JSON-RPC id `id`; the most recent context for anything else. */
  forRequest(id: JsonRpcId | undefined): UserContext {
    return (id === undefined ? undefined : this.#byId.get(id)) ?? this.#latest;
  }
}

/**
 * The JSON-RPC id of a message as the SDK serialises it (`{...request, jsonrpc, id}`: `id` is the last key), read
 * from the end of the body without parsing the whole of it. `undefined` for notifications, batches and anything
 * that is not such a body.
 *
 * @example
 * ```ts
 * requestIdOfBody('{"method":"tools/call","params":{},"jsonrpc":"2.0","id":12}'); // 12
 * ```
 */
export function requestIdOfBody(body: unknown): JsonRpcId | undefined {
  // A request starts with its method (`{...request, jsonrpc, id}`); our responses to server requests
  // (`{result, jsonrpc, id}`) and notifications carry no caller of their own.
  if (typeof body !== 'string' || !body.startsWith('{"method":') || body.charCodeAt(body.length - 1) !== 125 /* } */) return undefined;
  const at = body.lastIndexOf('"id":');
  if (at < 0) return undefined;
  const raw = body.slice(at + 5, -1).trim();
  if (/^-?\d+$/.test(raw)) return Number(raw);
  if (raw.startsWith('"') && raw.endsWith('"')) {
    try {
      const id: unknown = JSON.parse(raw);
      return typeof id === 'string' ? id : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}
