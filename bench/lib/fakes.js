/**
 * Light stand-ins for connections, so that pool benchmarks measure the pool and not a transport.
 * @module
 */
import { EventEmitter } from 'node:events';
import { MCPConnectionFactory } from '../../dist/index.js';

/**
 * A connection that is always connected and does nothing: what the pool needs of a connection
 * (`isConnected`, `close`, `on`/`off` of `close`) and no more.
 *
 * @example
 * ```js
 * const conn = new FakeConnection('svc');
 * conn.isConnected(); // true
 * await conn.close(); // emits 'close' once
 * ```
 */
export class FakeConnection extends EventEmitter {
  /** @param {string} serverName */
  constructor(serverName) {
    super();
    this.serverName = serverName;
    this.closed = false;
  }

  /** @returns {boolean} */
  isConnected() {
    return !this.closed;
  }

  /** @returns {Promise<void>} */
  async close() {
    if (this.closed) return;
    this.closed = true;
    this.emit('close', {});
  }
}

/**
 * An `MCPConnectionFactory` whose `create()` returns a {@link FakeConnection} at once: no transport, no I/O.
 * Counts what it created.
 *
 * @example
 * ```js
 * const factory = new FakeConnectionFactory();
 * const manager = new MCPManager({ servers, connectionFactory: factory });
 * await manager.getConnection({ user: { id: 'u1' }, serverName: 'svc' });
 * factory.created; // 1
 * ```
 */
export class FakeConnectionFactory extends MCPConnectionFactory {
  created = 0;

  /** @param {{ serverName: string }} req */
  async create(req) {
    this.created++;
    return /** @type {any} */ (new FakeConnection(req.serverName));
  }
}
