/**
 * A long tool call kept alive by the server's progress notifications, within a hard bound.
 */
import { MCPManager, type UserContext } from 'mcp-switchboard';

// `reindex` runs for minutes and reports its progress (a per-user server: each user has their own index).
const manager = new MCPManager({ servers: { files: { url: 'https://files-mcp.example.com/mcp', headers: { 'X-User': '{{user.id}}' } } } });
const user: UserContext = { id: 'user-1' };

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
