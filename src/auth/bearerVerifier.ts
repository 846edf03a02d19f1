/**
 * Inbound bearer verification with jose: the access token a host receives from its own users is checked
 * (signature against the issuer's JWKS, issuer, audience, lifetime, subject, scopes) before anything is done
 * on the user's behalf. Every failure is a {@link BearerError} a host maps to an HTTP answer in one line.
 * @module
 */
import { decodeJwt, decodeProtectedHeader, jwtVerify, type CryptoKey, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { BearerError, type BearerErrorCode } from '../errors.js';
import type { FetchLike } from '../transport/types.js';
import type { UserContext } from '../types.js';
import { JwksCache, checkUrl, discoverJwksUri } from './jwks.js';
import { checkScopeList, missingScopes, normalizeScopes } from './scopes.js';

/**
 * Asymmetric JWS algorithms, the default allow-list: a key from a JWKS is public, so HMAC never fits.
 *
 * @example
 * ```ts
 * import { DEFAULT_BEARER_ALGORITHMS } from 'mcp-switchboard';
 * createBearerVerifier({ issuer, audience, algorithms: DEFAULT_BEARER_ALGORITHMS.filter((a) => a.startsWith('RS')) });
 * ```
 */
export const DEFAULT_BEARER_ALGORITHMS: readonly string[] = Object.freeze([
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519',
]);

/** Longest token accepted, in characters; anything longer is refused before it is parsed. */
const MAX_TOKEN_LENGTH = 16 * 1024;

/**
 * Options of {@link createBearerVerifier}.
 *
 * @example
 * ```ts
 * const options: BearerVerifierOptions = {
 *   issuer: ['https://sts.windows.net/TENANT/', 'https://login.microsoftonline.com/TENANT/v2.0'],
 *   audience: ['api://my-runtime', 'CLIENT_ID'],
 *   requiredScopes: ['access_as_user'],
 * };
 * ```
 */
export interface BearerVerifierOptions {
  /** Accepted issuer(s): Entra ID has a v1 (`sts.windows.net`) and a v2 (`login.microsoftonline.com`) form. */
  issuer: string | string[];
  /** Accepted audience(s): at least one must be in the token's `aud`. */
  audience: string | string[];
  /**
   * The key set URI. Without it the keys are found per issuer: OpenID Connect discovery, then RFC 8414
   * authorization server metadata.
   */
  jwksUri?: string;
  /** Scopes (or app roles) every token must carry; a token without one is refused with 403. */
  requiredScopes?: string[];
  /** Accepted JWS algorithms (default {@link DEFAULT_BEARER_ALGORITHMS}); `none` and `HS*` are refused. */
  algorithms?: string[];
  /** Allowed clock skew for `exp` and `nbf`, in seconds (default 60). */
  clockToleranceSec?: number;
  /** Allow `http:` issuer and key set URIs: loopback tests only. */
  allowInsecureRequests?: boolean;
  /** `realm` put in every `WWW-Authenticate` value. */
  realm?: string;
  /** Where the tenant comes from (default: `tid`, else `tenant_id`, else `tenant`, when a non-empty string). */
  tenantIdFrom?: (claims: Record<string, unknown>) => string | undefined;
  /** Fetch used for discovery and key sets (default: undici's `fetch`). */
  fetch?: FetchLike;
  /** Timeout of one discovery or key set request, in ms (default 5 000). */
  timeoutMs?: number;
  /** Minimum time between key set refetches caused by an unknown `kid`, in ms (default and maximum 30 000). */
  jwksCooldownMs?: number;
  /** How long loaded keys count as fresh, in ms (default 600 000). */
  jwksCacheMaxAgeMs?: number;
  /** How long past freshness the last good keys serve while the key set endpoint fails, in ms (default 3 600 000). */
  jwksStaleMaxAgeMs?: number;
  /** Clock, in epoch ms (default `Date.now`); used for token lifetimes and the key cache. */
  now?: () => number;
}

/**
 * A verified bearer token and what was read from it.
 *
 * @example
 * ```ts
 * const b: VerifiedBearer = await verifier.verify(req.headers.authorization);
 * console.log(b.subject, b.tenantId, b.scopes);
 * ```
 */
export interface VerifiedBearer {
  /** The raw token (without the `Bearer ` prefix): the OBO assertion for downstream exchanges. */
  token: string;
  /** Every claim of the verified token. */
  claims: Record<string, unknown>;
  /** The `sub` claim. */
  subject: string;
  /** The tenant (Entra `tid`), when the token names one. */
  tenantId?: string;
  /** Scopes and app roles, from `scp` / `scope` / `scopes` and `roles` (merged and de-duplicated, in that order). */
  scopes: string[];
}

/**
 * Per-call options of {@link BearerVerifier.verify}.
 *
 * @example
 * ```ts
 * await verifier.verify(req.headers.authorization, { requiredScopes: ['Files.ReadWrite'] });
 * ```
 */
export interface BearerVerifyOptions {
  /** Scopes required on top of the verifier's `requiredScopes` (for example per route). */
  requiredScopes?: string[];
}

/**
 * Verifies inbound bearer tokens; see {@link createBearerVerifier}.
 *
 * @example
 * ```ts
 * const bearer = await verifier.verify(req.headers.authorization);
 * const user = verifier.toUserContext(bearer);
 * ```
 */
export interface BearerVerifier {
  /**
   * Verifies `"Bearer <jwt>"` (scheme case-insensitive) or a bare token. Rejects with a {@link BearerError}
   * only; an `Authorization` value with another scheme (e.g. `Basic`) counts as `missing_token`.
   */
  verify(authorization: string | undefined, opts?: BearerVerifyOptions): Promise<VerifiedBearer>;
  /**
   * The {@link UserContext} of a verified bearer: `id` is `subject`, `tenantId` the token's tenant, `email`
   * the `email` claim when it is a string, and `upstreamToken` the token itself (the OBO assertion).
   * `extra` overrides any of these, e.g. `{ upstreamToken: upstream.forUser(...) }`.
   */
  toUserContext(bearer: VerifiedBearer, extra?: Partial<UserContext>): UserContext;
}

/**
 * Creates a verifier for inbound bearer tokens (jose `jwtVerify` against the issuer's JWKS).
 *
 * Checks, in order: a token is present and well formed; its `alg` is allowed (so `alg: none` and HMAC signed
 * with the public key are refused before any key is looked up); `iss` is accepted; the signature; `aud`;
 * `exp` / `nbf` with `clockToleranceSec`; `sub`; and finally the required scopes. Keys are cached per key set:
 * an unknown `kid` refetches at most once per cooldown, and the last good keys keep serving for a bounded time
 * when the endpoint goes down.
 *
 * Throws a `TypeError` for bad options.
 *
 * @example
 * ```ts
 * import { createBearerVerifier, BearerError } from 'mcp-switchboard';
 * const verifier = createBearerVerifier({
 *   issuer: 'https://login.microsoftonline.com/TENANT/v2.0',
 *   audience: 'api://my-runtime',
 *   requiredScopes: ['access_as_user'],
 * });
 * try {
 *   const bearer = await verifier.verify(req.headers.authorization);
 *   const user = verifier.toUserContext(bearer);
 * } catch (err) {
 *   if (err instanceof BearerError) res.writeHead(err.httpStatus, { 'WWW-Authenticate': err.wwwAuthenticate }).end();
 * }
 * ```
 */
export function createBearerVerifier(opts: BearerVerifierOptions): BearerVerifier {
  if (!opts || typeof opts !== 'object') throw new TypeError('createBearerVerifier needs an options object');
  const allowInsecure = opts.allowInsecureRequests === true;
  const issuers = stringList(opts.issuer, 'issuer');
  const audiences = stringList(opts.audience, 'audience');
  const requiredScopes = checkScopeList(opts.requiredScopes, 'requiredScopes');
  const algorithms = checkAlgorithms(opts.algorithms);
  const clockTolerance = opts.clockToleranceSec ?? 60;
  if (typeof clockTolerance !== 'number' || !(clockTolerance >= 0)) {
    throw new TypeError('"clockToleranceSec" must be a non-negative number of seconds');
  }
  const now = opts.now ?? Date.now;
  const realm = opts.realm;
  const tenantIdFrom = opts.tenantIdFrom ?? defaultTenantId;
  const cacheOptions = {
    fetch: opts.fetch,
    allowInsecureRequests: allowInsecure,
    timeoutMs: opts.timeoutMs,
    cooldownMs: opts.jwksCooldownMs,
    cacheMaxAgeMs: opts.jwksCacheMaxAgeMs,
    staleMaxAgeMs: opts.jwksStaleMaxAgeMs,
    now,
  };

  // One key set for an explicit URI; otherwise one per issuer, each discovered on first use.
  let sharedKeys: JwksCache | undefined;
  const keysByIssuer = new Map<string, JwksCache>();
  if (opts.jwksUri !== undefined) {
    if (typeof opts.jwksUri !== 'string') throw new TypeError('"jwksUri" must be a string');
    const uri = checkUrl(parseUrl(opts.jwksUri, 'jwksUri'), allowInsecure, 'jwksUri');
    sharedKeys = new JwksCache({ ...cacheOptions, resolveUri: async () => uri });
  } else {
    for (const iss of issuers) {
      checkUrl(parseUrl(iss, 'issuer'), allowInsecure, 'issuer');
      keysByIssuer.set(
        iss,
        new JwksCache({
          ...cacheOptions,
          resolveUri: () => discoverJwksUri(iss, { fetch: opts.fetch, allowInsecureRequests: allowInsecure, timeoutMs: opts.timeoutMs }),
        }),
      );
    }
  }

  const fail = (code: BearerErrorCode, message: string, cause?: unknown, scope?: string): BearerError =>
    new BearerError(code, message, { realm, cause, scope });

  async function verify(authorization: string | undefined, callOpts?: BearerVerifyOptions): Promise<VerifiedBearer> {
    const required = callOpts?.requiredScopes
      ? [...new Set([...requiredScopes, ...checkScopeList(callOpts.requiredScopes, 'requiredScopes')])]
      : requiredScopes;
    const token = extractToken(authorization, fail);

    // Read (not trust) the header and claims first: a refused algorithm or a foreign issuer costs no fetch.
    let alg: unknown;
    let iss: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
      iss = decodeJwt(token).iss;
    } catch (err) {
      throw fail('malformed', 'The access token is malformed', joseCause(err));
    }
    if (typeof alg !== 'string' || !algorithms.includes(alg)) {
      throw fail('invalid_signature', 'The access token signing algorithm is not allowed');
    }
    if (typeof iss !== 'string' || !issuers.includes(iss)) {
      throw fail('wrong_issuer', 'The access token was issued by an issuer this resource does not trust');
    }
    const keys = sharedKeys ?? (keysByIssuer.get(iss) as JwksCache);
    const verifyOptions: JWTVerifyOptions = {
      issuer: issuers,
      audience: audiences,
      algorithms,
      clockTolerance,
      requiredClaims: ['exp', 'sub'],
      currentDate: new Date(now()),
    };

    let payload: JWTPayload;
    try {
      payload = (await verifyWithAnyMatchingKey(token, keys, verifyOptions)).payload;
    } catch (err) {
      throw mapJoseError(err, fail);
    }
    if (typeof payload.sub !== 'string' || payload.sub.length === 0) {
      throw fail('missing_subject', 'The access token has no subject');
    }
    const claims = payload as Record<string, unknown>;
    const scopes = normalizeScopes(claims);
    const missing = missingScopes(scopes, required);
    if (missing.length) {
      throw fail('insufficient_scope', 'The access token lacks a required scope', undefined, required.join(' '));
    }
    const tenantId = tenantIdFrom(claims);
    return { token, claims, subject: payload.sub, ...(tenantId ? { tenantId } : {}), scopes };
  }

  function toUserContext(bearer: VerifiedBearer, extra: Partial<UserContext> = {}): UserContext {
    const email = typeof bearer.claims.email === 'string' ? bearer.claims.email : undefined;
    return {
      id: bearer.subject,
      ...(bearer.tenantId ? { tenantId: bearer.tenantId } : {}),
      ...(email ? { email } : {}),
      upstreamToken: bearer.token,
      ...extra,
    };
  }

  return { verify, toUserContext };
}

/**
 * The default tenant rule: Entra's `tid`, else `tenant_id`, else `tenant`, whichever is first a non-empty string.
 *
 * @example
 * ```ts
 * import { defaultTenantId } from 'mcp-switchboard';
 * defaultTenantId({ tid: '72f988bf-...' }); // '72f988bf-...'
 * ```
 */
export function defaultTenantId(claims: Record<string, unknown>): string | undefined {
  for (const name of ['tid', 'tenant_id', 'tenant']) {
    const v = claims[name];
    if (typeof v === 'string' && v.length > 0) return v;
  }
  return undefined;
}

type Fail = (code: BearerErrorCode, message: string, cause?: unknown) => BearerError;

function extractToken(authorization: string | undefined, fail: Fail): string {
  if (authorization === undefined || authorization === null || authorization.trim() === '') {
    throw fail('missing_token', 'No bearer token was sent');
  }
  if (typeof authorization !== 'string') throw fail('malformed', 'The Authorization value is not a string');
  const value = authorization.trim();
  const space = value.search(/\s/);
  let token = value;
  if (space !== -1) {
    // RFC 6750 §2.1: `Bearer` scheme (case-insensitive) and one token; other schemes are not bearer credentials.
    if (value.slice(0, space).toLowerCase() !== 'bearer') throw fail('missing_token', 'No bearer token was sent');
    token = value.slice(space).trim();
  } else if (value.toLowerCase() === 'bearer') {
    throw fail('malformed', 'The bearer token is empty');
  }
  if (token.length > MAX_TOKEN_LENGTH || !/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/.test(token)) {
    throw fail('malformed', 'The access token is malformed');
  }
  return token;
}

/** jwtVerify with the cache's key; when a `kid`-less token matches several keys, the first that verifies wins. */
async function verifyWithAnyMatchingKey(token: string, keys: JwksCache, options: JWTVerifyOptions) {
  try {
    return await jwtVerify(token, keys.getKey, options);
  } catch (err) {
    if ((err as { code?: string })?.code !== 'ERR_JWKS_MULTIPLE_MATCHING_KEYS') throw err;
    let last: unknown = err;
    for await (const key of err as AsyncIterable<CryptoKey>) {
      try {
        return await jwtVerify(token, key, options);
      } catch (inner) {
        last = inner;
        if ((inner as { code?: string })?.code !== 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') throw inner;
      }
    }
    throw last;
  }
}

/** Maps a jose error to a BearerError by its `code` (and `claim`), never by its message. */
function mapJoseError(err: unknown, fail: Fail): BearerError {
  if (err instanceof BearerError) return err;
  const cause = joseCause(err);
  const { code, claim } = (err ?? {}) as { code?: string; claim?: string };
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return fail('expired', 'The access token expired', cause);
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      switch (claim) {
        case 'iss':
          return fail('wrong_issuer', 'The access token was issued by an issuer this resource does not trust', cause);
        case 'aud':
          return fail('wrong_audience', 'The access token is not meant for this resource', cause);
        case 'nbf':
          return fail('not_yet_valid', 'The access token is not valid yet', cause);
        case 'sub':
          return fail('missing_subject', 'The access token has no subject', cause);
        default:
          return fail('malformed', 'The access token has an invalid claim', cause);
      }
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
    case 'ERR_JOSE_NOT_SUPPORTED':
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return fail('invalid_signature', 'The access token signature is invalid', cause);
    case 'ERR_JWKS_TIMEOUT':
    case 'ERR_JWKS_INVALID':
      return fail('jwks_unavailable', 'The signing keys of the token issuer are unavailable', cause);
    default:
      return fail('malformed', 'The access token is malformed', cause);
  }
}

/** A jose error reduced to what may travel in a cause: its code and claim, never the payload or the token. */
function joseCause(err: unknown): unknown {
  if (!(err instanceof Error)) return undefined;
  const { code, claim, reason } = err as { code?: unknown; claim?: unknown; reason?: unknown };
  return {
    name: err.name,
    ...(typeof code === 'string' ? { code } : {}),
    ...(typeof claim === 'string' ? { claim } : {}),
    ...(typeof reason === 'string' ? { reason } : {}),
  };
}

function stringList(value: unknown, name: string): string[] {
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.length === 0 || !list.every((s) => typeof s === 'string' && s.length > 0)) {
    throw new TypeError(`"${name}" must be a non-empty string or a non-empty array of non-empty strings`);
  }
  return [...list];
}

function checkAlgorithms(value: unknown): string[] {
  if (value === undefined) return [...DEFAULT_BEARER_ALGORITHMS];
  if (!Array.isArray(value) || value.length === 0 || !value.every((a) => typeof a === 'string')) {
    throw new TypeError('"algorithms" must be a non-empty array of JWS algorithm names');
  }
  const bad = value.filter((a) => a === 'none' || /^HS\d+$/i.test(a));
  if (bad.length) throw new TypeError(`"algorithms" must be asymmetric; refused: ${bad.join(', ')}`);
  return [...value];
}

function parseUrl(value: string, name: string): URL {
  try {
    return new URL(value);
  } catch {
    throw new TypeError(`"${name}" must be an absolute URL`);
  }
}
