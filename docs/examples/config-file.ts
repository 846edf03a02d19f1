/**
 * Servers from a file (ours, LibreChat's librechat.yaml, Claude Desktop's or VS Code's mcp.json), validation
 * errors reported with their paths, and a reload that applies a new file without dropping in-flight calls.
 */
import { ConfigError, MCPManager, parseServersConfig } from 'mcp-switchboard';
import { loadConfigFile } from 'mcp-switchboard/config';

export async function managerFromFile(path: string): Promise<MCPManager> {
  try {
    const { servers, format, warnings } = await loadConfigFile(path); // format detected: switchboard, librechat, …
    for (const w of warnings) console.warn(`${path} (${format}): ${w.path}: ${w.message}`);
    return new MCPManager({ servers });
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const issue of err.issues) console.error(`${path}: ${issue.path}: ${issue.message}`);
    }
    throw err;
  }
}

/** Applies a new set of servers: all validated first (nothing changes on error), then upserted or removed. */
export async function reload(manager: MCPManager, next: Record<string, unknown>): Promise<void> {
  const parsed = parseServersConfig(next); // throws ConfigError listing every problem; nothing applied
  for (const [name, config] of Object.entries(parsed)) manager.upsertServer(name, config); // changed → stale
  const removed = manager.serverNames().filter((name) => !(name in parsed));
  await Promise.all(removed.map((name) => manager.removeServer(name))); // closes after in-flight calls end
}
