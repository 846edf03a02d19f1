/**
 * Connection settings live on the factory the manager is given: reconnect policy, result cap, standby stream.
 */
import { MCPConnectionFactory, MCPManager } from 'mcp-switchboard';

const servers = { docs: { url: 'https://docs-mcp.example.com/mcp' } };

const connectionFactory = new MCPConnectionFactory({
  reconnect: { maxAttempts: 8, minDelayMs: 200, maxDelayMs: 30_000, healthyAfterMs: 60_000 },
  limits: { maxResultBytes: 4 * 1024 * 1024 },
  standbyStream: false,
});
const manager = new MCPManager({ servers, connectionFactory });

await manager.close();
await connectionFactory.close();
