/**
 * Small readers over MCP connections and results.
 */
import type { ConnectionState, MCPConnection } from '../../src/MCPConnection.js';

/** The text of the first content item of a tool result, if it is text. */
export function firstText(result: { content?: unknown }): string | undefined {
  const first = (result.content as { type: string; text?: string }[] | undefined)?.[0];
  return first?.type === 'text' ? first.text : undefined;
}

/** Resolves the next time `conn` enters `state`. */
export function nextState(conn: MCPConnection, state: ConnectionState): Promise<void> {
  return new Promise((resolve) => {
    const onState = ({ to }: { to: ConnectionState }) => {
      if (to !== state) return;
      conn.off('state', onState);
      resolve();
    };
    conn.on('state', onState);
  });
}
