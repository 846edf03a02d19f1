/**
 * The MCP SDK's `OAuthClientProvider` contract, answered from our stores for one key: the SDK's `auth()` runs
 * discovery, registration, PKCE and the token requests; this object only remembers and recalls.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { createPrivateKeyJwtAuth } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import type { AddClientAuthentication, OAuthClientProvider, OAuthDiscoveryState } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import { AuthorizationError } from '../errors.js';
import type { OAuthStore, OAuthTokenKey } from './store.js';

/**
 * A server's `oauth` block as the flow reads it.
 *
 * @example
 * ```ts
 * const cfg: ServerOAuthSettings = { scopes: ['read'], clientId: 'pre-registered-id', clientSecret: 's3cret' };
 * ```
 */
export interface ServerOAuthSettings {
  /** `authorization_code` (per user, the default) or `client_credentials` (the app itself). */
  grant?: 'authorization_code' | 'client_credentials';
  /** Scopes to request when neither the challenge nor the server's metadata names any. */
  scopes?: string | string[];
  /** A pre-registered client id. */
  clientId?: string;
  /** Its secret (`client_secret_basic` / `client_secret_post`, as the authorization server supports). */
  clientSecret?: string;
  /** A private key (PEM, or a JWK as JSON) for `private_key_jwt` client authentication (RFC 7523 §2.2). */
  privateKey?: string;
  /** The JWS algorithm of `privateKey` (default `RS256`). */
  algorithm?: string;
  /** The authorization server the pre-registered client belongs to; its credentials go to no other. */
  issuer?: string;
}

/**
 * What a {@link StoreBackedProvider} needs.
 *
 * @example
 * ```ts
 * const ctx: ProviderContext = { key: { userId: 'alice', serverName: 'notes' }, serverUrl: 'https://notes.example.com/mcp', settings: {},
 *   store: new MemoryOAuthStore(), redirectUri: 'https://chat.example.com/oauth/callback', clientName: 'chat',
 *   discovery: { get: () => undefined, set: () => {} }, now: Date.now };
 * ```
 */
export interface ProviderContext {
  key: OAuthTokenKey;
  /** The MCP server's URL (stamped on the tokens). */
  serverUrl: string;
  settings: ServerOAuthSettings;
  store: OAuthStore;
  /** The redirect URI; absent for client credentials (non-interactive). */
  redirectUri?: string;
  clientMetadataUrl?: string;
  clientName: string;
  /** Discovery state shared by every user of the server (in memory). */
  discovery: { get(): OAuthDiscoveryState | undefined; set(state: OAuthDiscoveryState): void };
  /** The verifier of the flow being completed, when completing one. */
  codeVerifier?: string;
  /** The client of the flow being completed (used as is, not looked up). */
  client?: OAuthClientInformationMixed;
  now: () => number;
}

/**
 * Scopes as one space-separated string, or `undefined`.
 *
 * @example
 * ```ts
 * scopeString(['read', 'write']); // 'read write'
 * ```
 */
export function scopeString(scopes: string | string[] | undefined): string | undefined {
  const s = Array.isArray(scopes) ? scopes.join(' ') : scopes;
  return s?.trim() ? s.trim() : undefined;
}

/**
 * Trailing slashes aside, two issuer URLs are the same.
 *
 * @example
 * ```ts
 * sameIssuer('https://auth.example.com/', 'https://auth.example.com'); // true
 * ```
 */
export function sameIssuer(a: string | URL, b: string | URL): boolean {
  return String(a).replace(/\/+$/, '') === String(b).replace(/\/+$/, '');
}

/**
 * One key's side of the SDK's `auth()`. Made per run: it records what the run produced (the authorization URL,
 * the verifier, the state) for the authorizer to read afterwards.
 *
 * @example
 * ```ts
 * const provider = new StoreBackedProvider(ctx);
 * const result = await auth(provider, { serverUrl: ctx.serverUrl });
 * if (result === 'REDIRECT') console.log(provider.authorizationUrl?.href, provider.flowState);
 * ```
 */
export class StoreBackedProvider implements OAuthClientProvider {
  readonly #ctx: ProviderContext;
  /** What a run that ended in `REDIRECT` produced. */
  authorizationUrl: URL | undefined;
  savedCodeVerifier: string | undefined;
  readonly flowState: string = randomBytes(32).toString('base64url');
  readonly addClientAuthentication?: AddClientAuthentication;
  /** The client identity this run used last (stamped on the tokens it obtains). */
  #client: OAuthClientInformationMixed | undefined;

  constructor(ctx: ProviderContext) {
    this.#ctx = ctx;
    const { settings } = ctx;
    if (settings.privateKey && settings.clientId) {
      this.addClientAuthentication = createPrivateKeyJwtAuth({
        issuer: settings.clientId,
        subject: settings.clientId,
        privateKey: parseKey(settings.privateKey),
        alg: settings.algorithm ?? 'RS256',
      });
    }
  }

  get redirectUrl(): string | undefined {
    return this.#ctx.redirectUri;
  }

  get clientMetadataUrl(): string | undefined {
    return this.#ctx.clientMetadataUrl;
  }

  get clientMetadata(): OAuthClientMetadata {
    const { settings, redirectUri, clientName } = this.#ctx;
    const scope = scopeString(settings.scopes);
    if (!redirectUri) {
      return {
        client_name: clientName,
        redirect_uris: [],
        grant_types: ['client_credentials'],
        token_endpoint_auth_method: settings.privateKey ? 'private_key_jwt' : 'client_secret_basic',
        ...(scope ? { scope } : {}),
      };
    }
    return {
      client_name: clientName,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      ...(scope ? { scope } : {}),
    };
  }

  /** The client identity this run used (after `auth()`), or `undefined`. */
  get usedClient(): OAuthClientInformationMixed | undefined {
    return this.#client;
  }

  state(): string {
    return this.flowState;
  }

  /**
   * The client identity, in the order the MCP spec (2025-11-25) prefers: a stored registration; else a client ID
   * metadata document when both sides support it (returning nothing lets the SDK use it); else the pre-registered
   * credentials; else nothing, and the SDK registers dynamically (RFC 7591).
   */
  async clientInformation(): Promise<OAuthClientInformationMixed | undefined> {
    if (this.#ctx.client) return (this.#client = this.#ctx.client);
    const { settings, store, key } = this.#ctx;
    const issuer = this.#issuer();
    if (issuer) {
      const stored = await store.getClient({ serverName: key.serverName, issuer });
      if (stored) return (this.#client = stored);
      const cimd = this.#ctx.clientMetadataUrl && this.#ctx.discovery.get()?.authorizationServerMetadata?.client_id_metadata_document_supported === true;
      if (cimd && this.#ctx.redirectUri) return undefined;
    }
    if (settings.clientId) {
      return (this.#client = {
        client_id: settings.clientId,
        ...(settings.clientSecret ? { client_secret: settings.clientSecret } : {}),
        ...(settings.issuer ? { issuer: settings.issuer } : {}),
      } as OAuthClientInformationMixed);
    }
    return undefined;
  }

  async saveClientInformation(info: OAuthClientInformationMixed): Promise<void> {
    this.#client = info;
    // Pre-registered credentials are config, not state: binding them is the SDK's business, storing them is not ours.
    if (this.#ctx.settings.clientId && info.client_id === this.#ctx.settings.clientId) return;
    const issuer = (info as { issuer?: string }).issuer ?? this.#issuer();
    if (!issuer) return;
    await this.#ctx.store.setClient({ serverName: this.#ctx.key.serverName, issuer }, info);
  }

  /**
   * None, always: the SDK reads tokens only to refresh them inside `auth()`, and the authorizer refreshes itself
   * (so that a transient refresh failure fails the call instead of sending the user to consent again, and a
   * step-up asks for consent instead of refreshing the narrower grant).
   */
  tokens(): OAuthTokens | undefined {
    return undefined;
  }

  async saveTokens(tokens: OAuthTokens): Promise<void> {
    const client = this.#client && !this.#ctx.settings.clientId ? { client: this.#client } : {}; // config credentials stay in the config
    await this.#ctx.store.setTokens(this.#ctx.key, { ...tokens, obtainedAt: this.#ctx.now(), serverUrl: this.#ctx.serverUrl, ...client });
  }

  redirectToAuthorization(authorizationUrl: URL): void {
    this.authorizationUrl = authorizationUrl;
  }

  saveCodeVerifier(codeVerifier: string): void {
    this.savedCodeVerifier = codeVerifier;
  }

  codeVerifier(): string {
    const v = this.#ctx.codeVerifier ?? this.savedCodeVerifier;
    if (!v) throw new AuthorizationError('authorization_invalid_state', 'No PKCE code verifier for this authorization', { serverName: this.#ctx.key.serverName });
    return v;
  }

  prepareTokenRequest(scope?: string): URLSearchParams | undefined {
    if (this.#ctx.redirectUri) return undefined; // the authorization-code defaults
    const params = new URLSearchParams({ grant_type: 'client_credentials' });
    const s = scope ?? scopeString(this.#ctx.settings.scopes);
    if (s) params.set('scope', s);
    return params;
  }

  async invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): Promise<void> {
    const { store, key } = this.#ctx;
    if (scope === 'all' || scope === 'tokens') await store.deleteTokens(key);
    if (scope === 'all' || scope === 'client') {
      const issuer = this.#issuer();
      if (issuer) await store.deleteClient({ serverName: key.serverName, issuer });
    }
  }

  /**
   * Discovery results are shared by the server's users. The authorization server's metadata must name the
   * issuer it was fetched for (RFC 8414 §3.3): otherwise another server could stand in for it. Without
   * protected-resource metadata (the 2025-03-26 fallback: metadata at the MCP server's own origin, whose issuer
   * may carry a path), the issuer must at least be on the MCP server's origin.
   */
  saveDiscoveryState(state: OAuthDiscoveryState): void {
    checkDiscoveredIssuer(state, this.#ctx.serverUrl, this.#ctx.key.serverName);
    this.#ctx.discovery.set(state);
  }

  discoveryState(): OAuthDiscoveryState | undefined {
    return this.#ctx.discovery.get();
  }

  #issuer(): string | undefined {
    return this.#ctx.discovery.get()?.authorizationServerUrl;
  }
}

/**
 * Throws `authorization_issuer_mismatch` unless the discovered authorization server metadata names the issuer it
 * was fetched for (RFC 8414 §3.3), or, without protected-resource metadata (the 2025-03-26 fallback, where the
 * issuer may carry a path), an issuer on the MCP server's origin.
 *
 * @example
 * ```ts
 * checkDiscoveredIssuer(state, 'https://mcp.example.com/mcp', 'notes'); // throws on a mix-up
 * ```
 */
export function checkDiscoveredIssuer(state: OAuthDiscoveryState, serverUrl: string, serverName: string): void {
  const issuer = state.authorizationServerMetadata?.issuer;
  if (issuer === undefined) return;
  const legacy = state.resourceMetadata === undefined;
  if (legacy ? originOf(issuer) === originOf(serverUrl) : sameIssuer(issuer, state.authorizationServerUrl)) return;
  throw new AuthorizationError(
    'authorization_issuer_mismatch',
    `"${serverName}": the authorization server metadata fetched for ${originOf(state.authorizationServerUrl)} names another issuer`,
    { serverName },
  );
}

function parseKey(key: string): string | Record<string, unknown> {
  const trimmed = key.trim();
  return trimmed.startsWith('{') ? (JSON.parse(trimmed) as Record<string, unknown>) : trimmed;
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return 'the configured URL';
  }
}
