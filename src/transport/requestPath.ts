/**
 * The HTTP request path of a connection, composed in this one place from small interceptors that each do one
 * job (the model is undici's `Dispatcher.compose`):
 *
 * ```
 * fetch(url, init) → [standby gate] → [own errors] → [401/403 retry] → redirects + SSRF guard → credentials
 *                  → content decoding → [response watch] → dispatch on the connection's undici dispatcher
 * ```
 *
 * Bracketed stages are present only when configured. Each stage is a {@link RequestInterceptor}: it gets the
 * next stage and returns a stage of its own, seeing one {@link OutgoingRequest} (a normalised request: a URL,
 * lower-cased headers, the JSON-RPC id of the body) and the `Response`. No timer lives on this path: undici's
 * own body and header timeouts are turned off in `HttpClient`, so the call deadlines of `MCPConnection` are
 * the only ones.
 * @module
 */
import { fetch as undiciFetch, type Dispatcher } from 'undici';
import { requestIdOfBody, type JsonRpcId } from '../connection/callerContext.js';
import { headerRecord } from './fetchInit.js';
import type { SwitchboardError } from '../errors.js';
import type { RetryPolicy } from '../connection/retryPolicy.js';
import type { Logger } from '../types.js';
import { credentials, type CredentialsOptions } from './interceptors/credentials.js';
import { unauthorizedRetry } from './interceptors/unauthorized.js';
import { redirects } from './interceptors/redirects.js';
import { responseWatch, type WatchedStreams } from './interceptors/responseWatch.js';
import { standbyGate } from './interceptors/standbyGate.js';
import { requestSignal } from './interceptors/requestSignal.js';
import { sendOnDispatcher } from './dispatchFetch.js';
import { contentDecoding } from './interceptors/contentDecoding.js';
import type { OwnErrors } from './interceptors/ownErrors.js';
import type { SsrfOptions } from './ssrf.js';
import type { AuthChallenge, FetchLike } from './types.js';

/**
 * One HTTP request as it travels down the request path. Stages never mutate it: a stage that changes
 * something passes a copy (`{ ...req, headers }`) to the next one.
 *
 * @example
 * ```ts
 * const tagTenant: RequestInterceptor = (next) => (req: OutgoingRequest) => next({ ...req, headers: { ...req.headers, 'x-tenant': 'contoso' } });
 * ```
 */
export interface OutgoingRequest {
  /** Where this hop goes. */
  url: URL;
  /** Upper-case HTTP method. */
  method: string;
  /** The caller's headers, names lower-cased (credentials are added by the `credentials` stage). */
  headers: Record<string, string>;
  /** The body as the SDK gave it (a string for JSON-RPC messages). */
  body: RequestInit['body'] | undefined;
  /** Aborts the request (the SDK transport's own signal: aborted when the transport closes). */
  signal?: AbortSignal;
  /** The caller's redirect mode: `'manual'` returns redirects as they are (the SDK follows them itself). */
  redirect: NonNullable<RequestInit['redirect']>;
  /** The JSON-RPC id of the request in the body (POST of a request); absent for GET, DELETE, notifications. */
  requestId?: JsonRpcId;
  /** True on the one resend after a 401: credential providers must not answer from a cache. */
  forceRefresh: boolean;
  /** On that resend: the server's challenge (what its `WWW-Authenticate` said). */
  challenge?: AuthChallenge;
  /** On that resend: the Authorization value the server refused. */
  refusedAuthorization?: string;
  /** True once a redirect left the first URL's origin: no credentials, no config headers from then on. */
  crossOrigin: boolean;
  /** The undici dispatcher this hop is sent through (a stage may put a watching one in front of it). */
  dispatcher: Dispatcher;
}

/**
 * One stage of the request path.
 *
 * @example
 * ```ts
 * const countGets = (counter: { gets: number }): RequestInterceptor => (next) => (req) => {
 *   if (req.method === 'GET') counter.gets++;
 *   return next(req);
 * };
 * ```
 */
export type RequestStage = (req: OutgoingRequest) => Promise<Response>;

/**
 * A function from the next stage to a stage of its own: one job per interceptor.
 *
 * @example
 * ```ts
 * const noDelete: RequestInterceptor = (next) => (req) =>
 *   req.method === 'DELETE' ? Promise.resolve(new Response(null, { status: 405 })) : next(req);
 * ```
 */
export type RequestInterceptor = (next: RequestStage) => RequestStage;

/**
 * Composes interceptors around `last`: the first interceptor sees the request first.
 *
 * @example
 * ```ts
 * const stage = composeStages(sendWithUndici, [tagTenant, countGets({ gets: 0 })]);
 * ```
 */
export function composeStages(last: RequestStage, interceptors: readonly (RequestInterceptor | undefined)[]): RequestStage {
  let stage = last;
  for (let i = interceptors.length - 1; i >= 0; i--) {
    const wrap = interceptors[i];
    if (wrap) stage = wrap(stage);
  }
  return stage;
}

/**
 * The last stage: undici's fetch on the hop's dispatcher. Redirects are never followed here (the `redirects`
 * stage does it, hop by hop); a stream body is sent half-duplex.
 *
 * @example
 * ```ts
 * const res = await sendWithUndici({ url: new URL('http://127.0.0.1:3000/mcp'), method: 'GET', headers: {}, body: undefined,
 *   redirect: 'manual', forceRefresh: false, crossOrigin: false, dispatcher });
 * ```
 */
export const sendWithUndici: RequestStage = async (req) => {
  const response = await undiciFetch(req.url, {
    method: req.method,
    headers: req.headers,
    body: req.body as never,
    redirect: 'manual',
    duplex: 'half',
    signal: req.signal ?? null,
    dispatcher: req.dispatcher,
  });
  return response as unknown as Response;
};

/**
 * The last stage of every request path: the request dispatched as it is, or through undici's fetch for bodies
 * other than a string, bytes or form parameters (see `dispatchFetch.ts`).
 */
const SEND: RequestStage = sendOnDispatcher(requestSignal()(sendWithUndici));

/**
 * Everything the request path of one connection attempt may do. Only `dispatcher` is required: the rest
 * turns stages on.
 *
 * @example
 * ```ts
 * const opts: RequestPathOptions = {
 *   dispatcher,
 *   authHeaders: async ({ forceRefresh }) => ({ Authorization: `Bearer ${await getToken(forceRefresh)}` }),
 *   retryUnauthorized: true,
 *   watch: { serverName: 'docs', streams: 'streamable-http', maxMessageBytes: 16 * 1024 * 1024, answer: (id, err) => console.log(id, err.code) },
 * };
 * ```
 */
export interface RequestPathOptions extends CredentialsOptions {
  /** The undici dispatcher every request goes through (see `HttpClient.forConfig`). */
  dispatcher: Dispatcher;
  /** After a 401 (or a 403 `invalid_token`): ask the credentials again with `forceRefresh` and resend once. */
  retryUnauthorized?: boolean;
  /** The error thrown when the resent request is refused again; default: the second response is returned. */
  onRejected?: (res: Response) => Error;
  /** Also resend once after a 403 `insufficient_scope` (scope step-up), with the challenge. */
  stepUp?: boolean;
  /** SSRF rules checked on every hop (the URL's host); absent: no check. */
  ssrf?: SsrfOptions;
  /** Most redirects followed (default 5). */
  maxRedirects?: number;
  /** Watches responses (lost streams, size caps) and answers requests locally; see `responseWatch`. */
  watch?: {
    serverName: string;
    streams: WatchedStreams;
    maxMessageBytes: number;
    answer: (id: JsonRpcId, error: SwitchboardError) => void;
    /** Whether lost POST response streams are detected (default true). */
    detectLoss?: boolean;
  };
  /** Bounds the standby GET streams of a streamable HTTP connection; see `standbyGate`. */
  standby?: { policy: RetryPolicy; enabled: boolean; logger: Logger; serverName: string };
  /** Remembers the errors the path raised itself (credentials, SSRF, config) for the SSE transport's start. */
  ownErrors?: OwnErrors;
}

/**
 * Builds the request path (see the module comment for its order) and returns it as a `fetch`.
 *
 * @example
 * ```ts
 * import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
 * const fetch = createRequestPath({ dispatcher, ssrf, authHeaders: oboHeaders, retryUnauthorized: true });
 * const transport = new StreamableHTTPClientTransport(new URL('https://mcp.example.com/mcp'), { fetch });
 * ```
 */
export function createRequestPath(opts: RequestPathOptions): FetchLike {
  const maxRedirects = opts.maxRedirects ?? 5;
  if (!Number.isInteger(maxRedirects) || maxRedirects < 0) throw new TypeError('maxRedirects must be a whole number >= 0');
  const stage = composeStages(SEND, [
    opts.standby ? standbyGate(opts.standby) : undefined,
    opts.ownErrors?.interceptor,
    opts.authHeaders && opts.retryUnauthorized
      ? unauthorizedRetry({ ...(opts.onRejected ? { onRejected: opts.onRejected } : {}), ...(opts.stepUp ? { stepUp: true } : {}) })
      : undefined,
    redirects({ maxRedirects, ...(opts.ssrf ? { ssrf: opts.ssrf } : {}) }),
    credentials(opts),
    contentDecoding(),
    opts.watch ? responseWatch(opts.watch) : undefined,
  ]);
  const { dispatcher } = opts;
  return (input, init = {}) => {
    const headers = headerRecord(init.headers);
    const requestId = requestIdOfBody(init.body);
    return stage({
      // The SDK's own URL object is reused (no stage changes it; providers get a copy): one parse less per request.
      url: input instanceof URL ? input : new URL(String(input)),
      method: (init.method ?? 'GET').toUpperCase(),
      headers,
      body: init.body ?? undefined,
      ...(init.signal ? { signal: init.signal } : {}),
      redirect: init.redirect ?? 'follow',
      ...(requestId === undefined ? {} : { requestId }),
      forceRefresh: false,
      crossOrigin: false,
      dispatcher,
    });
  };
}

/**
 * Whether a body can be sent twice (absent, a string, bytes, form params or a Blob; not a stream).
 *
 * @example
 * ```ts
 * isResendable('{"jsonrpc":"2.0"}'); // true
 * ```
 */
export function isResendable(body: RequestInit['body'] | undefined): boolean {
  if (body === undefined || body === null) return true;
  if (typeof body === 'string' || body instanceof ArrayBuffer || ArrayBuffer.isView(body) || body instanceof URLSearchParams) return true;
  return typeof Blob !== 'undefined' && body instanceof Blob;
}

/**
 * Reads and drops a response body, so that its socket can be reused.
 *
 * @example
 * ```ts
 * await discardBody(res);
 * ```
 */
export async function discardBody(response: Response): Promise<void> {
  await response.body?.cancel().catch(() => {});
}
