/**
 * The Redis key names of the coordinator. Every key is under the host's `keyPrefix`; every name derived from a
 * token, a user or a `state` is an HMAC-SHA256 (keyed by a subkey of `encryptionKey`), so a key listing
 * reveals no token, no user id and no server name.
 * @module
 * @internal
 */
import type { OAuthClientKey, OAuthTokenKey } from '../oauth/store.js';
import { tokenKeyString } from '../oauth/store.js';
import { hmacHex } from './crypto.js';

/**
 * Builds the coordinator's key names under one prefix.
 *
 * @example
 * ```ts
 * const keys = new RedisKeys('mcp-switchboard:', mac);
 * keys.oboToken(cacheKey); // 'mcp-switchboard:obo:<64 hex digits>'
 * ```
 * @internal
 */
export class RedisKeys {
  constructor(
    readonly prefix: string,
    private readonly mac: Buffer,
  ) {}

  #name(kind: string, value: string): string {
    return `${this.prefix}${kind}:${hmacHex(this.mac, kind, value)}`;
  }

  /** The OAuth tokens of a (tenant, user, server). */
  oauthTokens(key: OAuthTokenKey): string {
    return this.#name('oauth-tokens', tokenKeyString(key));
  }

  /** The client registration of a (server, authorization server). */
  oauthClient(key: OAuthClientKey): string {
    return this.#name('oauth-client', `${key.serverName.length}:${key.serverName}|${key.issuer}`);
  }

  /** A pending authorization by its `state`. */
  oauthFlow(state: string): string {
    return this.#name('oauth-flow', state);
  }

  /** An upstream session by its provider's session key. */
  upstreamSession(key: string): string {
    return this.#name('session', key);
  }

  /** A shared OBO token by its cache key (already a hash; named again so the prefix and the HMAC apply). */
  oboToken(key: string): string {
    return this.#name('obo', key);
  }

  /** A lock's holder (its fencing token). */
  lock(key: string): string {
    return this.#name('lock', key);
  }

  /** A lock's fencing counter. */
  fence(key: string): string {
    return this.#name('fence', key);
  }

  /** The stream of invalidations (capped; every replica reads it with a blocking XREAD). */
  get invalidationStream(): string {
    return `${this.prefix}invalidate`;
  }

  /** A server's fleet-wide config version (an upsertServer/removeServer applies only above the last one applied). */
  configVersion(serverName: string): string {
    return this.#name('config-version', serverName);
  }

  /** The HMAC compare-and-set compares: of an upstream session's access and refresh tokens. */
  sessionHash(accessToken: string, refreshToken: string | undefined): string {
    return hmacHex(this.mac, 'session-cas', `${accessToken.length}:${accessToken}|${refreshToken === undefined ? '-' : `${refreshToken.length}:${refreshToken}`}`);
  }
}
