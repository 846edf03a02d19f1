/**
 * Cross-app access (enterprise-managed authorization, SEP-990): the user's ID token from the enterprise IdP is
 * exchanged there for an ID-JAG, which the MCP server's own authorization server trades for an access token.
 */
import { MCPManager, createOboTokenResolver, type UserContext } from 'mcp-switchboard';

export const oboTokenResolver = createOboTokenResolver({
  grant: 'cross-app-access',
  issuer: 'https://idp.example.com',
  clientId: 'agent-runtime', // public client at the IdP (clientAuthMethod 'none') unless a secret or key is given
});

export const manager = new MCPManager({
  servers: {
    crm: {
      url: 'https://crm-mcp.example.com/mcp',
      // The client registered at crm's authorization server (client_secret_basic); scopes are optional.
      obo: { grant: 'cross-app-access', clientId: 'agent-runtime', clientSecret: '${CRM_AS_SECRET}' },
    },
  },
  oboTokenResolver,
});

/** The user's ID token (not an access token) is the assertion. */
export function userFor(id: string, idToken: string): UserContext {
  return { id, upstreamToken: idToken };
}
