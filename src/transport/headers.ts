/**
 * Header records: what a `fetch` call's `headers` init becomes on our request paths.
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
