/**
 * The signing keys of an issuer: where they are (explicit URI or discovery) and a cache that keeps them usable.
 *
 * jose's `createRemoteJWKSet` fails as soon as its cache is older than `cacheMaxAge` and the endpoint is down;
 * this cache keeps serving the last good keys for a bounded time instead, and takes an injected clock, so
 * both behaviours are testable without waiting. Key selection itself is jose's (`createLocalJWKSet`).
 * @module
 */
import { createLocalJWKSet, type CryptoKey, type JSONWebKeySet, type JWSHeaderParameters, type FlattenedJWSInput } from 'jose';
import { fetch as undiciFetch } from 'undici';
import { BearerError } from '../errors.js';
import type { FetchLike } from '../transport/types.js';
import { fn, nonNegativeMs, optionError } from '../options.js';

/** Largest discovery document or JWKS accepted, in bytes: a key set is a few KB, this only stops abuse. */
const MAX_BODY_BYTES = 512 * 1024;

/**
 * Options of {@link JwksCache}.
 *
 * @example
 * ```ts
 * const options: JwksCacheOptions = {
 *   resolveUri: async () => new URL('https://login.example.com/keys'),
 *   cooldownMs: 30_000,
 *   staleMaxAgeMs: 3_600_000,
 * };
 * ```
 */
export interface JwksCacheOptions {
  /** Where the key set is; called before each fetch until it first succeeds, then its answer is kept. */
  resolveUri: () => Promise<URL>;
  /** Fetch used for the key set (default: undici's `fetch`). */
  fetch?: FetchLike;
  /** Allow an `http:` key set URI (loopback tests only). */
  allowInsecureRequests?: boolean;
  /** Timeout of one fetch, in ms (default 5 000). */
  timeoutMs?: number;
  /**
   * Minimum time between two fetches triggered by an unknown `kid`, in ms (default and maximum 30 000).
   * Measured from the last attempt, failed or not, so a stream of made-up `kid`s cannot hammer the IdP.
   */
  cooldownMs?: number;
  /** How long loaded keys count as fresh, in ms (default 600 000); after that the next use refetches. */
  cacheMaxAgeMs?: number;
  /**
   * How long past `cacheMaxAgeMs` the last good keys keep serving while refetches fail, in ms
   * (default 3 600 000). After that, verification fails with `jwks_unavailable` until the endpoint is back.
   */
  staleMaxAgeMs?: number;
  /** Minimum time between two attempts after a failed fetch, in ms (default 1 000). */
  failureRetryMs?: number;
  /** Clock, in epoch ms (default `Date.now`). */
  now?: () => number;
}

/**
 * The most a {@link JwksCacheOptions.cooldownMs} may be: an IdP's rotated key must be picked up quickly.
 *
 * @example
 * ```ts
 * new JwksCache({ resolveUri, cooldownMs: Math.min(wanted, MAX_JWKS_COOLDOWN_MS) });
 * ```
 */
export const MAX_JWKS_COOLDOWN_MS = 30_000;

type LocalKeySet = ReturnType<typeof createLocalJWKSet>;

/**
 * A JSON Web Key Set cache for one key set URI. Loads on first use; refetches when the keys are older than
 * `cacheMaxAgeMs`, or when a token names an unknown `kid` (at most once per `cooldownMs`); concurrent
 * refetches share one request. When the endpoint fails after a successful load, the last good keys keep
 * serving until `cacheMaxAgeMs + staleMaxAgeMs` after that load.
 *
 * @example
 * ```ts
 * import { jwtVerify } from 'jose';
 * const keys = new JwksCache({ resolveUri: async () => new URL('https://login.example.com/keys') });
 * const { payload } = await jwtVerify(token, keys.getKey, { issuer: 'https://login.example.com' });
 * ```
 */
export class JwksCache {
  readonly #resolveUri: () => Promise<URL>;
  readonly #fetch: FetchLike;
  readonly #allowInsecure: boolean;
  readonly #timeoutMs: number;
  readonly #cooldownMs: number;
  readonly #maxAgeMs: number;
  readonly #staleMs: number;
  readonly #failureRetryMs: number;
  readonly #now: () => number;
  #uri: URL | undefined;
  #keys: LocalKeySet | undefined;
  #loadedAt = Number.NEGATIVE_INFINITY;
  #lastAttemptAt = Number.NEGATIVE_INFINITY;
  #lastFailureAt = Number.NEGATIVE_INFINITY;
  #lastError: unknown;
  #pending: Promise<void> | undefined;
  #fetches = 0;

  constructor(opts: JwksCacheOptions) {
    fn(opts?.resolveUri, 'JwksCache: resolveUri', { required: true });
    this.#resolveUri = opts.resolveUri;
    this.#fetch = opts.fetch ?? (undiciFetch as unknown as FetchLike);
    this.#allowInsecure = opts.allowInsecureRequests === true;
    // Named as the options of createBearerVerifier, the public entry point that passes them on.
    this.#timeoutMs = nonNegativeMs(opts.timeoutMs, 'createBearerVerifier: timeoutMs', 5_000);
    this.#cooldownMs = nonNegativeMs(opts.cooldownMs, 'createBearerVerifier: jwksCooldownMs', MAX_JWKS_COOLDOWN_MS);
    if (this.#cooldownMs > MAX_JWKS_COOLDOWN_MS) {
      throw optionError('createBearerVerifier: jwksCooldownMs', `at most ${MAX_JWKS_COOLDOWN_MS} ms so rotated keys are picked up`, this.#cooldownMs);
    }
    this.#maxAgeMs = nonNegativeMs(opts.cacheMaxAgeMs, 'createBearerVerifier: jwksCacheMaxAgeMs', 600_000);
    this.#staleMs = nonNegativeMs(opts.staleMaxAgeMs, 'createBearerVerifier: jwksStaleMaxAgeMs', 3_600_000);
    this.#failureRetryMs = nonNegativeMs(opts.failureRetryMs, 'JwksCache: failureRetryMs', 1_000);
    this.#now = opts.now ?? Date.now;
  }

  /** How many key set fetches were attempted (for tests and metrics). */
  get fetchCount(): number {
    return this.#fetches;
  }

  /**
   * The key for a token's protected header, usable as jose's `jwtVerify` key argument. Throws jose's
   * `ERR_JWKS_NO_MATCHING_KEY` when even a refetch (or the cooldown) leaves the `kid` unknown, and a
   * {@link BearerError} `jwks_unavailable` when no usable keys can be had.
   */
  readonly getKey = async (header: JWSHeaderParameters, token?: FlattenedJWSInput): Promise<CryptoKey> => {
    if (!this.#keys || this.#now() >= this.#loadedAt + this.#maxAgeMs) await this.#refresh();
    const keys = this.#usableKeys();
    try {
      return await keys(header, token);
    } catch (err) {
      if ((err as { code?: string })?.code !== 'ERR_JWKS_NO_MATCHING_KEY') throw err;
      // An unknown kid may be a rotated key: refetch, but only once per cooldown (joins a fetch in flight).
      if (!this.#pending && this.#now() - this.#lastAttemptAt < this.#cooldownMs) throw err;
      await this.#refresh(true);
      return this.#usableKeys()(header, token);
    }
  };

  #usableKeys(): LocalKeySet {
    if (this.#keys && this.#now() < this.#loadedAt + this.#maxAgeMs + this.#staleMs) return this.#keys;
    throw new BearerError('jwks_unavailable', 'The signing keys of the token issuer are unavailable', {
      cause: safeCause(this.#lastError),
    });
  }

  /** One fetch at a time; failures are remembered (not thrown) so the last good keys stay in place. */
  async #refresh(force = false): Promise<void> {
    if (!this.#pending) {
      if (!force && this.#now() - this.#lastFailureAt < this.#failureRetryMs) return;
      this.#lastAttemptAt = this.#now();
      this.#fetches++;
      this.#pending = this.#load().finally(() => {
        this.#pending = undefined;
      });
    }
    await this.#pending;
  }

  async #load(): Promise<void> {
    try {
      this.#uri ??= checkUrl(await this.#resolveUri(), this.#allowInsecure, 'jwks_uri');
      const json = await fetchJson(this.#fetch, this.#uri, this.#timeoutMs);
      const keys = createLocalJWKSet(json as JSONWebKeySet); // throws ERR_JWKS_INVALID on a malformed set
      this.#keys = keys;
      this.#loadedAt = this.#now();
      this.#lastError = undefined;
    } catch (err) {
      this.#lastFailureAt = this.#now();
      this.#lastError = err;
    }
  }
}

/**
 * Finds an issuer's `jwks_uri`: OpenID Connect discovery (`{issuer}/.well-known/openid-configuration`) first,
 * then RFC 8414 authorization server metadata (`/.well-known/oauth-authorization-server`, inserted before the
 * issuer's path, then appended to it). The document's `issuer` must equal the expected one (trailing slash
 * ignored). Throws a {@link BearerError} `jwks_unavailable` when no document gives a usable `jwks_uri`.
 *
 * @example
 * ```ts
 * // internal helper (not exported from the package)
 * const uri = await discoverJwksUri('https://login.example.com/tenant/v2.0');
 * ```
 */
export async function discoverJwksUri(
  issuer: string,
  opts: { fetch?: FetchLike; allowInsecureRequests?: boolean; timeoutMs?: number } = {},
): Promise<URL> {
  const allowInsecure = opts.allowInsecureRequests === true;
  const base = checkUrl(new URL(issuer), allowInsecure, 'issuer');
  const fetchImpl = opts.fetch ?? (undiciFetch as unknown as FetchLike);
  const path = base.pathname.replace(/\/$/, '');
  const candidates = [
    new URL(`${base.origin}${path}/.well-known/openid-configuration`),
    new URL(`${base.origin}/.well-known/oauth-authorization-server${path}`),
  ];
  if (path) candidates.push(new URL(`${base.origin}${path}/.well-known/oauth-authorization-server`));
  let lastError: unknown;
  for (const url of candidates) {
    try {
      const doc = await fetchJson(fetchImpl, url, opts.timeoutMs ?? 5_000);
      if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new TypeError('metadata is not a JSON object');
      const meta = doc as { issuer?: unknown; jwks_uri?: unknown };
      if (typeof meta.issuer !== 'string' || trimSlash(meta.issuer) !== trimSlash(issuer)) {
        throw new TypeError('metadata issuer does not match the expected issuer');
      }
      if (typeof meta.jwks_uri !== 'string') throw new TypeError('metadata has no jwks_uri');
      return checkUrl(new URL(meta.jwks_uri), allowInsecure, 'jwks_uri');
    } catch (err) {
      lastError = err;
    }
  }
  throw new BearerError('jwks_unavailable', 'The token issuer metadata could not be discovered', {
    cause: safeCause(lastError),
  });
}

/**
 * Checks that a URL may be fetched: `https:` always, `http:` only with `allowInsecureRequests`. Throws a
 * `TypeError` naming `what` otherwise.
 *
 * @example
 * ```ts
 * // internal helper (not exported from the package)
 * checkUrl(new URL('http://127.0.0.1:8080/jwks'), true, 'jwksUri'); // ok: loopback test
 * ```
 */
export function checkUrl(url: URL, allowInsecure: boolean, what: string): URL {
  if (url.protocol === 'https:' || (allowInsecure && url.protocol === 'http:')) return url;
  throw new TypeError(`"${what}" must be an https: URL${allowInsecure ? ' or http:' : ' (http: needs allowInsecureRequests)'}`);
}

/** GET a JSON document: 200 only, no redirects, a timeout and a size cap. */
async function fetchJson(fetchImpl: FetchLike, url: URL, timeoutMs: number): Promise<unknown> {
  const res = await fetchImpl(url, {
    method: 'GET',
    redirect: 'manual',
    headers: { accept: 'application/json, application/jwk-set+json' },
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => undefined);
    throw new HttpStatusError(res.status);
  }
  const declared = Number(res.headers.get('content-length'));
  if (declared > MAX_BODY_BYTES) {
    await res.body?.cancel().catch(() => undefined);
    throw new TypeError('response too large');
  }
  const text = await readCapped(res);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new TypeError('response is not JSON'); // JSON.parse's message quotes the body: keep it out
  }
}

async function readCapped(res: Response): Promise<string> {
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > MAX_BODY_BYTES) throw new TypeError('response too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A non-200 answer from a metadata or key set endpoint. */
class HttpStatusError extends Error {
  readonly status: number;
  constructor(status: number) {
    super(`unexpected HTTP status ${status}`);
    this.name = 'HttpStatusError';
    this.status = status;
  }
}

/** What of a fetch failure may travel in an error's cause: names, codes and statuses, never a body. */
function safeCause(err: unknown): unknown {
  if (err === undefined) return undefined;
  if (err instanceof Error) {
    const { code, status, cause } = err as Error & { code?: unknown; status?: unknown; cause?: { code?: unknown } };
    return {
      name: err.name,
      message: err.message,
      ...(typeof code === 'string' ? { code } : {}),
      ...(typeof status === 'number' ? { status } : {}),
      ...(typeof cause?.code === 'string' ? { network: cause.code } : {}),
    };
  }
  return { message: String(err) };
}

function trimSlash(s: string): string {
  return s.endsWith('/') ? s.slice(0, -1) : s;
}
