/**
 * Microsoft Entra ID: inbound verification of the user's token for the agent runtime API, On-Behalf-Of
 * exchanges for the MCP server's API, the user identity (`tid` + `oid`), and what to tell a client when
 * Entra refuses an exchange (consent, conditional access).
 */
import {
  MCPManager,
  OboError,
  createBearerVerifier,
  createOboTokenResolver,
  defaultOboTrustChecker,
  type OboErrorCause,
  type OboTokenResolver,
  type OboTrustChecker,
  type UserContext,
  type VerifiedBearer,
} from 'mcp-switchboard';

const TENANT_ID = process.env.ENTRA_TENANT_ID!; // Directory (tenant) ID
const RUNTIME_APP_ID = process.env.RUNTIME_APP_ID!; // Application (client) ID of the agent runtime
const FILES_APP_ID = process.env.FILES_MCP_APP_ID!; // Application (client) ID of the MCP server's API

// Inbound: the user's token for the runtime API. Accept both issuer forms and both audience forms, since
// the token version is chosen by the runtime app's manifest (requestedAccessTokenVersion), not by the client.
export const verifier = createBearerVerifier({
  issuer: [`https://login.microsoftonline.com/${TENANT_ID}/v2.0`, `https://sts.windows.net/${TENANT_ID}/`],
  audience: [RUNTIME_APP_ID, `api://${RUNTIME_APP_ID}`],
  requiredScopes: ['access_as_user'],
});

// Outbound: OBO (jwt-bearer grant, requested_token_use=on_behalf_of) at the tenant's v2.0 endpoint.
export const oboTokenResolver = createOboTokenResolver({
  issuer: `https://login.microsoftonline.com/${TENANT_ID}/v2.0`,
  clientId: RUNTIME_APP_ID,
  clientSecret: process.env.RUNTIME_CLIENT_SECRET!,
  timeoutMs: 5_000,
});

// Which servers may receive users' tokens: operator-configured ones (the default rule) on an allow-list.
const OBO_SERVERS = new Set(['files']);
export const oboTrustChecker: OboTrustChecker = (req) => defaultOboTrustChecker(req) && OBO_SERVERS.has(req.serverName);

export const manager = new MCPManager({
  servers: {
    files: { url: 'https://files-mcp.contoso.com/mcp', obo: { scopes: `api://${FILES_APP_ID}/.default` } },
  },
  oboTokenResolver,
  oboTrustChecker,
});

/**
 * The user of a verified Entra token. `sub` is pairwise (different for every app); `oid` is the user's
 * object id in the tenant, the same for every app, so pools, logs and audits line up across services.
 */
export function entraUser(bearer: VerifiedBearer): UserContext {
  const oid = typeof bearer.claims.oid === 'string' ? bearer.claims.oid : bearer.subject;
  return verifier.toUserContext(bearer, { id: oid }); // tenantId from tid, upstreamToken = the bearer
}

/** Multi-tenant runtime: one resolver per allowed tenant, chosen by the user's tenant. */
export function perTenantResolver(allowedTenants: ReadonlySet<string>, clientSecret: string): OboTokenResolver {
  const resolvers = new Map<string, OboTokenResolver>();
  return (req) => {
    const tid = req.user.tenantId;
    if (!tid || !allowedTenants.has(tid)) {
      return Promise.reject(new OboError('untrusted', `Tenant not allowed for "${req.serverName}"`, { serverName: req.serverName }));
    }
    let resolve = resolvers.get(tid);
    if (!resolve) {
      resolve = createOboTokenResolver({ issuer: `https://login.microsoftonline.com/${tid}/v2.0`, clientId: RUNTIME_APP_ID, clientSecret });
      resolvers.set(tid, resolve);
    }
    return resolve(req);
  };
}

/** What a client of the runtime is told when Entra refuses an exchange. */
export function describeOboFailure(err: OboError): { status: number; body: Record<string, unknown> } {
  const cause = (err.cause ?? {}) as OboErrorCause;
  if (cause.error === 'interaction_required' && cause.claims) {
    // Conditional access (MFA, compliant device…): the client must get a new user token with this claims
    // challenge (MSAL: acquireToken with `claims`), then retry.
    return { status: 401, body: { error: 'interaction_required', claims: cause.claims } };
  }
  if (cause.suberror === 'consent_required' || cause.error_codes?.includes(65001)) {
    // The runtime has not been granted the MCP server's scope: an admin grants consent once.
    return { status: 403, body: { error: 'consent_required', server: err.serverName } };
  }
  if (err.reason === 'missing_upstream_token' || cause.error === 'invalid_grant') {
    return { status: 401, body: { error: 'sign_in_again' } }; // expired or revoked user token
  }
  return err.retryable
    ? { status: 503, body: { error: 'temporarily_unavailable', retryAfterSec: cause.retryAfterSec ?? 5 } }
    : { status: 502, body: { error: err.reason } };
}
