/**
 * The auth-aware fetch every HTTP transport uses: static headers, a fresh Authorization from the auth provider
 * on every request, one refresh-and-resend on 401, SSRF checks per hop, and a redirect policy that never
 * carries credentials to another origin.
 * @module
 */
import { fetch as undiciFetch, type Dispatcher } from 'undici';
import { SwitchboardError } from '../errors.js';
import { requestIdOfBody } from '../connection/callerContext.js';
import { checkHost, type SsrfOptions } from './ssrf.js';
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

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const CREDENTIAL_HEADERS = ['authorization', 'cookie', 'proxy-authorization'];

/** One request as sent: what a resend or a redirect hop starts from. */
interface Attempt {
  url: URL;
  method: string;
  headers: Record<string, string>;
  body: RequestInit['body'] | undefined;
  /** False once a hop left the origin of the first URL: no credentials from then on. */
  sameOrigin: boolean;
}

/**
 * Creates the auth-aware fetch that the default HTTP transports use (undici's fetch on `opts.dispatcher`).
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
  const maxRedirects = opts.maxRedirects ?? 5;
  if (!Number.isInteger(maxRedirects) || maxRedirects < 0) throw new TypeError('maxRedirects must be a whole number >= 0');
  const staticHeaders = lowerKeys(opts.headers ?? {});

  return async (input, init = {}) => {
    const url = new URL(input instanceof URL ? input.href : String(input));
    const method = (init.method ?? 'GET').toUpperCase();
    const callerHeaders = lowerKeys(headersToRecord(init.headers));
    const headers = { ...staticHeaders, ...callerHeaders };
    // Headers only the config supplied: meant for the configured server, never for another origin.
    const configOnly = Object.keys(staticHeaders).filter((h) => !(h in callerHeaders));
    if (opts.authHeaders) delete headers.authorization;
    // A stream body can be sent once only: no resend after 401, no redirect that keeps the body.
    const oneShot = !isResendable(init.body);
    const first: Attempt = { url, method, headers, body: init.body ?? undefined, sameOrigin: true };
    const requestId = requestIdOfBody(init.body);

    let res = await send(first, false);
    if (oneShot || !opts.authHeaders || !opts.retryUnauthorized || !isUnauthorized(res) || !res.sameOrigin) return res.response;
    await discard(res.response);
    res = await send(first, true);
    if (opts.onRejected && isUnauthorized(res)) {
      await discard(res.response);
      throw opts.onRejected(res.response);
    }
    return res.response;

    async function send(start: Attempt, forceRefresh: boolean): Promise<{ response: Response; sameOrigin: boolean }> {
      let attempt = start;
      for (let hops = 0; ; hops++) {
        const response = await sendOne(attempt, forceRefresh);
        const location = REDIRECTS.has(response.status) ? response.headers.get('location') : null;
        if (!location || init.redirect === 'manual') return { response, sameOrigin: attempt.sameOrigin };
        const next = nextHop(attempt, response.status, location, configOnly);
        if (oneShot && next.body !== undefined) return { response, sameOrigin: attempt.sameOrigin };
        await discard(response);
        if (init.redirect === 'error') throw new SwitchboardError('transport_error', `Redirect from ${safeUrl(attempt.url)} refused (redirect: 'error')`);
        if (hops >= maxRedirects) throw new SwitchboardError('transport_error', `Too many redirects (more than ${maxRedirects}) from ${safeUrl(url)}`);
        attempt = next;
      }
    }

    async function sendOne(attempt: Attempt, forceRefresh: boolean): Promise<Response> {
      if (opts.ssrf) {
        const problem = checkHost(attempt.url.hostname, opts.ssrf);
        if (problem) throw problem;
      }
      const headers = { ...attempt.headers };
      if ((opts.authHeaders || opts.requestHeaders) && attempt.sameOrigin) {
        const req: AuthHeaderRequest = {
          url: new URL(attempt.url.href),
          method: attempt.method,
          forceRefresh,
          ...(init.signal ? { signal: init.signal } : {}),
          ...(requestId === undefined ? {} : { requestId }),
        };
        // No try/catch: a provider's error reaches the caller as the same object.
        if (opts.requestHeaders) Object.assign(headers, lowerKeys(await opts.requestHeaders(req)));
        if (opts.authHeaders) Object.assign(headers, lowerKeys((await opts.authHeaders(req)) ?? {}));
      }
      try {
        const response = await undiciFetch(attempt.url, {
          method: attempt.method,
          headers,
          body: attempt.body as never,
          redirect: 'manual',
          duplex: 'half',
          signal: init.signal ?? null,
          dispatcher: opts.dispatcher,
        });
        return response as unknown as Response;
      } catch (err) {
        // undici wraps connector errors in TypeError('fetch failed'); surface the guard's own error.
        const cause = (err as { cause?: unknown } | undefined)?.cause;
        if (cause instanceof SwitchboardError && cause.code === 'ssrf_blocked') throw cause;
        throw err;
      }
    }
  };
}

/** Whether a body can be sent twice (absent, a string, bytes, form params or a Blob; not a stream). */
function isResendable(body: RequestInit['body'] | undefined): boolean {
  if (body === undefined || body === null) return true;
  if (typeof body === 'string' || body instanceof ArrayBuffer || ArrayBuffer.isView(body) || body instanceof URLSearchParams) return true;
  return typeof Blob !== 'undefined' && body instanceof Blob;
}

function nextHop(from: Attempt, status: number, location: string, configOnly: readonly string[]): Attempt {
  let target: URL;
  try {
    target = new URL(location, from.url);
  } catch {
    throw new SwitchboardError('transport_error', `Invalid redirect location from ${safeUrl(from.url)}`);
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:') {
    throw new SwitchboardError('transport_error', `Redirect to a ${target.protocol} URL refused`);
  }
  const headers = { ...from.headers };
  let { method, body } = from;
  // Fetch spec: 303 (and 301/302 after POST) become a GET without a body.
  if (status === 303 ? method !== 'HEAD' : (status === 301 || status === 302) && method === 'POST') {
    method = 'GET';
    body = undefined;
    for (const h of ['content-type', 'content-length', 'content-encoding', 'content-language', 'content-location']) delete headers[h];
  }
  const sameOrigin = from.sameOrigin && target.origin === from.url.origin && !target.username && !target.password;
  if (!sameOrigin) for (const h of [...CREDENTIAL_HEADERS, ...configOnly]) delete headers[h];
  return { url: target, method, headers, body, sameOrigin };
}

function isUnauthorized(res: { response: Response }): boolean {
  const { status, headers } = res.response;
  if (status === 401) return true;
  if (status !== 403) return false;
  return /(?:^|[\s,])error\s*=\s*"?invalid_token"?/i.test(headers.get('www-authenticate') ?? '');
}

async function discard(response: Response): Promise<void> {
  await response.body?.cancel().catch(() => {});
}

function headersToRecord(headers: RequestInit['headers'] | undefined): Record<string, string> {
  if (!headers) return {};
  const out: Record<string, string> = {};
  const entries: Iterable<[string, string]> =
    Array.isArray(headers) || typeof (headers as Headers)[Symbol.iterator] === 'function'
      ? (headers as Iterable<[string, string]>)
      : Object.entries(headers as Record<string, string>);
  for (const [k, v] of entries) out[k] = v;
  return out;
}

function lowerKeys(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k.toLowerCase()] = v;
  return out;
}

/** A URL for messages: no userinfo, query or fragment (they may carry secrets). */
function safeUrl(url: URL): string {
  return `${url.origin}${url.pathname}`;
}
