/**
 * A long tool call kept alive by the server's progress notifications, within a hard bound.
 */
import { MCPManager, type UserContext } from 'mcp-switchboard';

const manager = new MCPManager({ servers: { files: { url: 'https://files-mcp.example.com/mcp', obo: { scopes: 'api://files-mcp/.default' } } } });
const user: UserContext = { id: 'user-1', upstreamToken: process.env.USER_ACCESS_TOKEN };

const report = await manager.callTool({
  user,
  serverName: 'files',
  toolName: 'reindex',
  timeoutMs: 30_000, // at most 30 s of silence…
  resetTimeoutOnProgress: true, // …restarted by each progress notification…
  maxTotalTimeoutMs: 15 * 60_000, // …and never more than 15 minutes in all
  onProgress: ({ progress, total, message }) => console.log(`${progress}/${total ?? '?'} ${message ?? ''}`),
});
console.log(report.content);
await manager.close();
