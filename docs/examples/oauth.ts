/**
 * Per-user MCP OAuth run by the package: the error that asks for consent, the callback route, revocation.
 */
import { createServer } from 'node:http';
import { AuthorizationError, AuthorizationRequiredError, MCPManager, MemoryOAuthFlowStore, MemoryOAuthStore, type UserContext } from 'mcp-switchboard';

// The session of the browser that makes the request; your app's own session lookup.
declare function sessionUser(cookieHeader: string | undefined): UserContext | undefined;

const manager = new MCPManager({
  servers: {
    linear: { url: 'https://mcp.linear.app/mcp', oauth: {} }, // per user, with the user's consent
    notes: { url: 'https://notes.example.com/mcp', oauth: { scopes: ['notes:read'], clientId: 'chat-app', clientSecret: '${NOTES_CLIENT_SECRET}' } },
    reports: { url: 'https://reports.example.com/mcp', oauth: { grant: 'client_credentials', clientId: 'chat-app', clientSecret: '${REPORTS_SECRET}' } },
  },
  oauth: {
    redirectUri: 'https://chat.example.com/oauth/callback',
    clientMetadataUrl: 'https://chat.example.com/oauth/client-metadata.json', // optional: your client ID metadata document
    store: new MemoryOAuthStore(), // tokens and registrations (the default; a shared store for several replicas)
    flowStore: new MemoryOAuthFlowStore(), // pending authorizations by state (the default)
    flowTtlMs: 10 * 60_000,
  },
});

// 1. A call that needs the user's consent rejects with the URL to show.
async function listIssues(user: UserContext) {
  try {
    return await manager.callTool({ user, serverName: 'linear', toolName: 'list_issues' });
  } catch (err) {
    if (err instanceof AuthorizationRequiredError) {
      return { needsConsent: { serverName: err.serverName, url: err.authorizationUrl.href } }; // show it as a link
    }
    throw err;
  }
}

// Or push the link to the user's UI once per flow, rather than from each failed call.
manager.on('authorizationRequired', (e) => console.log(`ask ${e.userId} to connect ${e.serverName}`));

// 2. The callback route: the authorization server sends the user's browser here with `code` and `state`.
createServer(async (req, res) => {
  if (!req.url?.startsWith('/oauth/callback')) return void res.writeHead(404).end();
  const user = sessionUser(req.headers.cookie);
  if (!user) return void res.writeHead(401).end('Sign in first, then open the link again.');
  try {
    const { serverName } = await manager.completeAuthorization(new URL(req.url, 'https://chat.example.com'), { user });
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`Connected to ${serverName}. You can close this window.`);
  } catch (err) {
    const code = err instanceof AuthorizationError ? err.code : 'error';
    res.writeHead(code === 'authorization_failed' ? 502 : 400, { 'content-type': 'text/plain' }).end(`Could not connect (${code}).`);
  }
}).listen(8080, '127.0.0.1');

// 3. The user disconnects the server in your settings page.
async function disconnectLinear(user: UserContext) {
  await manager.revokeAuthorization({ user, serverName: 'linear' });
}

export { listIssues, disconnectLinear };
