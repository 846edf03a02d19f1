/**
 * The auth-aware fetch every HTTP transport uses: static headers, a fresh Authorization from the auth provider
 * on every request, one refresh-and-resend on 401, SSRF checks per hop, and a redirect policy that never
 * carries credentials to another origin. It is the request path of `requestPath.ts` with those stages only.
 * @module
 */
import type { Dispatcher } from 'undici';
import { createRequestPath } from './requestPath.js';
import type { SsrfOptions } from './ssrf.js';
import type { AuthHeaderProvider, AuthHeaderRequest, FetchLike } from './types.js';

/**
 * Options of {@link createAuthFetch}.
 *
 * @example
 * ```ts
 * const opts: AuthFetchOptions = {
 *   dispatcher: http.forConfig(config).dispatcher,
 *   headers: { 'X-Tenant': 'contoso' },
 *   authHeaders: async ({ forceRefresh }) => ({ Authorization: `Bearer ${await getToken(forceRefresh)}` }),
 *   retryUnauthorized: true,
 * };
 * ```
 */
export interface AuthFetchOptions {
  /** The undici dispatcher every request goes through (see `HttpClient.forConfig`). */
  dispatcher: Dispatcher;
  /** Static + placeholder-resolved headers from the config. */
  headers?: Record<string, string>;
  /**
   * Per-request headers that are not credentials of a provider (a config's `{{var.*}}` / `{{user.*}}` headers,
   * resolved for the request's caller). Called for every same-origin request before `authHeaders`; a throw
   * (e.g. `ConfigError` for a variable the caller no longer has) means the request is not sent, and the error
   * reaches the caller unchanged. Unlike `authHeaders`, it does not displace a static Authorization header.
   */
  requestHeaders?: (req: AuthHeaderRequest) => Record<string, string> | Promise<Record<string, string>>;
  /** Called for EVERY request (POST, GET stream, DELETE, reconnects). Throws → request NOT sent, error reaches the caller unchanged (same object). When present, any Authorization header coming from `headers` or from the SDK's init is dropped first: the provider's answer is the only source of Authorization (no fallback ever). */
  authHeaders?: AuthHeaderProvider;
  /** When true and authHeaders present: a 401 (or 403 whose WWW-Authenticate has error="invalid_token") → call authHeaders again with forceRefresh:true and resend the same request once (bodies are strings from the SDK; make sure a body can be resent). */
  retryUnauthorized?: boolean;
  /** Builds the error to throw when the resent request is rejected again (e.g. OboError('rejected_by_server')); default: return the second response as is. */
  onRejected?: (res: Response) => Error;
  /** SSRF options: when set, the URL's host (literal IPs included, since the connect hook is not consulted for literal IPs by some paths) and each redirect hop are checked; blocked → SwitchboardError('ssrf_blocked') before anything is sent. */
  ssrf?: SsrfOptions;
  /** Max redirects followed (default 5). Redirects are followed manually: a redirect to another origin drops Authorization, Cookie and Proxy-Authorization (and the auth provider is not consulted for the other origin). The config's own `headers` (which often carry API keys) are dropped there too; the caller's protocol headers stay. */
  maxRedirects?: number;
}

/**
 * Creates the auth-aware fetch that the default HTTP transports use, sending on `opts.dispatcher`: the
 * composition, in `createRequestPath`, of the 401/403 retry, redirects with the SSRF guard, credentials and
 * content-decoding stages. It answers as `fetch` does (a `Response`; `TypeError('fetch failed', { cause })` on a
 * network failure; the signal's reason on abort; gzip, deflate and br bodies decoded), without `fetch`'s cost for
 * string and byte bodies (see `dispatchFetch.ts`).
 *
 * Per request: the config's `headers`, then the caller's headers (the SDK's protocol headers win), then,
 * when `authHeaders` is given, Authorization only from it. A request whose `redirect` is `'manual'` (as the
 * SDK's own same-origin redirect policy sends) gets the redirect response back as is; otherwise redirects
 * are followed here (at most `maxRedirects`), each hop SSRF-checked, credentials dropped on leaving the origin.
 * A network error caused by the SSRF guard is rethrown as the guard's `SwitchboardError('ssrf_blocked')`.
 *
 * @example
 * ```ts
 * import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
 * const { dispatcher, ssrf } = http.forConfig(config);
 * const fetch = createAuthFetch({ dispatcher, ssrf, authHeaders: oboHeaders, retryUnauthorized: true });
 * const transport = new StreamableHTTPClientTransport(new URL(config.url), { fetch });
 * ```
 */
export function createAuthFetch(opts: AuthFetchOptions): FetchLike {
  return createRequestPath(opts);
}
