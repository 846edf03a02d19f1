/**
 * Quick start: one MCPManager with a shared stdio server and an On-Behalf-Of server, a tool call for a user,
 * and a clean shutdown. Run with the environment variables below set (Microsoft Entra ID as the IdP).
 */
import { MCPManager, OboError, SwitchboardError, createOboTokenResolver, type UserContext } from 'mcp-switchboard';

const manager = new MCPManager({
  servers: {
    // Needs no user identity: one shared child process for every user.
    everything: { command: 'npx', args: ['-y', '@modelcontextprotocol/server-everything'] },
    // Needs the user's identity: every HTTP request carries a token exchanged for this user.
    files: {
      url: 'https://files-mcp.example.com/mcp',
      obo: { scopes: 'api://files-mcp/.default' },
    },
  },
  oboTokenResolver: createOboTokenResolver({
    issuer: `https://login.microsoftonline.com/${process.env.ENTRA_TENANT_ID}/v2.0`,
    clientId: process.env.RUNTIME_CLIENT_ID!,
    clientSecret: process.env.RUNTIME_CLIENT_SECRET!,
  }),
});

// Who the call is for. In a service this comes from the verified inbound bearer (see docs/obo.md).
const user: UserContext = {
  id: process.env.USER_OID!, // stable principal id: never empty, never "anonymous"
  tenantId: process.env.ENTRA_TENANT_ID,
  upstreamToken: process.env.USER_ACCESS_TOKEN, // the user's access token for the runtime: the OBO assertion
};

try {
  // A shared server: no user needed (passing one does no harm).
  const echo = await manager.callTool({ serverName: 'everything', toolName: 'echo', arguments: { message: 'hello' } });
  console.log(echo.content);

  // An OBO server: the user is required; the call fails closed if no token can be had.
  const tools = await manager.listTools({ user, serverName: 'files' });
  console.log(tools.map((t) => t.name));
  const result = await manager.callTool({
    user,
    serverName: 'files',
    toolName: 'list_files',
    arguments: { path: '/' },
    signal: AbortSignal.timeout(30_000),
  });
  console.log(result.content);
} catch (err) {
  if (err instanceof OboError) {
    console.error(`no token for ${err.serverName}: ${err.reason} (retryable: ${err.retryable})`);
  } else if (err instanceof SwitchboardError) {
    console.error(`${err.code}: ${err.message}`);
  } else {
    throw err;
  }
} finally {
  await manager.close(); // closes every connection and child process, clears every timer
}
