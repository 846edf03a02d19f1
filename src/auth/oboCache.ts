/**
 * The caches behind the OBO resolver: downstream tokens by key (bounded LRU, each entry stale at its own
 * time on an injectable clock), and what an assertion says about its user (decoded once per assertion string,
 * so a cache hit never parses a JWT).
 * @module
 */
import { createHash } from 'node:crypto';
import { decodeJwt } from 'jose';
import { LRUCache } from 'lru-cache';
import type { OboToken } from './oboTypes.js';

interface TokenEntry {
  token: OboToken;
  /** When the entry stops being served, epoch ms on the cache's clock. */
  staleAt: number;
  /** Order in which the exchange that produced it started: a slower, older exchange never overwrites a newer one. */
  seq: number;
}

/**
 * Downstream tokens by cache key, least recently used evicted first.
 *
 * @example
 * ```ts
 * const cache = new OboTokenCache({ maxEntries: 10_000, now: Date.now });
 * cache.set(key, { accessToken, expiresAt }, Date.now() + 240_000, seq);
 * cache.get(key); // the token until its staleAt, then undefined
 * ```
 */
export class OboTokenCache {
  readonly #lru: LRUCache<string, TokenEntry>;
  readonly #now: () => number;

  constructor(opts: { maxEntries: number; now: () => number }) {
    this.#lru = new LRUCache({ max: opts.maxEntries });
    this.#now = opts.now;
  }

  /** The cached token, or undefined when absent or stale (a stale entry is dropped). */
  get(key: string): OboToken | undefined {
    const entry = this.#lru.get(key);
    if (!entry) return undefined;
    if (entry.staleAt <= this.#now()) {
      this.#lru.delete(key);
      return undefined;
    }
    return entry.token;
  }

  /** Stores a token unless an exchange that started later already stored one. */
  set(key: string, token: OboToken, staleAt: number, seq: number): void {
    const current = this.#lru.peek(key);
    if (current && current.seq > seq) return;
    this.#lru.set(key, { token, staleAt, seq });
  }

  /** Drops one entry. */
  delete(key: string): void {
    this.#lru.delete(key);
  }

  /** Drops everything. */
  clear(): void {
    this.#lru.clear();
  }

  /** Number of entries (stale ones included until touched). */
  get size(): number {
    return this.#lru.size;
  }
}

/**
 * What the resolver needs from an assertion: whose it is and until when it is valid.
 *
 * @example
 * ```ts
 * const { subject, tenantId, expiresAt }: AssertionInfo = infos.get(assertion);
 * ```
 */
export interface AssertionInfo {
  /** The user's subject: Entra `oid` (with `tid`), else `sub`; for opaque assertions a hash of the assertion. */
  subject: string;
  /** `tid`, when the assertion has one. */
  tenantId?: string;
  /** The assertion's `exp`, epoch ms. */
  expiresAt?: number;
  /** SHA-256 of the assertion, base64url: binds cache entries to the token that was actually exchanged. */
  digest: string;
}

/**
 * Decodes assertions (no verification: the IdP verifies them) and remembers the result per assertion string.
 *
 * @example
 * ```ts
 * const infos = new AssertionInfoCache(1000);
 * infos.get(userAccessToken); // { subject: 'oid…', tenantId: 'tid…', expiresAt: 1767225600000 }
 * ```
 */
export class AssertionInfoCache {
  readonly #lru: LRUCache<string, AssertionInfo>;

  constructor(max: number) {
    this.#lru = new LRUCache({ max });
  }

  /** The assertion's user and expiry. */
  get(assertion: string): AssertionInfo {
    let info = this.#lru.get(assertion);
    if (!info) {
      info = describeAssertion(assertion);
      this.#lru.set(assertion, info);
    }
    return info;
  }
}

function describeAssertion(assertion: string): AssertionInfo {
  let claims: Record<string, unknown>;
  try {
    claims = decodeJwt(assertion);
  } catch {
    claims = {};
  }
  const str = (v: unknown) => (typeof v === 'string' && v.length > 0 ? v : undefined);
  const tid = str(claims.tid);
  const oid = str(claims.oid);
  const subject = (tid && oid) || str(claims.sub) || oid;
  const digest = createHash('sha256').update(assertion).digest('base64url');
  const info: AssertionInfo = {
    // An opaque (non-JWT) assertion still gets a per-user key: a digest of the token itself.
    subject: subject ? `sub:${subject}` : `hash:${digest}`,
    digest,
  };
  if (tid) info.tenantId = tid;
  if (typeof claims.exp === 'number') info.expiresAt = claims.exp * 1000;
  return info;
}
