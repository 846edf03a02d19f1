/**
 * A size cap on IdP responses (discovery documents, token responses): a misbehaving or hostile IdP must not
 * make the runtime buffer an unbounded body. The body is read here, within the cap, and handed on as a new
 * `Response` with the same status and headers.
 * @module
 */
import { SwitchboardError } from '../errors.js';

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
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (Number.isFinite(declared) && declared > maxBytes) {
      await res.body?.cancel().catch(() => {});
      throw tooLarge(maxBytes);
    }
    if (!res.body) return res;
    const chunks: Uint8Array[] = [];
    let size = 0;
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge(maxBytes);
      }
      chunks.push(value);
    }
    const body = Buffer.concat(chunks);
    // Null-body statuses cannot carry even an empty body in a Response.
    const nullBody = res.status === 204 || res.status === 205 || res.status === 304;
    return new Response(nullBody ? null : body, { status: res.status, statusText: res.statusText, headers: res.headers });
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
