/**
 * Small readers over MCP connections and results.
 */
import type { ConnectionState, MCPConnection } from '../../src/MCPConnection.js';
import type { MCPManager } from '../../src/MCPManager.js';
import type { MCPManagerEvents } from '../../src/events.js';

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

/** The first manager event of a kind matching `test`, as a promise (listening from now on). */
export function nextManagerEvent<K extends keyof MCPManagerEvents>(
  m: MCPManager,
  event: K,
  test: (e: MCPManagerEvents[K]) => boolean = () => true,
): Promise<MCPManagerEvents[K]> {
  return new Promise((resolve) => {
    const on = (e: MCPManagerEvents[K]) => {
      if (!test(e)) return;
      m.off(event, on);
      resolve(e);
    };
    m.on(event, on);
  });
}
