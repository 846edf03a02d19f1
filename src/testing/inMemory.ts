/**
 * Linked in-memory client/server pairs: a real MCP server object in the same process, no sockets. For unit
 * tests of code built on `MCPConnection`, `MCPConnectionFactory` or `MCPManager`.
 * @module
 */
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';

/**
 * An MCP server object: the high-level `McpServer` or the low-level `Server`.
 *
 * @example
 * ```ts
 * const server: InMemoryMcpServer = new McpServer({ name: 'test', version: '1.0.0' });
 * ```
 */
export type InMemoryMcpServer = McpServer | Server;

/**
 * A connected in-memory pair.
 *
 * @example
 * ```ts
 * const pair: InMemoryPair = await createInMemoryPair(server);
 * await pair.close(); // the client sees its transport close
 * ```
 */
export interface InMemoryPair {
  /** Hand this to a client (or return it from a transport factory). Not started yet. */
  clientTransport: Transport;
  /** The server's end, already connected to `server`. */
  serverTransport: Transport;
  /** Closes both ends: the client sees its transport close (as after a server crash). Idempotent. */
  close(): Promise<void>;
}

/**
 * Connects `server` to one end of a linked in-memory pair and returns the other end for a client.
 * A server object serves one pair at a time: use {@link createInMemoryServerFactory} for reconnects.
 *
 * @example
 * ```ts
 * import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
 * const server = new McpServer({ name: 'test', version: '1.0.0' });
 * const pair = await createInMemoryPair(server);
 * const conn = new MCPConnection({ serverName: 'test', config, createTransport: async () => pair.clientTransport });
 * ```
 */
export async function createInMemoryPair(server: InMemoryMcpServer): Promise<InMemoryPair> {
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  await server.connect(serverTransport);
  let closing: Promise<void> | undefined;
  return {
    clientTransport,
    serverTransport,
    close: () => (closing ??= server.close().catch(() => {})),
  };
}

/**
 * What {@link createInMemoryServerFactory} returns.
 *
 * @example
 * ```ts
 * const servers: InMemoryServerFactory = createInMemoryServerFactory(() => buildServer());
 * await servers.createTransport();
 * console.log(servers.pairs.length); // 1
 * ```
 */
export interface InMemoryServerFactory {
  /**
   * Makes a fresh server and pair for each connect attempt; returns the client end. Fits both
   * `MCPConnectionOptions.createTransport` and `MCPConnectionFactoryOptions.createTransport`.
   */
  createTransport: () => Promise<Transport>;
  /** Every pair made so far, oldest first. */
  readonly pairs: readonly InMemoryPair[];
  /** Closes the newest pair from the server side: its client sees a transport loss. */
  dropLatest(): Promise<void>;
  /** Closes every pair. Idempotent. */
  close(): Promise<void>;
}

/**
 * A transport factory over in-memory pairs, with a new server object (from `makeServer`) per connection, so
 * reconnects work as they would against a real server.
 *
 * @example
 * ```ts
 * const servers = createInMemoryServerFactory(() => buildMyServer());
 * const conn = new MCPConnection({ serverName: 'mine', config, createTransport: servers.createTransport });
 * await conn.connect();
 * await servers.dropLatest(); // conn reconnects to a fresh server
 * await conn.close();
 * await servers.close();
 * ```
 */
export function createInMemoryServerFactory(makeServer: () => InMemoryMcpServer | Promise<InMemoryMcpServer>): InMemoryServerFactory {
  const pairs: InMemoryPair[] = [];
  return {
    pairs,
    async createTransport() {
      const pair = await createInMemoryPair(await makeServer());
      pairs.push(pair);
      return pair.clientTransport;
    },
    async dropLatest() {
      await pairs.at(-1)?.close();
    },
    async close() {
      await Promise.all(pairs.map((p) => p.close()));
    },
  };
}
