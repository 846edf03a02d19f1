/**
 * What a `fetch` call's init becomes on our own request paths (the MCP request path's dispatch and the IdP
 * requests, both on undici without its `fetch`): a header record, a body undici takes as it is, the headers
 * `fetch` adds by default, and the statuses whose response has no body.
 * @module
 */

/**
 * A fetch's `headers` init (a `Headers`, pairs, or a record) as a record with lower-cased names; a name given
 * twice is joined with `, `, as `Headers` does.
 *
 * @example
 * ```ts
 * headerRecord([['Accept', 'a'], ['accept', 'b']]); // { accept: 'a, b' }
 * ```
 */
export function headerRecord(headers: RequestInit['headers'] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!headers) return out;
  const entries: Iterable<[string, string]> =
    Array.isArray(headers) || typeof (headers as Headers)[Symbol.iterator] === 'function'
      ? (headers as Iterable<[string, string]>)
      : Object.entries(headers as Record<string, string>);
  for (const [k, v] of entries) {
    if (v === undefined) continue;
    const name = k.toLowerCase();
    out[name] = Object.hasOwn(out, name) ? `${out[name]}, ${v}` : String(v);
  }
  return out;
}

/**
 * The `User-Agent` our own HTTP requests send when the caller set none (fetch would send its own; firewalls in
 * front of IdPs and MCP servers refuse requests without one).
 *
 * @example
 * ```ts
 * headers['user-agent'] ??= DEFAULT_USER_AGENT;
 * ```
 */
export const DEFAULT_USER_AGENT = 'mcp-switchboard';

/**
 * Adds the headers fetch sends when the caller set none: `Accept: *\/*` and a `User-Agent` ({@link DEFAULT_USER_AGENT}).
 *
 * @example
 * ```ts
 * const headers = headerRecord(init.headers);
 * addFetchDefaults(headers);
 * ```
 */
export function addFetchDefaults(headers: Record<string, string>): void {
  headers['accept'] ??= '*/*';
  headers['user-agent'] ??= DEFAULT_USER_AGENT;
}

/**
 * A fetch body as undici's dispatch (and `request`) take it: `null` for none, a string (form parameters as their
 * text), or bytes; sets the `Content-Type` fetch would have set on `headers` when the caller set none.
 * `undefined` for a body undici does not take as it is (a stream, a `Blob`, `FormData`).
 *
 * @example
 * ```ts
 * const body = dispatchBody(init.body, headers); // '{"jsonrpc":"2.0",…}', headers['content-type'] set if absent
 * ```
 */
export function dispatchBody(body: RequestInit['body'] | undefined, headers: Record<string, string>): string | Uint8Array | null | undefined {
  if (body === undefined || body === null) return null;
  if (typeof body === 'string') {
    headers['content-type'] ??= 'text/plain;charset=UTF-8';
    return body;
  }
  if (body instanceof URLSearchParams) {
    headers['content-type'] ??= 'application/x-www-form-urlencoded;charset=UTF-8';
    return body.toString();
  }
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  return undefined;
}

/**
 * Whether a response with `status` has no body (a `Response` refuses even an empty one for them): 204, 205, 304.
 *
 * @example
 * ```ts
 * new Response(isNullBodyStatus(status) ? null : body, { status });
 * ```
 */
export function isNullBodyStatus(status: number): boolean {
  return status === 204 || status === 205 || status === 304;
}
