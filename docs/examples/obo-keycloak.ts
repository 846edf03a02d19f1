/**
 * Keycloak (26.2+, standard token exchange V2): RFC 8693 token exchange by the agent runtime's client,
 * with the MCP server's client id as `audience` and a client scope as `scope`.
 */
import { importPKCS8 } from 'jose';
import { MCPManager, createBearerVerifier, createOboTokenResolver } from 'mcp-switchboard';

const ISSUER = 'https://sso.example.com/realms/agents'; // the realm's issuer (discovery at /.well-known/openid-configuration)

// Inbound: user tokens must name the runtime's client in `aud` (an audience mapper on the login client).
export const verifier = createBearerVerifier({ issuer: ISSUER, audience: 'agent-runtime' });

// Outbound: the runtime's confidential client, with "Standard token exchange" enabled.
export const oboTokenResolver = createOboTokenResolver({
  issuer: ISSUER,
  grant: 'token-exchange',
  clientId: 'agent-runtime',
  clientSecret: process.env.KEYCLOAK_RUNTIME_SECRET!,
});

export const manager = new MCPManager({
  servers: {
    tickets: {
      url: 'https://tickets-mcp.example.com/mcp',
      // audience: the MCP server's client id; scopes: client scopes assigned to agent-runtime.
      obo: { scopes: ['tickets-mcp'], audience: 'tickets-mcp' },
    },
  },
  oboTokenResolver,
});

/** The same resolver authenticating with a signed JWT (client authenticator "Signed JWT") instead of a secret. */
export async function signedJwtResolver(pkcs8Pem: string) {
  const key = await importPKCS8(pkcs8Pem, 'RS256');
  return createOboTokenResolver({
    issuer: ISSUER,
    grant: 'token-exchange',
    clientId: 'agent-runtime',
    clientAuthMethod: 'private_key_jwt',
    privateKey: { key, kid: 'agent-runtime-2026' }, // the kid of the public key in the client's JWKS
  });
}
