/**
 * The redirect stage, with the SSRF guard: follows redirects hop by hop, checks every hop's host, and marks
 * the hops that left the configured origin so that no credential reaches another origin.
 * @module
 */
import { safeUrl, SwitchboardError } from '../../errors.js';
import { checkHost, type SsrfOptions } from '../ssrf.js';
import { discardBody, isResendable, type OutgoingRequest, type RequestInterceptor } from '../requestPath.js';

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const CREDENTIAL_HEADERS = ['authorization', 'cookie', 'proxy-authorization'];
/** Responses of a hop that had left the first URL's origin (read by the 401 stage: no resend for those). */
const crossOriginAnswers = new WeakSet<Response>();

/**
 * Whether `res` came from a hop that had left the origin of the request's first URL.
 *
 * @example
 * ```ts
 * if (res.status === 401 && !leftOrigin(res)) await resendWithFreshToken();
 * ```
 */
export function leftOrigin(res: Response): boolean {
  return crossOriginAnswers.has(res);
}

/**
 * Follows redirects (at most `maxRedirects`) unless the caller asked for `redirect: 'manual'` (the SDK's own
 * same-origin policy) or `'error'`. Each hop's host is checked against `ssrf` before anything is sent; a hop to
 * another origin goes without Authorization, Cookie and Proxy-Authorization (and the credentials stage adds
 * nothing there). 303, and 301/302 after POST, become a GET without a body. A network error caused by the
 * connect-time SSRF guard is rethrown as the guard's own `SwitchboardError('ssrf_blocked')`.
 *
 * @example
 * ```ts
 * const stage = composeStages(sendWithUndici, [redirects({ maxRedirects: 5, ssrf: { blockPrivate: true } })]);
 * ```
 */
export function redirects(opts: { maxRedirects: number; ssrf?: SsrfOptions }): RequestInterceptor {
  const { maxRedirects, ssrf } = opts;
  return (next) => async (req) => {
    const send = async (hop: OutgoingRequest): Promise<Response> => {
      if (ssrf) {
        const problem = checkHost(hop.url.hostname, ssrf);
        if (problem) throw problem;
      }
      let res: Response;
      try {
        res = await next(hop);
      } catch (err) {
        // undici wraps connector errors in TypeError('fetch failed'); surface the guard's own error.
        const cause = (err as { cause?: unknown } | undefined)?.cause;
        if (cause instanceof SwitchboardError && cause.code === 'ssrf_blocked') throw cause;
        throw err;
      }
      if (hop.crossOrigin) crossOriginAnswers.add(res);
      return res;
    };
    const oneShot = !isResendable(req.body);
    let hop = req;
    for (let hops = 0; ; hops++) {
      const response = await send(hop);
      const location = REDIRECTS.has(response.status) ? response.headers.get('location') : null;
      if (!location || req.redirect === 'manual') return response;
      const following = nextHop(hop, response.status, location);
      // A stream body can be sent once only: no redirect that keeps the body.
      if (oneShot && following.body !== undefined) return response;
      await discardBody(response);
      if (req.redirect === 'error') throw new SwitchboardError('transport_error', `Redirect from ${safeUrl(hop.url)} refused (redirect: 'error')`);
      if (hops >= maxRedirects) throw new SwitchboardError('transport_error', `Too many redirects (more than ${maxRedirects}) from ${safeUrl(req.url)}`);
      hop = following;
    }
  };
}

function nextHop(from: OutgoingRequest, status: number, location: string): OutgoingRequest {
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
  const crossOrigin = from.crossOrigin || target.origin !== from.url.origin || target.username !== '' || target.password !== '';
  if (crossOrigin) for (const h of CREDENTIAL_HEADERS) delete headers[h];
  return { ...from, url: target, method, headers, body, crossOrigin };
}
