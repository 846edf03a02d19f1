/**
 * A size cap on IdP responses (discovery documents, token responses): a misbehaving or hostile IdP must not
 * make the runtime buffer an unbounded body. The body is read here, within the cap, and handed on as a new
 * `Response` with the same status and headers.
 * @module
 */
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import { request, type Dispatcher } from 'undici';
import { SwitchboardError } from '../errors.js';
import { addFetchDefaults, dispatchBody, headerRecord, isNullBodyStatus } from '../transport/fetchInit.js';

/**
 * Default cap of one IdP response body: 1 MiB (token responses are a few KiB, discovery documents tens).
 *
 * @example
 * ```ts
 * const fetch = fetchWithBodyCap(undiciFetch, MAX_IDP_RESPONSE_BYTES);
 * ```
 */
export const MAX_IDP_RESPONSE_BYTES = 1024 * 1024;

type AnyFetch = (url: string, init: RequestInit) => Promise<Response>;

/**
 * Wraps a fetch so that every response body is read within `maxBytes` (a declared `Content-Length` above it
 * fails before reading). Over the cap → `SwitchboardError('too_large')`, the body is cancelled. The error
 * names the size only, never any of the body.
 *
 * @example
 * ```ts
 * const capped = fetchWithBodyCap(fetch, 64 * 1024);
 * const res = await capped('https://idp.example.com/.well-known/openid-configuration', {});
 * ```
 */
export function fetchWithBodyCap<F extends AnyFetch>(fetch: F, maxBytes: number = MAX_IDP_RESPONSE_BYTES): F {
  if (!Number.isInteger(maxBytes) || maxBytes < 1) throw new TypeError('maxBytes must be a whole number >= 1');
  const capped = async (url: string, init: RequestInit): Promise<Response> => {
    const res = await fetch(url, init);
    let body: Buffer | null;
    try {
      body = await readWithinCap(res.body, res.headers.get('content-length'), maxBytes);
    } catch (err) {
      // Not read to its end (over the cap, or failing): cancelled, so that its connection is not left hanging.
      await res.body?.cancel().catch(() => {});
      throw err;
    }
    return body === null ? res : responseOf(body, res.status, res.statusText, res.headers);
  };
  return capped as F;
}

/**
 * True for the error {@link fetchWithBodyCap} throws.
 *
 * @example
 * ```ts
 * if (isResponseTooLarge(err)) log.warn('IdP answered with an oversized body');
 * ```
 */
export function isResponseTooLarge(err: unknown): boolean {
  return err instanceof SwitchboardError && err.code === 'too_large';
}

function tooLarge(maxBytes: number): SwitchboardError {
  return new SwitchboardError('too_large', `IdP response larger than ${maxBytes} bytes refused`);
}

/**
 * A fetch for IdP requests (discovery, token endpoints) on undici's `request` instead of its `fetch`: the body
 * is read within `maxBytes` exactly as {@link fetchWithBodyCap} reads it, without the web streams, `Request`
 * and WebIDL work of a fetch whose body is buffered anyway (an OBO exchange cost 848 µs of client CPU through
 * undici's fetch and 502 µs through openid-client's own; the exchange is the costliest step of a rotated
 * bearer). What callers see is a fetch's: a `Response`, redirects returned as they are (openid-client asks for
 * `redirect: 'manual'` anyway), a network failure as `TypeError('fetch failed', { cause })`, an abort as the
 * signal's reason, an oversized body as `SwitchboardError('too_large')`, a gzip, deflate or br body decoded (within
 * the same cap). Like fetch it sends `User-Agent` and `Accept` when the caller set none (firewalls in front of IdPs
 * refuse requests without a User-Agent; the MCP SDK's discovery sets neither).
 *
 * @example
 * ```ts
 * const fetch = cappedRequestFetch({ maxBytes: MAX_IDP_RESPONSE_BYTES });
 * const res = await fetch('https://login.example.com/.well-known/openid-configuration', {});
 * ```
 */
export function cappedRequestFetch(opts: { maxBytes?: number; dispatcher?: Dispatcher }): AnyFetch {
  const maxBytes = opts.maxBytes ?? MAX_IDP_RESPONSE_BYTES;
  if (!Number.isInteger(maxBytes) || maxBytes < 1) throw new TypeError('maxBytes must be a whole number >= 1');
  const { dispatcher } = opts;
  return async (url, init) => {
    const signal = init.signal ?? undefined;
    const failed = (err: unknown): unknown => (signal?.aborted ? signal.reason : isResponseTooLarge(err) ? err : new TypeError('fetch failed', { cause: err }));
    const headers = headerRecord(init.headers);
    const body = dispatchBody(init.body, headers);
    if (body === undefined) throw new TypeError('An IdP request body must be a string, URLSearchParams or bytes');
    addFetchDefaults(headers);
    headers['accept-encoding'] ??= 'gzip, deflate, br';
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        method: (init.method ?? 'GET').toUpperCase() as Dispatcher.HttpMethod,
        headers,
        body,
        ...(signal ? { signal } : {}),
        ...(dispatcher ? { dispatcher } : {}),
      });
    } catch (err) {
      throw failed(err);
    }
    let raw: Buffer;
    try {
      raw = (await readWithinCap(res.body, res.headers['content-length'], maxBytes))!; // undici always gives a body
    } catch (err) {
      // undici's body reports its own destruction as an 'error' (RequestAbortedError): nobody else listens now.
      res.body.on('error', () => {});
      res.body.destroy();
      throw failed(err);
    }
    const status = res.statusCode;
    if (status < 200 || status > 599) throw new TypeError('fetch failed', { cause: new Error(`unexpected HTTP status ${status}`) });
    const encoding = String(res.headers['content-encoding'] ?? '').trim().toLowerCase();
    const decoded = decode(raw, encoding, maxBytes);
    const out = new Headers();
    for (const [name, value] of Object.entries(res.headers)) {
      // A decoded body no longer has the encoding or the length the server declared.
      if (decoded.decoded && (name === 'content-encoding' || name === 'content-length')) continue;
      if (Array.isArray(value)) for (const v of value) out.append(name, v);
      else if (value !== undefined) out.append(name, value);
    }
    return responseOf(decoded.body, status, res.statusText ?? '', out);
  };
}

/**
 * Reads a body whole within `maxBytes` (`null` when there is none): a declared length above the cap fails before
 * reading, even without a body (a HEAD), and reading stops at the first byte past it. Over the cap →
 * `SwitchboardError('too_large')`, naming the size only.
 */
async function readWithinCap(body: AsyncIterable<Uint8Array> | null, declaredLength: unknown, maxBytes: number): Promise<Buffer | null> {
  if (Number(declaredLength ?? NaN) > maxBytes) throw tooLarge(maxBytes);
  if (!body) return null;
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > maxBytes) throw tooLarge(maxBytes);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** A read body as a Response; null-body statuses cannot carry even an empty body in a Response. */
function responseOf(body: Buffer, status: number, statusText: string, headers: Headers): Response {
  return new Response(isNullBodyStatus(status) ? null : body, { status, statusText, headers });
}

/** The body with its content coding undone (gzip, deflate, br), still within `maxBytes`; other codings refused. */
function decode(raw: Buffer, encoding: string, maxBytes: number): { body: Buffer; decoded: boolean } {
  if (encoding === '' || encoding === 'identity' || raw.length === 0) return { body: raw, decoded: false };
  const opts = { maxOutputLength: maxBytes };
  try {
    if (encoding === 'gzip' || encoding === 'x-gzip') return { body: gunzipSync(raw, opts), decoded: true };
    if (encoding === 'deflate') return { body: inflateSync(raw, opts), decoded: true };
    if (encoding === 'br') return { body: brotliDecompressSync(raw, opts), decoded: true };
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(maxBytes);
    throw new TypeError('fetch failed', { cause: err });
  }
  throw new TypeError('fetch failed', { cause: new Error(`unsupported content encoding "${encoding.slice(0, 40)}"`) });
}
