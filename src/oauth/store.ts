/**
 * Where the MCP authorization flow keeps what it obtains: tokens per (tenant, user, server), client
 * registrations per (server, authorization server), and pending flows per `state`. In memory by default; the
 * interfaces are what a shared store (Redis, a database) implements for several replicas.
 * @module
 */
import { LRUCache } from 'lru-cache';
import type { OAuthClientInformationMixed, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';

/**
 * Whose tokens: a user of a tenant at one server, or (no `userId`) the app itself (client credentials).
 *
 * @example
 * ```ts
 * const key: OAuthTokenKey = { tenantId: 'contoso', userId: 'alice', serverName: 'linear' };
 * ```
 */
export interface OAuthTokenKey {
  /** The server name the tokens are for. */
  serverName: string;
  /** The user; absent for the app's own tokens (client credentials on a shared connection). */
  userId?: string;
  /** The user's tenant. */
  tenantId?: string;
}

/**
 * Tokens as stored: the token response (RFC 6749 §5.1) plus when it was obtained and which authorization server
 * issued it (the MCP SDK stamps `issuer`, so a refresh token is never presented to another one).
 *
 * @example
 * ```ts
 * const t: StoredOAuthTokens = { access_token: 'eyJ…', token_type: 'Bearer', expires_in: 3600, obtainedAt: Date.now(), issuer: 'https://auth.example.com' };
 * ```
 */
export type StoredOAuthTokens = OAuthTokens & {
  /** When the token response arrived, in ms since the epoch (with `expires_in`, when the access token expires). */
  obtainedAt: number;
  /** The authorization server that issued them. */
  issuer?: string;
  /** The MCP server URL they were obtained for: never sent to another one (RFC 8707 audience binding). */
  serverUrl?: string;
  /** The client that obtained them (its refresh must use the same client, even after a new registration). */
  client?: OAuthClientInformationMixed;
};

/**
 * Which client registration: the one for a server at one authorization server (shared by all users).
 *
 * @example
 * ```ts
 * const key: OAuthClientKey = { serverName: 'linear', issuer: 'https://auth.linear.app' };
 * ```
 */
export interface OAuthClientKey {
  /** The server name. */
  serverName: string;
  /** The authorization server's URL (as discovered). */
  issuer: string;
}

/**
 * Tokens and client registrations of the MCP authorization flow. Every method may be async. Implementations
 * must store what they are given unchanged (the SDK's `issuer` stamps included) and must not share entries
 * between keys. The default is {@link MemoryOAuthStore}; a store shared by several replicas makes consent
 * given on one replica good on all.
 *
 * @example
 * ```ts
 * const store: OAuthStore = new MemoryOAuthStore();
 * await store.setTokens({ userId: 'alice', serverName: 'linear' }, { access_token: 'a', token_type: 'Bearer', obtainedAt: Date.now() });
 * ```
 */
export interface OAuthStore {
  /** The tokens of a key, or `undefined`. */
  getTokens(key: OAuthTokenKey): Promise<StoredOAuthTokens | undefined> | StoredOAuthTokens | undefined;
  /** Replaces the tokens of a key (a rotated refresh token is saved here before it is used). */
  setTokens(key: OAuthTokenKey, tokens: StoredOAuthTokens): Promise<void> | void;
  /** Forgets the tokens of a key (revocation, an `invalid_grant`). */
  deleteTokens(key: OAuthTokenKey): Promise<void> | void;
  /** The client registration for a server at an authorization server, or `undefined`. */
  getClient(key: OAuthClientKey): Promise<OAuthClientInformationMixed | undefined> | OAuthClientInformationMixed | undefined;
  /** Saves a client registration (dynamic registration, or a client ID metadata document URL). */
  setClient(key: OAuthClientKey, client: OAuthClientInformationMixed): Promise<void> | void;
  /** Forgets a client registration (the authorization server answered `invalid_client`). */
  deleteClient(key: OAuthClientKey): Promise<void> | void;
}

/**
 * A pending authorization: what `completeAuthorization` needs when the user's browser comes back. Holds the PKCE
 * code verifier, so a store must keep it as secret as tokens.
 *
 * @example
 * ```ts
 * const flow: PendingAuthorization = { key: { userId: 'alice', serverName: 'linear' }, serverUrl: 'https://mcp.linear.app/mcp',
 *   codeVerifier: 'dBjftJeZ4CVP…', issuer: 'https://auth.linear.app', expiresAt: Date.now() + 600_000 };
 * ```
 */
export interface PendingAuthorization {
  /** Whose authorization this is. */
  key: OAuthTokenKey;
  /** The MCP server's URL the flow was started for (a changed config refuses the callback). */
  serverUrl: string;
  /** The PKCE code verifier (RFC 7636). */
  codeVerifier: string;
  /** The authorization server's issuer identifier, for the callback's `iss` check (RFC 9207). */
  issuer?: string;
  /** Whether the authorization server said it sends `iss` on the callback (`authorization_response_iss_parameter_supported`). */
  issRequired?: boolean;
  /** The protected-resource metadata URL the server's challenge named. */
  resourceMetadataUrl?: string;
  /** The scope requested. */
  scope?: string;
  /** When the flow expires, in ms since the epoch. */
  expiresAt: number;
  /** The authorization server the flow started at: the code goes there and nowhere else. */
  authorizationServerUrl?: string;
  /** Its metadata as discovered then (endpoints, auth methods). */
  authorizationServerMetadata?: Record<string, unknown>;
  /** The RFC 8707 `resource` the authorization request named (sent again with the code). */
  resource?: string;
  /** The dynamically registered client the flow started with. */
  client?: OAuthClientInformationMixed;
}

/**
 * Pending authorizations by their `state`. `take` must be atomic (get and delete in one step), so that a
 * callback replayed, or racing itself on two replicas, completes once.
 *
 * @example
 * ```ts
 * const flows: OAuthFlowStore = new MemoryOAuthFlowStore();
 * await flows.put(state, flow);
 * const again = await flows.take(state); // the flow; a second take: undefined
 * ```
 */
export interface OAuthFlowStore {
  /** Saves a pending authorization under its `state` until `flow.expiresAt`. */
  put(state: string, flow: PendingAuthorization): Promise<void> | void;
  /** Removes and returns the flow of `state`; `undefined` when unknown, taken already or expired. */
  take(state: string): Promise<PendingAuthorization | undefined> | PendingAuthorization | undefined;
  /** Whether `state` is still pending (optional: lets a pending link be handed out again only while it can complete). */
  has?(state: string): Promise<boolean> | boolean;
}

/**
 * A string key of a token key: tenant and user ids are length-prefixed, so no two keys can collide.
 *
 * @example
 * ```ts
 * tokenKeyString({ tenantId: 't', userId: 'alice', serverName: 'linear' }); // '1:t|5:alice|linear'
 * ```
 */
export function tokenKeyString(key: OAuthTokenKey): string {
  const part = (s: string | undefined) => (s === undefined ? '-' : `${s.length}:${s}`);
  return `${part(key.tenantId)}|${part(key.userId)}|${key.serverName}`;
}

/**
 * The default {@link OAuthStore}: in this process only, bounded (least recently used tokens dropped first).
 *
 * @example
 * ```ts
 * const manager = new MCPManager({ servers, oauth: { redirectUri: 'https://chat.example.com/oauth/callback', store: new MemoryOAuthStore({ maxEntries: 50_000 }) } });
 * ```
 */
export class MemoryOAuthStore implements OAuthStore {
  readonly #tokens: LRUCache<string, StoredOAuthTokens>;
  readonly #clients = new Map<string, OAuthClientInformationMixed>();

  /** @param opts.maxEntries - most token sets kept (default 100 000). */
  constructor(opts: { maxEntries?: number } = {}) {
    const max = opts.maxEntries ?? 100_000;
    if (!Number.isInteger(max) || max < 1) throw new TypeError('MemoryOAuthStore: maxEntries must be a positive integer');
    this.#tokens = new LRUCache({ max });
  }

  getTokens(key: OAuthTokenKey): StoredOAuthTokens | undefined {
    return this.#tokens.get(tokenKeyString(key));
  }

  setTokens(key: OAuthTokenKey, tokens: StoredOAuthTokens): void {
    this.#tokens.set(tokenKeyString(key), tokens);
  }

  deleteTokens(key: OAuthTokenKey): void {
    this.#tokens.delete(tokenKeyString(key));
  }

  getClient(key: OAuthClientKey): OAuthClientInformationMixed | undefined {
    return this.#clients.get(`${key.serverName}|${key.issuer}`);
  }

  setClient(key: OAuthClientKey, client: OAuthClientInformationMixed): void {
    this.#clients.set(`${key.serverName}|${key.issuer}`, client);
  }

  deleteClient(key: OAuthClientKey): void {
    this.#clients.delete(`${key.serverName}|${key.issuer}`);
  }
}

/**
 * The default {@link OAuthFlowStore}: in this process only; entries expire at their `expiresAt`, and at most
 * `maxEntries` are pending (the oldest dropped first).
 *
 * @example
 * ```ts
 * const flows = new MemoryOAuthFlowStore({ maxEntries: 10_000 });
 * ```
 */
export class MemoryOAuthFlowStore implements OAuthFlowStore {
  readonly #flows: LRUCache<string, PendingAuthorization>;
  readonly #now: () => number;

  /** @param opts.maxEntries - most pending flows (default 10 000); `now` - the clock (tests). */
  constructor(opts: { maxEntries?: number; now?: () => number } = {}) {
    const max = opts.maxEntries ?? 10_000;
    if (!Number.isInteger(max) || max < 1) throw new TypeError('MemoryOAuthFlowStore: maxEntries must be a positive integer');
    this.#now = opts.now ?? Date.now;
    this.#flows = new LRUCache({ max });
  }

  put(state: string, flow: PendingAuthorization): void {
    this.#flows.set(state, flow);
  }

  has(state: string): boolean {
    const flow = this.#flows.get(state);
    return flow !== undefined && flow.expiresAt > this.#now();
  }

  take(state: string): PendingAuthorization | undefined {
    const flow = this.#flows.get(state);
    if (flow === undefined) return undefined;
    this.#flows.delete(state);
    return flow.expiresAt > this.#now() ? flow : undefined;
  }
}
